"""The generated orders: their compact layout, drawn at start, and order i as the JSON text
``/v1/orders`` serves, made on demand.

Layout (per order index i, id i + 1): the creation time; the first order item id (items of
order i have ids ``first_item[i] + 1 .. first_item[i + 1]``, and the generated shipment item of
an order item has the same id); which orders have a shipment (shipment ids follow order
order); each item's scope and whether the order's shipment holds it; which orders have a
return. The rest of an order comes from its digest.
"""

from __future__ import annotations

import random
import struct
from array import array
from bisect import bisect_left
from itertools import accumulate, compress, repeat
from operator import add

from .draws import below, codes, flags
from .pools import LOCATION_IDS, SHIP_METHODS, SOURCES, Customers, jstr, money2
from .timeutil import END_EPOCH, START_EPOCH

SCOPES = ("toship", "shipped", "cancelled", "flagged")  # an item's scope code is its index here
IN_SHIPMENT = 4  # item_state bit: the order's generated shipment holds the item
SCOPE_MASK = 3


def _scope_table() -> bytes:
    """item state from (kind * 256 + a random byte); kinds: 0-1 the order has no shipment,
    2-4 the shipment holds the item, 5 it does not."""
    unshipped = bytes(0 if a < below(0.7) else 2 if a < below(0.85) else 3 for a in range(256))
    held = bytes(IN_SHIPMENT | (1 if a < below(0.9) else 3) for a in range(256))
    return unshipped * 2 + held * 3 + unshipped


_SCOPE_TABLE = _scope_table()
_ROW = [k * 256 for k in range(6)]
_KIND = [[b"\0" * n for n in range(6)], [b"\2" + b"\4" * (n - 1) if n else b"" for n in range(6)]]


def _creation_times(r: random.Random, n: int) -> array:
    """n creation times, non-decreasing, with bulk-import runs that share one value, and ~1%
    late arrivals that carry an older one."""
    span = END_EPOCH - START_EPOCH
    sizes = []
    left = n
    while left > 0:
        size = min(50 + int(r.random() * 251) if r.random() < 0.02 else 1, left)
        sizes.append(size)
        left -= size
    starts = sorted(START_EPOCH + int(r.random() * span) for _ in sizes)
    out = array("q")
    for size, start in zip(sizes, starts):
        out.extend(repeat(start, size))
    for i in compress(range(1, n), flags(r, max(n - 1, 0), 0.01)):
        out[i] = out[int(r.random() * i)]
    return out


class OrderLayout:
    def __init__(self, seed: int, count: int):
        r = random.Random(f"{seed}:orders")
        self.count = count
        self.created = _creation_times(r, count)
        self.by_created = array("i", sorted(range(count), key=self.created.__getitem__))
        items = codes(r, count, [0, 51, 51, 51, 51, 52])  # 1-5 items
        self.first_item = array("i", accumulate(items, initial=0))
        shipped = flags(r, count, 0.6)
        self.shipped_orders = array("i", compress(range(count), shipped))
        kinds = b"".join(_KIND[s][n] for s, n in zip(shipped, items))
        kinds = bytes(map(add, kinds, flags(r, len(kinds), 0.2)))
        self.item_state = bytearray(map(_SCOPE_TABLE.__getitem__,
                                        map(add, map(_ROW.__getitem__, kinds), r.randbytes(len(kinds)))))
        self.returned_orders = array("i", compress(range(count), flags(r, count, 0.02)))

    @property
    def item_count(self) -> int:
        return self.first_item[self.count]

    def shipment_of(self, i: int) -> int | None:
        """Index of order i's generated shipment, if it has one."""
        k = bisect_left(self.shipped_orders, i)
        return k if k < len(self.shipped_orders) and self.shipped_orders[k] == i else None

    def return_of(self, i: int) -> int | None:
        k = bisect_left(self.returned_orders, i)
        return k if k < len(self.returned_orders) and self.returned_orders[k] == i else None


_SOURCES = [jstr(s) for s in SOURCES]
_METHODS = [jstr(m) for m in SHIP_METHODS]
_STORE_ENDS = [f"{loc}}}" for loc in LOCATION_IDS]  # an order item's store_id and its closing brace
# the byte thresholds of the draws below (``below``), computed once: an order is made in a few us
_B85, _B30, _B80, _B60, _B05 = below(0.85), below(0.3), below(0.8), below(0.6), below(0.05)
_CENTS = [f"{cents:02d}" for cents in range(100)]
_CHARGES = [f'{money2(cents)}",'.encode() for cents in range(2000)]  # a shipping charge, ending its field
# an order's draws from its digest d, read in one call: d[0:2] (customer), d[2], d[3:5] (billing
# customer), d[5], d[6:8] (shipping charge), d[8], d[9], d[10]; then 9 bytes an item from d[11]:
# d[k:k+3] (variant, as 16 + 8 bits), d[k+3] .. d[k+8]
_DRAWS = [struct.Struct("<HBHBHBBB" + "HBBBBBBB" * n) for n in range(6)]
_ITEMS = [[slice(8 + 8 * j, 16 + 8 * j) for j in range(n)] for n in range(6)]  # each item's draws
LINES_KEPT = 2048  # order lines a ``lines`` cache keeps (~250 bytes each): one slot a line code modulo this


def line_text(sku: str, price: int, qty: int, discounted: bool, taxed: bool) -> tuple[str, int, int]:
    """An order line's JSON from ``"tax"`` to ``"store_id":`` (the item id and store left
    out: they vary where the rest repeats), its total and its tax, in cents."""
    discount = price * qty // 10 if discounted else 0
    tax = (price * qty - discount) * 8 // 100 if taxed else 0
    line = price * qty - discount + tax
    return (f'"tax":"{money2(tax)}","qty":{qty},"sku":"{sku}","price":"{money2(price)}",'
            f'"discount":"{money2(discount)}","total":"{money2(line)}","store_id":', line, tax)


def new_lines() -> list:
    """An empty cache of order lines for ``OrderMaker.pieces``."""
    return [(-1, "", 0, 0)] * LINES_KEPT


class OrderMaker:
    """Orders as JSON from a digest: the same code makes generated and added orders."""

    def __init__(self, seed: int):
        self.customers = Customers(seed)

    def json(self, oid: int, created: str, d: bytes, first_item_id: int, n_items: int,
             variant, n_variants: int, lines: list | None = None) -> str:
        """The order as JSON text (``pieces``)."""
        out: list[bytes] = []
        self.pieces(out, [(oid, created, d, first_item_id, n_items)], variant, n_variants, lines)
        return b"".join(out[:-1]).decode()

    def pieces(self, out: list, orders, variant, n_variants: int, lines: list | None = None) -> None:
        """Append orders to ``out`` as UTF-8 pieces, each order's followed by ``b","``
        (``b"".join``: the orders, comma-separated, and a last comma; their own fields are
        ASCII, the customers' fragments made once). ``orders``: (id, created_at, d: 64 random
        bytes, first item id, number of items) each. ``variant(k)`` -> (sku, price cents) for
        k < n_variants. ``lines`` (``new_lines()``) remembers order lines (``line_text``) by
        variant and draws, for one ``variant`` only (the generated catalog's): a page of orders
        repeats most lines. A line's slot is its code modulo ``LINES_KEPT``; a line found there
        with another code is made again (and takes the slot)."""
        c = self.customers
        people, shipping, billing, customer = len(c.people), c.shipping, c.billing, c.customer
        lines = new_lines() if lines is None else lines
        for oid, created, d, item_id, n_items in orders:
            draws = _DRAWS[n_items].unpack_from(d)
            cust = draws[0] % people
            bill = cust if draws[1] < _B85 else draws[2] % people
            items = []
            subtotal = tax_total = 0
            for item in _ITEMS[n_items]:
                low, high, d3, d4, d5, d6, d7, d8 = draws[item]
                qty = 1 + (d4 % 3 if d3 < _B30 else 0)
                vi = (low | high << 16) % n_variants if n_variants else -1
                code = ((vi * 3 + qty) * 2 + (d5 >= _B80)) * 2 + (d6 < _B60)
                entry = lines[code % LINES_KEPT]
                if entry[0] != code or vi < 0:
                    sku, price = variant(vi) if vi >= 0 else (f"LOOSE-{low % 1000}", 1999)
                    entry = lines[code % LINES_KEPT] = (code, *line_text(sku, price, qty, d5 >= _B80, d6 < _B60))
                _, text, line, tax = entry
                subtotal += line
                tax_total += tax
                store = _STORE_ENDS[d8 % len(LOCATION_IDS)] if d7 < _B80 else "null}"
                items.append(f'{{"id":{item_id},{text}{store}')
                item_id += 1
            charged, charge, receipted, source, method = draws[3:8]
            ship = 0 if charged < _B30 else 500 + charge % 1500
            receipt = "null" if receipted < _B05 else f'"{190000 + oid}"'
            total = subtotal + ship  # not negative, as every line: money2's text without its sign
            head = (f'{{"order_items":[{",".join(items)}],"id":{oid},"external_id":"{100000000 + oid * 3}",'
                    f'"created_at":"{created}","total":"{total // 100}.{_CENTS[total % 100]}",'
                    f'"tax":"{tax_total // 100}.{_CENTS[tax_total % 100]}",'
                    f'"receipt_id":{receipt},"source":{_SOURCES[source % len(SOURCES)]},'
                    f'"shipping_method":{_METHODS[method % len(SHIP_METHODS)]},')
            out += (head.encode(), shipping[cust], _CHARGES[ship], billing[bill], customer[cust], b",")
