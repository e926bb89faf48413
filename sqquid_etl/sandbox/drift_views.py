"""Every record of a list as the sandbox holds it (undrifted), as it serves it (drifted) and in
its canonical form (the drifted values in the undrifted representation), for tests that compare
what a connector stored with what the server meant.

Views: the v1 lists (``orders``, ``products``, ``shipments``, ``shipmentitems``) and the
offset lists (``inventory``: one object per sku, ``buffers``, ``locations``). Callers hold
``store.lock`` or call through ``Store``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from .pools import dumps

VIEWS = ("orders", "products", "shipments", "shipmentitems", "inventory", "buffers", "locations")


def inventory_object(sku: str, entries) -> dict:
    """One sku of ``GET /v1/inventory``; ``entries``: (key, id, qty) of its records."""
    return {"sku": sku, "inventory": [{"qty_on_hand": qty, "location_external_id": key[1], "bin": key[2]}
                                      for key, _, qty in entries]}


def undrifted(store, view: str) -> Iterator[tuple[object, dict]]:
    """(drift key, fresh undrifted record) of every live record of a view, in list order."""
    table = store.tables.get(view)
    if table is not None:
        return ((k, table.record(k)) for k in table.keys())
    if view in ("buffers", "locations"):
        return ((rec["id"], json.loads(dumps(rec))) for rec in getattr(store, view))
    if view == "inventory":
        by_sku: dict[str, list] = {}
        for entry in store.stock.items():
            by_sku.setdefault(entry[0][0], []).append(entry)
        return ((sku, inventory_object(sku, entries)) for sku, entries in by_sku.items())
    raise ValueError(f"no list view {view!r}; views: {', '.join(VIEWS)}")


def served(store, view: str) -> list[dict]:
    """Every record as the list endpoint serves it (the bytes a client reads, parsed)."""
    table = store.tables.get(view)
    if table is not None:
        return [json.loads(table.json_bytes(k)) for k in table.keys()]
    return [store.serve(view, key, rec) for key, rec in undrifted(store, view)]


def canonical(store, view: str) -> list[dict]:
    """Every record in its canonical form (the undrifted record when the sandbox does not drift)."""
    drift = store.drift
    if drift is None:
        return [rec for _, rec in undrifted(store, view)]
    return [drift.apply(view, key, rec, served=False) for key, rec in undrifted(store, view)]


def lossy(store, view: str) -> dict:
    """``{record id (sku for inventory): path of the value served unreadable}``."""
    drift = store.drift
    if drift is None or not drift.profile.lossy:
        return {}
    out = {}
    for key, rec in undrifted(store, view):
        path = drift.lossy_field(view, key, rec)
        if path is not None:
            out[rec.get("id", rec.get("sku"))] = path
    return out
