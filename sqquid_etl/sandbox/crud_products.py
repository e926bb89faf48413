"""v2 product and variant writes: create or update, delete.

Each function validates everything first (raising ``Reject``, nothing changed), then applies
the change under ``store.lock`` and returns the JSON-able answer.
"""

from __future__ import annotations

from .data import Store
from .params import bad, not_found
from .pools import money4
from .v2 import v2_product, v2_variant
from .validate import INVALID_JSON, body_object, is_int, is_num


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


def _blank(pid: int, sku: str, now: str, variant: bool) -> dict:
    """A new product (or variant) before the request's fields are applied."""
    rec = {"id": pid, "sku": sku, "name": "", "description": "", "short_description": "", "weight": None,
           "price": "0.0000", "price_special": None, "price_msrp": None, "created_at": now, "updated_at": now,
           "Attributes": []}
    rec.update({"qty": 0} if variant else {"Categories": [], "Child_Products": []})
    return rec


def _required_sku(body: dict) -> str:
    sku = body.get("sku")
    if not isinstance(sku, str) or not sku:
        raise bad(INVALID_JSON + " (sku is required)")
    return sku


def _product_key(store: Store, sku: str, message: str = "Product not found") -> int:
    key = store.catalog.find(sku)
    if key is None:
        raise not_found(message)
    return key


def product_upsert(store: Store, body, sku: str | None = None) -> dict:
    """POST /v2/products (sku in body; updates when it exists) or PATCH /v2/products/{sku}."""
    body = body_object(body)
    _check_fields(body, variant=False)
    with store.lock:
        catalog = store.catalog
        if sku is None:
            sku = _required_sku(body)
            key = catalog.find(sku)
            if key is None and catalog.find_variant(sku) is not None:
                raise bad(f"sku {sku!r} is already used by a variant")
        else:
            key = _product_key(store, sku)
        now = store.tick()
        if key is None:
            key = catalog.add(_blank(catalog.next_id(), sku, now, variant=False))
        product = catalog.product(key)
        _apply(store, product, body, now)
        catalog.save(key, product)
        store.touch("products", key)
        return v2_product(store, product)


def product_delete(store: Store, sku: str) -> str:
    with store.lock:
        key = _product_key(store, sku)
        store.tick()
        store.catalog.delete(key)
        store.touch("products", key)
        return "OK"


def variants_list(store: Store, sku: str) -> list:
    product = store.catalog.product(_product_key(store, sku))
    return [v2_variant(store, c) for c in product["Child_Products"]]


def _child(product: dict, sku: str) -> dict | None:
    return next((c for c in product["Child_Products"] if c["sku"] == sku), None)


def variant_upsert(store: Store, sku: str, body, variant_sku: str | None = None) -> dict:
    body = body_object(body)
    _check_fields(body, variant=True)
    with store.lock:
        catalog = store.catalog
        key = _product_key(store, sku, "Product not found" if variant_sku is None else "Product or variant not found")
        if variant_sku is None:
            variant_sku = _required_sku(body)
            owner = catalog.find_variant(variant_sku)
            if (owner and owner[0] != key) or catalog.find(variant_sku) is not None:
                raise bad(f"sku {variant_sku!r} is already used by another product")
        else:
            owner = catalog.find_variant(variant_sku)
            if owner is None or owner[0] != key:
                raise not_found("Product or variant not found")
        product = catalog.product(key)
        now = store.tick()
        child = _child(product, variant_sku)
        if child is None:
            child = _blank(catalog.next_id(), variant_sku, now, variant=True)
            product["Child_Products"].append(child)
        _apply(store, child, body, now)
        product["updated_at"] = now
        catalog.save(key, product)
        store.touch("products", key)
        return v2_variant(store, child)


def variant_delete(store: Store, sku: str, variant_sku: str) -> str:
    with store.lock:
        catalog = store.catalog
        key = catalog.find(sku)
        owner = catalog.find_variant(variant_sku)
        if key is None or owner is None or owner[0] != key:
            raise not_found("Product or variant not found")
        product = catalog.product(key)
        now = store.tick()
        product["Child_Products"] = [c for c in product["Child_Products"] if c["sku"] != variant_sku]
        product["updated_at"] = now
        catalog.added_variants.pop(variant_sku, None)
        catalog.save(key, product)
        store.touch("products", key)
        return "OK"
