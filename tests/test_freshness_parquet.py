"""Freshness in the Parquet destination's other layouts: a multi-account directory (each account's
partition `account=NAME/` of the tables and of their history, marks and history its own) and
object storage (the history's files in the same manifest as the snapshot's); and a directory
written before these columns existed, read and rewritten by this version."""

from __future__ import annotations

import duckdb
import pyarrow.parquet as pq

from sqquid_etl.pipeline import extract
from sqquid_etl.sql_views import attach_parquet
from tests.expected import assert_tables_equal, expected_tables
from tests.s3_server import bucket, s3_endpoint  # noqa: F401 (fixtures)
from tests.support import make_client
from tests.test_parquet_store import _manifest, assert_no_orphans


def _query(lake, sql: str, params=()) -> list[tuple]:
    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        attach_parquet(conn, str(lake))
        return conn.execute(sql, list(params)).fetchall()


def _sold_out(sandbox) -> tuple:
    """A sku's stock at one location set to 0 (every bin); returns (sku, location)."""
    key = next(k for k, v in sandbox.store.inventory.items() if v["qty_on_hand"] > 0)
    for other in [k for k in sandbox.store.inventory if k[:2] == key[:2]]:
        sandbox.store.patch_inventory(other, 0)
    return key[:2]


def test_two_accounts_keep_their_own_marks_and_history(make_sandbox, tmp_path):
    lake = tmp_path / "lake"
    sandboxes = {name: make_sandbox(seed=i, orders=200, products=30) for i, name in enumerate(("acme", "globex"), 1)}
    streams = ["orders", "products", "inventory"]
    for name, sandbox in sandboxes.items():
        assert extract(streams, parquet=lake, account=name, client=make_client(sandbox)).ok
    acme = sandboxes["acme"]
    gone = acme.store.apply_changes({"delete_orders": 3}, seed=5)["delete_orders"]
    out = _sold_out(acme)
    for name, sandbox in sandboxes.items():
        result = extract(streams, parquet=lake, account=name, client=make_client(sandbox))
        assert result.ok and result.stream("orders").records_deleted == (3 if name == "acme" else 0)
    assert (lake / "inventory_history" / "account=acme").is_symlink()
    marked = _query(lake, "SELECT account, id FROM orders WHERE _sqquid_deleted_at IS NOT NULL ORDER BY id")
    assert marked == [("acme", i) for i in sorted(gone)]
    live = _query(lake, "SELECT id, external_id, created_at FROM orders WHERE account = 'acme' AND _sqquid_deleted_at IS NULL")
    assert sorted(live, key=repr) == expected_tables(acme.store)["orders"]
    assert _query(lake, "SELECT account, sku, location_external_id FROM stock_outs") == [("acme", *out)]
    closed = _query(lake, "SELECT account, count(*) FROM inventory_history WHERE valid_to IS NOT NULL GROUP BY ALL")
    assert [a for a, n in closed] == ["acme"]  # globex's stock did not change
    for name in sandboxes:  # the current versions are each account's snapshot
        current = _query(lake, "SELECT sku, location_external_id, bin, qty_on_hand FROM inventory_history "
                               "WHERE account = ? AND valid_to IS NULL ORDER BY ALL", [name])
        assert current == _query(lake, "SELECT sku, location_external_id, bin, qty_on_hand FROM inventory "
                                       "WHERE account = ? ORDER BY ALL", [name])


def test_on_object_storage_the_history_and_marks_are_in_the_manifest(make_sandbox, bucket):
    lake = f"s3://{bucket}/lake"
    sandbox = make_sandbox(orders=200, products=30)
    streams = ["orders", "products", "inventory"]
    assert extract(streams, parquet=lake, client=make_client(sandbox)).ok
    gone = sandbox.store.apply_changes({"delete_orders": 2, "change_stock": 4}, seed=6)["delete_orders"]
    result = extract(streams, parquet=lake, client=make_client(sandbox))
    assert result.ok and result.stream("orders").records_deleted == 2
    tables = _manifest(bucket)["tables"]
    assert "inventory_history" in tables and tables["inventory_history"]
    assert_no_orphans(bucket)
    from sqquid_etl.destinations import open_existing

    destination = open_existing(parquet=lake)
    try:  # the live rows only are counted
        assert destination.count_since("orders", "created_at", None, {}) == len(sandbox.store.orders)
        assert not set(gone) & set(destination.distinct_values("orders", "id"))
    finally:
        destination.close()


def test_files_of_an_older_version_get_the_columns_when_rewritten(make_sandbox, tmp_path):
    """A directory whose files lack `_sqquid_hash` and `_sqquid_deleted_at` (written before them):
    every row counts as a stored record (changed or not by its content), and the next commit gives
    every file of the table the two columns."""
    sandbox = make_sandbox(orders=200, products=20)
    lake = tmp_path / "lake"
    assert extract(["orders"], parquet=lake, client=make_client(sandbox)).ok
    for table in ("orders", "order_items"):  # as an older version wrote them
        for path in (lake / table).glob("*.parquet"):
            data = pq.read_table(path).drop_columns(["_sqquid_hash", "_sqquid_deleted_at"])
            path.unlink()  # a hard link of the generation's file: replaced, not written through
            pq.write_table(data, path)
    edited = sandbox.store.apply_changes({"edit_orders": 2, "delete_orders": 2}, seed=7)
    assert edited["edit_orders"]
    result = extract(["orders"], parquet=lake, client=make_client(sandbox))
    orders = result.stream("orders")
    assert (orders.records_new, orders.records_deleted) == (0, 2)
    assert orders.records_changed == len(set(edited["edit_orders"]) - set(edited["delete_orders"]))
    for path in (lake / "orders").glob("*.parquet"):
        assert pq.read_schema(path).names[-2:] == ["_sqquid_hash", "_sqquid_deleted_at"]
    live = _query(lake, "SELECT id, external_id, created_at FROM orders WHERE _sqquid_deleted_at IS NULL")
    assert_tables_equal({"orders": sorted(live, key=repr)}, expected_tables(sandbox.store), ["orders"])


def test_an_upgrade_to_many_accounts_keeps_the_marks_and_the_history(make_sandbox, tmp_path):
    from sqquid_etl.destinations import upgrade_destination

    lake = tmp_path / "lake"
    sandbox = make_sandbox(orders=200, products=30)
    streams = ["orders", "products", "inventory"]
    assert extract(streams, parquet=lake, client=make_client(sandbox)).ok
    gone = sandbox.store.apply_changes({"delete_orders": 2}, seed=5)["delete_orders"]
    assert extract(streams, parquet=lake, client=make_client(sandbox)).ok
    assert "inventory_history" in upgrade_destination(parquet=lake, account="acme")
    out = _sold_out(sandbox)
    result = extract(streams, parquet=lake, account="acme", client=make_client(sandbox))
    assert result.ok and result.stream("orders").records_changed == 0  # the hashes do not include the account
    assert _query(lake, "SELECT account, sku, location_external_id FROM stock_outs") == [("acme", *out)]
    marked = _query(lake, "SELECT account, id FROM orders WHERE _sqquid_deleted_at IS NOT NULL ORDER BY id")
    assert marked == [("acme", i) for i in sorted(gone)]
