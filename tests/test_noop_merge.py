"""A DuckDB commit writes only what changed (issue #11, start-up): a re-read row stored as it is
stays as it is (not deleted and inserted again), a changed one replaces its stored row, a child
a parent no longer has is marked, and the table ends as if every staged row had been replaced;
a snapshot stream's history is left alone when the snapshot is its current versions."""

from __future__ import annotations

import duckdb

from sqquid_etl import extract
from sqquid_etl.definitions import parse_definition
from sqquid_etl.destinations import open_destination
from sqquid_etl.records import page_to_tables
from sqquid_etl.runs import RunRecord
from sqquid_etl.state import StreamState
from tests.support import make_client

NOW = "2026-01-01T00:00:00+00:00"
THINGS = parse_definition({
    "name": "things", "request": {"path": "/v1/things", "envelope": "things"},
    "paginator": {"type": "page_number", "limit": 100}, "sync": "incremental",
    "cursor": {"field": "updated_at", "param": "updated_at_min"},
    "table": "things", "primary_key": ["id"], "fields": {"id": "integer", "name": "string", "updated_at": "timestamp"},
    "children": [{"field": "parts", "table": "parts", "primary_key": ["id"], "parent_fields": {"thing_id": "id"},
                  "fields": {"id": "integer", "qty": "integer"}}],
})


def _rows(path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def _commit(path, run: str, records: list[dict]):
    dest = open_destination(duckdb=path)
    try:
        writer = dest.begin(THINGS, replace=False)
        writer.write(page_to_tables(THINGS, records))
        record = RunRecord(run_id=run, stream="things", started_at=NOW, finished_at=NOW, status="ok")
        writer.commit(StreamState(), record)
        return record
    finally:
        dest.close()


def _thing(i: int, name: str, parts: list[tuple[int, int]], **extra) -> dict:
    return {"id": i, "name": name, "updated_at": "2026-01-01T00:00:00Z", "parts": [{"id": p, "qty": q} for p, q in parts],
            **extra}


def test_a_commit_rewrites_only_the_rows_that_changed(tmp_path):
    db = tmp_path / "t.duckdb"
    first = [_thing(1, "a", [(10, 1), (11, 1)]), _thing(2, "b", [(20, 1)]), _thing(3, "c", [(30, 1)])]
    _commit(db, "r1", first)  # a first load: stored without a hash
    _commit(db, "r2", first)  # the same again: every row rewritten once, with its hash
    assert _rows(db, "SELECT count(*) FROM things WHERE _sqquid_hash IS NULL") == [(0,)]
    ids = dict(_rows(db, "SELECT id, rowid FROM things"))
    part_ids = dict(_rows(db, "SELECT id, rowid FROM parts"))
    hashes = dict(_rows(db, "SELECT id, _sqquid_hash FROM things"))

    same = _commit(db, "r3", first)
    assert (same.records_new, same.records_changed, same.records_unchanged) == (0, 0, 3)
    assert dict(_rows(db, "SELECT id, rowid FROM things")) == ids  # nothing deleted and inserted again
    assert dict(_rows(db, "SELECT id, rowid FROM parts")) == part_ids

    # thing 2 renamed, thing 1 lost part 11 and changed part 10, thing 4 new; thing 3 as stored
    run = _commit(db, "r4", [_thing(1, "a", [(10, 5)]), _thing(2, "B", [(20, 1)]), _thing(3, "c", [(30, 1)]),
                             _thing(4, "d", [(40, 1)])])
    assert (run.records_new, run.records_changed, run.records_unchanged) == (1, 1, 2)
    assert _rows(db, "SELECT id, name, _sqquid_deleted_at IS NULL FROM things ORDER BY id") == [
        (1, "a", True), (2, "B", True), (3, "c", True), (4, "d", True)]
    assert _rows(db, "SELECT id, thing_id, qty, _sqquid_deleted_at IS NULL FROM parts ORDER BY id") == [
        (10, 1, 5, True), (11, 1, 1, False), (20, 2, 1, True), (30, 3, 1, True), (40, 4, 1, True)]
    assert _rows(db, "SELECT count(*) FROM things WHERE _sqquid_hash IS NULL") == [(0,)]
    now = dict(_rows(db, "SELECT id, _sqquid_hash FROM things"))
    assert now[1] == hashes[1] and now[3] == hashes[3] and now[2] != hashes[2]

    back = _commit(db, "r5", [_thing(1, "a", [(10, 5), (11, 1)])])  # a part marked gone comes back
    assert (back.records_changed, back.records_unchanged) == (0, 1)
    assert _rows(db, "SELECT qty, _sqquid_deleted_at IS NULL FROM parts WHERE id = 11") == [(1, True)]


def test_undocumented_values_are_compared_too(tmp_path):
    """A stored row holding an undocumented value is rewritten when re-read without it (the value
    goes, as when every row was replaced) and kept when re-read with it."""
    db = tmp_path / "e.duckdb"
    rows = [_thing(1, "a", [], note="x"), _thing(2, "b", [])]
    _commit(db, "r1", rows)
    _commit(db, "r2", rows)
    assert _rows(db, "SELECT id, note FROM things ORDER BY id") == [(1, "x"), (2, None)]
    kept = _rows(db, "SELECT rowid FROM things WHERE id = 1")
    _commit(db, "r3", rows)
    assert _rows(db, "SELECT rowid FROM things WHERE id = 1") == kept
    _commit(db, "r4", [_thing(1, "a", []), _thing(2, "b", [])])
    assert _rows(db, "SELECT id, note FROM things ORDER BY id") == [(1, None), (2, None)]


def test_an_unchanged_snapshot_leaves_its_history_alone(make_sandbox, tmp_path):
    sandbox = make_sandbox(orders=20, products=30)
    db = tmp_path / "h.duckdb"
    assert extract(["products", "inventory"], duckdb=db, client=make_client(sandbox)).ok
    before = _rows(db, "SELECT * FROM inventory_history ORDER BY ALL")
    assert before and all(row[-2] is None for row in before)  # one version a row, each current
    assert extract(["products", "inventory"], duckdb=db, client=make_client(sandbox)).ok
    assert _rows(db, "SELECT * FROM inventory_history ORDER BY ALL") == before
    sandbox.store.apply_changes({"change_stock": 2}, seed=3)
    assert extract(["products", "inventory"], duckdb=db, client=make_client(sandbox)).ok
    assert _rows(db, "SELECT count(*) FILTER (WHERE valid_to IS NOT NULL), count(*) FROM inventory_history") == [
        (2, len(before) + 2)]
