"""The destination protocol, held by every registered kind: what callers may rely on, through
the factory functions and the protocol only (a new kind added to KINDS runs these too)."""

from __future__ import annotations

import json

import duckdb
import pytest

from sqquid_etl.definitions import load_definitions
from sqquid_etl.destinations import KINDS, check_destination, open_destination, open_existing
from sqquid_etl.errors import ConfigError, StateError
from sqquid_etl.records import page_to_tables
from sqquid_etl.runs import RunRecord
from sqquid_etl.settings import Tuning
from sqquid_etl.state import StreamState

ORDERS = load_definitions()["orders"]


def _order(id_, created, items=(), total="1.00"):
    return {"id": id_, "created_at": created, "total": total,
            "order_items": [{"id": i, "sku": f"S{i}", "qty": 1} for i in items]}


def _location(kind, tmp_path):
    return tmp_path / {"duckdb": "s.duckdb", "iceberg": "warehouse"}.get(kind, "lake")


@pytest.fixture(params=sorted(KINDS))
def opened(request, tmp_path):
    destination = open_destination(**{request.param: _location(request.param, tmp_path)}, tuning=Tuning())
    yield request.param, destination
    destination.close()


def _commit(destination, pages, state, run_id="r1", replace=False):
    writer = destination.begin(ORDERS, replace=replace)
    for page in pages:
        writer.write(page_to_tables(ORDERS, page))
    keys = writer.distinct_keys("orders")
    writer.commit(state, RunRecord(run_id=run_id, stream="orders", started_at="2024-01-01T00:00:00+00:00", status="ok"))
    return keys


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_long_stream_is_staged_in_several_files_and_committed_whole(tmp_path, kind, monkeypatch):
    """A staged file holds a few batches (`staging.FILE_BATCHES`), then the next begins: an open
    Parquet writer keeps each row group's metadata until it is closed. Every file is read back."""
    from sqquid_etl.destinations import staging

    monkeypatch.setattr(staging, "FILE_BATCHES", 2)
    destination = open_destination(**{kind: _location(kind, tmp_path)}, tuning=Tuning(flush_rows=1))
    try:
        writer = destination.begin(ORDERS, replace=False)
        for n in range(1, 8):
            writer.write(page_to_tables(ORDERS, [_order(n, f"2024-01-0{n}T00:00:00Z", items=(10 * n,))]))
        writer.write(page_to_tables(ORDERS, [_order(3, "2024-01-03T00:00:00Z", items=(30,), total="9.00")]))
        if hasattr(writer, "stage"):
            writer.stage.finish()
            assert len(writer.stage.files("orders")) == 4
        assert writer.distinct_keys("orders") == 7
        writer.commit(StreamState(), RunRecord(run_id="r1", stream="orders", started_at="2024-01-01T00:00:00+00:00"))
        assert destination.count_since("orders", "created_at", None, {}) == 7
        assert destination.count_since("orders", "created_at", None, {"id": "3", "total": "9.00"}) == 1
        assert destination.count_since("order_items", "sku", None, {}) == 7
    finally:
        destination.close()


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("flush_rows", [1, 10_000])
@pytest.mark.parametrize("count_keys", [True, False])
def test_the_last_version_of_a_key_wins_across_pages_and_batches(tmp_path, kind, flush_rows, count_keys):
    """A record that changed while the stream was paged comes twice: its last arrival is stored,
    whether its pages were staged in one batch or in several, and whether or not the keys were
    counted first (the count lets the merge skip looking for repeated keys when there are none)."""
    destination = open_destination(**{kind: _location(kind, tmp_path)}, tuning=Tuning(flush_rows=flush_rows))
    try:
        pages = [[_order(1, "2024-01-01T00:00:00Z", items=(10,), total="1.00"), _order(2, "2024-01-02T00:00:00Z")],
                 [_order(3, "2024-01-03T00:00:00Z", items=(30,))],
                 [_order(1, "2024-01-01T00:00:00Z", items=(10,), total="2.00")]]
        writer = destination.begin(ORDERS, replace=False)
        for page in pages:
            writer.write(page_to_tables(ORDERS, page))
        if count_keys:
            assert writer.distinct_keys("orders") == 3
        writer.commit(StreamState(), RunRecord(run_id="r1", stream="orders", started_at="2024-01-01T00:00:00+00:00"))
        assert destination.count_since("orders", "created_at", None, {}) == 3
        assert destination.count_since("orders", "created_at", None, {"id": "1", "total": "2.00"}) == 1
        assert destination.count_since("order_items", "sku", None, {}) == 2
        writer = destination.begin(ORDERS, replace=False)  # nothing new: state and run row only
        assert writer.distinct_keys("orders") == 0
        writer.commit(StreamState(rows_last_run=0), RunRecord(run_id="r2", stream="orders", started_at="2024-01-01T00:00:00+00:00"))
        assert destination.count_since("orders", "created_at", None, {}) == 3
        assert destination.load_states()["orders"] == StreamState(rows_last_run=0)
    finally:
        destination.close()


def test_an_empty_destination(opened, tmp_path):
    kind, destination = opened
    assert destination.location == str(_location(kind, tmp_path))
    assert destination.load_states() == {} and destination.state_streams() == []
    assert destination.distinct_values("orders", "id") is None
    assert destination.count_since("orders", "created_at", None, {}) == 0
    assert destination.counts_since("orders", "created_at", [None, None], {}) == [0, 0]
    assert destination.cursor_bounds("orders", "created_at", {}) == (None, None)


def test_counts_since_many_times_in_one_read_agree_with_count_since(opened):
    """The count scan reads its points' stored counts at once: the same as one count a point."""
    from datetime import datetime, timezone

    _, destination = opened
    _commit(destination, [[_order(1, "2024-01-01T00:00:00Z"), _order(2, "2024-01-02T00:00:00Z"),
                           _order(3, "2024-01-03T00:00:00Z", total="2.00")]], StreamState())
    times = [None, *(datetime(2024, 1, day, tzinfo=timezone.utc) for day in (1, 2, 3, 4))]
    for equals in ({}, {"total": "2.00"}):
        expected = [destination.count_since("orders", "created_at", t, equals) for t in times]
        assert destination.counts_since("orders", "created_at", times, equals) == expected
        assert expected == ([3, 3, 2, 1, 0] if not equals else [1, 1, 1, 1, 0])


def test_commit_merges_by_key_with_state_and_abort_changes_nothing(opened):
    kind, destination = opened
    state = StreamState(cursors={"_": "2024-01-02T00:00:00.000000Z"}, rows_last_run=3)
    first = [_order(1, "2024-01-01T00:00:00Z", items=(10, 11)), _order(2, "2024-01-02T00:00:00Z")]
    again = [_order(1, "2024-01-01T00:00:00Z", items=(12,), total="9.00")]  # a changed order, items replaced
    assert _commit(destination, [first, first[:1]], state) == 2  # a key twice in a run: counted once
    assert _commit(destination, [again], state, run_id="r2") == 1
    assert destination.load_states() == {"orders": state} and destination.state_streams() == ["orders"]
    assert destination.distinct_values("orders", "id") == [1, 2]
    assert destination.distinct_values("order_items", "id") == [12]  # a parent fetched again replaces its children
    assert destination.count_since("orders", "created_at", None, {}) == 2
    assert str(destination.cursor_bounds("orders", "created_at", {})[1]).startswith("2024-01-02")

    writer = destination.begin(ORDERS, replace=False)
    writer.write(page_to_tables(ORDERS, [_order(3, "2024-01-03T00:00:00Z")]))
    writer.abort()
    assert destination.distinct_values("orders", "id") == [1, 2] and destination.load_states() == {"orders": state}

    _commit(destination, [[_order(5, "2024-01-05T00:00:00Z")]], StreamState(), run_id="r3", replace=True)
    assert destination.distinct_values("orders", "id") == [5]
    assert destination.after_load() == (["order_lines"] if kind == "duckdb" else [])


def test_state_one_stream_at_a_time_and_cleared(opened):
    _, destination = opened
    one, two = StreamState(cursors={"_": "2024-01-01T00:00:00.000000Z"}), StreamState(rows_last_run=4)
    destination.save_state("orders", one)
    destination.save_state("locations", two)
    assert destination.load_states() == {"orders": one, "locations": two}
    destination.save_state("orders", None)
    assert destination.state_streams() == ["locations"]
    destination.clear_states()
    assert destination.load_states() == {} and destination.state_streams() == []


def _corrupt_orders(kind, path):
    """orders' stored state made unreadable; locations' left valid."""
    if kind == "duckdb":
        with duckdb.connect(str(path)) as conn:
            conn.execute("UPDATE _sqquid_state SET state = '{\"cursors\": {\"_\": \"not a date\"}}' WHERE stream = 'orders'")
    elif kind == "iceberg":  # a stream without a table yet: its state is a property of the namespace
        from pyiceberg.catalog.sql import SqlCatalog

        catalog = SqlCatalog("sqquid", uri=f"sqlite:///{path}/catalog.db", warehouse=path.as_uri())
        catalog.update_namespace_properties("sqquid", updates={"sqquid.state.orders": '{"cursors": {"_": "not a date"}}'})
        catalog.engine.dispose()
    else:
        raw = json.loads((path / "_sqquid_state.json").read_text())
        raw["orders"] = {"cursors": {"_": "not a date"}}
        (path / "_sqquid_state.json").write_text(json.dumps(raw))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_corrupt_entry_is_an_error_yet_other_streams_can_be_changed(kind, tmp_path):
    path = _location(kind, tmp_path)
    kept = StreamState(cursors={"_": "2024-01-01T00:00:00.000000Z"})
    destination = open_existing(**{kind: path}, must_exist=False, tuning=Tuning())
    destination.save_state("orders", StreamState())
    destination.save_state("locations", kept)
    destination.close()
    _corrupt_orders(kind, path)
    destination = open_existing(**{kind: path}, tuning=Tuning())
    try:
        with pytest.raises(StateError, match="orders"):
            destination.load_states()
        assert destination.state_streams() == ["locations", "orders"]  # the corrupt one too
        destination.save_state("buffers", kept)
        destination.save_state("locations", None)
        assert destination.state_streams() == ["buffers", "orders"]
        destination.save_state("orders", None)  # forgetting the corrupt one is the fix
        assert destination.load_states() == {"buffers": kept}
    finally:
        destination.close()


def test_a_parquet_state_file_that_is_not_json_is_replaced_only_as_a_whole(tmp_path):
    lake = tmp_path / "lake"
    open_destination(parquet=lake, tuning=Tuning()).close()
    (lake / "_sqquid_state.json").write_text("{ truncated")
    destination = open_existing(parquet=lake, tuning=Tuning())
    try:
        with pytest.raises(StateError, match="corrupt state"):
            destination.load_states()
        assert destination.state_streams() == []
        with pytest.raises(StateError, match="not a JSON object"):
            destination.save_state("orders", StreamState())
        destination.clear_states()
        assert destination.load_states() == {}
    finally:
        destination.close()


def test_the_factory_chooses_one_destination_and_never_creates_one_to_look(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="either --duckdb or --parquet, not both"):
        open_destination(duckdb="a.duckdb", parquet="lake")
    with pytest.raises(TypeError, match="unknown destination"):
        open_destination(delta="warehouse")
    for given, message in (({}, "sqquid.duckdb: no such DuckDB file"), ({"parquet": "lake"}, "lake: no such directory")):
        with pytest.raises(ConfigError, match=message):
            open_existing(**given)
    assert list(tmp_path.iterdir()) == []
    destination = open_destination()  # none given: DuckDB at ./sqquid.duckdb
    assert destination.location == "sqquid.duckdb"
    destination.close()


def test_tuning_is_what_is_passed_not_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SQQUID_FLUSH_ROWS", "ten")
    monkeypatch.setenv("SQQUID_DUCKDB_THREADS", "0")
    check_destination(duckdb=tmp_path / "s.duckdb", tuning=Tuning(threads=2))
    destination = open_destination(duckdb=tmp_path / "s.duckdb", tuning=Tuning(threads=2))
    try:
        assert destination.conn.execute("SELECT current_setting('threads')").fetchone()[0] == 2
    finally:
        destination.close()
    check_destination(duckdb=tmp_path / "s.duckdb")  # no tuning given: the defaults, never the environment
    with pytest.raises(ConfigError, match="SQQUID_DUCKDB_MEMORY_LIMIT"):
        check_destination(parquet=tmp_path / "lake", tuning=Tuning(memory_limit="lots"))
    with pytest.raises(ConfigError, match="SQQUID_FLUSH_ROWS"):
        check_destination(parquet=tmp_path / "lake", tuning=Tuning(flush_rows=0))
    assert not (tmp_path / "lake").exists()


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("flush_rows", [1, 10_000])
def test_undocumented_fields_of_the_last_version_of_a_key(tmp_path, kind, flush_rows):
    """A writer says whether it `evolves` (keeps a page's undocumented fields as new columns);
    where it does, a key's last version gives its values (a field it lacks is null) in the
    record's table and its children's."""
    destination = open_destination(**{kind: _location(kind, tmp_path)}, tuning=Tuning(flush_rows=flush_rows))
    try:
        def order(id_, **extra):
            record = _order(id_, "2024-01-01T00:00:00Z", items=(id_ * 10,))
            record["order_items"][0].update(extra)
            return {**record, **extra}

        pages = [[order(1, flag=1), order(2, flag="x")], [order(3)], [order(1), order(2, flag="y")]]
        writer = destination.begin(ORDERS, replace=False)
        assert isinstance(writer.evolves, bool)
        for page in pages:
            tables = page_to_tables(ORDERS, page)
            tables.extras = tables.extras if writer.evolves else []
            writer.write(tables)
        writer.commit(StreamState(), RunRecord(run_id="r1", stream="orders", started_at="2024-01-01T00:00:00+00:00", status="ok"))
        assert destination.distinct_values("orders", "id") == [1, 2, 3]
        if writer.evolves:
            assert destination.distinct_values("orders", "flag") == ["y"]
            assert destination.distinct_values("order_items", "flag") == ["y"]
            assert destination.count_since("orders", "created_at", None, {"flag": "y"}) == 1
    finally:
        destination.close()


def test_each_partitions_bounds_and_counts_read_at_once_agree_with_one_query_a_partition(opened):
    """The count scan reads every partition's stored bounds and counts at once (DuckDB: one
    statement each, grouped by the partition): the same as one query a partition, a partition
    with no row included."""
    from datetime import datetime, timezone

    items = load_definitions()["shipment_items"]
    _, destination = opened
    writer = destination.begin(items, replace=False)
    for scope, ids in (("toship", (1, 2, 3)), ("shipped", (4, 5))):
        writer.write(page_to_tables(items, [{"id": i, "created_at": f"2024-01-0{i}T00:00:00Z"} for i in ids], scope))
    writer.distinct_keys("shipment_items")
    writer.commit(StreamState(), RunRecord(run_id="r1", stream="shipment_items", started_at="2024-01-01T00:00:00+00:00",
                                           status="ok"))
    scopes = ["toship", "shipped", "flagged"]
    bounds = destination.cursor_bounds_each("shipment_items", "created_at", "scope", scopes)
    assert bounds == [destination.cursor_bounds("shipment_items", "created_at", {"scope": s}) for s in scopes]
    assert [b[0].day if b[0] else None for b in bounds] == [1, 4, None]
    times = {"toship": [None, datetime(2024, 1, 2, tzinfo=timezone.utc)],
             "shipped": [None, datetime(2024, 1, 5, tzinfo=timezone.utc), datetime(2024, 1, 9, tzinfo=timezone.utc)],
             "flagged": [None]}
    counts = destination.counts_since_each("shipment_items", "created_at", "scope", times)
    assert counts == {s: destination.counts_since("shipment_items", "created_at", at, {"scope": s}) for s, at in times.items()}
    assert counts == {"toship": [3, 2], "shipped": [2, 1, 0], "flagged": [0]}
    assert destination.cursor_bounds_each("shipment_items", "created_at", None, [None]) == [
        destination.cursor_bounds("shipment_items", "created_at", {})]
    assert destination.counts_since_each("shipment_items", "created_at", None, {None: [None]}) == {None: [5]}
