"""Changes that emulate a live account (new orders, product updates, shipments...), and the
writes the API handlers share (shipping an order, adding a return).

Callers hold ``store.lock``. Records made here draw from ``store.mrand`` (the mutation
stream), so a run that applies the same mutations in the same order gets the same data.
"""

from __future__ import annotations

import json
import random

from . import shipping_records, timeutil
from .order_records import SCOPES
from .pools import CHANNELS, STORE_IDS, money4
from .product_records import ProductLayout, product_json

MUTATIONS = ("add_orders", "update_products", "add_products", "add_shipments", "add_shipment_items")
TOSHIP, SHIPPED, CANCELLED, FLAGGED = range(len(SCOPES))


def generated_buffers(seed: int, products: ProductLayout) -> list[dict]:
    """The 50 buffers of the account at start."""
    r = random.Random(f"{seed}:buffers")
    span = timeutil.END_EPOCH - timeutil.START_EPOCH
    n = products.variant_count
    out = []
    for bid in range(1, 51):
        rec: dict = {"id": bid}
        kind = bid % 4
        if kind != 3 or not n:
            rec["channel_id"] = CHANNELS[int(r.random() * len(CHANNELS))]
        if kind in (1, 2, 3) and n:
            rec["sku"] = products.variant(int(r.random() * n))[0]
        if kind == 2:
            rec["location_external_id"] = STORE_IDS[int(r.random() * len(STORE_IDS))]
        rec["qty"] = int(r.random() * 10)
        rec["created_at"] = rec["updated_at"] = timeutil.stamp(timeutil.START_EPOCH + int(r.random() * span))
        out.append(rec)
    return out


def add_item(store, order: dict, item: dict, shipment: dict | None, created: str, scope: int) -> dict:
    """A new shipment item for an order item."""
    book = store.book
    key = book.items.size
    d = store.mrand.randbytes(2)
    rec = shipping_records.shipment_item(key + 1, order, item, store.catalog.current_variant(item["sku"]),
                                         shipment, created, d[0], d[1])
    book.items.add(rec)
    book.added_scope[key] = scope
    book.added_items_of.setdefault(item["id"], []).append(key)
    return rec


def add_orders(store, n: int, created_at: str | None = None) -> list[dict]:
    now = store.tick()
    stamp = timeutil.normalize(created_at) if created_at else now
    book, r = store.book, store.mrand
    variant, n_variants = store.catalog.variants_now()
    made = []
    for _ in range(n):
        n_items = 1 + int(r.random() * 5)
        key = book.orders.size
        order = json.loads(book.maker.json(key + 1, stamp, r.randbytes(64), book.next_item_id, n_items,
                                           variant, n_variants))
        book.next_item_id += n_items
        book.orders.add(order)
        for item in order["order_items"]:
            add_item(store, order, item, None, stamp, TOSHIP)
        made.append(order)
    store.touch("orders")
    store.touch("shipmentitems")
    return made


def _bump_price(price: str | None) -> str:
    cents = int(price.replace(".", "")) // 100 if price else 0
    return money4(cents + 100)


def update_products(store, n: int) -> list[dict]:
    now = store.tick()
    catalog, r = store.catalog, store.mrand
    keys = catalog.table.keys()
    chosen: list[int] = []
    for _ in range(min(n, len(keys)) * 4):
        if len(chosen) >= n:
            break
        key = keys[int(r.random() * len(keys))]
        if key not in chosen:
            chosen.append(key)
    out = []
    for key in chosen:
        product = catalog.product(key)
        product["price"] = _bump_price(product["price"])
        product["updated_at"] = now
        if product["Child_Products"]:
            child = product["Child_Products"][int(r.random() * len(product["Child_Products"]))]
            child["price"] = _bump_price(child["price"])
            child["updated_at"] = now
        catalog.save(key, product)
        store.touch("products", key)
        out.append(product)
    return out


def add_products(store, n: int) -> list[dict]:
    store.tick()
    catalog, r, now = store.catalog, store.mrand, store._now
    made = []
    for _ in range(n):
        pid = catalog.next_id()
        n_variants = 1 + int(r.random() * 3)
        for _ in range(n_variants):
            catalog.next_id()
        text = product_json(pid, f"NEW-{pid}", 500 + int(r.random() * 20000), now, now, n_variants,
                            r.randbytes(64))
        product = json.loads(text)
        catalog.add(product)
        for child in product["Child_Products"]:
            store.stock.set((child["sku"], "default", "default"), int(r.random() * 20))
        made.append(product)
    store.touch("products")
    store.touch("inventory")
    return made


def ship(store, order_key: int, lines: list[dict], now: str, fields: dict) -> dict:
    """A new shipment of ``lines`` (``[{"id", "qty"}]``); their open shipment items become shipped."""
    book = store.book
    key = book.shipments.size
    shipment = shipping_records.shipment(key + 1, book.order(order_key), lines, now, store.mrand.randbytes(8))
    shipment.update(fields)
    book.shipments.add(shipment)
    book.added_shipments.setdefault(order_key, []).append(key)
    for line in lines:
        for item_key in book.item_keys_of(line["id"]):
            if book.scope(item_key) in (TOSHIP, FLAGGED):
                book.set_scope(item_key, SHIPPED)
    return shipment


def add_shipments(store, n: int) -> list[dict]:
    now = store.tick()
    book = store.book
    made = []
    for key in book.orders.keys():
        if len(made) >= n:
            break
        if not book.shipment_keys_of(key):
            made.append(ship(store, key, book.order(key)["order_items"], now, {}))
    store.touch("shipments")
    store.touch("shipmentitems")
    return made


def add_shipment_items(store, n: int) -> list[dict]:
    now = store.tick()
    book, r = store.book, store.mrand
    keys = book.orders.keys()
    made = []
    for _ in range(n if len(keys) else 0):
        order = book.order(keys[int(r.random() * len(keys))])
        item = order["order_items"][int(r.random() * len(order["order_items"]))]
        made.append(add_item(store, order, item, None, now, TOSHIP))
    store.touch("shipmentitems")
    return made


def add_return(store, order_key: int, asked: list[dict], adjustment: float | None) -> dict:
    book = store.book
    number = len(book.returns_of(order_key)) + 1
    created = store.tick().replace("T", " ")[:19]
    rec = shipping_records.order_return(book.next_return_id, book.order(order_key), number, asked, created,
                                        adjustment)
    book.next_return_id += 1
    book.added_returns.setdefault(order_key, []).append(rec)
    store.touch("returns")
    return rec
