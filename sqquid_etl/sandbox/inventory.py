"""Inventory records keyed by (sku, location_external_id, bin): generated ones kept as compact
arrays, records added while the sandbox runs kept as a small overlay.

Generated: every variant sku has 2-3 records at distinct places (``pools.PLACES``), then a few
orphan skus (no product) have one each; record r has id r + 1. Quantities may be negative
(oversold stock); -2**31, which no write can set, marks a deleted record. Records added later take
the next ids.
"""

from __future__ import annotations

import random
from array import array
from bisect import bisect_right
from collections.abc import Mapping
from itertools import accumulate

from . import skus
from .draws import codes
from .pools import PLACES
from .product_records import ProductLayout

DELETED = -(2**31)
MAX_QTY = 2**31 - 1  # a quantity is a 32-bit integer other than DELETED: -MAX_QTY..MAX_QTY


class Inventory:
    def __init__(self, seed: int, products: ProductLayout):
        r = random.Random(f"{seed}:inventory")
        self.products = products
        n = products.variant_count
        counts = codes(r, n, [0, 0, 128, 128])  # 2-3 records per variant sku
        self.place = codes(r, n, [17] * 15 + [1])  # first place (15: wraps to 0)
        self.step = codes(r, n, [0] + [37] * 6 + [34])  # places apart (1-7: all distinct)
        self.first = array("i", accumulate(counts, initial=0))
        self.orphans = max(5, products.count // 200)
        self.generated = self.first[n] + self.orphans
        self.qty = array("i", (b % 50 for b in r.randbytes(self.first[n])))
        self.qty.extend(b % 10 for b in r.randbytes(self.orphans))
        self.added: dict[tuple, list[int]] = {}  # key -> [id, qty]
        self.added_by_sku: dict[str, list[tuple]] = {}
        self.next_id = self.generated + 1

    # ---- generated records -------------------------------------------------------------------
    def _generated_keys(self, sku: str) -> list[tuple[int, tuple]]:
        """(record index, key) of the generated records of a sku, deleted ones included."""
        orphan = skus.orphan_index(sku)
        if orphan is not None:
            return [(self.first[-1] + orphan, (sku, "default", "default"))] if orphan < self.orphans else []
        owner = self.products.variant_owner(sku)
        if owner is None:
            return []
        v = self.products.first_variant[owner[0]] + owner[1]
        start, count = self.first[v], self.first[v + 1] - self.first[v]
        place, step = self.place[v] % 15, self.step[v]
        return [(start + j, (sku,) + PLACES[(place + j * step) % 15]) for j in range(count)]

    def _sku_of(self, r: int) -> str:
        n = self.products.variant_count
        if r >= self.first[n]:
            return skus.orphan_sku(r - self.first[n])
        v = bisect_right(self.first, r) - 1
        return self.products.variant(v)[0]

    # ---- reads -------------------------------------------------------------------------------
    def of_sku(self, sku: str) -> list[tuple[tuple, int, int]]:
        """(key, id, qty) of every live record of a sku, in id order."""
        out = [(key, r + 1, self.qty[r]) for r, key in self._generated_keys(sku) if self.qty[r] != DELETED]
        out += [(key, *self.added[key]) for key in self.added_by_sku.get(sku, ())]
        return out

    def _live_generated(self, key: tuple) -> int | None:
        """Index of the live generated record at ``key``, if there is one."""
        return next((r for r, k in self._generated_keys(key[0]) if k == key and self.qty[r] != DELETED), None)

    def get(self, key: tuple) -> tuple[int, int] | None:
        """(id, qty) of a live record."""
        r = self._live_generated(key)
        if r is not None:
            return r + 1, self.qty[r]
        found = self.added.get(key)
        return (found[0], found[1]) if found else None

    def key_of_id(self, inventory_id: int) -> tuple | None:
        r = inventory_id - 1
        if 0 <= r < self.generated:
            if self.qty[r] == DELETED:
                return None
            return next((k for i, k in self._generated_keys(self._sku_of(r)) if i == r), None)
        return next((k for k, (i, _) in self.added.items() if i == inventory_id), None)

    def items(self):
        """(key, id, qty) of every live record in id order."""
        n = self.products.variant_count
        for v in range(n + self.orphans):
            sku = self.products.variant(v)[0] if v < n else skus.orphan_sku(v - n)
            for r, key in self._generated_keys(sku):
                if self.qty[r] != DELETED:
                    yield key, r + 1, self.qty[r]
        for key, (rid, qty) in self.added.items():
            yield key, rid, qty

    # ---- writes ------------------------------------------------------------------------------
    def set(self, key: tuple, qty: int) -> int:
        """Set a record's quantity (a new record if there is none); returns its id."""
        r = self._live_generated(key)
        if r is not None:
            self.qty[r] = qty
            return r + 1
        found = self.added.get(key)
        if found is None:
            found = self.added[key] = [self.next_id, qty]
            self.added_by_sku.setdefault(key[0], []).append(key)
            self.next_id += 1
        found[1] = qty
        return found[0]

    def delete(self, key: tuple) -> None:
        r = self._live_generated(key)
        if r is not None:
            self.qty[r] = DELETED
            return
        if self.added.pop(key, None) is not None:
            keys = self.added_by_sku[key[0]]
            keys.remove(key)
            if not keys:
                del self.added_by_sku[key[0]]

    def zero_unlisted(self, listed: set[str]) -> None:
        """Every live record of a sku not in ``listed`` to 0 (deleted ones stay deleted); the
        records of listed skus are kept as they are."""
        keep = {r for sku in listed for r, _ in self._generated_keys(sku)}
        self.qty = array("i", (q if q == DELETED or r in keep else 0 for r, q in enumerate(self.qty)))
        for key, found in self.added.items():
            if key[0] not in listed:
                found[1] = 0


class InventoryView(Mapping):
    """Read-only ``{(sku, location, bin): {"id", "qty_on_hand"}}`` over an Inventory."""

    def __init__(self, inventory: Inventory):
        self._inventory = inventory

    def __getitem__(self, key):
        found = self._inventory.get(key) if isinstance(key, tuple) and len(key) == 3 else None
        if found is None:
            raise KeyError(key)
        return {"id": found[0], "qty_on_hand": found[1]}

    def __iter__(self):
        return (key for key, _, _ in self._inventory.items())

    def __len__(self) -> int:
        return sum(1 for _ in self._inventory.items())

    def items(self):
        return [(key, {"id": rid, "qty_on_hand": qty}) for key, rid, qty in self._inventory.items()]
