"""The drift profile: what a less tidy server sends, in a mix fixed by the seed.

``Drift.apply(view, key, record)`` changes a record (a fresh dict) as the list endpoints serve
it under ``--drift``. Two kinds of change:

- values (the record means something else, and its *canonical* form says so too): two
  undocumented fields on every record and child record, nulls in nullable documented fields,
  ``tracking_urls`` as an array of URLs;
- representations (the same value, written another way; ``served=True`` only): integer ids as
  strings (``"27"``), digit-only text ids the reference shows as integers sent as integers,
  money/decimal strings as JSON numbers (v2: numbers as strings), timestamps in another
  ISO 8601 form. Each can be read back to exactly the canonical value.

Every choice draws from a generator seeded with (seed, view, key), in field order, the same
draws in both modes: the same record is the same bytes every time it is served, and its
canonical form (``served=False``) is the served record before its representations changed.
``lossy`` (off by default) gives that fraction of records one value no reading can keep
(``1.5`` as a quantity, ``"abc"`` as an id, ``"N/A"`` as a price, ``"not a date"``).
"""

from __future__ import annotations

import copy
import random
from dataclasses import asdict, dataclass, fields

from .timeutil import stamp, to_epoch

CHILDREN = ("order_items", "Child_Products", "inventory", "variants")  # lists of child records
MONEY = frozenset({"price", "price_special", "price_msrp", "total", "tax", "discount", "shipping_charge",
                   "weight", "adjustment"})
TIMES = frozenset({"created_at", "updated_at", "shipment_date"})
QUANTITIES = frozenset({"qty", "item_qty", "qty_on_hand"})
_PRODUCT_NULLS = frozenset({"description", "short_description", "weight", "price_special", "price_msrp"})
_TRACKING = frozenset({"shipping_carrier", "shipping_class", "tracking_number", "tracking_urls", "shipment_status"})
# (view or view.child) -> documented fields that may be null; keys, cursors and quantities never are
NULLABLE = {
    "orders": frozenset({"receipt_id", "source", "shipping_method", "shipping_address2", "shipping_phone",
                         "billing_address2", "billing_phone", "customer_email"}),
    "orders.order_items": frozenset({"store_id", "discount"}),
    "products": _PRODUCT_NULLS,
    "products.Child_Products": _PRODUCT_NULLS,
    "shipments": frozenset({"seller_fulfillment_id", "distribution_center_id"}) | _TRACKING,
    "shipmentitems": frozenset({"external_receipt_id", "distribution_center_id", "item_brand", "item_parent_sku",
                                "shipping_address2", "shipment_date"}) | _TRACKING,
    "locations": frozenset({"address", "phone"}),
    "v2": frozenset({"price_special"}),
    "v2v": frozenset({"price_special"}),
    "v2v.variants": frozenset({"price_special"}),
}
# text ids the reference shows as integers: a digit-only value may come as a JSON integer
TEXT_IDS = {"buffers": frozenset({"location_external_id"})}
TRACKERS = {"UPS": "https://www.ups.com/track?tracknum=", "FedEx": "https://www.fedex.com/fedextrack/?trknbr=",
            "USPS": "https://tools.usps.com/go/TrackConfirmAction?tLabels=", "DHL": "https://www.dhl.com/track?id="}
_SCALARS = (("sync_status", ("synced", "pending", "stale")), ("priority", (0, 1, 5, 10)),
            ("score", (0.5, 0.75, 1.25)), ("is_test", (False, True)), ("legacy_ref", ("L-1001", "L-2002", "")),
            ("sync_note", (None,)))
_OBJECTS = (("metadata", ({"source": "pos", "version": 2}, {"source": "web", "version": 3, "flags": ["a"]})),
            ("tags", (["sale"], ["new", "vip"], [])),
            ("custom_fields", ([{"name": "gift", "value": "yes"}], [{"name": "lane", "value": 4}])),
            ("links", ({"self": "https://api.sqquid.com/v1/self"}, {"self": None})))
_BAD = {"quantity": 1.5, "id": "abc", "money": "N/A", "time": "not a date"}


@dataclass(frozen=True)
class DriftProfile:
    """Rates are per value (per record for ``lossy``); 0 turns one drift off."""

    extra_fields: bool = True  # two undocumented fields on every record: one scalar, one object or array
    string_ids: float = 0.05  # integer ids sent as strings (and text ids shown as integers sent as integers)
    number_prices: float = 0.30  # money/decimal strings sent as JSON numbers (v2: its numbers as strings)
    nulls: float = 0.10  # nullable documented fields sent as null
    tracking_urls: bool = True  # an array of URLs where the record has a tracking number, else [] or null
    dates: float = 0.10  # timestamps in another ISO 8601 form (the same instant)
    lossy: float = 0.0  # records with one value that cannot be stored without loss

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "float" and not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise ValueError(f"drift {f.name} must be a fraction between 0 and 1, not {value!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def other_time(text: str, form: int) -> str:
    """A stored timestamp (``2020-06-12T12:34:00.000Z``) as the same instant in another
    ISO 8601 form: 0 naive with a space (UTC; whole seconds only), 1 ``+00:00``, 2 ``Z``
    without milliseconds (or with microseconds), 3 an offset of -05:00."""
    date, clock, ms = text[:10], text[11:19], text[20:23]
    whole = ms == "000"
    if form == 0 and whole:
        return f"{date} {clock}"
    if form in (0, 1):
        return f"{date}T{clock}.{ms}+00:00"
    if form == 2:
        return f"{date}T{clock}Z" if whole else f"{date}T{clock}.{ms}000Z"
    return stamp(int(to_epoch(text)) - 5 * 3600)[:19] + f".{ms}-05:00"


def money_number(text: str) -> int | float:
    """``"24.99"`` -> 24.99, ``"40.0000"`` -> 40: the same decimal value as a JSON number."""
    number = float(text)
    return int(number) if number.is_integer() else number


def _is_stored_time(value) -> bool:
    return isinstance(value, str) and len(value) == 24 and value[10] == "T" and value[23] == "Z"


class Drift:
    """A profile applied with a seed. ``apply`` changes a fresh record in place and returns it."""

    def __init__(self, seed: int, profile: DriftProfile):
        self.seed, self.profile = seed, profile

    def _rng(self, view: str, key) -> random.Random:
        return random.Random(f"drift:{self.seed}:{view}:{key}")

    def apply(self, view: str, key, record: dict, served: bool = True) -> dict:
        """The record as served (``served``) or its canonical form: the drifted values in the
        undrifted representation."""
        self._walk(view, key, record, served)
        return record

    def lossy_field(self, view: str, key, record: dict) -> str | None:
        """The path of the value ``apply`` makes unreadable in this record (e.g.
        ``order_items.1.qty``), or None. ``record`` is the undrifted record (left unchanged)."""
        return self._walk(view, key, copy.deepcopy(record), served=False)

    def _walk(self, view: str, key, record: dict, served: bool) -> str | None:
        r = self._rng(view, key)
        lossy = self.profile.lossy and r.random() < self.profile.lossy
        spots: list[tuple[dict, str, str, str]] = []
        self._fields(view, record, r, served, spots, "")
        if not lossy or not spots:
            return None
        container, name, kind, path = spots[int(r.random() * len(spots))]
        if served:
            container[name] = _BAD[kind]
        return path

    def _fields(self, kind: str, rec: dict, r: random.Random, served: bool, spots: list, path: str) -> None:
        p = self.profile
        nullable = NULLABLE.get(kind, ())
        text_ids = TEXT_IDS.get(kind, ())
        for name in list(rec):
            value = rec[name]
            if name in CHILDREN and isinstance(value, list):
                for n, child in enumerate(value):
                    if isinstance(child, dict):
                        self._fields(f"{kind}.{name}", child, r, served, spots, f"{path}{name}.{n}.")
                continue
            if name == "tracking_urls" and p.tracking_urls:
                value = rec[name] = self._tracking_urls(rec, r)
            if name in nullable and value is not None and p.nulls and r.random() < p.nulls:
                rec[name] = None
                continue
            self._represent(rec, name, value, name in text_ids, r, served, spots, path)
        if p.extra_fields:
            self._extras(rec, r)

    def _represent(self, rec: dict, name: str, value, text_id: bool, r: random.Random, served: bool,
                   spots: list, path: str) -> None:
        """One value in another representation (served only; the draws are made either way)."""
        p = self.profile
        kind = None
        if type(value) is int and (name == "id" or name.endswith("_id")):
            kind = None if name == "id" else "id"
            if p.string_ids and r.random() < p.string_ids and served:
                rec[name] = str(value)
        elif text_id and isinstance(value, str) and value.isdigit() and str(int(value)) == value:
            if p.string_ids and r.random() < p.string_ids and served:
                rec[name] = int(value)
        elif name in MONEY and value is not None and type(value) is not bool:
            kind = "money"
            if p.number_prices and r.random() < p.number_prices and served:
                rec[name] = money_number(value) if isinstance(value, str) else repr(value)
        elif name in TIMES and _is_stored_time(value):
            kind = "time"
            if p.dates and r.random() < p.dates:
                form = int(r.random() * 4)
                if served:
                    rec[name] = other_time(value, form)
        elif name in QUANTITIES and type(value) is int:
            kind = "quantity"
        if kind is not None:
            spots.append((rec, name, kind, path + name))

    @staticmethod
    def _tracking_urls(rec: dict, r: random.Random) -> list[str] | None:
        number = rec.get("tracking_number")
        if not number:
            return [] if r.random() < 0.5 else None
        base = TRACKERS.get(rec.get("shipping_carrier"), "https://track.sqquid.test/")
        urls = [base + number]
        if r.random() < 0.25:
            urls.append(f"https://track.sqquid.test/{number}?lang=en")
        return urls

    @staticmethod
    def _extras(rec: dict, r: random.Random) -> None:
        for pool in (_SCALARS, _OBJECTS):
            start = int(r.random() * len(pool))
            for step in range(len(pool)):
                name, values = pool[(start + step) % len(pool)]
                if name not in rec:
                    pick = values[int(r.random() * len(values))]
                    rec[name] = copy.deepcopy(pick)  # no record shares a nested list of the pool
                    break
