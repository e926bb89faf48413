"""What each destination table must hold, computed from the sandbox's own data (independently of
the engine's conversion code), and helpers to read a destination back."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import duckdb

# table -> (SQL select list of compared columns, ordered by key)
COMPARED = {
    "orders": "id, external_id, created_at",
    "order_items": "id, order_id, sku, qty",
    "products": "id, sku, updated_at",
    "product_variants": "id, parent_id, sku, qty",
    "shipments": "id, order_id",
    "shipment_order_items": "shipment_id, order_item_id, qty",
    "shipment_items": "id, scope, item_qty",
    "inventory": "sku, location_external_id, bin, qty_on_hand",
    "buffers": "id, qty",
    "locations": "id, store_id",
}


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


def _text(value):
    return None if value is None else str(value)


def expected_tables(store, inventory_skus: set[str] | None = None) -> dict[str, list[tuple]]:
    with store.lock:
        orders = [(o["id"], _text(o.get("external_id")), _ts(o["created_at"])) for o in store.orders]
        items = [(i["id"], o["id"], i.get("sku"), i.get("qty")) for o in store.orders for i in o.get("order_items") or []]
        products = [(p["id"], p["sku"], _ts(p["updated_at"])) for p in store.products]
        variants = [(c["id"], p["id"], c["sku"], c.get("qty")) for p in store.products for c in p.get("Child_Products") or []]
        shipments = [(s["id"], s.get("order_id")) for s in store.shipments]
        shipped = [(s["id"], i["id"], i.get("qty")) for s in store.shipments for i in s.get("order_items") or []]
        ship_items = [(i["id"], store.shipment_item_scope[i["id"]], i.get("item_qty")) for i in store.shipment_items]
        skus = inventory_skus
        if skus is None:
            skus = {p["sku"] for p in store.products} | {c["sku"] for p in store.products for c in p.get("Child_Products") or []}
        inventory = [(k[0], k[1], k[2], v["qty_on_hand"]) for k, v in store.inventory.items() if k[0] in skus]
        buffers = [(b["id"], b.get("qty")) for b in store.buffers]
        locations = [(loc["id"], _text(loc.get("store_id"))) for loc in store.locations]
    out = {
        "orders": orders, "order_items": items, "products": products, "product_variants": variants,
        "shipments": shipments, "shipment_order_items": shipped, "shipment_items": ship_items,
        "inventory": inventory, "buffers": buffers, "locations": locations,
    }
    return {name: sorted(rows, key=repr) for name, rows in out.items()}


def duckdb_tables(path: Path, tables: list[str] | None = None) -> dict[str, list[tuple]]:
    with duckdb.connect(str(path), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return {
            t: sorted(conn.execute(f"SELECT {cols} FROM {t}").fetchall(), key=repr)
            for t, cols in COMPARED.items()
            if tables is None or t in tables
        }


def parquet_tables(root: Path, tables: list[str] | None = None) -> dict[str, list[tuple]]:
    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return {
            t: sorted(conn.execute(f"SELECT {cols} FROM read_parquet('{root / t}/*.parquet')").fetchall(), key=repr)
            for t, cols in COMPARED.items()
            if tables is None or t in tables
        }


def assert_tables_equal(actual: dict, expected: dict, tables: list[str] | None = None) -> None:
    """Every table (or the given ones) holds exactly the expected rows: none missing, none extra,
    no key twice."""
    for table in tables if tables is not None else list(expected):
        rows = expected[table]
        got = actual[table]
        missing = set(rows) - set(got)
        extra = set(got) - set(rows)
        assert len(got) == len(rows) and not missing and not extra, (
            f"{table}: expected {len(rows)} rows, got {len(got)}; missing {sorted(missing, key=repr)[:3]}, "
            f"unexpected {sorted(extra, key=repr)[:3]}"
        )
