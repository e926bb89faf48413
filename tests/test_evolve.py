"""Schema evolution (issue #12 item 1): an undocumented field is never silently dropped. Under
the default contract (`evolve`) it becomes a nullable column of its table, added by the commit
that stores its data and recorded once in `_sqquid_schema_changes`; `freeze` fails the stream
naming stream, field and record, nothing stored; `discard` keeps today's tables, with one
warning a field. The Parquet destination does the same in the table's new generation (every
file of it with the same columns), its history in `_sqquid_schema_changes/`."""

from __future__ import annotations

import json
import logging

import duckdb
import pytest
from click.testing import CliRunner

from sqquid_etl import extract
from sqquid_etl.cli import main
from sqquid_etl.definitions import load_definitions
from sqquid_etl.destinations import open_destination
from sqquid_etl.evolve import known_fields, value_type, widen
from sqquid_etl.records import page_to_tables
from sqquid_etl.runs import RunRecord
from sqquid_etl.state import StreamState
from tests.expected import duckdb_tables, parquet_tables
from tests.support import API_KEY, make_client

HISTORY = "_sqquid_schema_changes"
NOW = "2026-01-01T00:00:00+00:00"


def _connect(path):
    """A DuckDB file, or a Parquet extract as views (its schema history too)."""
    if path.suffix == ".duckdb":
        return duckdb.connect(str(path), read_only=True)
    from sqquid_etl.sql_views import attach_parquet

    conn = duckdb.connect()
    attach_parquet(conn, str(path))
    if (path / HISTORY).is_dir():
        conn.execute(f"CREATE VIEW {HISTORY} AS SELECT * FROM read_parquet('{path / HISTORY / '*.parquet'}')")
    return conn


def _columns(path, table: str) -> dict[str, str]:
    with _connect(path) as conn:
        return dict(conn.execute(f"SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = '{table}'").fetchall())


def _read(path, sql: str) -> list[tuple]:
    with _connect(path) as conn:
        return conn.execute(sql).fetchall()


def _stored(value, kind: str):
    return json.loads(value) if kind == "JSON" and value is not None else value


def _undocumented(records: list[dict], known: frozenset) -> set[str]:
    return {name for record in records for name in record if name not in known}


@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_undocumented_fields_become_columns_with_their_values(make_sandbox, tmp_path, caplog, kind):
    sandbox = make_sandbox(orders=300, products=20, drift=True)
    db = tmp_path / ("s.duckdb" if kind == "duckdb" else "lake")
    with caplog.at_level(logging.WARNING, logger="sqquid_etl.engine"):
        first = extract(["orders"], client=make_client(sandbox), **{kind: db})
    assert first.stream("orders").status == "ok", first.stream("orders").message
    stream = load_definitions()["orders"]
    orders = sandbox.store.canonical("orders")
    items = [item for order in orders for item in order.get("order_items") or []]
    expected = {"orders": _undocumented(orders, known_fields(stream, stream.tables[0])),
                "order_items": _undocumented(items, known_fields(stream, stream.tables[1]))}
    assert expected["orders"] and expected["order_items"]
    for table, rows, key in (("orders", orders, "id"), ("order_items", items, "id")):
        columns = _columns(db, table)
        assert expected[table] <= set(columns), f"{table}: {expected[table] - set(columns)} not kept"
        names = sorted(expected[table])
        stored = {r[0]: r[1:] for r in _read(db, f"SELECT {key}, {', '.join(names)} FROM {table}")}
        assert len(stored) == len(rows)
        for row in rows:
            got = {n: _stored(v, columns[n]) for n, v in zip(names, stored[row[key]])}
            assert got == {n: row.get(n) for n in names}, f"{table} {row[key]}"
    history = _read(db, f"SELECT stream, \"table\", \"column\", type, first_run FROM {HISTORY}")
    assert {(t, c) for _, t, c, _, _ in history} == {(t, c) for t, cs in expected.items() for c in cs}
    assert {(s, run) for s, _, _, _, run in history} == {("orders", first.run_id)}
    assert all(_columns(db, t)[c] == (k if kind == "duckdb" else _columns(db, t)[c]) for _, t, c, k, _ in history)
    said = [r.getMessage() for r in caplog.records if "undocumented field" in r.getMessage()]
    assert len(said) == len(expected)  # one line a table, naming each field once a run
    for table, columns in expected.items():
        line = next(line for line in said if f"new columns of {table}:" in line)
        assert set(line.split(f"new columns of {table}: ", 1)[1].split(", ")) == set(columns)

    second = extract(["orders"], client=make_client(sandbox), **{kind: db})
    assert second.stream("orders").status == "ok"
    assert sorted(_read(db, f"SELECT stream, \"table\", \"column\", type, first_run FROM {HISTORY}")) == sorted(history)
    for table in ("orders", "order_items"):  # the merge kept every row and every value
        assert _read(db, f"SELECT count(*), count(DISTINCT id) FROM {table}")[0][0] == len(orders if table == "orders" else items)


def test_freeze_fails_the_stream_naming_field_and_record(make_sandbox, tmp_path):
    sandbox = make_sandbox(orders=50, products=10, drift=True)
    db = tmp_path / "s.duckdb"
    result = extract(["orders"], duckdb=db, client=make_client(sandbox), schema_contract="freeze")
    orders = result.stream("orders")
    assert orders.status == "failed"
    assert "'orders'" in orders.message and "undocumented field" in orders.message and "record" in orders.message
    first = sandbox.store.served("orders")[0]
    assert any(repr(name) in orders.message for name in first)
    assert _read(db, "SELECT count(*) FROM duckdb_tables() WHERE table_name IN ('orders', 'order_items')") == [(0,)]
    assert _read(db, "SELECT count(*) FROM _sqquid_state") == [(0,)]


def test_freeze_per_stream_from_its_definition(make_sandbox, tmp_path, monkeypatch):
    import dataclasses

    from sqquid_etl import pipeline

    definitions = load_definitions()
    frozen = {n: dataclasses.replace(d, schema_contract="freeze") for n, d in definitions.items()}
    monkeypatch.setattr(pipeline, "load_definitions", lambda: frozen)
    sandbox = make_sandbox(orders=20, products=10, drift=True)
    result = extract(["locations"], duckdb=tmp_path / "s.duckdb", client=make_client(sandbox))
    assert result.stream("locations").status == "failed"
    # the run's contract wins over the stream's
    result = extract(["locations"], duckdb=tmp_path / "s.duckdb", client=make_client(sandbox), schema_contract="evolve")
    assert result.stream("locations").status == "ok"


def test_discard_keeps_todays_tables(make_sandbox, tmp_path, caplog):
    sandbox = make_sandbox(orders=100, products=10, drift=True)
    drifted = tmp_path / "discard.duckdb"
    with caplog.at_level(logging.WARNING, logger="sqquid_etl.engine"):
        result = extract(["orders"], duckdb=drifted, client=make_client(sandbox), schema_contract="discard")
    assert result.stream("orders").status == "ok"
    stream = load_definitions()["orders"]
    for table in stream.tables:  # the documented columns, then the hash and soft-delete columns
        assert list(_columns(drifted, table.name)) == table.column_names + ["_sqquid_hash", "_sqquid_deleted_at"]
    dropped = [r.getMessage() for r in caplog.records if "dropped (schema contract discard)" in r.getMessage()]
    assert dropped and len(dropped) == len(set(dropped))
    assert _read(drifted, f"SELECT count(*) FROM duckdb_tables() WHERE table_name = '{HISTORY}'") == [(0,)]
    # a later evolving run adds the columns to the tables discard made
    extract(["orders"], duckdb=drifted, client=make_client(sandbox))
    assert "sync_note" in _columns(drifted, "orders")


def test_parquet_discard_then_evolve(make_sandbox, tmp_path):
    sandbox = make_sandbox(orders=60, products=10, drift=True)
    lake = tmp_path / "lake"
    result = extract(["orders"], parquet=lake, client=make_client(sandbox), schema_contract="discard")
    assert result.stream("orders").status == "ok"
    # the documented columns, then the hash and soft-delete columns (as in DuckDB)
    assert list(_columns(lake, "orders")) == load_definitions()["orders"].tables[0].column_names + ["_sqquid_hash", "_sqquid_deleted_at"]
    result = extract(["orders"], parquet=lake, client=make_client(sandbox))
    assert result.stream("orders").status == "ok", result.stream("orders").message
    assert "sync_note" in _columns(lake, "orders")  # every file of the generation has it
    assert list(_columns(lake, "orders"))[-2:] == ["_sqquid_hash", "_sqquid_deleted_at"]
    assert len(parquet_tables(lake, ["orders"])["orders"]) == 60


def test_deselected_fields_stay_dropped(make_sandbox, tmp_path):
    from sqquid_etl.catalog import build_catalog

    sandbox = make_sandbox(orders=40, products=10, drift=True)
    catalog = build_catalog()
    for entry in catalog["streams"]:
        entry["metadata"][0]["metadata"]["selected"] = entry["tap_stream_id"] == "orders"
        if entry["tap_stream_id"] == "orders":
            for meta in entry["metadata"]:
                if meta["breadcrumb"] == ["properties", "source"]:
                    meta["metadata"]["selected"] = False
    db = tmp_path / "s.duckdb"
    result = extract(duckdb=db, client=make_client(sandbox), catalog=catalog)
    assert result.stream("orders").status == "ok", result.stream("orders").message
    columns = _columns(db, "orders")
    assert "source" not in columns and "sync_note" in columns


@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_columns_widen_across_runs(tmp_path, kind):
    stream = load_definitions()["locations"]
    path = tmp_path / ("w.duckdb" if kind == "duckdb" else "lake")
    dest = open_destination(**{kind: path})
    try:
        for run, value in (("r1", 5), ("r2", 2.5), ("r3", "text")):
            records = [{"id": 1, "city": "x", "flag": value}] + ([{"id": 2, "city": "y"}] if run == "r1" else [])
            tables = page_to_tables(stream, records)
            assert [e.field for e in tables.extras] == ["flag"]
            writer = dest.begin(stream, replace=False)
            writer.write(tables)
            writer.commit(StreamState(), RunRecord(run_id=run, stream=stream.name, started_at=NOW, finished_at=NOW, status="ok"))
    finally:
        dest.close()
    assert _columns(path, "locations")["flag"] == "VARCHAR"
    assert _read(path, "SELECT id, flag FROM locations ORDER BY id") == [(1, "text"), (2, None)]
    assert _read(path, f"SELECT type, first_run FROM {HISTORY} ORDER BY first_run") == [
        ("BIGINT", "r1"), ("DOUBLE", "r2"), ("VARCHAR", "r3")]


def test_conservative_types():
    assert [value_type(v) for v in (None, True, 3, 1 << 70, 2.5, "x", {}, [])] == [
        "NULL", "BOOLEAN", "BIGINT", "VARCHAR", "DOUBLE", "VARCHAR", "JSON", "JSON"]
    assert widen("BIGINT", "DOUBLE") == "DOUBLE" and widen("NULL", "JSON") == "JSON"
    assert widen("BOOLEAN", "BIGINT") == "VARCHAR" and widen("JSON", "VARCHAR") == "VARCHAR"


def test_clean_pages_find_nothing(make_sandbox):
    sandbox = make_sandbox(orders=30, products=10)
    stream = load_definitions()["orders"]
    assert page_to_tables(stream, sandbox.store.served("orders")).extras == []


def test_cli_schema_contract(make_sandbox, tmp_path):
    sandbox = make_sandbox(orders=20, products=10, drift=True)
    db = tmp_path / "c.duckdb"
    run = CliRunner().invoke(main, ["extract", "--streams", "locations", "--duckdb", str(db), "--base-url", sandbox.url,
                                    "--api-key", API_KEY, "--rate", "0", "--no-progress", "--schema-contract", "discard"])
    assert run.exit_code == 0, run.output
    assert "sync_note" not in _columns(db, "locations")
    bad = CliRunner().invoke(main, ["extract", "--schema-contract", "bogus"])
    assert bad.exit_code != 0


@pytest.mark.parametrize("contract", ["evolve", "discard"])
def test_documented_tables_unchanged(make_sandbox, tmp_path, contract):
    """The documented columns hold the same whatever the contract."""
    sandbox = make_sandbox(orders=80, products=10, drift=True)
    a, b = tmp_path / "a.duckdb", tmp_path / f"{contract}.duckdb"
    extract(["orders"], duckdb=a, client=make_client(sandbox), schema_contract="discard")
    extract(["orders"], duckdb=b, client=make_client(sandbox), schema_contract=contract)
    stream = load_definitions()["orders"]
    for table in stream.tables:
        cols = ", ".join(table.column_names)
        assert _read(a, f"SELECT {cols} FROM {table.name} ORDER BY ALL") == _read(b, f"SELECT {cols} FROM {table.name} ORDER BY ALL")
    assert duckdb_tables(a, ["orders"])


def test_freeze_fails_on_a_lossy_value_too(make_sandbox, tmp_path):
    from sqquid_etl.sandbox import DriftProfile

    sandbox = make_sandbox(orders=80, products=10, drift=DriftProfile(extra_fields=False, lossy=0.2))
    db = tmp_path / "s.duckdb"
    result = extract(["orders"], duckdb=db, client=make_client(sandbox), schema_contract="freeze")
    assert result.stream("orders").status == "failed"
    assert "cannot be stored without loss" in result.stream("orders").message
    assert "schema contract freeze" in result.stream("orders").message
    assert _read(db, "SELECT count(*) FROM _sqquid_rejected") == [(0,)]


def test_a_definition_may_set_its_contract():
    import yaml

    from sqquid_etl.definitions import parse_definition
    from sqquid_etl.errors import ConfigError

    raw = yaml.safe_load(_stream_file("locations").read_text(encoding="utf-8"))
    assert parse_definition(raw).schema_contract is None
    assert parse_definition({**raw, "schema_contract": "freeze"}).schema_contract == "freeze"
    with pytest.raises(ConfigError, match="schema_contract"):
        parse_definition({**raw, "schema_contract": "bogus"})


def _stream_file(name: str):
    from importlib import resources

    return next(p for p in resources.files("sqquid_etl.streams").iterdir() if p.name == f"{name}.yaml")


@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_a_stream_without_a_table_of_its_own_keeps_its_records_fields_on_its_rows(make_sandbox, tmp_path, kind):
    """inventory: a record a sku, rows only in its `inventory` list; the sku record's undocumented
    fields go on each of its rows as record_<field>, nothing dropped."""
    sandbox = make_sandbox(orders=20, products=15, drift=True)
    db = tmp_path / ("s.duckdb" if kind == "duckdb" else "lake")
    assert extract(["products", "inventory"], client=make_client(sandbox), **{kind: db}).ok
    columns = _columns(db, "inventory")
    checked = 0
    for record in sandbox.store.served("inventory"):
        extras = {k: v for k, v in record.items() if k not in ("sku", "inventory")}
        assert extras  # the drift profile puts undocumented fields on every record
        for name, value in extras.items():
            column = f"record_{name}"
            assert column in columns
            stored = _read(db, f"SELECT DISTINCT \"{column}\" FROM inventory WHERE sku = '{record['sku']}'")
            if stored:  # skus that are no product's (ORPHAN-...) cannot be listed: no rows
                assert [_stored(v, "JSON" if isinstance(value, (dict, list)) else "") for (v,) in stored] == [value]
                checked += 1
    assert checked > 0


@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_a_key_staged_twice_keeps_its_last_undocumented_values(tmp_path, kind):
    """Whether a key came twice is asked of the staged rows alone (once a commit, `_latest`), and
    the rows merged with their undocumented values keep only the last version of each key."""
    stream = load_definitions()["orders"]
    path = tmp_path / ("w.duckdb" if kind == "duckdb" else "lake")
    item = {"id": 7, "qty": 1, "price": "2.00"}
    base = {"created_at": "2024-01-01T00:00:00.000Z", "total": "1.50"}
    pages = [[{**base, "id": 1, "note": "first", "order_items": [{**item, "tint": "red"}]},
              {**base, "id": 2, "note": "other", "order_items": [{**item, "id": 8}]}],
             [{**base, "id": 1, "note": "last", "order_items": [{**item, "tint": "blue"}]}]]
    dest = open_destination(**{kind: path})
    try:
        writer = dest.begin(stream, replace=False)
        for records in pages:
            writer.write(page_to_tables(stream, records))
        writer.commit(StreamState(), RunRecord(run_id="r1", stream=stream.name, started_at=NOW, finished_at=NOW, status="ok"))
    finally:
        dest.close()
    assert _read(path, "SELECT id, note FROM orders ORDER BY id") == [(1, "last"), (2, "other")]
    assert _read(path, "SELECT id, tint FROM order_items ORDER BY id") == [(7, "blue"), (8, None)]


@pytest.mark.parametrize("kind", ["duckdb", "parquet", "iceberg"])
def test_undocumented_columns_staged_with_their_rows_as_they_come(tmp_path, kind):
    """Undocumented values are staged as more columns of their rows (`extras_stage.py`): fields that
    come page after page (a batch of two rows: files of more and more columns), pages without any
    between them, a child table's own; each stored with its row, null in the rows without it."""
    from sqquid_etl.settings import Tuning

    stream = load_definitions()["orders"]
    path = tmp_path / {"duckdb": "w.duckdb", "parquet": "lake", "iceberg": "ice"}[kind]
    base = {"created_at": "2024-01-01T00:00:00.000Z", "total": "1.50"}
    pages = [[{**base, "id": 1, "order_items": [{"id": 11, "qty": 1, "price": "2.00"}]}],
             [{**base, "id": 2, "rank": 5, "order_items": []}, {**base, "id": 3, "rank": 6, "meta": {"a": 1}}],
             [{**base, "id": 4}],
             [{**base, "id": 5, "tint": "red", "order_items": [{"id": 51, "qty": 1, "price": "2.00", "size": "L"}]}],
             [{**base, "id": 6, "rank": 7, "order_items": [{"id": 61, "qty": 1, "price": "2.00"}]}]]
    dest = open_destination(**{kind: str(path)}, tuning=Tuning(flush_rows=2))
    try:
        writer = dest.begin(stream, replace=False)
        for records in pages:
            writer.write(page_to_tables(stream, records))
        writer.commit(StreamState(), RunRecord(run_id="r1", stream=stream.name, started_at=NOW, finished_at=NOW, status="ok"))
        if kind == "iceberg":
            orders = sorted((r["id"], r["rank"], r["meta"], r["tint"]) for r in dest.table("orders").scan().to_arrow().to_pylist())
            items = sorted((r["id"], r["size"]) for r in dest.table("order_items").scan().to_arrow().to_pylist())
    finally:
        dest.close()
    if kind != "iceberg":
        orders = _read(path, "SELECT id, rank, meta::VARCHAR, tint FROM orders ORDER BY id")
        items = _read(path, "SELECT id, size FROM order_items ORDER BY id")
    assert orders == [(1, None, None, None), (2, 5, None, None), (3, 6, '{"a":1}', None), (4, None, None, None),
                      (5, None, None, "red"), (6, 7, None, None)]
    assert items == [(11, None), (51, "L"), (61, None)]
