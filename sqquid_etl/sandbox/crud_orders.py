"""Order-side writes: create a shipment, cancel a shipment item, create a return.

Each function validates everything first (raising ``Reject``, nothing changed), then applies
the change under ``store.lock`` and returns the JSON-able answer.
"""

from __future__ import annotations

from . import mutations, timeutil
from .data import Store
from .params import bad, not_found
from .validate import body_object, is_int, is_num


def _shipment_fields(body: dict) -> dict:
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
    if "shipment_date" in body:
        try:
            fields["shipment_date"] = timeutil.normalize(str(body["shipment_date"]))
        except ValueError:
            raise bad("shipment_date must be an ISO 8601 date") from None
    return fields


def _lines(order_id: int, remaining: dict[int, int], asked) -> list[dict]:
    """The ``[{"id", "qty"}]`` to ship: what was asked, or everything left to ship."""
    if asked is None:
        lines = [{"id": i, "qty": q} for i, q in remaining.items() if q > 0]
        if not lines:
            raise bad("Order items have already been fully shipped: " + ", ".join(map(str, remaining)))
        return lines
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
    return lines


def shipment_create(store: Store, order_id: int, body) -> dict:
    body = body_object(body if body is not None else {})
    fields = _shipment_fields(body)
    with store.lock:
        key = store.book.order_key(order_id)
        if key is None:
            raise not_found("Order not found")
        shipped: dict[int, int] = {}
        for s in store.shipments_of(order_id):
            for it in s["order_items"]:
                shipped[it["id"]] = shipped.get(it["id"], 0) + it["qty"]
        order = store.book.order(key)
        remaining = {it["id"]: it["qty"] - shipped.get(it["id"], 0) for it in order["order_items"]}
        lines = _lines(order_id, remaining, body.get("order_items"))
        now = store.tick()
        fields.setdefault("shipment_date", now)
        mutations.ship(store, key, lines, now, fields)
        store.touch("shipments")
        store.touch("shipmentitems")
        return {"message": "success"}


def shipment_item_cancel(store: Store, item_id: int) -> str:
    with store.lock:
        book = store.book
        if not book.items.exists(item_id - 1):
            raise not_found("Shipment item not found")
        if book.scope(item_id - 1) == mutations.SHIPPED:
            raise bad(f"Shipment item {item_id} has already been shipped")
        store.tick()
        book.set_scope(item_id - 1, mutations.CANCELLED)
        store.touch("shipmentitems")
        return "OK"


def _check_return_items(order_id: int, items: list, returnable: dict[str, int]) -> None:
    for it in items:
        if not isinstance(it, dict) or not isinstance(it.get("sku"), str):
            raise bad("each item needs a sku")
        if not isinstance(it.get("store_id_return"), str) or not it["store_id_return"]:
            raise bad(f"item {it['sku']}: store_id_return is required")
        if not is_int(it.get("qty")) or it["qty"] < 1:
            raise bad(f"item {it['sku']}: qty has to be greater than 0")
        if it["sku"] not in returnable:
            raise bad(f"item {it['sku']} is not in order {order_id}")
        if it["qty"] > returnable[it["sku"]]:
            raise bad(f"item {it['sku']}: qty exceeds the {returnable[it['sku']]} that can be returned")


def return_create(store: Store, order_id: int, body) -> dict:
    body = body_object(body)
    adjustment = body.get("adjustment")
    if adjustment is not None and not is_num(adjustment):
        raise bad("adjustment must be a number")
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise bad("items must be a non-empty array")
    with store.lock:
        key = store.book.order_key(order_id)
        if key is None:
            raise not_found("Order not found")
        returnable: dict[str, int] = {}
        for it in store.book.order(key)["order_items"]:
            returnable[it["sku"]] = returnable.get(it["sku"], 0) + it["qty"]
        for r in store.book.returns_of(key):
            for it in r["items"]:
                returnable[it["sku"]] = returnable.get(it["sku"], 0) - it["qty"]
        _check_return_items(order_id, items, returnable)
        asked = [{"sku": i["sku"], "store_id_return": i["store_id_return"], "qty": i["qty"]} for i in items]
        return mutations.add_return(store, key, asked, adjustment)
