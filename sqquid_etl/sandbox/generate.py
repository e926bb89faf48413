"""Deterministic synthetic records in the exact shapes the Sqquid API serves.

A ``Generator`` holds one ``random.Random`` and pools of values; every record it makes
depends only on the seed and the order of calls. It knows nothing of indices or HTTP:
``data.Store`` decides ids and timestamps and keeps the records.
"""

from __future__ import annotations

import random

from .timeutil import END_EPOCH, START_EPOCH, fmt

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


_MONEY2: dict[int, str] = {}
_MONEY4: dict[int, str] = {}


def money2(cents: int) -> str:
    """Cents -> "24.99" (the same str object for equal values: saves memory at scale)."""
    text = _MONEY2.get(cents)
    if text is None:
        sign = "-" if cents < 0 else ""
        a = abs(cents)
        text = f"{sign}{a // 100}.{a % 100:02d}"
        if len(_MONEY2) < 500_000:
            _MONEY2[cents] = text
    return text


def money4(cents: int | None) -> str | None:
    """Cents -> "40.0000" as products v1 serve prices."""
    if cents is None:
        return None
    text = _MONEY4.get(cents)
    if text is None:
        text = f"{cents // 100}.{cents % 100:02d}00"
        if len(_MONEY4) < 500_000:
            _MONEY4[cents] = text
    return text


class Generator:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self._attrs: dict[tuple[str, str], dict] = {}
        r = self.rng
        self.customers = []
        for i in range(400):
            first, last = FIRST[int(r.random() * len(FIRST))], LAST[int(r.random() * len(LAST))]
            city, state, zipc = CITIES[int(r.random() * len(CITIES))]
            name = f"{first} {last}"
            self.customers.append({
                "name": name, "address1": f"{100 + int(r.random() * 9000)} {STREETS[i % len(STREETS)]}",
                "address2": "" if r.random() < 0.7 else f"Suite {int(r.random() * 500)}",
                "city": city, "state": state, "zip": zipc, "country": "US",
                "phone": None if r.random() < 0.1 else str(2000000000 + int(r.random() * 7999999999)),
                "id": f"{1000000 + i * 7919}-{i % 97:02d}",
                "email": None if r.random() < 0.08 else f"{first.lower()}.{i}@example.com",
            })

    def _attr(self, label: str, value: str) -> dict:
        """Shared label/value dicts (never mutated in place: edits replace the list)."""
        key = (label, value)
        attr = self._attrs.get(key)
        if attr is None:
            attr = self._attrs[key] = {"label": label, "value": value}
        return attr

    # ---- timestamps -------------------------------------------------------------------
    def order_timestamps(self, n: int) -> list[str]:
        """n creation times, non-decreasing, with bulk-import runs that share one value,
        and ~1% late arrivals that carry an older timestamp."""
        r = self.rng
        groups: list[int] = []
        remaining = n
        while remaining > 0:
            size = 50 + int(r.random() * 251) if r.random() < 0.02 else 1
            size = min(size, remaining)
            groups.append(size)
            remaining -= size
        span = END_EPOCH - START_EPOCH
        starts = sorted(START_EPOCH + int(r.random() * span) for _ in groups)
        out: list[str] = []
        cache: dict[int, str] = {}
        for size, epoch in zip(groups, starts):
            stamp = cache.get(epoch) or cache.setdefault(epoch, fmt(epoch))
            out.extend([stamp] * size)
        for i in range(n):
            if r.random() < 0.01 and i > 0:
                out[i] = out[int(r.random() * i)]
        return out

    def random_stamp(self) -> str:
        return fmt(START_EPOCH + int(self.rng.random() * (END_EPOCH - START_EPOCH)))

    # ---- catalog ----------------------------------------------------------------------
    def parent_sku(self, i: int) -> str:
        k = i % 10
        if k == 3:
            return f"ABC {i}/{i % 7}"
        if k == 7:
            return f"{645506 + i}-{i % 1000:03d} X"
        return f"{645506 + i}-{i % 1000:03d}"

    def product(self, pid: int, sku: str, created: str, updated: str, n_variants: int,
                next_id) -> dict:
        r = self.rng
        name = f"{ADJ[int(r.random() * len(ADJ))]} {NOUNS[int(r.random() * len(NOUNS))]}"
        brand = BRANDS[int(r.random() * len(BRANDS))]
        price = 500 + int(r.random() * 20000)
        special = None if r.random() < 0.5 else price - int(price * 0.15)
        msrp = None if r.random() < 0.7 else price + 1000
        weight = None if r.random() < 0.3 else 50 + int(r.random() * 500)
        desc = DESCRIPTIONS[int(r.random() * len(DESCRIPTIONS))]
        cats = [CATEGORIES[int(r.random() * len(CATEGORIES))]] if r.random() < 0.9 else []
        color = COLORS[int(r.random() * len(COLORS))]
        children = []
        for v in range(n_variants):
            size = SIZES[v % len(SIZES)]
            c_updated = updated if r.random() < 0.7 else fmt(to_plus(updated, 1))
            attrs = self._attr
            children.append({
                "id": next_id(), "sku": f"{sku}-{size}" if v % 4 != 1 else f"{1523532750 + pid * 10 + v}",
                "name": name, "description": desc if desc is not None else "",
                "short_description": sku, "weight": money4(weight),
                "price": money4(price), "price_special": money4(special), "price_msrp": None,
                "created_at": created, "updated_at": c_updated,
                "Attributes": [attrs("Size", size), attrs("Brand", brand), attrs("Color", color),
                               {"label": "ALU", "value": str(884776750000 + pid * 10 + v)}],
                "qty": int(r.random() * 20),
            })
        return {
            "id": pid, "sku": sku, "name": name, "description": desc,
            "short_description": "", "weight": money4(weight), "price": money4(price),
            "price_special": money4(special), "price_msrp": money4(msrp),
            "created_at": created, "updated_at": updated,
            "Attributes": [self._attr("Brand", brand), self._attr("Color1", color)],
            "Categories": cats, "Child_Products": children,
        }

    # ---- orders -----------------------------------------------------------------------
    def order(self, oid: int, created: str, variants: list, next_item_id, location_ids: list) -> dict:
        """variants: list of (sku, price_cents) to draw items from."""
        r = self.rng
        cust = self.customers[int(r.random() * len(self.customers))]
        bill = cust if r.random() < 0.85 else self.customers[int(r.random() * len(self.customers))]
        items = []
        subtotal = tax_total = 0
        for _ in range(1 + int(r.random() * 5)):
            if variants:
                sku, price = variants[int(r.random() * len(variants))]
            else:
                sku, price = f"LOOSE-{int(r.random() * 1000)}", 1999
            qty = 1 + (int(r.random() * 3) if r.random() < 0.3 else 0)
            discount = 0 if r.random() < 0.8 else price * qty // 10
            tax = (price * qty - discount) * 8 // 100 if r.random() < 0.6 else 0
            line = price * qty - discount + tax
            subtotal += line
            tax_total += tax
            items.append({"id": next_item_id(), "tax": money2(tax), "qty": qty, "sku": sku,
                          "price": money2(price), "discount": money2(discount), "total": money2(line),
                          "store_id": location_ids[int(r.random() * len(location_ids))] if location_ids and r.random() < 0.8 else None})
        ship = 0 if r.random() < 0.3 else 500 + int(r.random() * 1500)
        return {
            "order_items": items, "id": oid, "external_id": str(100000000 + oid * 3),
            "created_at": created, "total": money2(subtotal + ship), "tax": money2(tax_total),
            "receipt_id": None if r.random() < 0.05 else str(190000 + oid),
            "source": SOURCES[int(r.random() * len(SOURCES))],
            "shipping_method": SHIP_METHODS[int(r.random() * len(SHIP_METHODS))],
            "shipping_address1": cust["address1"], "shipping_address2": cust["address2"],
            "shipping_name": cust["name"], "shipping_city": cust["city"],
            "shipping_state": cust["state"], "shipping_zipcode": cust["zip"],
            "shipping_country": cust["country"], "shipping_phone": cust["phone"],
            "shipping_charge": money2(ship),
            "billing_name": bill["name"], "billing_address1": bill["address1"],
            "billing_address2": bill["address2"], "billing_city": bill["city"],
            "billing_state": bill["state"], "billing_zipcode": bill["zip"],
            "billing_country": bill["country"], "billing_phone": bill["phone"],
            "customer_id": cust["id"], "customer_email": cust["email"], "customer_name": cust["name"],
        }

    def shipment(self, sid: int, order: dict, items: list, created: str, integrations) -> dict:
        r = self.rng
        return {
            "id": sid, "order_id": order["id"],
            "catalog_integration_id": integrations[int(r.random() * len(integrations))],
            "seller_fulfillment_id": None if r.random() < 0.8 else 5000 + int(r.random() * 100),
            "distribution_center_id": 123 if r.random() < 0.7 else None,
            "shipment_status": None if r.random() < 0.6 else "shipped",
            "shipping_carrier": CARRIERS[int(r.random() * len(CARRIERS))],
            "shipping_class": CLASSES[int(r.random() * len(CLASSES))],
            "tracking_number": f"1Z{sid:010d}" if r.random() < 0.9 else None,
            "tracking_urls": None, "shipment_date": created, "created_at": created,
            "updated_at": created,
            "order_items": [{"id": it["id"], "qty": it["qty"]} for it in items],
        }

    def shipment_item(self, iid: int, order: dict, item: dict, parent_sku: str | None,
                      brand: str | None, shipment: dict | None, created: str, integrations) -> dict:
        r = self.rng
        receipt = order["receipt_id"]
        return {
            "id": iid, "external_order_id": order["id"],
            "external_receipt_id": int(receipt) if receipt else None,
            "catalog_integration_id": shipment["catalog_integration_id"] if shipment
            else integrations[int(r.random() * len(integrations))],
            "distribution_center_id": 123 if r.random() < 0.7 else None,
            "billing_name": order["billing_name"], "shipping_name": order["shipping_name"],
            "shipping_address1": order["shipping_address1"],
            "shipping_address2": order["shipping_address2"], "shipping_city": order["shipping_city"],
            "shipping_state": order["shipping_state"], "shipping_zip": order["shipping_zipcode"],
            "item_sku": item["sku"], "item_brand": brand, "item_parent_sku": parent_sku,
            "item_qty": item["qty"],
            "shipping_carrier": shipment["shipping_carrier"] if shipment else None,
            "shipping_class": shipment["shipping_class"] if shipment else None,
            "tracking_number": shipment["tracking_number"] if shipment else None,
            "tracking_urls": None,
            "shipment_status": shipment["shipment_status"] if shipment else None,
            "shipment_date": shipment["shipment_date"] if shipment else None,
            "created_at": created,
        }

    # ---- small tables -----------------------------------------------------------------
    def locations(self) -> list[dict]:
        specs = [("50", 0, True), ("32", 1, True), ("Store 1", 0, True), ("6050", 1, True),
                 ("WH East", 2, True), ("Outlet/2", 0, False), ("Pop-up Café", 2, True), ("0", 3, True)]
        out = []
        for i, (store_id, type_id, enabled) in enumerate(specs, start=1):
            city, state, zipc = CITIES[i % len(CITIES)]
            out.append({"id": i, "type_id": type_id, "enabled": enabled, "store_id": store_id,
                        "address": f"{10 + i * 11} {STREETS[i % len(STREETS)]}", "city": city,
                        "state": state, "zip": zipc,
                        "phone": None if i == 7 else f"11111{i:07d}"})
        return out

    def buffer(self, bid: int, channels, skus: list[str], store_ids: list[str], stamp: str) -> dict:
        r = self.rng
        rec: dict = {"id": bid}
        kind = bid % 4
        if kind != 3 or not skus:
            rec["channel_id"] = channels[int(r.random() * len(channels))]
        if kind in (1, 2, 3) and skus:
            rec["sku"] = skus[int(r.random() * len(skus))]
        if kind == 2 and store_ids:
            rec["location_external_id"] = store_ids[int(r.random() * len(store_ids))]
        rec["qty"] = int(r.random() * 10)
        rec["created_at"] = stamp
        rec["updated_at"] = stamp
        return rec


def to_plus(stamp: str, seconds: int) -> float:
    from .timeutil import to_epoch
    return to_epoch(stamp) + seconds
