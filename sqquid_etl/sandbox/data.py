"""The sandbox's catalog: records in the exact JSON shapes the API serves, their indices,
a cache of each record's serialized bytes, and every mutation.

Everything is deterministic from the seed. The store has its own clock ("now"): one day after
the newest generated timestamp, advancing one second per mutation call, never wall time.
All public methods take ``self.lock`` (re-entrant); callers that read several fields
consistently (the server building a page) hold it too.
"""

from __future__ import annotations

import gc
import json
import threading
from collections import defaultdict

from . import timeutil
from .generate import Generator, money2, money4

SCOPES = ("toship", "shipped", "cancelled", "flagged")
CHANNELS = (1, 2, 3)
INTEGRATIONS = (98, 100, 101)
BINS = ("default", "front", "back")
MUTATIONS = ("add_orders", "update_products", "add_products", "add_shipments", "add_shipment_items")

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def dumps(obj) -> bytes:
    return _dumps(obj).encode("utf-8")


class Store:
    def __init__(self, seed: int = 1, orders: int = 5000, products: int = 2000):
        self.lock = threading.RLock()
        self.seed = seed
        self.orders: list[dict] = []
        self.products: list[dict] = []
        self.shipments: list[dict] = []
        self.shipment_items: list[dict] = []
        self.shipment_item_scope: dict[int, str] = {}
        self.inventory: dict[tuple[str, str, str], dict] = {}
        self.buffers: list[dict] = []
        self.locations: list[dict] = []
        self.returns: dict[int, list[dict]] = {}
        self.v2_data: dict[int, dict] = {}  # extra v2 "data" keys per product/variant id
        self.channels = CHANNELS
        self.catalog_integrations = INTEGRATIONS
        self.version: dict[str, int] = defaultdict(int)
        self._bytes: dict[str, dict[int, bytes]] = defaultdict(dict)
        self.query_cache: dict = {}
        # indices
        self.order_by_id: dict[int, dict] = {}
        self.item_owner: dict[int, dict] = {}  # order item id -> order
        self.product_by_id: dict[int, dict] = {}
        self.product_by_sku: dict[str, dict] = {}
        self.variant_by_sku: dict[str, tuple[dict, dict]] = {}
        self.shipment_by_id: dict[int, dict] = {}
        self.shipments_by_order: dict[int, list[dict]] = defaultdict(list)
        self.shipment_item_by_id: dict[int, dict] = {}
        self.ship_items_by_order_item: dict[int, list[int]] = defaultdict(list)
        self.inv_keys_by_sku: dict[str, list[tuple]] = defaultdict(list)
        self.inv_key_by_id: dict[int, tuple] = {}
        self._next = defaultdict(lambda: 1)
        self._gen = Generator(seed)
        was_enabled = gc.isenabled()
        gc.disable()  # millions of new containers: collections would only cost time
        try:
            self._generate(orders, products)
        finally:
            if was_enabled:
                gc.enable()
        gc.freeze()  # keep the catalog out of later full collections (pauses while serving)
        self._mgen = Generator(seed * 7919 + 17)  # mutations draw from their own stream

    # ---- ids, clock, cache -------------------------------------------------------------
    def next_id(self, kind: str) -> int:
        value = self._next[kind]
        self._next[kind] = value + 1
        return value

    @property
    def now(self) -> str:
        return timeutil.fmt(self._now)

    def tick(self) -> str:
        """Advance the store clock one second and return the new "now"."""
        self._now += 1
        return timeutil.fmt(self._now)

    def touch(self, kind: str, *ids: int) -> None:
        """Mark ``kind`` changed: bump its version and drop cached bytes of ``ids``."""
        self.version[kind] += 1
        views = ("products", "v2", "v2v") if kind == "products" else (kind,)
        for view in views:
            cache = self._bytes[view]
            for i in ids:
                cache.pop(i, None)

    def record_bytes(self, view: str, rid: int, build) -> bytes:
        """Cached serialized record; ``build()`` gives the object when not cached."""
        cache = self._bytes[view]
        data = cache.get(rid)
        if data is None:
            data = cache[rid] = dumps(build())
        return data

    def warm(self) -> None:
        """Serialize every list record now (so the first pass of a benchmark is not slower)."""
        with self.lock:
            for view, records in (("orders", self.orders), ("products", self.products),
                                  ("shipments", self.shipments), ("shipmentitems", self.shipment_items)):
                cache = self._bytes[view]
                for rec in records:
                    if rec["id"] not in cache:
                        cache[rec["id"]] = dumps(rec)

    # ---- generation --------------------------------------------------------------------
    def _generate(self, n_orders: int, n_products: int) -> None:
        g = self._gen
        r = g.rng
        self.locations = g.locations()
        self._next["locations"] = len(self.locations) + 1
        store_ids = [loc["store_id"] for loc in self.locations]
        location_ids = [loc["id"] for loc in self.locations]
        newest = timeutil.START_EPOCH
        # products, created over the range, ids in creation order
        created = sorted(g.random_stamp() for _ in range(n_products))
        for i in range(n_products):
            stamp = created[i]
            updated = stamp if r.random() < 0.6 else g.random_stamp()
            if updated < stamp:
                updated = stamp
            n_var = 0 if r.random() < 0.08 else 1 + int(r.random() * 4)
            self._add_product(g.product(self.next_id("products"), g.parent_sku(i), stamp, updated,
                                        n_var, lambda: self.next_id("products")))
        if self.products:
            newest = max(newest, timeutil.to_epoch(max(p["updated_at"] for p in self.products)) + 1)
        variants = [(c["sku"], int(c["price"].replace(".", "")) // 100)
                    for p in self.products for c in p["Child_Products"]]
        # inventory: 1-3 records per variant sku, plus orphans
        places = [(s, b) for s in store_ids[:4] + ["default"] for b in BINS]
        for sku, _ in variants:
            for _ in range(1 + int(r.random() * 3)):
                loc, bin_ = places[int(r.random() * len(places))]
                if (sku, loc, bin_) not in self.inventory:
                    self._inv_set((sku, loc, bin_), int(r.random() * 50))
        for i in range(max(5, n_products // 200)):
            self._inv_set((f"ORPHAN-{i:04d}", "default", "default"), int(r.random() * 10))
        # orders with shipments and shipment items
        stamps = g.order_timestamps(n_orders)
        for stamp in stamps:
            order = g.order(self.next_id("orders"), stamp, variants,
                            lambda: self.next_id("order_items"), location_ids)
            self._add_order(order)
            shipment = None
            if r.random() < 0.6:
                items = [it for it in order["order_items"] if r.random() < 0.8] or order["order_items"][:1]
                shipment = g.shipment(self.next_id("shipments"), order, items, stamp, INTEGRATIONS)
                self._add_shipment(shipment)
            shipped = {x["id"] for x in shipment["order_items"]} if shipment else set()
            for item in order["order_items"]:
                if item["id"] in shipped:
                    scope = "shipped" if r.random() < 0.9 else "flagged"
                else:
                    roll = r.random()
                    scope = "toship" if roll < 0.7 else "cancelled" if roll < 0.85 else "flagged"
                self._add_shipment_item(order, item, shipment if item["id"] in shipped else None,
                                        stamp, scope, g)
            if r.random() < 0.02:
                self._make_return(order, stamp.replace("T", " ")[:19], g)
        if stamps:
            newest = max(newest, timeutil.to_epoch(max(stamps)) + 1)
        # buffers
        var_skus = [v[0] for v in variants]
        for _ in range(50):
            self.buffers.append(g.buffer(self.next_id("buffers"), CHANNELS, var_skus, store_ids,
                                         g.random_stamp()))
        self._now = int(newest) + 86400

    def _add_product(self, product: dict) -> None:
        self.products.append(product)
        self.product_by_id[product["id"]] = product
        self.product_by_sku[product["sku"]] = product
        for child in product["Child_Products"]:
            self.variant_by_sku[child["sku"]] = (product, child)

    def _add_order(self, order: dict) -> None:
        self.orders.append(order)
        self.order_by_id[order["id"]] = order
        for item in order["order_items"]:
            self.item_owner[item["id"]] = order

    def _add_shipment(self, shipment: dict) -> None:
        self.shipments.append(shipment)
        self.shipment_by_id[shipment["id"]] = shipment
        self.shipments_by_order[shipment["order_id"]].append(shipment)

    def _add_shipment_item(self, order, item, shipment, stamp, scope, g) -> dict:
        pv = self.variant_by_sku.get(item["sku"])
        brand = None
        if pv:
            brand = next((a["value"] for a in pv[0]["Attributes"] if a["label"] == "Brand"), None)
        rec = g.shipment_item(self.next_id("shipmentitems"), order, item, pv[0]["sku"] if pv else None,
                              brand, shipment, stamp, INTEGRATIONS)
        self.shipment_items.append(rec)
        self.shipment_item_by_id[rec["id"]] = rec
        self.shipment_item_scope[rec["id"]] = scope
        self.ship_items_by_order_item[item["id"]].append(rec["id"])
        return rec

    def _make_return(self, order: dict, stamp: str, g: Generator, adjustment=None, items=None) -> dict:
        r = g.rng
        if items is None:
            item = order["order_items"][int(r.random() * len(order["order_items"]))]
            items = [{"sku": item["sku"], "store_id_return": self.locations[0]["store_id"] if self.locations else "default",
                      "qty": 1}]
        by_sku = {it["sku"]: it for it in order["order_items"]}
        out_items, tax_total, total = [], 0, 0
        for ask in items:
            src = by_sku[ask["sku"]]
            price = int(src["price"].replace(".", ""))
            tax = int(src["tax"].replace(".", "").replace("-", "")) // max(src["qty"], 1) * ask["qty"]
            line = price * ask["qty"] + tax
            tax_total += tax
            total += line
            out_items.append({"sku": ask["sku"], "store_id_return": ask["store_id_return"],
                              "qty": ask["qty"], "tax": money2(tax), "price": money2(price),
                              "total": money2(line)})
        existing = self.returns.setdefault(order["id"], [])
        rec = {"id": self.next_id("returns"), "external_id": f"{order['external_id']}-R{len(existing) + 1}",
               "channel_id": CHANNELS[order["id"] % len(CHANNELS)]}
        if adjustment is not None:
            cents = int(round(adjustment * 100))
            rec["adjustment"] = money2(cents)
            total += cents
        rec.update({"tax": money2(tax_total), "total": money2(total), "items": out_items,
                    "created_at": stamp})
        existing.append(rec)
        return rec

    # ---- inventory primitives -----------------------------------------------------------
    def _inv_set(self, key: tuple, qty: int) -> dict:
        rec = self.inventory.get(key)
        if rec is None:
            rec = self.inventory[key] = {"id": self.next_id("inventory"), "qty_on_hand": qty}
            self.inv_keys_by_sku[key[0]].append(key)
            self.inv_key_by_id[rec["id"]] = key
        else:
            rec["qty_on_hand"] = qty
        return rec

    def _inv_delete(self, key: tuple) -> None:
        rec = self.inventory.pop(key)
        self.inv_key_by_id.pop(rec["id"], None)
        keys = self.inv_keys_by_sku[key[0]]
        keys.remove(key)
        if not keys:
            del self.inv_keys_by_sku[key[0]]

    def inventory_of(self, sku: str) -> list[dict]:
        """Records of one sku as ``GET /v1/inventory/{sku}`` serves them."""
        with self.lock:
            return [{"id": self.inventory[k]["id"], "qty_on_hand": self.inventory[k]["qty_on_hand"],
                     "location_external_id": k[1], "bin": k[2]} for k in self.inv_keys_by_sku.get(sku, ())]

    def set_inventory(self, updates: list[tuple[tuple, int]], full: bool = False) -> None:
        """Apply validated ``((sku, location, bin), qty)`` pairs; ``full`` zeroes all others."""
        with self.lock:
            self.tick()
            listed = set()
            for key, qty in updates:
                self._inv_set(key, qty)
                listed.add(key)
            if full:
                for key, rec in self.inventory.items():
                    if key not in listed:
                        rec["qty_on_hand"] = 0
            self.touch("inventory")

    def patch_inventory(self, key: tuple, qty: int) -> dict:
        with self.lock:
            self.tick()
            rec = self._inv_set(key, qty)
            self.touch("inventory")
            return {"id": rec["id"], "qty_on_hand": qty, "location_external_id": key[1], "bin": key[2]}

    def delete_inventory(self, sku: str, inventory_id: int | None = None) -> bool:
        """Delete every record of ``sku`` (or only record ``inventory_id``); False if none."""
        with self.lock:
            self.tick()
            if inventory_id is None:
                keys = list(self.inv_keys_by_sku.get(sku, ()))
            else:
                key = self.inv_key_by_id.get(inventory_id)
                keys = [key] if key is not None and key[0] == sku else []
            for key in keys:
                self._inv_delete(key)
            self.touch("inventory")
            return bool(keys)

    # ---- bulk mutations (emulate a live account) ----------------------------------------
    def add_orders(self, n: int, created_at: str | None = None) -> list[dict]:
        """n new orders (ids after every existing one). ``created_at`` None = store now; a
        past timestamp emulates a late-arriving import that keeps its original date."""
        with self.lock:
            now = self.tick()
            stamp = timeutil.normalize(created_at) if created_at else now
            g = self._mgen
            variants = [(sku, int(c["price"].replace(".", "")) // 100)
                        for sku, (_, c) in self.variant_by_sku.items()] if self.variant_by_sku else []
            variants.sort()
            made = []
            for _ in range(n):
                order = g.order(self.next_id("orders"), stamp, variants,
                                lambda: self.next_id("order_items"), [loc["id"] for loc in self.locations])
                self._add_order(order)
                for item in order["order_items"]:
                    self._add_shipment_item(order, item, None, stamp, "toship", g)
                made.append(order)
            self.touch("orders")
            self.touch("shipmentitems")
            return made

    def update_products(self, n: int) -> list[dict]:
        """Bump ``updated_at`` to now and raise the price of n products and one variant each."""
        with self.lock:
            now = self.tick()
            if not self.products:
                return []
            r = self._mgen.rng
            chosen: list[dict] = []
            seen = set()
            for _ in range(min(n, len(self.products)) * 4):
                if len(chosen) >= n:
                    break
                p = self.products[int(r.random() * len(self.products))]
                if p["id"] not in seen:
                    seen.add(p["id"])
                    chosen.append(p)
            for p in chosen:
                p["price"] = _bump_price(p["price"])
                p["updated_at"] = now
                if p["Child_Products"]:
                    child = p["Child_Products"][int(r.random() * len(p["Child_Products"]))]
                    child["price"] = _bump_price(child["price"])
                    child["updated_at"] = now
                self.touch("products", p["id"])
            return chosen

    def add_products(self, n: int) -> list[dict]:
        with self.lock:
            now = self.tick()
            g = self._mgen
            made = []
            for _ in range(n):
                pid = self.next_id("products")
                sku = f"NEW-{pid}"
                product = g.product(pid, sku, now, now, 1 + int(g.rng.random() * 3),
                                    lambda: self.next_id("products"))
                self._add_product(product)
                for child in product["Child_Products"]:
                    self._inv_set((child["sku"], "default", "default"), int(g.rng.random() * 20))
                made.append(product)
            self.touch("products")
            self.touch("inventory")
            return made

    def add_shipments(self, n: int) -> list[dict]:
        """Ship n orders that have no shipment yet (oldest first)."""
        with self.lock:
            now = self.tick()
            made = []
            for order in self.orders:
                if len(made) >= n:
                    break
                if order["id"] in self.shipments_by_order:
                    continue
                made.append(self._ship(order, order["order_items"], now, {}))
            self.touch("shipments")
            self.touch("shipmentitems")
            return made

    def _ship(self, order: dict, items: list[dict], now: str, fields: dict) -> dict:
        shipment = self._mgen.shipment(self.next_id("shipments"), order, items, now, INTEGRATIONS)
        shipment.update(fields)
        self._add_shipment(shipment)
        for item in items:
            for sid in self.ship_items_by_order_item.get(item["id"], ()):
                if self.shipment_item_scope[sid] in ("toship", "flagged"):
                    self.shipment_item_scope[sid] = "shipped"
        return shipment

    def add_shipment_items(self, n: int) -> list[dict]:
        """n new "toship" shipment items for existing order items (e.g. re-routed lines)."""
        with self.lock:
            now = self.tick()
            made = []
            owners = self.orders
            if not owners:
                return made
            r = self._mgen.rng
            for _ in range(n):
                order = owners[int(r.random() * len(owners))]
                item = order["order_items"][int(r.random() * len(order["order_items"]))]
                made.append(self._add_shipment_item(order, item, None, now, "toship", self._mgen))
            self.touch("shipmentitems")
            return made

    def mutate(self, spec: dict) -> None:
        """Apply ``{"add_orders": n, "update_products": n, ...}`` in a fixed order."""
        for name in MUTATIONS:
            if spec.get(name):
                getattr(self, name)(int(spec[name]))


def _bump_price(price: str | None) -> str:
    cents = int(price.replace(".", "")) // 100 if price else 0
    return money4(cents + 100)
