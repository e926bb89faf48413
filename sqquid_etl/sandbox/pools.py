"""Pools of values the generated records draw from, money formatting, and JSON fragments.

A fragment is a value already in the served JSON form (``jstr("Zoë")`` is ``"Zoë"`` with the
quotes), so the record templates join strings instead of encoding dicts.
"""

from __future__ import annotations

import json
import random

FIRST = ["Thomas", "Maria", "José", "Zoë", "Jürgen", "Aiko", "Chloé", "Søren", "Li", "Amara",
         "Noah", "Olivia", "Renée", "Mateo", "Hana", "François", "Priya", "Łukasz", "Omar", "Emma"]
LAST = ["Smith", "García", "Müller", "Tanaka", "O'Brien", "Nguyen", "Dubois", "Kowalski",
        "Johnson", "Rossi", "Andersson", "佐藤", "Brown", "Ibáñez", "Wójcik", "Lee"]
STREETS = ["Main St", "Sepulveda Ave", "Evergreen Terrace", "Rue de l'Église", "Market St",
           "Königstraße", "Ocean Blvd", "Elm St", "Sunset Blvd", "Broadway"]
CITIES = [("San Francisco", "California", "94114"), ("Los Angeles", "CA", "90066"),
          ("Springfield", "IL", "62704"), ("New York", "NY", "10001"), ("Austin", "TX", "73301"),
          ("Seattle", "WA", "98101"), ("Miami", "FL", "33101"), ("Portland", "OR", "97201"),
          ("Denver", "CO", "80202"), ("Boston", "MA", "02108")]
SHIP_METHODS = ["Flat Rate - Fixed", "UPS Ground", "FedEx 2Day", "USPS Priority", "Free Shipping", None]
SOURCES = ["-", "web", "amazon", "ebay", "pos", "shopify"]
CARRIERS = ["UPS", "FedEx", "USPS", "DHL", None]
CLASSES = ["Ground", "2Day", "Overnight", None]
ADJ = ["Women's", "Men's", "Kids'", "Classic", "Über", "Café", "Naïve", "Ultra", "Crème",
       "日本", "🔥 Hot", "Straße", "Pro", "Vintage", "Eco", "Señor"]
NOUNS = ["Challenge Jersey", "Runner Shoe", "Tea Set", "Socks", "Hoodie", "Backpack", "Cap",
         "Water Bottle", "Rain Jacket", "Yoga Mat", "Mug", "Scarf", "Boot", "Tote", "Watch"]
BRANDS = ["Acme", "Adidas", "Asics", "Mizuno", "Nike", "Fjällräven", "Löwe", "無印", "Brand", "Puma"]
COLORS = ["Red", "Blue", "Game Royal", "White", "Black", "Grün", "Noir", "Sky 青"]
SIZES = ["XS", "S", "M", "L", "XL", "9.5", "10", "One Size"]
CATEGORIES = ["Team", "Apparel > Jerseys", "Footwear > Running", "Home > Kitchen", "Accessories",
              "Outdoor > Bags", "Sale", "Gifts > Für Sie"]
DESCRIPTIONS = ["", "Lightweight and durable.", "Édition limitée — très confortable.",
                "Made in 日本.", "Great gift 🎁", None]
INTEGRATIONS = (98, 100, 101)
CHANNELS = (1, 2, 3)
BINS = ("default", "front", "back")

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def jstr(value) -> str:
    """A value as its JSON text (``None`` -> ``null``)."""
    return _encode(value)


def dumps(obj) -> bytes:
    return _encode(obj).encode("utf-8")


_MONEY2: dict[int, str] = {}
_MONEY4: dict[int, str] = {}


def money2(cents: int) -> str:
    """Cents -> "24.99"."""
    text = _MONEY2.get(cents)
    if text is None:
        sign = "-" if cents < 0 else ""
        a = abs(cents)
        text = f"{sign}{a // 100}.{a % 100:02d}"
        if len(_MONEY2) < 200_000:
            _MONEY2[cents] = text
    return text


def money4(cents: int | None) -> str | None:
    """Cents -> "40.0000" as products v1 serve prices."""
    if cents is None:
        return None
    text = _MONEY4.get(cents)
    if text is None:
        text = f"{cents // 100}.{cents % 100:02d}00"
        if len(_MONEY4) < 200_000:
            _MONEY4[cents] = text
    return text


def locations() -> list[dict]:
    """The account's locations at start."""
    specs = [("50", 0, True), ("32", 1, True), ("Store 1", 0, True), ("6050", 1, True),
             ("WH East", 2, True), ("Outlet/2", 0, False), ("Pop-up Café", 2, True), ("0", 3, True)]
    out = []
    for i, (store_id, type_id, enabled) in enumerate(specs, start=1):
        city, state, zipc = CITIES[i % len(CITIES)]
        out.append({"id": i, "type_id": type_id, "enabled": enabled, "store_id": store_id,
                    "address": f"{10 + i * 11} {STREETS[i % len(STREETS)]}", "city": city,
                    "state": state, "zip": zipc, "phone": None if i == 7 else f"11111{i:07d}"})
    return out


LOCATIONS = locations()
LOCATION_IDS = [loc["id"] for loc in LOCATIONS]
STORE_IDS = [loc["store_id"] for loc in LOCATIONS]
# where generated inventory sits: the first four stores and "default", each with three bins
PLACES = [(s, b) for s in STORE_IDS[:4] + ["default"] for b in BINS]


class Customers:
    """400 customers drawn from the seed, each also as the JSON fragments an order embeds, in
    UTF-8: ``shipping`` (with the key of the shipping charge that follows it), ``billing``
    (with the comma after it) and ``customer`` (with the order's closing brace)."""

    COUNT = 400

    def __init__(self, seed: int):
        r = random.Random(seed)
        self.people = []
        for i in range(self.COUNT):
            first, last = FIRST[int(r.random() * len(FIRST))], LAST[int(r.random() * len(LAST))]
            city, state, zipc = CITIES[int(r.random() * len(CITIES))]
            self.people.append({
                "name": f"{first} {last}", "address1": f"{100 + int(r.random() * 9000)} {STREETS[i % len(STREETS)]}",
                "address2": "" if r.random() < 0.7 else f"Suite {int(r.random() * 500)}",
                "city": city, "state": state, "zip": zipc, "country": "US",
                "phone": None if r.random() < 0.1 else str(2000000000 + int(r.random() * 7999999999)),
                "id": f"{1000000 + i * 7919}-{i % 97:02d}",
                "email": None if r.random() < 0.08 else f"{first.lower()}.{i}@example.com",
            })
        self.shipping = [f'{self._fragment(p, "shipping", ship=True)},"shipping_charge":"'.encode()
                         for p in self.people]
        self.billing = [f'{self._fragment(p, "billing", ship=False)},'.encode() for p in self.people]
        self.customer = [f'"customer_id":{jstr(p["id"])},"customer_email":{jstr(p["email"])},'
                         f'"customer_name":{jstr(p["name"])}}}'.encode() for p in self.people]

    @staticmethod
    def _fragment(p: dict, prefix: str, ship: bool) -> str:
        fields = [("address1", p["address1"]), ("address2", p["address2"]), ("name", p["name"])]
        if not ship:
            fields = [("name", p["name"]), ("address1", p["address1"]), ("address2", p["address2"])]
        fields += [("city", p["city"]), ("state", p["state"]), ("zipcode", p["zip"]),
                   ("country", p["country"]), ("phone", p["phone"])]
        return ",".join(f'"{prefix}_{k}":{jstr(v)}' for k, v in fields)
