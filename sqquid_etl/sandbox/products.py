"""The catalog: generated products plus the products and variants changed, added or deleted
while the sandbox runs; lookups by sku; the created/updated filters of ``/v1/products``."""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from itertools import chain, compress

from . import skus
from .product_records import ProductLayout
from .cache import ByteCache
from .table import Table
from .timeutil import to_epoch


class Catalog:
    def __init__(self, seed: int, count: int, cache: ByteCache):
        self.layout = ProductLayout(seed, count)
        self.table = Table("products", count, cache, make_text=self.layout.json)
        self.added_by_sku: dict[str, int] = {}  # sku of an added product -> key
        self.added_variants: dict[str, int] = {}  # sku of a variant not generated -> product key
        self._next_id = self.layout.next_id

    # ---- ids and lookups -----------------------------------------------------------------
    def next_id(self) -> int:
        value = self._next_id
        self._next_id += 1
        return value

    def find(self, sku: str) -> int | None:
        """Key of the live product with this sku."""
        key = self.added_by_sku.get(sku)
        if key is None:
            i = skus.parent_index(sku)
            key = i if i is not None and i < self.layout.count else None
        return key if key is not None and self.table.exists(key) else None

    def find_variant(self, sku: str) -> tuple[int, dict] | None:
        """(product key, variant dict) of the live variant with this sku."""
        key = self.added_variants.get(sku)
        if key is None:
            owner = self.layout.variant_owner(sku)
            key = owner[0] if owner else None
        if key is None or not self.table.exists(key):
            return None
        product = self.product(key)
        child = next((c for c in product["Child_Products"] if c["sku"] == sku), None)
        return (key, child) if child is not None else None

    def product(self, key: int) -> dict:
        return self.table.record(key)

    def generated_variant(self, sku: str) -> tuple[str, str] | None:
        """(parent sku, brand) of a generated variant, as generated (for generated records)."""
        owner = self.layout.variant_owner(sku)
        return (skus.parent_sku(owner[0]), self.layout.brand(owner[0])) if owner else None

    def current_variant(self, sku: str) -> tuple[str, str] | None:
        """(parent sku, brand) of a live variant, as it is now (for records added now)."""
        found = self.find_variant(sku)
        if found is None:
            return None
        product = self.product(found[0])
        brand = next((a["value"] for a in product["Attributes"] if a["label"] == "Brand"), None)
        return product["sku"], brand

    def variants_now(self):
        """(``variant(k)`` -> (sku, price cents) as the catalog is now, how many): generated
        variants first, then added ones."""
        layout = self.layout
        extra = sorted(self.added_variants)
        base = layout.variant_count

        def variant(k: int) -> tuple[str, int]:
            sku, price = layout.variant(k) if k < base else (extra[k - base], 0)
            if k >= base or not self.table.generated(bisect_right(layout.first_variant, k) - 1):
                found = self.find_variant(sku)
                if found and found[1]["price"]:
                    price = int(found[1]["price"].replace(".", "")) // 100
            return sku, price
        return variant, base + len(extra)

    # ---- changes ---------------------------------------------------------------------------
    def add(self, product: dict) -> int:
        key = self.table.add(product)
        self.added_by_sku[product["sku"]] = key
        for child in product["Child_Products"]:
            self.added_variants[child["sku"]] = key
        return key

    def save(self, key: int, product: dict) -> None:
        """Store a changed product (its variants may have been added or removed)."""
        for child in product["Child_Products"]:
            if key >= self.layout.count or self.layout.variant_owner(child["sku"]) is None:
                self.added_variants[child["sku"]] = key
        self.table.change(key, product)
        if key < self.layout.count:
            self.layout.updated[key] = int(to_epoch(product["updated_at"]))

    def delete(self, key: int) -> None:
        self.table.delete(key)

    # ---- filters ---------------------------------------------------------------------------
    def keys(self, created_min=None, updated_min=None):
        """Live keys in id order whose created_at/updated_at are at or after the bounds
        (``timeutil.Bound``s)."""
        if created_min is None and updated_min is None:
            return self.table.keys()
        n = self.layout.count
        start = 0 if created_min is None else bisect_left(self.layout.created, created_min.seconds)
        if updated_min is None:
            base = range(start, n)
        else:
            later = map(updated_min.seconds.__le__, self.layout.updated[start:])
            base = compress(range(start, n), later)
        table = self.table
        added = (k for k, p in enumerate(table.added, start=n)
                 if (created_min is None or p["created_at"] >= created_min.text)
                 and (updated_min is None or p["updated_at"] >= updated_min.text))
        return array("i", (k for k in chain(base, added) if k not in table.deleted))
