"""The API's routes: each endpoint's handler and matching a request path to its route."""

from __future__ import annotations

import json
from urllib.parse import unquote

from . import crud_account, crud_inventory, crud_orders, crud_products, v2, views
from .params import Reject, bad, not_found
from .validate import INVALID_JSON


def json_body(body: bytes):
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise bad(INVALID_JSON) from None


def _int_arg(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise bad(f"{what} needs to be an integer") from None


# Each handler: (app, args, params, body bytes) -> bytes or a JSON-able object.
def _v1_list(route):
    return lambda app, a, p, b: views.v1_list(app.store, route, p)


def _v1_count(route):
    return lambda app, a, p, b: views.v1_count(app.store, route, p)


def _order_shipments(app, a, p, b):
    book = app.store.book
    key = book.order_key(_int_arg(a[0], "order id"))
    keys = [] if key is None else sorted(k for k in book.shipment_keys_of(key) if book.shipments.exists(k))
    return b'{"Shipments":[' + book.shipments.page(keys) + b"]}"


def _returns(app, a, p, b):
    key = app.store.book.order_key(_int_arg(a[0], "order id"))
    if key is None:
        raise not_found("Order not found")
    return app.store.book.returns_of(key)


def _inventory_set(full):
    def handler(app, a, p, b):
        updates = crud_inventory.inventory_updates(json_body(b))
        app.store.set_inventory(updates, full=full)
        return "OK"
    return handler


def _inventory_delete(app, a, p, b):
    inventory_id = _int_arg(a[1], "inventory id") if len(a) > 1 else None
    if not app.store.delete_inventory(a[0], inventory_id) and inventory_id is not None:
        raise not_found("Inventory record not found")
    return "OK"


ROUTES = {
    "POST /v1/login": None,  # answered by Handler._login (no token, no throttle, no faults)
    "GET /v1/orders": _v1_list("/v1/orders"),
    "GET /v1/orders/count": _v1_count("/v1/orders"),
    "GET /v1/products": _v1_list("/v1/products"),
    "GET /v1/products/count": _v1_count("/v1/products"),
    "POST /v1/products/inventory/update": lambda app, a, p, b: crud_inventory.legacy_inventory_update(app.store, p),
    "GET /v1/shipments": _v1_list("/v1/shipments"),
    "GET /v1/shipments/count": _v1_count("/v1/shipments"),
    "GET /v1/order/{order_id}/shipments": _order_shipments,
    "POST /v1/order/{order_id}/shipments":
        lambda app, a, p, b: crud_orders.shipment_create(app.store, _int_arg(a[0], "order id"), json_body(b)),
    "GET /v1/shipmentitems": _v1_list("/v1/shipmentitems"),
    "GET /v1/shipmentitems/count": _v1_count("/v1/shipmentitems"),
    "PATCH /v1/shipmentitems/{id}/cancel":
        lambda app, a, p, b: crud_orders.shipment_item_cancel(app.store, _int_arg(a[0], "shipment item id")),
    "GET /v2/products": lambda app, a, p, b: v2.v2_products(app.store, p),
    "POST /v2/products": lambda app, a, p, b: crud_products.product_upsert(app.store, json_body(b)),
    "PATCH /v2/products/{sku}": lambda app, a, p, b: crud_products.product_upsert(app.store, json_body(b), sku=a[0]),
    "DELETE /v2/products/{sku}": lambda app, a, p, b: crud_products.product_delete(app.store, a[0]),
    "GET /v2/products/{sku}/variants": lambda app, a, p, b: crud_products.variants_list(app.store, a[0]),
    "POST /v2/products/{sku}/variants": lambda app, a, p, b: crud_products.variant_upsert(app.store, a[0], json_body(b)),
    "PATCH /v2/products/{sku}/variants/{variant_sku}":
        lambda app, a, p, b: crud_products.variant_upsert(app.store, a[0], json_body(b), variant_sku=a[1]),
    "DELETE /v2/products/{sku}/variants/{variant_sku}":
        lambda app, a, p, b: crud_products.variant_delete(app.store, a[0], a[1]),
    "GET /v1/inventory": lambda app, a, p, b: views.inventory_list(app.store, p),
    "PATCH /v1/inventory/partial": _inventory_set(full=False),
    "PATCH /v1/inventory/full": _inventory_set(full=True),
    "GET /v1/inventory/{sku}": lambda app, a, p, b: app.store.inventory_of(a[0]),
    "PATCH /v1/inventory/{sku}": lambda app, a, p, b: crud_inventory.inventory_patch(app.store, a[0], json_body(b)),
    "DELETE /v1/inventory/{sku}": _inventory_delete,
    "DELETE /v1/inventory/{sku}/{inventory_id}": _inventory_delete,
    "GET /v1/buffers": lambda app, a, p, b: views.buffers_list(app.store, p),
    "POST /v1/buffers": lambda app, a, p, b: crud_account.buffer_create(app.store, json_body(b)),
    "PATCH /v1/buffers/{buffer_id}": lambda app, a, p, b: crud_account.buffer_set(app.store, a[0], json_body(b)),
    "PATCH /v1/buffers/{buffer_id}/add": lambda app, a, p, b: crud_account.buffer_set(app.store, a[0], json_body(b), add=True),
    "DELETE /v1/buffers/{buffer_id}": lambda app, a, p, b: crud_account.buffer_delete(app.store, a[0]),
    "GET /v1/locations": lambda app, a, p, b: views.locations_list(app.store, p),
    "POST /v1/locations": lambda app, a, p, b: crud_account.location_save(app.store, json_body(b)),
    "PATCH /v1/locations/{location_id}": lambda app, a, p, b: crud_account.location_save(app.store, json_body(b), a[0]),
    "DELETE /v1/locations/{location_id}": lambda app, a, p, b: crud_account.location_delete(app.store, a[0]),
    "GET /v2/orders/{order_id}/returns": _returns,
    "POST /v2/orders/{order_id}/returns":
        lambda app, a, p, b: crud_orders.return_create(app.store, _int_arg(a[0], "order id"), json_body(b)),
}
LIST_ROUTES = {"GET /v1/orders", "GET /v1/products", "GET /v1/shipments", "GET /v1/shipmentitems",
               "GET /v2/products", "GET /v1/inventory", "GET /v1/buffers", "GET /v1/locations"}

# (method, segments) with literal segments first so /v1/inventory/partial beats {sku}.
_TEMPLATES = sorted(
    ((key.split(" ", 1)[0], tuple(key.split(" ", 1)[1].strip("/").split("/")), key) for key in ROUTES),
    key=lambda t: sum(s.startswith("{") for s in t[1]))


def match(method: str, raw_path: str) -> tuple[str, list[str]]:
    """Route key and decoded path arguments; Reject 404/405 otherwise. Segments are split on
    the raw path, then percent-decoded (a sku may contain ``%2F``)."""
    segments = [unquote(s) for s in raw_path.strip("/").split("/")]
    allowed = []
    for m, template, key in _TEMPLATES:
        if len(template) != len(segments):
            continue
        args = []
        for t, s in zip(template, segments):
            if t.startswith("{"):
                if s == "":
                    break
                args.append(s)
            elif t != s:
                break
        else:
            if m == method:
                return key, args
            allowed.append(m)
    if allowed:
        raise Reject(405, "MethodNotAllowed", f"{method} is not allowed here (allowed: {', '.join(sorted(set(allowed)))})")
    raise Reject(404, "NotFound", f"No such endpoint: {method} {raw_path}")
