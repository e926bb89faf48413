"""The sandbox's data: every kind of record, its clock, its caches, and the inventory writes.

Generated records are made from the seed when asked (``products``, ``orders``, ``inventory``
modules); what changes while the sandbox runs is a small overlay. The store has its own clock
("now"): one day after the newest generated timestamp, advancing one second per write, never
wall time. All public methods take ``self.lock`` (re-entrant); callers that read several
fields consistently (the server building a page) hold it too.
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from functools import partial
from collections.abc import Mapping

from . import changes, drift_views, mutations, timeutil
from .drift import Drift, DriftProfile
from .inventory import Inventory, InventoryView
from .order_records import SCOPES
from .orders import OrderBook
from .pools import CHANNELS, INTEGRATIONS, dumps, locations
from .products import Catalog
from .cache import ByteCache, QueryCache
from .table import RecordList

MUTATIONS = mutations.MUTATIONS
DEFAULT_CACHE_BYTES = 256 << 20

__all__ = ["Store", "SCOPES", "CHANNELS", "INTEGRATIONS", "MUTATIONS", "dumps"]


class ScopeView(Mapping):
    """``{shipment item id: scope}``, read-only."""

    def __init__(self, book: OrderBook):
        self._book = book

    def __getitem__(self, item_id):
        if not isinstance(item_id, int) or not self._book.items.exists(item_id - 1):
            raise KeyError(item_id)
        return SCOPES[self._book.scope(item_id - 1)]

    def __iter__(self):
        return (k + 1 for k in self._book.items.keys())

    def __len__(self) -> int:
        return len(self._book.items)


class Store:
    def __init__(self, seed: int = 1, orders: int = 5000, products: int = 2000,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, drift: DriftProfile | None = None):
        self.lock = threading.RLock()
        self.seed = seed
        self.cache = ByteCache(cache_bytes)
        self.catalog = Catalog(seed, products, self.cache)
        self.book = OrderBook(seed, orders, self.catalog, self.cache)
        self.drift = None if drift is None else Drift(seed, drift)
        self.tables = {"orders": self.book.orders, "products": self.catalog.table,  # the v1 lists, by view
                       "shipments": self.book.shipments, "shipmentitems": self.book.items}
        for table in self.tables.values() if self.drift else ():
            table.drift = partial(self.drift.apply, table.view)
        self.stock = Inventory(seed, self.catalog.layout)
        self.locations: list[dict] = locations()
        self.buffers: list[dict] = mutations.generated_buffers(seed, self.catalog.layout)
        self.v2_data: dict[int, dict] = {}  # extra v2 "data" keys per product/variant id
        self.channels = CHANNELS
        self.catalog_integrations = INTEGRATIONS
        self.version: dict[str, int] = defaultdict(int)
        self.query_cache = QueryCache()
        self._next = {"buffers": len(self.buffers) + 1, "locations": len(self.locations) + 1}
        self._now = self._newest() + 86400
        self.mrand = random.Random(seed * 7919 + 17)  # mutations draw from their own stream

    def _newest(self) -> int:
        newest = timeutil.START_EPOCH
        if self.catalog.layout.count:
            newest = max(newest, max(self.catalog.layout.updated) + 1)
        if self.book.layout.count:
            newest = max(newest, max(self.book.layout.created) + 1)
        return newest

    # ---- the API's records, as lists and mappings of dicts (made when read) ---------------------
    @property
    def orders(self) -> RecordList:
        return RecordList(self.book.orders)

    @property
    def products(self) -> RecordList:
        return RecordList(self.catalog.table)

    @property
    def shipments(self) -> RecordList:
        return RecordList(self.book.shipments)

    @property
    def shipment_items(self) -> RecordList:
        return RecordList(self.book.items)

    @property
    def shipment_item_scope(self) -> ScopeView:
        return ScopeView(self.book)

    @property
    def inventory(self) -> InventoryView:
        return InventoryView(self.stock)

    def product_by_sku(self, sku: str) -> dict | None:
        key = self.catalog.find(sku)
        return None if key is None else self.catalog.product(key)

    def shipments_of(self, order_id: int) -> list[dict]:
        key = self.book.order_key(order_id)
        return [] if key is None else [self.book.shipments.record(s) for s in self.book.shipment_keys_of(key)]

    # ---- drift (``drift_views``): what is served, and what it means --------------------------
    def serve(self, view: str, key, record: dict) -> dict:
        """A record built for this answer (the caller's copy) as served."""
        return record if self.drift is None else self.drift.apply(view, key, record)

    def served(self, view: str) -> list[dict]:
        """Every record of a list view as its endpoint serves it (drifted, if the sandbox drifts)."""
        with self.lock:
            return drift_views.served(self, view)

    def canonical(self, view: str) -> list[dict]:
        """Every record of a list view in canonical form: what a connector must store (the
        drift's values, e.g. nulls and extra fields; the undrifted types and formats)."""
        with self.lock:
            return drift_views.canonical(self, view)

    def lossy(self, view: str) -> dict:
        """``{record id: path}`` of the values served unreadable (the profile's ``lossy``)."""
        with self.lock:
            return drift_views.lossy(self, view)

    # ---- ids, clock, caches ----------------------------------------------------------------------
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

    def touch(self, kind: str, *keys: int) -> None:
        """Mark ``kind`` changed: bump its version (query results) and drop the cached v2 bytes
        of product ``keys`` (v1 bytes are dropped by the table)."""
        self.version[kind] += 1
        if kind == "products":
            for key in keys:
                self.cache.drop("v2", key)
                self.cache.drop("v2v", key)

    def warm(self) -> None:
        """Serialize list records now, in list order, until the byte cache is full."""
        with self.lock:
            for table in self.tables.values():
                for key in table.keys():
                    if self.cache.full:
                        return
                    table.json_bytes(key)

    # ---- inventory -----------------------------------------------------------------------------
    def inventory_of(self, sku: str) -> list[dict]:
        """Records of one sku as ``GET /v1/inventory/{sku}`` serves them."""
        with self.lock:
            return [{"id": rid, "qty_on_hand": qty, "location_external_id": key[1], "bin": key[2]}
                    for key, rid, qty in self.stock.of_sku(sku)]

    def set_inventory(self, updates: list[tuple[tuple, int]], full: bool = False) -> None:
        """Apply validated ``((sku, location, bin), qty)`` pairs; ``full`` zeroes the records of
        every sku not in the updates (the reference's sentence: other records of a listed sku
        are kept)."""
        with self.lock:
            self.tick()
            if full:
                self.stock.zero_unlisted({key[0] for key, _ in updates})
            for key, qty in updates:
                self.stock.set(key, qty)
            self.touch("inventory")

    def patch_inventory(self, key: tuple, qty: int) -> dict:
        with self.lock:
            self.tick()
            rid = self.stock.set(key, qty)
            self.touch("inventory")
            return {"id": rid, "qty_on_hand": qty, "location_external_id": key[1], "bin": key[2]}

    def delete_inventory(self, sku: str, inventory_id: int | None = None) -> bool:
        """Delete every record of ``sku`` (or only record ``inventory_id``); False if none."""
        with self.lock:
            self.tick()
            if inventory_id is None:
                keys = [key for key, _, _ in self.stock.of_sku(sku)]
            else:
                key = self.stock.key_of_id(inventory_id)
                keys = [key] if key is not None and key[0] == sku else []
            for key in keys:
                self.stock.delete(key)
            self.touch("inventory")
            return bool(keys)

    # ---- bulk mutations (emulate a live account): see ``mutations`` -----------------------------
    def add_orders(self, n: int, created_at: str | None = None) -> list[dict]:
        """n new orders (ids after every existing one). ``created_at`` None = store now; a
        past timestamp emulates a late-arriving import that keeps its original date."""
        with self.lock:
            return mutations.add_orders(self, n, created_at)

    def update_products(self, n: int) -> list[dict]:
        """Bump ``updated_at`` to now and raise the price of n products and one variant each."""
        with self.lock:
            return mutations.update_products(self, n)

    def add_products(self, n: int) -> list[dict]:
        with self.lock:
            return mutations.add_products(self, n)

    def add_shipments(self, n: int) -> list[dict]:
        """Ship n orders that have no shipment yet (oldest first)."""
        with self.lock:
            return mutations.add_shipments(self, n)

    def add_shipment_items(self, n: int) -> list[dict]:
        """n new "toship" shipment items for existing order items (e.g. re-routed lines)."""
        with self.lock:
            return mutations.add_shipment_items(self, n)

    def apply_changes(self, counts: dict[str, int], seed: int = 0, recent: int = changes.RECENT) -> dict[str, list]:
        """Change existing records as a live account does between extracts (``changes.KINDS``:
        edits, scope moves, deletions, stock): the same seed and counts make the same changes.
        Returns ``{kind: [what changed]}``."""
        with self.lock:
            return changes.apply(self, counts, random.Random(f"{self.seed}:changes:{seed}"), recent)

    def mutate(self, spec: dict) -> None:
        """Apply ``{"add_orders": n, "update_products": n, ...}`` in a fixed order."""
        for name in MUTATIONS:
            if spec.get(name):
                getattr(self, name)(int(spec[name]))

