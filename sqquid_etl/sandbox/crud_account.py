"""Account-setting writes: buffers and locations (small lists kept as dicts).

Each function validates everything first (raising ``Reject``, nothing changed), then applies
the change under ``store.lock`` and returns the JSON-able answer.
"""

from __future__ import annotations

import re

from .data import CHANNELS, Store
from .params import Reject, bad, not_found
from .validate import INVALID_JSON, body_object, is_int, location_value

ZIP_RE = re.compile(r"^\d{4,5}(-\d{4})?$")
LOCATION_FIELDS = ("type_id", "enabled", "store_id", "address", "city", "state", "zip", "phone")


def _find(records: list[dict], raw_id: str, id_error: str, missing: str) -> dict:
    try:
        wanted = int(raw_id)
    except ValueError:
        raise bad(id_error) from None
    for rec in records:
        if rec["id"] == wanted:
            return rec
    raise not_found(missing)


def _delete(store: Store, records: list[dict], rec: dict, kind: str) -> str:
    store.tick()
    records.remove(rec)
    store.touch(kind)
    return "OK"


# ---- buffers ---------------------------------------------------------------------------------
def _buffer(store: Store, buffer_id: str) -> dict:
    return _find(store.buffers, buffer_id, "Buffer id needs to be an integer", "Buffer not found")


def _qty(body) -> int:
    body = body_object(body)
    if not is_int(body.get("qty")):
        raise bad(INVALID_JSON + " (qty must be an integer)")
    return body["qty"]


def buffer_create(store: Store, body) -> dict:
    qty = _qty(body)
    rec: dict = {}
    if "sku" in body:
        if not isinstance(body["sku"], str):
            raise bad(INVALID_JSON + " (sku must be a string)")
        rec["sku"] = body["sku"]
    if body.get("channel_id") is not None:
        if not is_int(body["channel_id"]) or body["channel_id"] not in CHANNELS:
            raise Reject(403, "Forbidden", "Invalid channel id. Please use a channel id that is "
                                           "associated with your Sqquid account.")
        rec["channel_id"] = body["channel_id"]
    if body.get("location_external_id") is not None:
        rec["location_external_id"] = location_value(body["location_external_id"], "location_external_id")
    with store.lock:
        now = store.tick()
        out = {"id": store.next_id("buffers"), **rec, "qty": qty, "created_at": now, "updated_at": now}
        store.buffers.append(out)
        store.touch("buffers")
        return out


def buffer_set(store: Store, buffer_id: str, body, add: bool = False) -> dict:
    with store.lock:
        rec = _buffer(store, buffer_id)
        qty = _qty(body)
        rec["qty"] = rec["qty"] + qty if add else qty
        rec["updated_at"] = store.tick()
        store.touch("buffers")
        return rec


def buffer_delete(store: Store, buffer_id: str) -> str:
    with store.lock:
        return _delete(store, store.buffers, _buffer(store, buffer_id), "buffers")


# ---- locations -------------------------------------------------------------------------------
def _location(store: Store, location_id: str) -> dict:
    return _find(store.locations, location_id, "location id needs to be an integer",
                 "Can't find the specified location")


def _validate_location(store: Store, merged: dict, self_id: int | None) -> None:
    if not isinstance(merged.get("store_id"), str) or not merged["store_id"]:
        raise bad("Malformed payload: store_id is required")
    if not is_int(merged.get("type_id")) or merged["type_id"] not in (0, 1, 2, 3):
        raise bad("Malformed payload: type_id must be 0, 1, 2 or 3")
    if not isinstance(merged.get("enabled"), bool):
        raise bad("Malformed payload: enabled must be a boolean")
    for key in ("address", "city", "state", "zip", "phone"):
        if merged.get(key) is not None and not isinstance(merged[key], str):
            raise bad(f"Malformed payload: {key} must be a string")
    if merged["type_id"] == 0 and not ZIP_RE.match(merged.get("zip") or ""):
        raise bad("Invalid zip code")
    if any(loc["store_id"] == merged["store_id"] and loc["id"] != self_id for loc in store.locations):
        raise bad("Duplicate store id")


def location_save(store: Store, body, location_id: str | None = None) -> dict:
    """POST /v1/locations (``location_id`` None) or PATCH /v1/locations/{location_id}."""
    body = body_object(body)
    given = {k: body[k] for k in LOCATION_FIELDS if k in body}
    with store.lock:
        rec = None if location_id is None else _location(store, location_id)
        merged = {"type_id": 3, "enabled": True, **given} if rec is None else {**rec, **given}
        _validate_location(store, merged, None if rec is None else rec["id"])
        store.tick()
        if rec is None:
            rec = {"id": store.next_id("locations")}
            store.locations.append(rec)
        rec.update({k: merged.get(k) for k in LOCATION_FIELDS})
        store.touch("locations")
        return rec


def location_delete(store: Store, location_id: str) -> str:
    with store.lock:
        return _delete(store, store.locations, _location(store, location_id), "locations")
