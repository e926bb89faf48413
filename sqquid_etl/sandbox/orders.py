"""Orders, shipments, shipment items and returns: generated ones plus those added while the
sandbox runs, the scope of every shipment item, and the filters of their list endpoints.

Order key k has id k + 1, and so do shipment keys and shipment item keys (a deleted record's
key is never reused: ``changes.py`` deletes records, and the filters skip them). A generated
shipment item has the id of the order item it is for.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from itertools import compress

from . import shipping_records
from .draws import Digests
from .order_records import IN_SHIPMENT, SCOPE_MASK, OrderLayout, OrderMaker, new_lines
from .pools import INTEGRATIONS, STORE_IDS
from .products import Catalog
from .cache import ByteCache
from .table import Table
from .timeutil import stamp

_IS_SCOPE = [bytes(1 if b & SCOPE_MASK == code else 0 for b in range(256)) for code in range(4)]


class OrderBook:
    def __init__(self, seed: int, count: int, catalog: Catalog, cache: ByteCache):
        self.layout = layout = OrderLayout(seed, count)
        self.maker = OrderMaker(seed)
        self.catalog = catalog
        self._order_digest = Digests(seed, "order")
        self._ship_digest = Digests(seed, "shipment")
        self.orders = Table("orders", count, cache, make_text=self._order_text, make_page=self._order_page)
        self.shipments = Table("shipments", len(layout.shipped_orders), cache, make_record=self._shipment)
        self.items = Table("shipmentitems", layout.item_count, cache, make_record=self._shipment_item)
        self.added_scope: dict[int, int] = {}  # added shipment item key -> scope code
        self.added_shipments: dict[int, list[int]] = {}  # order key -> keys of shipments added
        self.added_items_of: dict[int, list[int]] = {}  # order item id -> keys of shipment items added
        self.added_returns: dict[int, list[dict]] = {}  # order key -> returns added
        self.next_item_id = layout.item_count + 1
        self.next_return_id = len(layout.returned_orders) + 1
        self._memo: dict[int, dict] = {}
        self._lines = new_lines()  # the generated orders' lines (``OrderMaker.pieces``)

    # ---- generated records -----------------------------------------------------------------
    def _order_text(self, i: int) -> str:
        return self._order_page((i,)).decode()

    def _order_page(self, keys) -> bytes:
        """Generated orders ``keys`` as JSON, comma-separated (a page made in one call)."""
        layout, products = self.layout, self.catalog.layout
        first, created = layout.first_item, layout.created
        orders = zip([k + 1 for k in keys], [stamp(created[k]) for k in keys], self._order_digest.many(keys),
                     [first[k] + 1 for k in keys], [first[k + 1] - first[k] for k in keys])
        out: list[bytes] = []
        self.maker.pieces(out, orders, products.variant, products.variant_count, self._lines)
        return b"".join(out[:-1])

    def order(self, key: int) -> dict:
        """Order ``key`` as a dict (shared for generated orders: do not change it)."""
        if key >= self.orders.base:
            return self.orders.added[key - self.orders.base]
        order = self._memo.get(key)
        if order is None:
            if len(self._memo) >= 64:
                self._memo.clear()
            order = self._memo[key] = self.orders.record(key)
        return order

    def _shipment(self, s: int) -> dict:
        i = self.layout.shipped_orders[s]
        order, first = self.order(i), self.layout.first_item[i]
        state = self.layout.item_state
        lines = [it for j, it in enumerate(order["order_items"]) if state[first + j] & IN_SHIPMENT]
        return shipping_records.shipment(s + 1, order, lines, order["created_at"], self._ship_digest(i))

    def _shipment_item(self, k: int) -> dict:
        layout = self.layout
        i = bisect_right(layout.first_item, k) - 1
        j = k - layout.first_item[i]
        order = self.order(i)
        item = order["order_items"][j]
        shipment = self._shipment(layout.shipment_of(i)) if layout.item_state[k] & IN_SHIPMENT else None
        d = self._ship_digest(i)
        return shipping_records.shipment_item(k + 1, order, item, self.catalog.generated_variant(item["sku"]),
                                              shipment, order["created_at"], d[8 + 2 * j], d[9 + 2 * j])

    def _generated_return(self, i: int, r: int) -> dict:
        order = self.order(i)
        items = order["order_items"]
        item = items[self._ship_digest(i)[20] % len(items)]
        asked = [{"sku": item["sku"], "store_id_return": STORE_IDS[0], "qty": 1}]
        return shipping_records.order_return(r + 1, order, 1, asked, order["created_at"].replace("T", " ")[:19])

    def change_order(self, key: int, order: dict) -> None:
        """Store an edited order (its generated form is no longer served or remembered)."""
        self.orders.change(key, order)
        self._memo.pop(key, None)

    # ---- per order -------------------------------------------------------------------------
    def order_key(self, order_id: int) -> int | None:
        return order_id - 1 if self.orders.exists(order_id - 1) else None

    def shipment_keys_of(self, key: int) -> list[int]:
        found = self.layout.shipment_of(key) if key < self.orders.base else None
        return ([] if found is None else [found]) + self.added_shipments.get(key, [])

    def returns_of(self, key: int) -> list[dict]:
        r = self.layout.return_of(key) if key < self.orders.base else None
        return ([] if r is None else [self._generated_return(key, r)]) + self.added_returns.get(key, [])

    def item_keys_of(self, order_item_id: int) -> list[int]:
        """Shipment items for an order item: the generated one, then any added."""
        own = [order_item_id - 1] if order_item_id <= self.items.base else []
        return own + self.added_items_of.get(order_item_id, [])

    def scope(self, key: int) -> int:
        return self.layout.item_state[key] & SCOPE_MASK if key < self.items.base else self.added_scope[key]

    def set_scope(self, key: int, code: int) -> None:
        if key < self.items.base:
            state = self.layout.item_state
            state[key] = state[key] & ~SCOPE_MASK | code
        else:
            self.added_scope[key] = code

    def _created_text(self, table: Table, key: int, order_of=None) -> str:
        """created_at of a record; ``order_of(key)`` is its order's key (None: it is an order)."""
        if key >= table.base:
            return table.added[key - table.base]["created_at"]
        return stamp(self.layout.created[key if order_of is None else order_of(key)])

    # ---- filters ---------------------------------------------------------------------------
    def _orders_between(self, lo, hi) -> list[int]:
        """Generated order keys created within the bounds, ascending."""
        layout = self.layout
        by, created = layout.by_created, layout.created.__getitem__
        start = 0 if lo is None else bisect_left(by, lo.seconds, key=created)
        stop = len(by) if hi is None else bisect_right(by, hi.seconds, key=created)
        return sorted(by[start:stop])

    def _added(self, table: Table, lo, hi=None) -> list[int]:
        return [k for k, rec in enumerate(table.added, start=table.base)
                if (lo is None or rec["created_at"] >= lo.text) and (hi is None or rec["created_at"] <= hi.text)]

    def order_keys(self, ids=None, lo=None):
        if ids is None and lo is None:
            return self.orders.keys()
        if ids is None:
            return array("i", _live(self.orders, self._orders_between(lo, None) + self._added(self.orders, lo)))
        keys = [i - 1 for i in ids if self.orders.exists(i - 1)]
        return [k for k in keys if lo is None or self._created_text(self.orders, k) >= lo.text]

    def order_count(self, lo) -> int:
        layout = self.layout
        start = bisect_left(layout.by_created, lo.seconds, key=layout.created.__getitem__)
        if self.orders.deleted:
            return len(self.order_keys(None, lo))
        return len(layout.by_created) - start + len(self._added(self.orders, lo))

    def shipment_integration(self, s: int) -> int:
        if s >= self.shipments.base:
            return self.shipments.added[s - self.shipments.base]["catalog_integration_id"]
        return INTEGRATIONS[self._ship_digest(self.layout.shipped_orders[s])[0] % len(INTEGRATIONS)]

    def shipment_keys(self, order_ids=None, lo=None, integration=None):
        if order_ids is None and lo is None and integration is None:
            return self.shipments.keys()
        layout = self.layout
        if order_ids is not None:
            # a shipment is its own record: listed by its order's id even when the order is deleted
            keys = sorted(s for o in order_ids if 0 < o <= self.orders.size for s in self.shipment_keys_of(o - 1))
            order_of = layout.shipped_orders.__getitem__
            keys = [s for s in keys if lo is None or self._created_text(self.shipments, s, order_of) >= lo.text]
        elif lo is not None:
            times = map(layout.created.__getitem__, layout.shipped_orders)
            keys = list(compress(range(self.shipments.base), map(lo.seconds.__le__, times)))
            keys += self._added(self.shipments, lo)
        else:
            keys = self.shipments.keys()
        if integration is not None:
            keys = [s for s in keys if self.shipment_integration(s) == integration]
        return array("i", _live(self.shipments, keys))

    def item_integration(self, k: int) -> int:
        if k >= self.items.base:
            return self.items.added[k - self.items.base]["catalog_integration_id"]
        layout = self.layout
        i = bisect_right(layout.first_item, k) - 1
        d = self._ship_digest(i)
        byte = d[0] if layout.item_state[k] & IN_SHIPMENT else d[8 + 2 * (k - layout.first_item[i])]
        return INTEGRATIONS[byte % len(INTEGRATIONS)]

    def item_keys(self, code: int, lo=None, hi=None, integration=None) -> array:
        """Shipment item keys in scope ``code``, created within the bounds, in id order."""
        layout = self.layout
        state, first = layout.item_state, layout.first_item
        if lo is None and hi is None:
            keys = list(compress(range(self.items.base), state.translate(_IS_SCOPE[code])))
        else:
            keys = [k for o in self._orders_between(lo, hi) for k in range(first[o], first[o + 1])
                    if state[k] & SCOPE_MASK == code]
        keys += [k for k in self._added(self.items, lo, hi) if self.added_scope[k] == code]
        if integration is not None:
            keys = [k for k in keys if self.item_integration(k) == integration]
        return array("i", _live(self.items, keys))


def _live(table: Table, keys):
    """The keys not deleted (``changes.py`` deletes records), in their order."""
    if not table.deleted:
        return keys
    return [k for k in keys if k not in table.deleted]
