"""A first load committed in parts as the run goes (`commit_parts.py`): the same tables as one
commit; a crash between parts leaves whole rows and the old state; a key listed again in a
later part is stored once, in its last version."""

from __future__ import annotations

import duckdb
import pytest

from sqquid_etl import commit_parts, extract
from sqquid_etl.definitions import load_definitions
from sqquid_etl.destinations import open_destination
from sqquid_etl.destinations.duckdb import DuckDBDestination
from sqquid_etl.destinations.duckdb_writer import DuckDBStreamWriter
from sqquid_etl.errors import StateError
from sqquid_etl.records import page_to_tables
from sqquid_etl.runs import RunRecord
from sqquid_etl.state import StreamState
from tests.expected import assert_tables_equal, duckdb_tables, expected_tables
from tests.support import make_client


@pytest.fixture
def every_page(monkeypatch):
    """A part after every page; returns the list of parts committed (stream, rows staged)."""
    monkeypatch.setattr(commit_parts, "COMMIT_SECONDS", 0.0)
    parts: list = []
    real = DuckDBStreamWriter.commit_part

    def counted(self, state, run, wait=True):
        parts.append((self.stream.name, self.stage.rows(self.stream.tables[0].name)))
        return real(self, state, run, wait)

    monkeypatch.setattr(DuckDBStreamWriter, "commit_part", counted)
    return parts


def test_a_first_load_committed_page_by_page_equals_one_commit(make_sandbox, tmp_path, every_page):
    sandbox = make_sandbox(orders=3000, products=1500)
    db = tmp_path / "s.duckdb"
    result = extract(duckdb=db, client=make_client(sandbox))
    assert result.ok, [(s.stream, s.message) for s in result.streams]
    assert len([p for p in every_page if p[0] == "orders"]) >= 10  # 13 pages: a part after each but the last
    assert_tables_equal(duckdb_tables(db), expected_tables(sandbox.store))
    orders = result.stream("orders")
    assert orders.count_check == "ok" and orders.count_received == len(sandbox.store.orders)
    assert orders.records_new == len(sandbox.store.orders) and orders.records_changed == 0
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("SELECT status, records_new FROM _sqquid_runs WHERE stream = 'orders'").fetchall() == [
            ("ok", len(sandbox.store.orders))]
    sandbox.store.add_orders(300)  # a second run is no first load: one commit, merged by key
    parts = len(every_page)
    assert extract(duckdb=db, client=make_client(sandbox)).ok
    assert_tables_equal(duckdb_tables(db), expected_tables(sandbox.store))
    assert len(every_page) == parts


def test_a_crash_between_parts_leaves_whole_rows_and_the_old_state_then_a_rerun_is_exact(make_sandbox, tmp_path,
                                                                                         every_page, monkeypatch):
    sandbox = make_sandbox(orders=2000, products=100)
    db = tmp_path / "s.duckdb"
    real = DuckDBDestination.write_run

    def crash_in_third_part(self, run):
        if run.stream == "orders" and run.status == "running" and len(every_page) == 3:
            raise StateError("simulated crash inside the third part's transaction")
        return real(self, run)

    monkeypatch.setattr(DuckDBDestination, "write_run", crash_in_third_part)
    result = extract(["orders"], duckdb=db, client=make_client(sandbox))
    assert result.stream("orders").status == "failed"
    with duckdb.connect(str(db), read_only=True) as conn:
        # two parts of one page each were committed; the third rolled back whole
        rows = conn.execute("SELECT count(*), count(DISTINCT id) FROM orders").fetchone()
        items = conn.execute("SELECT count(*) FROM order_items i JOIN orders o ON i.order_id = o.id").fetchone()[0]
        orphans = conn.execute("SELECT count(*) FROM order_items WHERE order_id NOT IN (SELECT id FROM orders)").fetchone()[0]
        state = conn.execute("SELECT state FROM _sqquid_state WHERE stream = 'orders'").fetchone()[0]
        run = conn.execute("SELECT status FROM _sqquid_runs WHERE stream = 'orders'").fetchall()
    assert rows == (500, 500) and items > 0 and orphans == 0
    assert StreamState.from_json(state, "test").cursors == {}  # the old state: the cursor never moved
    assert run == [("failed",)]
    monkeypatch.setattr(DuckDBDestination, "write_run", real)
    again = extract(["orders"], duckdb=db, client=make_client(sandbox))
    assert again.ok and again.stream("orders").count_check == "ok"
    assert_tables_equal(duckdb_tables(db, ["orders", "order_items"]), expected_tables(sandbox.store), ["orders", "order_items"])


@pytest.mark.parametrize("account", [None, "acme"])
def test_a_key_listed_again_in_a_later_part_is_stored_once_in_its_last_version(tmp_path, account):
    stream = load_definitions()["orders"]
    destination = open_destination(tmp_path / "s.duckdb", account=account)

    def order(id_: int, total: str) -> dict:
        return {"id": id_, "created_at": "2024-01-01T00:00:00Z", "total": total,
                "order_items": [{"id": id_ * 10, "sku": f"s{id_}", "qty": 1}]}

    run = RunRecord(run_id="r1", stream="orders", started_at="2024-01-01T00:00:00+00:00")
    try:
        writer = destination.begin(stream, replace=False)
        assert writer.commits_in_parts
        writer.write(page_to_tables(stream, [order(1, "1.00"), order(2, "2.00")]))
        writer.commit_part(StreamState(), run)
        writer.write(page_to_tables(stream, [order(2, "2.50"), order(3, "3.00")]))  # order 2 again, changed
        assert writer.distinct_keys(stream.tables[0].name) == 3
        writer.prove_gone("created_at", None, {})  # nothing stored before the run: nothing gone
        writer.commit(StreamState(cursors={"_": "2024-01-01T00:00:00Z"}), run)
        orders = destination.conn.execute("SELECT id, total::VARCHAR, _sqquid_deleted_at FROM orders ORDER BY id").fetchall()
        items = destination.conn.execute("SELECT id, order_id FROM order_items ORDER BY id").fetchall()
    finally:
        destination.close()
    assert orders == [(1, "1.0000", None), (2, "2.5000", None), (3, "3.0000", None)]
    assert items == [(10, 1), (20, 2), (30, 3)]
    assert (run.records_new, run.records_changed) == (3, 1)  # order 2: new in the first part, changed in the second


def test_staged_keys_are_known_unique_from_one_column_only():
    import array

    import pyarrow as pa

    from sqquid_etl.destinations.staging import keys_unique

    def batch(ids, accounts):
        values = pa.Array.from_buffers(pa.int64(), len(ids), [None, pa.py_buffer(array.array("q", ids))])
        return pa.Table.from_arrays([pa.array(accounts, pa.string()), values], names=["account", "id"])

    assert keys_unique(batch([1, 2, 3], ["a", "a", "a"]), ["account", "id"])  # the account stamped: left out
    assert not keys_unique(batch([1, 2, 2], ["a", "a", "a"]), ["account", "id"])
    assert not keys_unique(batch([1, 1, 2], ["a", "b", "a"]), ["account", "id"])  # two columns vary: DuckDB tells


def test_a_commit_run_again_after_running_out_of_memory_counts_its_records_once(make_sandbox, tmp_path, monkeypatch):
    """The merge's transaction rolled back by DuckDB's memory limit and run again with a larger one:
    the run record says each record once (the counts were added to the run on every attempt)."""
    sandbox = make_sandbox(orders=120, products=10)
    db = tmp_path / "w.duckdb"
    real, failed = DuckDBDestination.write_run, []

    def out_of_memory_once(self, run):
        if run.stream == "orders" and not failed:
            failed.append(run.records_new)
            raise duckdb.OutOfMemoryException("out of memory (injected, after the counts)")
        real(self, run)

    monkeypatch.setattr(DuckDBDestination, "write_run", out_of_memory_once)
    result = extract(["orders"], duckdb=db, client=make_client(sandbox))
    assert result.ok and failed == [len(sandbox.store.orders)]
    with duckdb.connect(str(db), read_only=True) as conn:
        new = conn.execute("SELECT records_new FROM _sqquid_runs WHERE stream = 'orders'").fetchall()
    assert new == [(len(sandbox.store.orders),)]


@pytest.mark.parametrize("flush_rows", [1, 10_000])  # the repeat in another staged batch, or in the same one
def test_a_key_listed_twice_within_a_first_loads_one_commit_is_stored_once_and_nothing_is_marked_gone(tmp_path, flush_rows):
    """A first load in one commit (no part): a record on two pages is stored once, its last version,
    counted once (new); the gone ranges it proved mark nothing (nothing was stored before it)."""
    from sqquid_etl.settings import Tuning

    stream = load_definitions()["orders"]
    destination = open_destination(tmp_path / "s.duckdb", tuning=Tuning(flush_rows=flush_rows))

    def order(id_: int, total: str) -> dict:
        return {"id": id_, "created_at": f"2024-01-0{id_}T00:00:00Z", "total": total,
                "order_items": [{"id": id_ * 10, "sku": f"s{id_}", "qty": 1}]}

    run = RunRecord(run_id="r1", stream="orders", started_at="2024-01-01T00:00:00+00:00")
    try:
        writer = destination.begin(stream, replace=False)
        writer.write(page_to_tables(stream, [order(1, "1.00"), order(2, "2.00")]))
        writer.write(page_to_tables(stream, [order(2, "2.50"), order(3, "3.00")]))  # order 2 again, changed
        assert writer.distinct_keys("orders") == 3
        writer.prove_gone("created_at", None, {})
        writer.commit(StreamState(cursors={"_": "2024-01-03T00:00:00Z"}), run)
        orders = destination.conn.execute("SELECT id, total::VARCHAR, _sqquid_deleted_at FROM orders ORDER BY id").fetchall()
        items = destination.conn.execute("SELECT id, order_id FROM order_items ORDER BY id").fetchall()
    finally:
        destination.close()
    assert orders == [(1, "1.0000", None), (2, "2.5000", None), (3, "3.0000", None)]
    assert items == [(10, 1), (20, 2), (30, 3)]
    assert (run.records_new, run.records_changed, run.records_deleted) == (3, 0, 0)


def test_a_first_load_with_each_key_once_is_counted_from_the_staged_rows(tmp_path):
    """Keys staged in one batch and known unique then: the count check and the run's new records
    come from the rows staged (no DuckDB query), and agree with what is stored."""
    stream = load_definitions()["orders"]
    destination = open_destination(tmp_path / "s.duckdb")
    run = RunRecord(run_id="r1", stream="orders", started_at="2024-01-01T00:00:00+00:00")
    try:
        writer = destination.begin(stream, replace=False)
        writer.write(page_to_tables(stream, [{"id": i, "created_at": "2024-01-01T00:00:00Z"} for i in range(1, 251)]))
        assert writer.distinct_keys("orders") == 250
        assert writer.stage.unique("orders")
        writer.commit(StreamState(), run)
        stored = destination.conn.execute("SELECT count(*), count(DISTINCT id) FROM orders").fetchone()
    finally:
        destination.close()
    assert stored == (250, 250) and run.records_new == 250


def test_undocumented_fields_of_a_first_load_in_parts_are_stored_as_by_one_commit(make_sandbox, tmp_path, monkeypatch):
    """Drifting pages (undocumented fields appearing page by page) committed a part a page: the
    same columns, types and values as the load committed at once."""
    sandbox = make_sandbox(orders=1200, products=20, drift=True)
    whole, parts = tmp_path / "whole.duckdb", tmp_path / "parts.duckdb"
    assert extract(["orders"], duckdb=whole, client=make_client(sandbox)).ok
    monkeypatch.setattr(commit_parts, "COMMIT_SECONDS", 0.0)
    committed = []
    real = DuckDBStreamWriter.commit_part
    monkeypatch.setattr(DuckDBStreamWriter, "commit_part",
                        lambda self, state, run, wait=True: committed.append(1) or real(self, state, run, wait))
    assert extract(["orders"], duckdb=parts, client=make_client(sandbox)).ok
    assert len(committed) >= 3
    for table in ("orders", "order_items"):
        read = []
        for path in (whole, parts):
            with duckdb.connect(str(path), read_only=True) as conn:
                columns = conn.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
                                       "AND column_name NOT LIKE '\\_sqquid\\_%' ESCAPE '\\' ORDER BY column_name",
                                       [table]).fetchall()
                names = ", ".join(f'"{c}"' for c, _ in columns)
                read.append((columns, conn.execute(f"SELECT {names} FROM {table} ORDER BY id").fetchall()))
        assert read[0] == read[1], table
        assert len(read[0][0]) > len(load_definitions()["orders"].tables[0 if table == "orders" else 1].columns)


@pytest.mark.parametrize("account", [None, "acme"])
def test_parts_whose_keys_lie_apart_are_not_probed_against_the_stored_table(tmp_path, account):
    """A first load's parts in cursor order hold keys apart from each other's: a part is not
    probed against the stored table (every account's rows), and still stored by key; a part
    whose keys fall within those stored is probed: a key new there stays new, one stored before
    is merged (its last version)."""
    stream = load_definitions()["orders"]
    destination = open_destination(tmp_path / "s.duckdb", account=account)
    probes: list[str] = []

    class Recording:
        def __init__(self, conn):
            self._conn = conn

        def execute(self, sql, *args):
            if 'FROM "orders" t WHERE' in sql:
                probes.append(sql)
            return self._conn.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self._conn, name)

    def page(*orders):
        return page_to_tables(stream, [{"id": i, "created_at": "2024-01-01T00:00:00Z", "total": total,
                                         "order_items": [{"id": i * 10, "sku": "s", "qty": 1}]} for i, total in orders])

    run = RunRecord(run_id="r1", stream="orders", started_at="2024-01-01T00:00:00+00:00")
    try:
        writer = destination.begin(stream, replace=False)
        writer.conn = Recording(writer.conn)
        writer.write(page((1, "1.00"), (2, "2.00")))
        writer.commit_part(StreamState(), run)
        writer.write(page((5, "5.00"), (6, "6.00")))
        writer.commit_part(StreamState(), run)
        assert probes == [] and (writer._part_keys.low, writer._part_keys.high) == (1, 6)
        writer.write(page((3, "3.00"), (4, "4.00")))  # within the range stored, none of them stored
        writer.commit_part(StreamState(), run)
        assert len(probes) == 1
        writer.write(page((7, "7.00"), (6, "6.50")))  # order 6 again, changed
        assert writer.distinct_keys("orders") == 7
        writer.commit(StreamState(), run)
        orders = destination.conn.execute("SELECT id, total::VARCHAR FROM orders ORDER BY id").fetchall()
        items = destination.conn.execute("SELECT count(*), count(DISTINCT id) FROM order_items").fetchone()
    finally:
        destination.close()
    assert orders == [(1, "1.0000"), (2, "2.0000"), (3, "3.0000"), (4, "4.0000"), (5, "5.0000"), (6, "6.5000"),
                      (7, "7.0000")]
    assert items == (7, 7)
    assert (run.records_new, run.records_changed) == (7, 1)
