"""``/v2/products``: the v2 shapes of a product and its variants, and the list with its
filters (skus, brand, search) and sorts. Callers hold ``store.lock``."""

from __future__ import annotations

from . import skus as sku_codec
from .data import Store
from .params import bad, get_bool, get_int, get_list, offset_limit
from .pools import dumps
from .timeutil import stamp
from .views import envelope

V2_SORTS = {"sku", "name", "brand", "created_at", "updated_at"}


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


def _fields(store: Store, key: int) -> dict:
    """The fields v2 filters and sorts on, without making the whole product when generated."""
    catalog = store.catalog
    if not catalog.table.generated(key):
        p = catalog.product(key)
        return {"sku": p["sku"], "name": p["name"] or "", "brand": _attr(p, "Brand") or "",
                "description": p["description"] or "", "created_at": p["created_at"], "updated_at": p["updated_at"]}
    layout = catalog.layout
    name, brand, description = layout.text_fields(key)
    return {"sku": sku_codec.parent_sku(key), "name": name, "brand": brand, "description": description or "",
            "created_at": stamp(layout.created[key]), "updated_at": stamp(layout.updated[key])}


def _matches(fields: dict, brand: str | None, needle: str | None) -> bool:
    if brand is not None and fields["brand"] != brand:
        return False
    return needle is None or any(needle in fields[f].lower() for f in ("name", "description", "brand"))


def _sorted_keys(store: Store, wanted, brand, search, sort, direction) -> list[int]:
    catalog = store.catalog
    if wanted is not None:
        keys = sorted({k for k in map(catalog.find, wanted) if k is not None})
    else:
        keys = catalog.table.keys()
    if brand is None and search is None and sort == "created_at":  # created_at follows id order
        return list(reversed(keys)) if direction == "desc" else list(keys)
    needle = search.lower() if search is not None else None
    rows = [(f[sort], k) for k in keys if _matches(f := _fields(store, k), brand, needle)]
    return [k for _, k in sorted(rows, reverse=direction == "desc")]


def v2_products(store: Store, params: dict) -> bytes:
    get_int(params, "channel_id")  # validated; every channel holds the same copy here
    offset, limit = offset_limit(params, 200)
    wanted = get_list(params, "skus")
    brand = params.get("brand")
    search = params.get("search")
    sort = params.get("sort", "created_at")
    if sort not in V2_SORTS:
        raise bad(f"sort must be one of {', '.join(sorted(V2_SORTS))}")
    direction = params.get("sort_direction", "asc").lower()
    if direction not in ("asc", "desc"):
        raise bad("sort_direction must be asc or desc")
    variants = bool(get_bool(params, "variants"))
    query = ("v2", wanted, brand, search, sort, direction, store.version["products"])
    keys = store.query_cache.get(query, lambda: _sorted_keys(store, wanted, brand, search, sort, direction))
    view = "v2v" if variants else "v2"
    parts = []
    for key in keys[offset:offset + limit]:
        data = store.cache.get(view, key)
        if data is None:
            data = dumps(store.serve(view, key, v2_product(store, store.catalog.product(key), variants)))
            store.cache.put(view, key, data)
        parts.append(data)
    return envelope(len(keys), limit, offset, b",".join(parts))
