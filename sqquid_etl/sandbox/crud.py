"""Write side of the API: validate a request body, then change the store.

Each function validates everything first (raising ``Reject``, nothing changed), then applies
the change under ``store.lock`` and returns the JSON-able answer.
"""

from __future__ import annotations

import re

from . import timeutil
from .data import CHANNELS, Store
from .generate import money4
from .views import Reject, bad, not_found, v2_product, v2_variant

INVALID_JSON = "Invalid format for request body. Please make sure you provide a valid JSON"
ZIP_RE = re.compile(r"^\d{4,5}(-\d{4})?$")


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _obj(body) -> dict:
    if not isinstance(body, dict):
        raise bad(INVALID_JSON)
    return body


def _loc_value(v, field: str) -> str:
    if isinstance(v, str):
        return v
    if is_int(v):
        return str(v)
    raise bad(f"{field} must be a string")


# ---- inventory -----------------------------------------------------------------------------
def inventory_updates(body) -> list[tuple[tuple[str, str, str], int]]:
    """Validate a partial/full body: ``[{"sku", "inventory": [{"qty_on_hand", ...}]}]``."""
    if not isinstance(body, list):
        raise bad("The request body is invalid: expected a JSON array")
    out = []
    for i, entry in enumerate(body):
        if not isinstance(entry, dict) or not isinstance(entry.get("sku"), str) or not entry["sku"]:
            raise bad(f"The request body is invalid: item {i} needs a non-empty string sku")
        inv = entry.get("inventory")
        if not isinstance(inv, list):
            raise bad(f"The request body is invalid: item {i} ({entry['sku']}) needs an inventory array")
        for j, rec in enumerate(inv):
            where = f"item {i} ({entry['sku']}) inventory {j}"
            if not isinstance(rec, dict):
                raise bad(f"The request body is invalid: {where} is not an object")
            qty = rec.get("qty_on_hand")
            if not is_int(qty) or qty < 0:
                raise bad(f"The request body is invalid: {where}: qty_on_hand must be an integer >= 0")
            loc = rec.get("location_external_id")
            loc = "default" if loc is None else _loc_value(loc, f"{where}: location_external_id")
            bin_ = rec.get("bin")
            if bin_ is not None and not isinstance(bin_, str):
                raise bad(f"The request body is invalid: {where}: bin must be a string")
            out.append(((entry["sku"], loc, bin_ or "default"), qty))
    return out


def inventory_patch(store: Store, sku: str, body) -> dict:
    body = _obj(body)
    qty = body.get("qty_on_hand")
    if isinstance(qty, str) and qty.isdigit():
        qty = int(qty)
    if not is_int(qty) or qty < 0:
        raise bad("The request can't be understood: qty_on_hand must be an integer >= 0")
    loc = body.get("location_external_id")
    loc = "default" if loc is None else _loc_value(loc, "location_external_id")
    bin_ = body.get("bin")
    if bin_ is not None and not isinstance(bin_, str):
        raise bad("bin must be a string")
    return store.patch_inventory((sku, loc, bin_ or "default"), qty)


def legacy_inventory_update(store: Store, params: dict) -> dict:
    skus = [s for s in params.get("sku", "").split(",") if s]
    qtys = [q for q in params.get("qty", "").split(",") if q]
    if not skus or len(skus) != len(qtys) or len(skus) > 250:
        raise bad("sku and qty must be lists of the same length (max 250)")
    try:
        values = [int(q) for q in qtys]
    except ValueError:
        raise bad("qty must be integers") from None
    if any(v < 0 for v in values):
        raise bad("qty must be >= 0")
    store.set_inventory([((s, "default", "default"), q) for s, q in zip(skus, values)])
    return {"message": "success"}


# ---- v2 products -----------------------------------------------------------------------------
def _check_fields(body: dict, variant: bool) -> None:
    for key in ("name", "brand", "description", "alu"):
        if key in body and not isinstance(body[key], str):
            raise bad(INVALID_JSON + f" ({key} must be a string)")
    if "price" in body and not is_num(body["price"]):
        raise bad(INVALID_JSON + " (price must be a number)")
    if "price_special" in body and body["price_special"] is not None and not is_num(body["price_special"]):
        raise bad(INVALID_JSON + " (price_special must be a number)")
    if "data" in body and not isinstance(body["data"], dict):
        raise bad(INVALID_JSON + " (data must be an object)")
    if "channel_id" in body and not is_int(body["channel_id"]):
        raise bad(INVALID_JSON + " (channel_id must be an integer)")
    if variant and "attributes" in body and not isinstance(body["attributes"], dict):
        raise bad(INVALID_JSON + " (attributes must be an object)")


def _set_attr(rec: dict, label: str, value) -> None:
    attrs = [a for a in rec["Attributes"] if a["label"].lower() != label.lower()]
    if value not in (None, ""):
        attrs.append({"label": label, "value": str(value)})
    rec["Attributes"] = attrs


def _apply(store: Store, rec: dict, body: dict, now: str) -> None:
    for key in ("name", "description"):
        if key in body:
            rec[key] = body[key]
    if "price" in body:
        rec["price"] = money4(round(body["price"] * 100))
    if "price_special" in body:
        ps = body["price_special"]
        rec["price_special"] = None if ps is None else money4(round(ps * 100))
    if "brand" in body:
        _set_attr(rec, "Brand", body["brand"])
    if "alu" in body:
        _set_attr(rec, "ALU", body["alu"])
    for key, value in (body.get("attributes") or {}).items():
        label = next((a["label"] for a in rec["Attributes"] if a["label"].lower() == key.lower()), key)
        _set_attr(rec, label, value)
    extra = dict(store.v2_data.get(rec["id"], {}))
    for key, value in (body.get("data") or {}).items():
        if key == "weight" and (value is None or is_num(value)):
            rec["weight"] = None if value is None else money4(round(value * 100))
        elif key == "short_description" and isinstance(value, str):
            rec["short_description"] = value
        elif key == "categories" and "Categories" in rec and isinstance(value, list):
            rec["Categories"] = [" > ".join(map(str, c)) if isinstance(c, list) else str(c) for c in value]
        else:
            extra[key] = value
    if extra:
        store.v2_data[rec["id"]] = extra
    rec["updated_at"] = now


def product_upsert(store: Store, body, sku: str | None = None) -> dict:
    """POST /v2/products (sku in body; updates when it exists) or PATCH /v2/products/{sku}."""
    body = _obj(body)
    _check_fields(body, variant=False)
    with store.lock:
        if sku is None:
            sku = body.get("sku")
            if not isinstance(sku, str) or not sku:
                raise bad(INVALID_JSON + " (sku is required)")
            product = store.product_by_sku.get(sku)
            if product is None and sku in store.variant_by_sku:
                raise bad(f"sku {sku!r} is already used by a variant")
        else:
            product = store.product_by_sku.get(sku)
            if product is None:
                raise not_found("Product not found")
        now = store.tick()
        if product is None:
            product = {"id": store.next_id("products"), "sku": sku, "name": "", "description": "",
                       "short_description": "", "weight": None, "price": "0.0000", "price_special": None,
                       "price_msrp": None, "created_at": now, "updated_at": now, "Attributes": [],
                       "Categories": [], "Child_Products": []}
            store._add_product(product)
        _apply(store, product, body, now)
        store.touch("products", product["id"])
        return v2_product(store, product)


def product_delete(store: Store, sku: str) -> str:
    with store.lock:
        product = store.product_by_sku.get(sku)
        if product is None:
            raise not_found("Product not found")
        store.tick()
        store.products.remove(product)
        del store.product_by_sku[sku]
        del store.product_by_id[product["id"]]
        for child in product["Child_Products"]:
            store.variant_by_sku.pop(child["sku"], None)
        store.touch("products", product["id"])
        return "OK"


def variants_list(store: Store, sku: str) -> list:
    product = store.product_by_sku.get(sku)
    if product is None:
        raise not_found("Product not found")
    return [v2_variant(store, c) for c in product["Child_Products"]]


def variant_upsert(store: Store, sku: str, body, variant_sku: str | None = None) -> dict:
    body = _obj(body)
    _check_fields(body, variant=True)
    with store.lock:
        product = store.product_by_sku.get(sku)
        if product is None:
            raise not_found("Product not found" if variant_sku is None else "Product or variant not found")
        if variant_sku is None:
            variant_sku = body.get("sku")
            if not isinstance(variant_sku, str) or not variant_sku:
                raise bad(INVALID_JSON + " (sku is required)")
            owner = store.variant_by_sku.get(variant_sku)
            if (owner and owner[0] is not product) or variant_sku in store.product_by_sku:
                raise bad(f"sku {variant_sku!r} is already used by another product")
            child = owner[1] if owner else None
        else:
            owner = store.variant_by_sku.get(variant_sku)
            if owner is None or owner[0] is not product:
                raise not_found("Product or variant not found")
            child = owner[1]
        now = store.tick()
        if child is None:
            child = {"id": store.next_id("products"), "sku": variant_sku, "name": "", "description": "",
                     "short_description": "", "weight": None, "price": "0.0000", "price_special": None,
                     "price_msrp": None, "created_at": now, "updated_at": now, "Attributes": [], "qty": 0}
            product["Child_Products"].append(child)
            store.variant_by_sku[variant_sku] = (product, child)
        _apply(store, child, body, now)
        product["updated_at"] = now
        store.touch("products", product["id"])
        return v2_variant(store, child)


def variant_delete(store: Store, sku: str, variant_sku: str) -> str:
    with store.lock:
        product = store.product_by_sku.get(sku)
        owner = store.variant_by_sku.get(variant_sku)
        if product is None or owner is None or owner[0] is not product:
            raise not_found("Product or variant not found")
        now = store.tick()
        product["Child_Products"] = [c for c in product["Child_Products"] if c["sku"] != variant_sku]
        del store.variant_by_sku[variant_sku]
        product["updated_at"] = now
        store.touch("products", product["id"])
        return "OK"


# ---- shipments, shipment items, returns ---------------------------------------------------------
def shipment_create(store: Store, order_id: int, body) -> dict:
    body = _obj(body if body is not None else {})
    fields = {}
    for key in ("shipment_status", "tracking_number", "shipping_carrier", "shipping_class"):
        if key in body:
            if not isinstance(body[key], str) or len(body[key]) > 200:
                raise bad(f"{key} must be a string of at most 200 characters")
            fields[key] = body[key]
    for key in ("seller_fulfillment_id", "distribution_center_id"):
        if key in body:
            value = body[key]
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            if not is_int(value):
                raise bad(f"{key} must be an integer")
            fields[key] = value
    with store.lock:
        order = store.order_by_id.get(order_id)
        if order is None:
            raise not_found("Order not found")
        if "shipment_date" in body:
            try:
                fields["shipment_date"] = timeutil.normalize(str(body["shipment_date"]))
            except ValueError:
                raise bad("shipment_date must be an ISO 8601 date") from None
        shipped: dict[int, int] = {}
        for s in store.shipments_by_order.get(order_id, ()):
            for it in s["order_items"]:
                shipped[it["id"]] = shipped.get(it["id"], 0) + it["qty"]
        remaining = {it["id"]: it["qty"] - shipped.get(it["id"], 0) for it in order["order_items"]}
        asked = body.get("order_items")
        if asked is None:
            lines = [{"id": i, "qty": q} for i, q in remaining.items() if q > 0]
            if not lines:
                raise bad("Order items have already been fully shipped: " + ", ".join(map(str, remaining)))
        else:
            if not isinstance(asked, list) or not all(isinstance(a, dict) and is_int(a.get("id")) for a in asked):
                raise bad("order_items must be a list of {id, qty}")
            lines, full = [], []
            for a in asked:
                if a["id"] not in remaining:
                    raise bad(f"Order item {a['id']} does not belong to order {order_id}")
                qty = a.get("qty", remaining[a["id"]])
                if not is_int(qty) or qty < 1:
                    raise bad(f"qty of order item {a['id']} must be an integer >= 1")
                if remaining[a["id"]] <= 0:
                    full.append(a["id"])
                elif qty > remaining[a["id"]]:
                    raise bad(f"qty of order item {a['id']} exceeds the {remaining[a['id']]} left to ship")
                lines.append({"id": a["id"], "qty": qty})
            if full:
                raise bad("Order items have already been fully shipped: " + ", ".join(map(str, full)))
        now = store.tick()
        fields.setdefault("shipment_date", now)
        store._ship(order, lines, now, fields)
        store.touch("shipments")
        store.touch("shipmentitems")
        return {"message": "success"}


def shipment_item_cancel(store: Store, item_id: int) -> str:
    with store.lock:
        scope = store.shipment_item_scope.get(item_id)
        if scope is None:
            raise not_found("Shipment item not found")
        if scope == "shipped":
            raise bad(f"Shipment item {item_id} has already been shipped")
        store.tick()
        store.shipment_item_scope[item_id] = "cancelled"
        store.touch("shipmentitems")
        return "OK"


def return_create(store: Store, order_id: int, body) -> dict:
    body = _obj(body)
    adjustment = body.get("adjustment")
    if adjustment is not None and not is_num(adjustment):
        raise bad("adjustment must be a number")
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise bad("items must be a non-empty array")
    with store.lock:
        order = store.order_by_id.get(order_id)
        if order is None:
            raise not_found("Order not found")
        ordered: dict[str, int] = {}
        for it in order["order_items"]:
            ordered[it["sku"]] = ordered.get(it["sku"], 0) + it["qty"]
        for r in store.returns.get(order_id, ()):
            for it in r["items"]:
                ordered[it["sku"]] = ordered.get(it["sku"], 0) - it["qty"]
        for it in items:
            if not isinstance(it, dict) or not isinstance(it.get("sku"), str):
                raise bad("each item needs a sku")
            if not isinstance(it.get("store_id_return"), str) or not it["store_id_return"]:
                raise bad(f"item {it['sku']}: store_id_return is required")
            if not is_int(it.get("qty")) or it["qty"] < 1:
                raise bad(f"item {it['sku']}: qty has to be greater than 0")
            if it["sku"] not in ordered:
                raise bad(f"item {it['sku']} is not in order {order_id}")
            if it["qty"] > ordered[it["sku"]]:
                raise bad(f"item {it['sku']}: qty exceeds the {ordered[it['sku']]} that can be returned")
        stamp = store.tick().replace("T", " ")[:19]
        rec = store._make_return(order, stamp, store._mgen, adjustment,
                                 [{"sku": i["sku"], "store_id_return": i["store_id_return"], "qty": i["qty"]}
                                  for i in items])
        store.touch("returns")
        return rec


# ---- buffers ---------------------------------------------------------------------------------
def _buffer(store: Store, buffer_id: str) -> dict:
    try:
        bid = int(buffer_id)
    except ValueError:
        raise bad("Buffer id needs to be an integer") from None
    for b in store.buffers:
        if b["id"] == bid:
            return b
    raise not_found("Buffer not found")


def _qty(body) -> int:
    body = _obj(body)
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
        rec["location_external_id"] = _loc_value(body["location_external_id"], "location_external_id")
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
        rec = _buffer(store, buffer_id)
        store.tick()
        store.buffers.remove(rec)
        store.touch("buffers")
        return "OK"


# ---- locations -------------------------------------------------------------------------------
LOCATION_FIELDS = ("type_id", "enabled", "store_id", "address", "city", "state", "zip", "phone")


def _location(store: Store, location_id: str) -> dict:
    try:
        lid = int(location_id)
    except ValueError:
        raise bad("location id needs to be an integer") from None
    for loc in store.locations:
        if loc["id"] == lid:
            return loc
    raise not_found("Can't find the specified location")


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


def location_create(store: Store, body) -> dict:
    body = _obj(body)
    merged = {"type_id": 3, "enabled": True, **{k: body[k] for k in LOCATION_FIELDS if k in body}}
    with store.lock:
        _validate_location(store, merged, None)
        store.tick()
        rec = {"id": store.next_id("locations")}
        rec.update({k: merged.get(k) for k in LOCATION_FIELDS})
        store.locations.append(rec)
        store.touch("locations")
        return rec


def location_update(store: Store, location_id: str, body) -> dict:
    body = _obj(body)
    with store.lock:
        rec = _location(store, location_id)
        merged = {**rec, **{k: body[k] for k in LOCATION_FIELDS if k in body}}
        _validate_location(store, merged, rec["id"])
        store.tick()
        rec.update({k: merged[k] for k in LOCATION_FIELDS})
        store.touch("locations")
        return rec


def location_delete(store: Store, location_id: str) -> str:
    with store.lock:
        rec = _location(store, location_id)
        store.tick()
        store.locations.remove(rec)
        store.touch("locations")
        return "OK"
