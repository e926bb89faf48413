"""Shipments, shipment items and returns as the API serves them, made from their order.

The same functions make generated records (random bytes from a digest) and records the
sandbox adds while it runs (random bytes from the mutation stream).
"""

from __future__ import annotations

from .draws import below
from .pools import CARRIERS, CHANNELS, CLASSES, INTEGRATIONS, money2


def shipment(sid: int, order: dict, lines: list[dict], created: str, d: bytes) -> dict:
    """``lines``: ``[{"id", "qty"}]`` of the order items shipped."""
    return {
        "id": sid, "order_id": order["id"],
        "catalog_integration_id": INTEGRATIONS[d[0] % len(INTEGRATIONS)],
        "seller_fulfillment_id": None if d[1] < below(0.8) else 5000 + d[2] % 100,
        "distribution_center_id": 123 if d[3] < below(0.7) else None,
        "shipment_status": None if d[4] < below(0.6) else "shipped",
        "shipping_carrier": CARRIERS[d[5] % len(CARRIERS)],
        "shipping_class": CLASSES[d[6] % len(CLASSES)],
        "tracking_number": f"1Z{sid:010d}" if d[7] < below(0.9) else None,
        "tracking_urls": None, "shipment_date": created, "created_at": created, "updated_at": created,
        "order_items": [{"id": line["id"], "qty": line["qty"]} for line in lines],
    }


def shipment_item(iid: int, order: dict, item: dict, product: tuple[str, str] | None,
                  shipment: dict | None, created: str, integration_byte: int, center_byte: int) -> dict:
    """``product``: (parent sku, brand) of the item's variant, when the catalog has it."""
    receipt = order["receipt_id"]
    shipped = shipment or {}
    return {
        "id": iid, "external_order_id": order["id"],
        "external_receipt_id": int(receipt) if receipt else None,
        "catalog_integration_id": shipped.get("catalog_integration_id",
                                              INTEGRATIONS[integration_byte % len(INTEGRATIONS)]),
        "distribution_center_id": 123 if center_byte < below(0.7) else None,
        "billing_name": order["billing_name"], "shipping_name": order["shipping_name"],
        "shipping_address1": order["shipping_address1"],
        "shipping_address2": order["shipping_address2"], "shipping_city": order["shipping_city"],
        "shipping_state": order["shipping_state"], "shipping_zip": order["shipping_zipcode"],
        "item_sku": item["sku"], "item_brand": product[1] if product else None,
        "item_parent_sku": product[0] if product else None, "item_qty": item["qty"],
        "shipping_carrier": shipped.get("shipping_carrier"), "shipping_class": shipped.get("shipping_class"),
        "tracking_number": shipped.get("tracking_number"), "tracking_urls": None,
        "shipment_status": shipped.get("shipment_status"), "shipment_date": shipped.get("shipment_date"),
        "created_at": created,
    }


def order_return(rid: int, order: dict, number: int, asked: list[dict], created: str,
                 adjustment: float | None = None) -> dict:
    """Return ``number`` of an order; ``asked``: ``[{"sku", "store_id_return", "qty"}]``;
    ``created`` is ``YYYY-MM-DD HH:MM:SS`` as the returns endpoint serves it."""
    by_sku = {it["sku"]: it for it in order["order_items"]}
    lines, tax_total, total = [], 0, 0
    for ask in asked:
        src = by_sku[ask["sku"]]
        price = int(src["price"].replace(".", ""))
        tax = int(src["tax"].replace(".", "").replace("-", "")) // max(src["qty"], 1) * ask["qty"]
        line = price * ask["qty"] + tax
        tax_total += tax
        total += line
        lines.append({"sku": ask["sku"], "store_id_return": ask["store_id_return"], "qty": ask["qty"],
                      "tax": money2(tax), "price": money2(price), "total": money2(line)})
    rec = {"id": rid, "external_id": f"{order['external_id']}-R{number}",
           "channel_id": CHANNELS[order["id"] % len(CHANNELS)]}
    if adjustment is not None:
        cents = int(round(adjustment * 100))
        rec["adjustment"] = money2(cents)
        total += cents
    rec.update({"tax": money2(tax_total), "total": money2(total), "items": lines, "created_at": created})
    return rec
