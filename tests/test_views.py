"""The DuckDB helper views: available_to_sell (the buffer rule) and order_lines."""

from __future__ import annotations

import duckdb

from sqquid_etl import extract
from sqquid_etl.sql_views import attach_parquet, create_views
from tests.support import make_client


def _ats(conn):
    rows = conn.execute(
        "SELECT sku, location_external_id, channel_id, qty_on_hand, buffer_qty, buffer_rule, available_to_sell "
        "FROM available_to_sell ORDER BY ALL"
    ).fetchall()
    return {(r[0], r[1], r[2]): r[3:] for r in rows}


def test_available_to_sell_applies_the_most_granular_buffer():
    conn = duckdb.connect()
    conn.execute("CREATE TABLE inventory (sku VARCHAR, location_external_id VARCHAR, bin VARCHAR, qty_on_hand INTEGER)")
    conn.execute("CREATE TABLE buffers (id INTEGER, channel_id INTEGER, location_external_id VARCHAR, sku VARCHAR, qty INTEGER)")
    conn.execute("""INSERT INTO inventory VALUES
        ('A', 'S1', 'default', 10), ('A', 'S1', 'back', 5),  -- bins add up: 15
        ('A', 'S2', 'default', 7),
        ('B', 'S1', 'default', 3),
        ('C', 'S2', 'default', 20)""")
    conn.execute("""INSERT INTO buffers VALUES
        (1, 1, NULL, NULL, 2),     -- channel 1 everywhere
        (2, 2, NULL, NULL, 1),     -- channel 2 everywhere
        (3, 1, 'S2', NULL, 4),     -- location+channel
        (4, 1, NULL, 'A', 6),      -- sku+channel
        (5, 1, 'S1', 'A', 1),      -- sku+location+channel: beats the sku+channel one
        (6, NULL, NULL, 'B', 9),   -- sku alone (any channel): more than on hand -> 0, never negative
        (7, 2, 'S2', NULL, 3), (8, 2, 'S2', NULL, 5)  -- two at one level: the larger applies""")
    assert create_views(conn) == ["available_to_sell"]  # no orders table: no order_lines view
    ats = _ats(conn)
    assert ats[("A", "S1", 1)] == (15, 1, "sku+location+channel", 14)
    assert ats[("A", "S2", 1)] == (7, 6, "sku+channel", 1)  # sku+channel beats location+channel
    assert ats[("C", "S2", 1)] == (20, 4, "location+channel", 16)
    assert ats[("A", "S1", 2)] == (15, 1, "channel", 14)
    assert ats[("B", "S1", 1)] == (3, 9, "sku", 0)
    assert ats[("C", "S2", 2)] == (20, 5, "location+channel", 15)
    assert len(ats) == 4 * 2  # every (sku, location) x every channel named by a buffer


def test_views_after_a_duckdb_extract_and_over_parquet(make_sandbox, tmp_path):
    sandbox = make_sandbox(orders=60, products=25)
    client = make_client(sandbox)
    db = tmp_path / "s.duckdb"
    assert extract(duckdb=db, client=client).ok
    items = sum(len(o.get("order_items") or []) for o in sandbox.store.orders)
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT order_id) FROM order_lines").fetchone() == (
            items, sum(1 for o in sandbox.store.orders if o.get("order_items")))
        on_hand = conn.execute("SELECT sum(qty_on_hand) FROM inventory").fetchone()[0]
        channels = conn.execute("SELECT count(DISTINCT channel_id) FROM buffers").fetchone()[0]
        ats_on_hand, negative = conn.execute(
            "SELECT sum(qty_on_hand), count(*) FILTER (WHERE available_to_sell < 0 OR available_to_sell > qty_on_hand) "
            "FROM available_to_sell").fetchone()
    assert ats_on_hand == on_hand * channels and negative == 0
    # a full refresh replaces the tables under the views; they keep working
    assert extract(["orders"], duckdb=db, client=client, full_refresh=True).ok
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM order_lines").fetchone()[0] == items
    lake = tmp_path / "lake"
    assert extract(["orders"], parquet=lake, client=client).ok
    with duckdb.connect() as conn:
        assert attach_parquet(conn, str(lake)) == ["order_lines"]
        assert conn.execute("SELECT count(*) FROM order_lines").fetchone()[0] == items


def test_views_are_made_again_only_when_their_tables_changed():
    """A run that changed no table leaves the views as they are (their comment says what they were
    made from); a table that gained a column (marks of records gone) gets its views made again."""
    conn = duckdb.connect()
    conn.execute("CREATE TABLE orders (id INTEGER, external_id VARCHAR, created_at TIMESTAMPTZ, source VARCHAR, "
                 "customer_id INTEGER, customer_email VARCHAR)")
    conn.execute("CREATE TABLE order_items (order_id INTEGER, id INTEGER, sku VARCHAR, qty INTEGER, price DECIMAL(12, 2), "
                 "discount DECIMAL(12, 2), tax DECIMAL(12, 2), total DECIMAL(12, 2), store_id INTEGER)")
    conn.execute("INSERT INTO orders VALUES (1, 'E1', '2024-01-01', 'web', 7, 'a@b.c')")
    conn.execute("INSERT INTO order_items VALUES (1, 10, 'S', 1, 1, 0, 0, 1, 3)")
    assert create_views(conn) == ["order_lines"]
    mark = conn.execute("SELECT comment FROM duckdb_views() WHERE view_name = 'order_lines'").fetchone()[0]
    assert mark.startswith("sqquid-etl view ")
    conn.execute("CREATE OR REPLACE VIEW order_lines AS SELECT 'left as it was' AS what")  # stands for "not made again"
    conn.execute(f"COMMENT ON VIEW order_lines IS '{mark}'")
    assert create_views(conn) == ["order_lines"]
    assert conn.execute("SELECT what FROM order_lines").fetchall() == [("left as it was",)]
    for table in ("orders", "order_items"):
        conn.execute(f"ALTER TABLE {table} ADD COLUMN _sqquid_deleted_at TIMESTAMPTZ")
    conn.execute("UPDATE order_items SET _sqquid_deleted_at = now()")
    assert create_views(conn) == ["order_lines"]
    assert conn.execute("SELECT count(*) FROM order_lines").fetchone()[0] == 0  # made again: marked items left out
    assert conn.execute("SELECT comment FROM duckdb_views() WHERE view_name = 'order_lines'").fetchone()[0] != mark
