"""Changes a live account makes to records that already exist, between two extracts: orders and
shipments edited, variants edited without their parent's ``updated_at`` moving, shipment items
moved between scopes, records deleted, stock and buffers changed.

Seeded and controllable: ``apply(store, counts, rng)`` makes ``counts[kind]`` changes of each
kind (``KINDS``, in that order) with draws from ``rng`` only, so the same seed and counts give
the same changes; it returns what changed, ``{kind: [id or key, ...]}``. Edited records join
the store's overlay (``Table.change``), deleted ones its ``deleted`` set: memory grows with the
changes, not with the data. Orders and shipments are edited only while recent (created within
``recent`` seconds of the store's now): their list endpoints filter by creation date only, and
an account edits an order in its first days (address, status), not a year later.
Callers hold ``store.lock``.
"""

from __future__ import annotations

import random

from . import timeutil
from .order_records import SCOPES
from .pools import money4

KINDS = ("edit_orders", "edit_shipments", "edit_variants", "move_items", "change_stock", "change_buffers",
         "delete_orders", "delete_shipments", "delete_items", "delete_products", "delete_buffers")
RECENT = 7 * 86400  # seconds: how recent an order or shipment must be to be edited


def apply(store, counts: dict[str, int], rng: random.Random, recent: int = RECENT) -> dict[str, list]:
    unknown = set(counts) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown change kind(s) {sorted(unknown)}; expected some of {KINDS}")
    made: dict[str, list] = {}
    for kind in KINDS:
        if counts.get(kind):
            now = store.tick()
            made[kind] = globals()[f"_{kind}"](store, int(counts[kind]), rng, now, recent)
    return made


def _pick(keys, n: int, rng: random.Random) -> list[int]:
    """Up to n distinct keys drawn from a sequence."""
    keys = list(keys)
    return rng.sample(keys, min(n, len(keys)))


def _recent(now: str, recent: int) -> timeutil.Bound:
    return timeutil.at_least(timeutil.fmt(timeutil.to_epoch(now) - recent))


def _bump(value: str | None, cents: int) -> str:
    base = int(value.replace(".", "")) // 100 if value else 0
    return money4(max(base + cents, 0))


def _edit_orders(store, n: int, rng: random.Random, now: str, recent: int) -> list[int]:
    """Recent orders: a new total and tax, another shipping method and email, one item's
    discount (fields no shipment or shipment item is made from)."""
    book = store.book
    out = []
    for key in _pick(book.order_keys(None, _recent(now, recent)), n, rng):
        order = book.orders.record(key)
        cents = 100 + int(rng.random() * 900)
        order["total"], order["tax"] = _bump(order["total"], cents), _bump(order["tax"], cents // 10)
        order["shipping_method"] = rng.choice(["ground", "express", "pickup", "2day"])
        order["customer_email"] = f"changed{int(rng.random() * 1e6)}@example.com"
        item = order["order_items"][int(rng.random() * len(order["order_items"]))]
        item["discount"] = _bump(item.get("discount"), 50)
        book.change_order(key, order)
        out.append(order["id"])
    store.touch("orders")
    return out


def _edit_shipments(store, n: int, rng: random.Random, now: str, recent: int) -> list[int]:
    """Recent shipments: delivered (status, tracking number), ``updated_at`` now."""
    book = store.book
    out = []
    for key in _pick(book.shipment_keys(None, _recent(now, recent)), n, rng):
        shipment = book.shipments.record(key)
        shipment["shipment_status"] = rng.choice(["delivered", "in_transit", "returned"])
        shipment["tracking_number"] = f"1ZX{int(rng.random() * 1e9):09d}"
        shipment["updated_at"] = now
        book.shipments.change(key, shipment)
        out.append(shipment["id"])
    store.touch("shipments")
    return out


def _edit_variants(store, n: int, rng: random.Random, now: str, recent: int) -> list[str]:
    """A variant's price and qty, its own ``updated_at`` now; its parent's stays as it was."""
    catalog = store.catalog
    out = []
    for key in _pick(catalog.table.keys(), n, rng):
        product = catalog.product(key)
        if not product["Child_Products"]:
            continue
        child = product["Child_Products"][int(rng.random() * len(product["Child_Products"]))]
        child["price"] = _bump(child["price"], 100 + int(rng.random() * 500))
        child["qty"] = int(rng.random() * 40)
        child["updated_at"] = now
        catalog.save(key, product)
        store.touch("products", key)
        out.append(child["sku"])
    return out


def _move_items(store, n: int, rng: random.Random, now: str, recent: int) -> list[tuple[int, str, str]]:
    """Shipment items of any age to another scope: (id, from, to)."""
    book = store.book
    out = []
    for key in _pick(book.items.keys(), n, rng):
        before = book.scope(key)
        after = rng.choice([code for code in range(len(SCOPES)) if code != before])
        book.set_scope(key, after)
        out.append((key + 1, SCOPES[before], SCOPES[after]))
    store.touch("shipmentitems")
    return out


def _change_stock(store, n: int, rng: random.Random, now: str, recent: int) -> list[tuple]:
    """Inventory records of live skus: a new quantity, one in three sold out (0)."""
    skus = [c["sku"] for k in _pick(store.catalog.table.keys(), n, rng)
            for c in store.catalog.product(k)["Child_Products"][:1]]
    out = []
    for sku in skus:
        records = store.stock.of_sku(sku)
        if records:
            key = records[int(rng.random() * len(records))][0]
            store.stock.set(key, 0 if rng.random() < 1 / 3 else int(rng.random() * 60))
            out.append(key)
    store.touch("inventory")
    return out


def _change_buffers(store, n: int, rng: random.Random, now: str, recent: int) -> list[int]:
    out = []
    for buffer in _pick(store.buffers, n, rng) if store.buffers else []:
        buffer["qty"] = int(rng.random() * 10)
        buffer["updated_at"] = now
        out.append(buffer["id"])
    return out


def _delete(table, keys, touch) -> list[int]:
    for key in keys:
        table.delete(key)
    touch()
    return [key + 1 for key in keys]


def _delete_orders(store, n: int, rng: random.Random, now: str, recent: int) -> list[int]:
    return _delete(store.book.orders, _pick(store.book.orders.keys(), n, rng), lambda: store.touch("orders"))


def _delete_shipments(store, n: int, rng: random.Random, now: str, recent: int) -> list[int]:
    return _delete(store.book.shipments, _pick(store.book.shipments.keys(), n, rng), lambda: store.touch("shipments"))


def _delete_items(store, n: int, rng: random.Random, now: str, recent: int) -> list[int]:
    return _delete(store.book.items, _pick(store.book.items.keys(), n, rng), lambda: store.touch("shipmentitems"))


def _delete_products(store, n: int, rng: random.Random, now: str, recent: int) -> list[int]:
    catalog = store.catalog
    keys = _pick(catalog.table.keys(), n, rng)
    ids = [catalog.product(key)["id"] for key in keys]
    for key in keys:
        catalog.delete(key)
        store.touch("products", key)
    store.touch("inventory")
    return ids


def _delete_buffers(store, n: int, rng: random.Random, now: str, recent: int) -> list[int]:
    gone = {b["id"] for b in _pick(store.buffers, n, rng)} if store.buffers else set()
    store.buffers[:] = [b for b in store.buffers if b["id"] not in gone]
    return sorted(gone)
