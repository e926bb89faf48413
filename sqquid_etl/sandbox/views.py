"""Read side of the v1 lists: query parameters -> filtered keys -> paged response bytes.

Filtered key lists are cached per (endpoint, filter values, data version); a page is its
records' bytes (``Table.page``: cached within the store's budget, or made a page at a time).
Callers hold ``store.lock``.
"""

from __future__ import annotations

import json

from .data import SCOPES, Store
from .drift_views import inventory_object
from .params import bad, get_bool, get_int, get_list, get_stamp, offset_limit, page_limit
from .pools import dumps


def orders_filtered(store: Store, params: dict):
    ids = get_list(params, "ids", 250, as_int=True)
    lo = get_stamp(params, "created_at_min")
    book = store.book
    if ids is None and lo is None:
        return book.orders.keys()
    return store.query_cache.get(("orders", ids, lo, store.version["orders"]), lambda: book.order_keys(ids, lo))


def products_filtered(store: Store, params: dict):
    lo = get_stamp(params, "created_at_min")
    up = get_stamp(params, "updated_at_min")
    catalog = store.catalog
    if lo is None and up is None:
        return catalog.table.keys()
    return store.query_cache.get(("products", lo, up, store.version["products"]), lambda: catalog.keys(lo, up))


def shipments_filtered(store: Store, params: dict):
    order_ids = get_list(params, "order_ids", 250, as_int=True)
    lo = get_stamp(params, "created_at_min")
    integration = get_int(params, "catalog_integration_id")
    book = store.book
    if order_ids is None and lo is None and integration is None:
        return book.shipments.keys()
    return store.query_cache.get(("shipments", order_ids, lo, integration, store.version["shipments"]),
                                 lambda: book.shipment_keys(order_ids, lo, integration))


def shipment_items_filtered(store: Store, params: dict):
    scope = params.get("scope", "toship").lower()
    if scope not in SCOPES:
        raise bad(f"scope must be one of {', '.join(SCOPES)}")
    lo = get_stamp(params, "created_at_min")
    hi = get_stamp(params, "created_at_max", upper=True)
    integration = get_int(params, "catalog_integration_id")
    query = ("shipmentitems", scope, lo, hi, integration, store.version["shipmentitems"])
    return store.query_cache.get(query, lambda: store.book.item_keys(SCOPES.index(scope), lo, hi, integration))


V1_LISTS = {  # route -> (envelope key, filter, view in store.tables)
    "/v1/orders": (b"Orders", orders_filtered, "orders"),
    "/v1/products": (b"Products", products_filtered, "products"),
    "/v1/shipments": (b"Shipments", shipments_filtered, "shipments"),
    "/v1/shipmentitems": (b"shipmentitems", shipment_items_filtered, "shipmentitems"),
}


def v1_list(store: Store, route: str, params: dict) -> bytes:
    envelope, filtered, view = V1_LISTS[route]
    page, limit = page_limit(params)
    keys = filtered(store, params)
    start = (page - 1) * limit
    return b"".join([b'{"' + envelope + b'":[', store.tables[view].page(keys[start:start + limit]), b"]}"])


def v1_count(store: Store, route: str, params: dict) -> bytes:
    envelope, filtered, _ = V1_LISTS[route]
    if route == "/v1/orders":  # the reference gives its count `created_at_min` only (not `ids`)
        lo = get_stamp(params, "created_at_min")
        count = len(store.book.orders) if lo is None else store.book.order_count(lo)
    else:
        count = len(filtered(store, params))
    return b'{"' + envelope + b'":' + str(count).encode() + b"}"


def envelope(total: int, limit: int, offset: int, body: bytes | list[bytes]) -> bytes:
    head = b'{"total":%d,"limit":%d,"offset":%d,"results":[' % (total, limit, offset)
    return b"".join([head, *body, b"]}"]) if isinstance(body, list) else head + body + b"]}"


# ---- small offset/limit lists -----------------------------------------------------------------
def inventory_list(store: Store, params: dict) -> bytes:
    skus = get_list(params, "skus")
    if not skus:
        raise bad("The request can't be understood: skus is required")
    loc = params.get("location_external_id")
    bin_ = params.get("bin")
    offset, limit = offset_limit(params, 1000)
    results = []
    for sku in skus:
        entries = [e for e in store.stock.of_sku(sku)
                   if (loc is None or e[0][1] == loc) and (bin_ is None or e[0][2] == bin_)]
        if entries:
            results.append(inventory_object(sku, entries))
    return envelope(len(results), limit, offset,
                    b",".join(dumps(store.serve("inventory", r["sku"], r)) for r in results[offset:offset + limit]))


def _served(store: Store, view: str, recs: list[dict]) -> bytes:
    """Records kept as dicts (buffers, locations), as served: copies drift, the store's do not."""
    if store.drift is None:
        return b",".join(map(dumps, recs))
    return b",".join(dumps(store.serve(view, rec["id"], json.loads(dumps(rec)))) for rec in recs)


def buffers_list(store: Store, params: dict) -> bytes:
    offset, limit = offset_limit(params, 200)
    channel = get_int(params, "channel_id")
    loc = params.get("location_external_id")
    sku = params.get("sku")
    recs = [b for b in store.buffers
            if (channel is None or b.get("channel_id") == channel)
            and (loc is None or b.get("location_external_id") == loc)
            and (sku is None or b.get("sku") == sku)]
    return envelope(len(recs), limit, offset, _served(store, "buffers", recs[offset:offset + limit]))


def locations_list(store: Store, params: dict) -> bytes:
    offset, limit = offset_limit(params, 200)
    type_id = get_int(params, "type_id")
    store_id = params.get("store_id")
    enabled = get_bool(params, "enabled")
    recs = [loc for loc in store.locations
            if (type_id is None or loc["type_id"] == type_id)
            and (store_id is None or loc["store_id"] == store_id)
            and (enabled is None or loc["enabled"] == enabled)]
    return envelope(len(recs), limit, offset, _served(store, "locations", recs[offset:offset + limit]))
