"""Inventory writes: partial/full updates, one record's quantity, the legacy v1 update."""

from __future__ import annotations

from .data import Store
from .inventory import MAX_QTY
from .params import bad
from .validate import body_object, is_int, location_value


def _quantity(qty) -> bool:
    """Any integer quantity a record can hold: oversold stock is negative."""
    return is_int(qty) and -MAX_QTY <= qty <= MAX_QTY


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
            if not _quantity(qty):
                raise bad(f"The request body is invalid: {where}: qty_on_hand must be an integer "
                          f"(-{MAX_QTY}..{MAX_QTY})")
            loc = rec.get("location_external_id")
            loc = "default" if loc is None else location_value(loc, f"{where}: location_external_id")
            bin_ = rec.get("bin")
            if bin_ is not None and not isinstance(bin_, str):
                raise bad(f"The request body is invalid: {where}: bin must be a string")
            out.append(((entry["sku"], loc, bin_ or "default"), qty))
    return out


def inventory_patch(store: Store, sku: str, body) -> dict:
    body = body_object(body)
    qty = body.get("qty_on_hand")
    if isinstance(qty, str) and qty.lstrip("-").isdigit() and qty.isascii():
        qty = int(qty)
    if not _quantity(qty):
        raise bad(f"The request can't be understood: qty_on_hand must be an integer (-{MAX_QTY}..{MAX_QTY})")
    loc = body.get("location_external_id")
    loc = "default" if loc is None else location_value(loc, "location_external_id")
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
