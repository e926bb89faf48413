"""The generated catalog: its compact layout, drawn at start, and product i as the JSON text
``/v1/products`` serves, made on demand.

Layout (per product index): created and updated epoch seconds, the number of variants, and
the base price. Everything else of product i comes from its digest. A product's id is
``i + first_variant[i] + 1`` (its variants take the ids after it); base variant ``vi`` (a
number over all products' variants) belongs to the product ``first_variant`` bisects to.
"""

from __future__ import annotations

import random
from array import array
from bisect import bisect_right
from itertools import accumulate

from . import skus
from .draws import Digests, codes, flags, u16
from .pools import ADJ, BRANDS, CATEGORIES, COLORS, DESCRIPTIONS, NOUNS, SIZES, jstr, money4
from .timeutil import END_EPOCH, START_EPOCH, stamp

_NAMES = [[jstr(f"{a} {n}") for n in NOUNS] for a in ADJ]
_NAME_TEXT = [[f"{a} {n}" for n in NOUNS] for a in ADJ]
_BRANDS = [jstr(b) for b in BRANDS]
_COLORS = [jstr(c) for c in COLORS]
_SIZE_ATTRS = [f'{{"label":"Size","value":{jstr(s)}}}' for s in SIZES]
_CATEGORIES = [jstr(c) for c in CATEGORIES]
_PARENT_DESC = [jstr(d) for d in DESCRIPTIONS]
_CHILD_DESC = [jstr(d if d is not None else "") for d in DESCRIPTIONS]


def _money_json(cents: int | None) -> str:
    return "null" if cents is None else f'"{money4(cents)}"'


class ProductLayout:
    """Per-product arrays drawn from the seed; ``updated`` changes when a product does."""

    def __init__(self, seed: int, count: int):
        r = random.Random(f"{seed}:products")
        span = END_EPOCH - START_EPOCH
        self.count = count
        self.created = array("q", sorted(START_EPOCH + int(r.random() * span) for _ in range(count)))
        later = flags(r, count, 0.4)
        self.updated = array("q", (max(c, START_EPOCH + int(r.random() * span)) if f else c
                                   for c, f in zip(self.created, later)))
        self.variants = codes(r, count, [20, 59, 59, 59, 59])  # 8% none, else 1-4
        self.first_variant = array("i", accumulate(self.variants, initial=0))
        raw = array("H")
        raw.frombytes(r.randbytes(2 * count))
        self.price = array("i", (500 + x % 20000 for x in raw))
        self.digest = Digests(seed, "product")
        self._variants: dict[int, tuple[str, int]] = {}  # ``variant`` remembered (orders ask it ~3x an order)

    @property
    def variant_count(self) -> int:
        return self.first_variant[self.count]

    @property
    def next_id(self) -> int:
        """The first product id after the generated ones."""
        return self.count + self.variant_count + 1

    def pid(self, i: int) -> int:
        return i + self.first_variant[i] + 1

    def index_of_id(self, pid: int) -> int | None:
        i = bisect_right(range(self.count), pid, key=self.pid) - 1
        return i if i >= 0 and self.pid(i) == pid else None

    def variant(self, vi: int) -> tuple[str, int]:
        """(sku, price cents) of base variant ``vi`` (a pure function of the layout, remembered
        for up to 4,096 variants)."""
        found = self._variants.get(vi)
        if found is None:
            i = bisect_right(self.first_variant, vi) - 1
            found = skus.variant_sku(skus.parent_sku(i), self.pid(i), vi - self.first_variant[i]), self.price[i]
            if len(self._variants) < 4096:
                self._variants[vi] = found
        return found

    def variant_owner(self, sku: str) -> tuple[int, int] | None:
        """(product index, variant number) of a generated variant sku."""
        ref = skus.variant_ref(sku)
        if ref is None:
            return None
        kind, n, v = ref
        i = n if kind == "index" else self.index_of_id(n)
        if i is None or not 0 <= i < self.count or v >= self.variants[i]:
            return None
        return (i, v) if skus.variant_sku(skus.parent_sku(i), self.pid(i), v) == sku else None

    def brand(self, i: int) -> str:
        return BRANDS[self.digest(i)[2] % len(BRANDS)]

    def text_fields(self, i: int) -> tuple[str, str, str | None]:
        """(name, brand, description) of product i as generated."""
        d = self.digest(i)
        return (_NAME_TEXT[d[0] % len(ADJ)][d[1] % len(NOUNS)], BRANDS[d[2] % len(BRANDS)],
                DESCRIPTIONS[d[10] % len(DESCRIPTIONS)])

    def json(self, i: int) -> str:
        """Product i exactly as ``/v1/products`` serves it (compact JSON text)."""
        return product_json(self.pid(i), skus.parent_sku(i), self.price[i], self.created[i], self.updated[i],
                            self.variants[i], self.digest(i))


def product_json(pid: int, sku: str, price: int, created: int, updated: int, n_variants: int, d: bytes) -> str:
    """A product and its variants as JSON text: times in epoch seconds, d is 64 random bytes
    (the same code makes generated products and products added while running)."""
    name = _NAMES[d[0] % len(ADJ)][d[1] % len(NOUNS)]
    brand, color = _BRANDS[d[2] % len(BRANDS)], _COLORS[d[13] % len(COLORS)]
    special = _money_json(None if d[5] < 128 else price - int(price * 0.15))
    weight = _money_json(None if d[7] < 77 else 50 + u16(d, 8) % 500)
    desc = d[10] % len(DESCRIPTIONS)
    later = updated + 1
    created, updated = stamp(created), stamp(updated)
    money = money4(price)
    common = (f'"name":{name},"description":{_CHILD_DESC[desc]},"short_description":"{sku}",'
              f'"weight":{weight},"price":"{money}","price_special":{special},"price_msrp":null,'
              f'"created_at":"{created}","updated_at":"')
    shared = f'{{"label":"Brand","value":{brand}}},{{"label":"Color","value":{color}}}'
    children = []
    for v in range(n_variants):
        child_updated = updated if d[14 + 2 * v] < 179 else stamp(later)
        children.append(
            f'{{"id":{pid + v + 1},"sku":"{skus.variant_sku(sku, pid, v)}",{common}{child_updated}",'
            f'"Attributes":[{_SIZE_ATTRS[v]},{shared},{{"label":"ALU","value":"{skus.alu(pid, v)}"}}],'
            f'"qty":{d[15 + 2 * v] % 20}}}')
    categories = _CATEGORIES[d[12] % len(CATEGORIES)] if d[11] < 230 else ""
    return (f'{{"id":{pid},"sku":"{sku}","name":{name},"description":{_PARENT_DESC[desc]},'
            f'"short_description":"","weight":{weight},"price":"{money}","price_special":{special},'
            f'"price_msrp":{_money_json(None if d[6] < 179 else price + 1000)},'
            f'"created_at":"{created}","updated_at":"{updated}",'
            f'"Attributes":[{{"label":"Brand","value":{brand}}},{{"label":"Color1","value":{color}}}],'
            f'"Categories":[{categories}],"Child_Products":[{",".join(children)}]}}')
