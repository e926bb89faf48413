"""Read side of the API: query parameters -> filtered, sorted, paged response bytes.

Filtered index lists are cached per (endpoint, filter values, data version); pages are built
by joining each record's cached JSON bytes. Callers hold ``store.lock``.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from . import timeutil
from .data import SCOPES, Store, dumps


class Reject(Exception):
    """An API error answer: status, error code, message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def bad(message: str) -> Reject:
    return Reject(400, "BadRequest", message)


def not_found(message: str) -> Reject:
    return Reject(404, "NotFound", message)


# ---- parameters ----------------------------------------------------------------------------
def parse_params(query: str) -> dict[str, str]:
    """First value of each query parameter; blank values count as absent."""
    out: dict[str, str] = {}
    for key, values in parse_qs(query, keep_blank_values=True).items():
        if values and values[0] != "":
            out[key] = values[0]
    return out


def get_int(params: dict, name: str, default: int | None = None, minimum: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad(f"{name} must be an integer") from None
    if minimum is not None and value < minimum:
        raise bad(f"{name} must be >= {minimum}")
    return value


def get_bool(params: dict, name: str) -> bool | None:
    raw = params.get(name)
    if raw is None:
        return None
    low = raw.lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise bad(f"{name} must be true or false")


def get_list(params: dict, name: str, max_items: int | None = None, as_int: bool = False) -> tuple | None:
    raw = params.get(name)
    if raw is None:
        return None
    items = [x.strip() for x in raw.split(",") if x.strip() != ""]
    if max_items is not None and len(items) > max_items:
        raise bad(f"{name}: list max {max_items}")
    if as_int:
        try:
            return tuple(sorted({int(x) for x in items}))
        except ValueError:
            raise bad(f"{name} must be a comma-separated list of integers") from None
    return tuple(dict.fromkeys(items))


def get_stamp(params: dict, name: str, upper: bool = False) -> str | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return timeutil.upper_bound(raw) if upper else timeutil.lower_bound(raw)
    except ValueError:
        raise bad(f"{name} is not a valid ISO 8601 date: {raw!r}") from None


def page_limit(params: dict) -> tuple[int, int]:
    page = get_int(params, "page", 1, minimum=1)
    limit = min(get_int(params, "limit", 50, minimum=1), 250)
    return page, limit


def offset_limit(params: dict, maximum: int, default: int = 20) -> tuple[int, int]:
    offset = get_int(params, "offset", 0, minimum=0)
    limit = min(get_int(params, "limit", default, minimum=1), maximum)
    return offset, limit


# ---- cached filtering -----------------------------------------------------------------------
def cached(store: Store, key: tuple, build):
    hit = store.query_cache.get(key)
    if hit is None:
        if len(store.query_cache) > 256:
            store.query_cache.clear()
        hit = store.query_cache[key] = build()
    return hit


def page_parts(store: Store, view: str, records, to_obj=None) -> list[bytes]:
    """Cached bytes of each record, comma-separated, ready for one ``b"".join``."""
    cache = store._bytes[view]
    parts = []
    append = parts.append
    for rec in records:
        data = cache.get(rec["id"])
        if data is None:
            data = cache[rec["id"]] = dumps(to_obj(rec) if to_obj else rec)
        append(data)
        append(b",")
    if parts:
        parts.pop()
    return parts


def page_bytes(store: Store, view: str, records, to_obj=None) -> bytes:
    return b"".join(page_parts(store, view, records, to_obj))


def _by_created(records, lo, hi=None):
    if lo is None and hi is None:
        return records
    return [r for r in records if (lo is None or r["created_at"] >= lo) and (hi is None or r["created_at"] <= hi)]


def orders_filtered(store: Store, params: dict) -> list:
    ids = get_list(params, "ids", 250, as_int=True)
    lo = get_stamp(params, "created_at_min")
    if ids is None and lo is None:
        return store.orders

    def build():
        if ids is not None:
            recs = [store.order_by_id[i] for i in ids if i in store.order_by_id]
            return _by_created(recs, lo)
        return _by_created(store.orders, lo)
    return cached(store, ("orders", ids, lo, store.version["orders"]), build)


def products_filtered(store: Store, params: dict) -> list:
    lo = get_stamp(params, "created_at_min")
    up = get_stamp(params, "updated_at_min")
    if lo is None and up is None:
        return store.products
    return cached(store, ("products", lo, up, store.version["products"]), lambda: [
        p for p in store.products
        if (lo is None or p["created_at"] >= lo) and (up is None or p["updated_at"] >= up)])


def shipments_filtered(store: Store, params: dict) -> list:
    order_ids = get_list(params, "order_ids", 250, as_int=True)
    lo = get_stamp(params, "created_at_min")
    integ = get_int(params, "catalog_integration_id")
    if order_ids is None and lo is None and integ is None:
        return store.shipments

    def build():
        if order_ids is not None:
            recs = sorted((s for o in order_ids for s in store.shipments_by_order.get(o, ())),
                          key=lambda s: s["id"])
        else:
            recs = store.shipments
        return [s for s in _by_created(recs, lo)
                if integ is None or s["catalog_integration_id"] == integ]
    return cached(store, ("shipments", order_ids, lo, integ, store.version["shipments"]), build)


def shipment_items_filtered(store: Store, params: dict) -> list:
    scope = params.get("scope", "toship").lower()
    if scope not in SCOPES:
        raise bad(f"scope must be one of {', '.join(SCOPES)}")
    lo = get_stamp(params, "created_at_min")
    hi = get_stamp(params, "created_at_max", upper=True)
    integ = get_int(params, "catalog_integration_id")
    scopes = store.shipment_item_scope
    return cached(store, ("shipmentitems", scope, lo, hi, integ, store.version["shipmentitems"]), lambda: [
        s for s in _by_created(store.shipment_items, lo, hi)
        if scopes[s["id"]] == scope and (integ is None or s["catalog_integration_id"] == integ)])


V1_LISTS = {  # route -> (envelope key, filter, bytes view)
    "/v1/orders": (b"Orders", orders_filtered, "orders"),
    "/v1/products": (b"Products", products_filtered, "products"),
    "/v1/shipments": (b"Shipments", shipments_filtered, "shipments"),
    "/v1/shipmentitems": (b"shipmentitems", shipment_items_filtered, "shipmentitems"),
}


def v1_list(store: Store, route: str, params: dict) -> bytes:
    envelope, filt, view = V1_LISTS[route]
    page, limit = page_limit(params)
    records = filt(store, params)
    start = (page - 1) * limit
    parts = page_parts(store, view, records[start:start + limit])
    return b"".join([b'{"' + envelope + b'":[', *parts, b"]}"])


def v1_count(store: Store, route: str, params: dict) -> bytes:
    envelope, filt, _ = V1_LISTS[route]
    return b'{"' + envelope + b'":' + str(len(filt(store, params))).encode() + b"}"


def envelope(total: int, limit: int, offset: int, body: bytes | list[bytes]) -> bytes:
    head = b'{"total":%d,"limit":%d,"offset":%d,"results":[' % (total, limit, offset)
    return b"".join([head, *body, b"]}"]) if isinstance(body, list) else head + body + b"]}"


# ---- v2 products ------------------------------------------------------------------------------
def _attr(rec: dict, label: str) -> str | None:
    for a in rec.get("Attributes") or ():
        if a["label"] == label:
            return a["value"]
    return None


def _num(text: str | None) -> float | None:
    return None if text is None else float(text)


def v2_data(store: Store, rec: dict) -> dict:
    data: dict = {}
    if rec.get("short_description"):
        data["short_description"] = rec["short_description"]
    if rec.get("weight") is not None:
        data["weight"] = float(rec["weight"])
    if rec.get("Categories"):
        data["categories"] = [c.split(" > ") for c in rec["Categories"]]
    data.update(store.v2_data.get(rec["id"], {}))
    return data


def v2_variant(store: Store, child: dict) -> dict:
    return {
        "sku": child["sku"], "alu": _attr(child, "ALU") or "", "name": child["name"] or "",
        "brand": _attr(child, "Brand") or "", "description": child["description"] or "",
        "price": _num(child["price"]), "price_special": _num(child["price_special"]),
        "attributes": {a["label"].lower(): a["value"] for a in child["Attributes"]
                       if a["label"] not in ("Brand", "ALU")},
        "data": v2_data(store, child),
        "created_at": child["created_at"], "updated_at": child["updated_at"],
    }


def v2_product(store: Store, p: dict, variants: bool = False) -> dict:
    out = {
        "sku": p["sku"], "price": _num(p["price"]), "price_special": _num(p["price_special"]),
        "name": p["name"] or "", "alu": _attr(p, "ALU") or "", "description": p["description"] or "",
        "brand": _attr(p, "Brand") or "", "created_at": p["created_at"], "updated_at": p["updated_at"],
    }
    if variants:
        out["variants"] = [v2_variant(store, c) for c in p["Child_Products"]]
    out["data"] = v2_data(store, p)
    return out


V2_SORTS = {"sku", "name", "brand", "created_at", "updated_at"}


def v2_products(store: Store, params: dict) -> bytes:
    get_int(params, "channel_id")  # validated; every channel holds the same copy here
    offset, limit = offset_limit(params, 200)
    skus = get_list(params, "skus")
    brand = params.get("brand")
    search = params.get("search")
    sort = params.get("sort", "created_at")
    if sort not in V2_SORTS:
        raise bad(f"sort must be one of {', '.join(sorted(V2_SORTS))}")
    direction = params.get("sort_direction", "asc").lower()
    if direction not in ("asc", "desc"):
        raise bad("sort_direction must be asc or desc")
    variants = bool(get_bool(params, "variants"))

    def build():
        recs = store.products
        if skus is not None:
            wanted = set(skus)
            recs = [p for p in recs if p["sku"] in wanted]
        if brand is not None:
            recs = [p for p in recs if _attr(p, "Brand") == brand]
        if search is not None:
            needle = search.lower()
            recs = [p for p in recs if needle in (p["name"] or "").lower()
                    or needle in (p["description"] or "").lower()
                    or needle in (_attr(p, "Brand") or "").lower()]
        if sort == "brand":
            key = lambda p: (_attr(p, "Brand") or "", p["id"])  # noqa: E731
        else:
            key = lambda p: (p[sort] or "", p["id"])  # noqa: E731
        return sorted(recs, key=key, reverse=direction == "desc")
    recs = cached(store, ("v2", skus, brand, search, sort, direction, store.version["products"]), build)
    view = "v2v" if variants else "v2"
    body = page_parts(store, view, recs[offset:offset + limit], lambda p: v2_product(store, p, variants))
    return envelope(len(recs), limit, offset, body)


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
        recs = [{"qty_on_hand": store.inventory[k]["qty_on_hand"], "location_external_id": k[1], "bin": k[2]}
                for k in store.inv_keys_by_sku.get(sku, ())
                if (loc is None or k[1] == loc) and (bin_ is None or k[2] == bin_)]
        if recs:
            results.append({"sku": sku, "inventory": recs})
    return envelope(len(results), limit, offset,
                    b",".join(dumps(r) for r in results[offset:offset + limit]))


def buffers_list(store: Store, params: dict) -> bytes:
    offset, limit = offset_limit(params, 200)
    channel = get_int(params, "channel_id")
    loc = params.get("location_external_id")
    sku = params.get("sku")
    recs = [b for b in store.buffers
            if (channel is None or b.get("channel_id") == channel)
            and (loc is None or b.get("location_external_id") == loc)
            and (sku is None or b.get("sku") == sku)]
    return envelope(len(recs), limit, offset, b",".join(dumps(b) for b in recs[offset:offset + limit]))


def locations_list(store: Store, params: dict) -> bytes:
    offset, limit = offset_limit(params, 200)
    type_id = get_int(params, "type_id")
    store_id = params.get("store_id")
    enabled = get_bool(params, "enabled")
    recs = [loc for loc in store.locations
            if (type_id is None or loc["type_id"] == type_id)
            and (store_id is None or loc["store_id"] == store_id)
            and (enabled is None or loc["enabled"] == enabled)]
    return envelope(len(recs), limit, offset, b",".join(dumps(x) for x in recs[offset:offset + limit]))
