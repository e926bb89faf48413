"""A first load into a Parquet directory bound to an account, committed in parts as the run goes
(`destinations/parquet_parts.py`): the same tables as one commit; a key listed again in a later
part stored once, in its last version; parts whose keys lie apart link the stored files unread;
a crash between parts leaves whole rows and the old state; a part never waits for a commit slot."""

from __future__ import annotations

import duckdb
import pytest

from sqquid_etl import commit_parts
from sqquid_etl.definitions import load_definitions
from sqquid_etl.destinations import commit_slots, open_destination, parquet_carry, parquet_parts
from sqquid_etl.destinations.parquet import ParquetDestination, ParquetStreamWriter
from sqquid_etl.errors import StateError
from sqquid_etl.pipeline import extract
from sqquid_etl.records import page_to_tables
from sqquid_etl.runs import RunRecord
from sqquid_etl.state import StreamState
from tests.expected import COMPARED, assert_tables_equal, expected_tables
from tests.support import make_client

TABLES = ["orders", "order_items"]


@pytest.fixture
def every_page(monkeypatch):
    """A part after every page; returns the list of parts asked for (stream, rows staged)."""
    monkeypatch.setattr(commit_parts, "COMMIT_SECONDS", 0.0)
    monkeypatch.setattr(parquet_parts, "PART_ROWS", 0)
    parts: list = []
    real = ParquetStreamWriter.commit_part

    def counted(self, state, run, wait=True):
        parts.append((self.stream.name, self.stage.rows(self.stream.tables[0].name)))
        return real(self, state, run, wait)

    monkeypatch.setattr(ParquetStreamWriter, "commit_part", counted)
    return parts


def account_tables(root, account: str) -> dict[str, list[tuple]]:
    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return {t: sorted(conn.execute(f"SELECT {COMPARED[t]} FROM read_parquet('{root / t / f'account={account}'}/*.parquet')")
                          .fetchall(), key=repr) for t in TABLES}


def page(stream, *orders):
    return page_to_tables(stream, [{"id": i, "created_at": "2024-01-01T00:00:00Z", "total": total,
                                     "order_items": [{"id": i * 10, "sku": f"s{i}", "qty": 1}]} for i, total in orders])


def stored(root, table: str, account: str = "acme") -> list[tuple]:
    with duckdb.connect() as conn:
        columns = "id, total::VARCHAR, _sqquid_deleted_at" if table == "orders" else "id, order_id"
        return conn.execute(f"SELECT {columns} FROM read_parquet('{root / table / f'account={account}'}/*.parquet') "
                            "ORDER BY id").fetchall()


def test_a_first_load_of_an_account_committed_in_parts_equals_one_commit(make_sandbox, tmp_path, every_page):
    sandbox = make_sandbox(orders=3000, products=100)
    root = tmp_path / "lake"
    result = extract(["orders"], destination=open_destination(parquet=root, account="acme"), client=make_client(sandbox))
    assert result.ok, [(s.stream, s.message) for s in result.streams]
    assert len(every_page) >= 10  # 13 pages: a part after each but the last
    assert_tables_equal(account_tables(root, "acme"), expected_tables(sandbox.store), TABLES)
    orders = result.stream("orders")
    assert orders.count_check == "ok" and orders.count_received == len(sandbox.store.orders)
    assert orders.records_new == len(sandbox.store.orders) and orders.records_changed == 0
    with duckdb.connect() as conn:
        runs = conn.execute(f"SELECT status, records_new FROM read_parquet('{root}/_sqquid_runs/*/*.parquet')").fetchall()
    assert runs == [("ok", len(sandbox.store.orders))]
    sandbox.store.add_orders(300)  # a second run is no first load: one commit, merged by key
    parts = len(every_page)
    again = extract(["orders"], destination=open_destination(parquet=root, account="acme"), client=make_client(sandbox))
    assert again.ok and again.stream("orders").count_check == "ok"
    assert_tables_equal(account_tables(root, "acme"), expected_tables(sandbox.store), TABLES)
    assert len(every_page) == parts


def test_a_single_account_directory_commits_in_one_piece(tmp_path):
    destination = open_destination(parquet=tmp_path / "lake")
    try:
        assert not destination.begin(load_definitions()["orders"], replace=False).commits_in_parts
    finally:
        destination.close()


def test_a_key_listed_again_in_a_later_part_is_stored_once_in_its_last_version(tmp_path):
    stream = load_definitions()["orders"]
    root = tmp_path / "lake"
    destination = open_destination(parquet=root, account="acme")
    run = RunRecord(run_id="r1", stream="orders", started_at="2024-01-01T00:00:00+00:00")
    try:
        writer = destination.begin(stream, replace=False)
        assert writer.commits_in_parts
        writer.write(page(stream, (1, "1.00"), (2, "2.00")))
        assert writer.commit_part(StreamState(), run)
        writer.write(page(stream, (2, "2.50"), (3, "3.00")))  # order 2 again, changed
        assert writer.distinct_keys("orders") == 3
        writer.prove_gone("created_at", None, {})  # nothing stored before the run: nothing gone
        writer.commit(StreamState(cursors={"_": "2024-01-01T00:00:00Z"}), run)
    finally:
        destination.close()
    assert stored(root, "orders") == [(1, "1.0000", None), (2, "2.5000", None), (3, "3.0000", None)]
    assert stored(root, "order_items") == [(10, 1), (20, 2), (30, 3)]
    assert (run.records_new, run.records_changed) == (3, 1)  # order 2: new in the first part, changed in the second


def test_parts_whose_keys_lie_apart_link_the_stored_files_unread(tmp_path, monkeypatch):
    stream = load_definitions()["orders"]
    root = tmp_path / "lake"
    read: list = []
    real = parquet_carry.carry_over
    monkeypatch.setattr("sqquid_etl.destinations.parquet.carry_over", lambda *a: (read.append(a[1]), real(*a)))
    destination = open_destination(parquet=root, account="acme")
    run = RunRecord(run_id="r1", stream="orders", started_at="2024-01-01T00:00:00+00:00")
    try:
        writer = destination.begin(stream, replace=False)
        writer.write(page(stream, (1, "1.00"), (2, "2.00")))
        writer.commit_part(StreamState(), run)
        writer.write(page(stream, (5, "5.00"), (6, "6.00")))
        writer.commit_part(StreamState(), run)
        assert read == [] and (writer._parts.keys.low, writer._parts.keys.high) == (1, 6)
        writer.write(page(stream, (3, "3.00"), (4, "4.00")))  # within the range stored, none of them stored
        writer.commit_part(StreamState(), run)
        assert len(read) == 4  # the two parts' files of each table read
        writer.write(page(stream, (7, "7.00"), (6, "6.50")))  # order 6 again, changed
        assert writer.distinct_keys("orders") == 7
        writer.commit(StreamState(), run)
    finally:
        destination.close()
    assert [(i, t) for i, t, _ in stored(root, "orders")] == [
        (1, "1.0000"), (2, "2.0000"), (3, "3.0000"), (4, "4.0000"), (5, "5.0000"), (6, "6.5000"), (7, "7.0000")]
    assert [i for i, _ in stored(root, "order_items")] == [10, 20, 30, 40, 50, 60, 70]
    assert (run.records_new, run.records_changed) == (7, 1)


def test_a_part_asked_for_as_the_run_goes_waits_for_enough_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet_parts, "PART_ROWS", 3)
    stream = load_definitions()["orders"]
    destination = open_destination(parquet=tmp_path / "lake", account="acme")
    run = RunRecord(run_id="r1", stream="orders", started_at="2024-01-01T00:00:00+00:00")
    try:
        writer = destination.begin(stream, replace=False)
        writer.write(page(stream, (1, "1.00"), (2, "2.00")))
        assert not writer.commit_part(StreamState(), run, wait=False)  # 2 records staged of 3
        writer.write(page(stream, (3, "3.00")))
        assert writer.commit_part(StreamState(), run, wait=False)
        writer.write(page(stream, (4, "4.00")))
        assert writer.commit_part(StreamState(), run)  # asked for at once: whatever is staged
        assert writer._parts.count == 2
        writer.commit(StreamState(), run)
    finally:
        destination.close()
    assert [i for i, _ in stored(tmp_path / "lake", "order_items")] == [10, 20, 30, 40]


def test_a_part_does_not_wait_for_a_commit_slot(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet_parts, "PART_ROWS", 0)
    stream = load_definitions()["orders"]
    destination = open_destination(parquet=tmp_path / "lake", account="acme")
    run = RunRecord(run_id="r1", stream="orders", started_at="2024-01-01T00:00:00+00:00")
    taken = [commit_slots.take_slot("other") for _ in range(commit_slots.COMMITS_AT_ONCE)]
    try:
        writer = destination.begin(stream, replace=False)
        writer.write(page(stream, (1, "1.00")))
        assert not writer.commit_part(StreamState(), run, wait=False)  # every slot taken: the pages wait
        assert writer.stage.rows("orders") == 1 and writer._parts.count == 0
        commit_slots.release_slot("other")
        assert writer.commit_part(StreamState(), run, wait=False)
        taken.pop()
        writer.commit(StreamState(), run)
    finally:
        for _ in taken:
            commit_slots.release_slot("other")
        destination.close()
    assert stored(tmp_path / "lake", "order_items") == [(10, 1)]


def test_one_part_at_a_time_in_a_process(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet_parts, "PART_ROWS", 0)
    stream = load_definitions()["orders"]
    destination = open_destination(parquet=tmp_path / "lake", account="acme")
    run = RunRecord(run_id="r1", stream="orders", started_at="2024-01-01T00:00:00+00:00")
    assert commit_slots.take_part_slot("other")  # another account's part under way
    try:
        writer = destination.begin(stream, replace=False)
        writer.write(page(stream, (1, "1.00")))
        assert not writer.commit_part(StreamState(), run, wait=False)  # a commit slot is free, the part's is not
        commit_slots.release_part_slot("other")
        assert writer.commit_part(StreamState(), run, wait=False)
        assert commit_slots.take_part_slot("other", wait=False)  # both given back
        commit_slots.release_part_slot("other")
        writer.commit(StreamState(), run)
    finally:
        destination.close()
    assert stored(tmp_path / "lake", "order_items") == [(10, 1)]


def test_a_crash_between_parts_leaves_whole_rows_and_the_old_state_then_a_rerun_is_exact(make_sandbox, tmp_path,
                                                                                         every_page, monkeypatch):
    sandbox = make_sandbox(orders=2000, products=100)
    root = tmp_path / "lake"
    real = ParquetDestination.record_run

    def crash_in_third_part(self, run):
        if run.stream == "orders" and run.status == "running" and len(every_page) == 3:
            raise StateError("simulated crash after the third part's tables were switched in")
        return real(self, run)

    monkeypatch.setattr(ParquetDestination, "record_run", crash_in_third_part)
    result = extract(["orders"], destination=open_destination(parquet=root, account="acme"), client=make_client(sandbox))
    assert result.stream("orders").status == "failed"
    with duckdb.connect() as conn:
        rows = conn.execute(f"SELECT count(*), count(DISTINCT id) FROM read_parquet('{root}/orders/account=acme/*.parquet')").fetchone()
        orphans = conn.execute(f"SELECT count(*) FROM read_parquet('{root}/order_items/account=acme/*.parquet') "
                               f"WHERE order_id NOT IN (SELECT id FROM read_parquet('{root}/orders/account=acme/*.parquet'))").fetchone()[0]
    assert rows == (750, 750) and orphans == 0  # three parts of a page each stored, whole
    monkeypatch.setattr(ParquetDestination, "record_run", real)
    destination = open_destination(parquet=root, account="acme")
    old = destination.load_state("orders")
    assert old is None or old.cursors == {}  # the old state: the cursor never moved
    again = extract(["orders"], destination=destination, client=make_client(sandbox))
    assert again.ok and again.stream("orders").count_check == "ok"
    assert_tables_equal(account_tables(root, "acme"), expected_tables(sandbox.store), TABLES)

