"""The Iceberg destination (`--iceberg`): every stream extracted into typed Iceberg tables equal
to the sandbox's data, on local disk and on S3 (moto's server on loopback), merged by key on a
second run, the state committed with the data, SIGKILL then re-run exact, and two writers of one
namespace at once both committing, nothing lost."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import duckdb
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from sqquid_etl.pipeline import extract
from sqquid_etl.destinations import open_destination, open_existing
from sqquid_etl.errors import ConfigError, StateError
from sqquid_etl.settings import Tuning
from tests.expected import COMPARED, assert_tables_equal, expected_tables
from tests.s3_server import bucket, s3_endpoint  # noqa: F401 (fixtures)
from tests.support import make_client
from tests.test_crash import KILL_POINTS, _env, _extract_cmd, _kill_after_requests


def _catalog(warehouse: str, catalog_file, endpoint: str | None = None) -> SqlCatalog:
    s3 = {"s3.endpoint": endpoint, "s3.region": "us-east-1"} if endpoint else {}
    return SqlCatalog("sqquid", uri=f"sqlite:///{catalog_file}", warehouse=warehouse, **s3)


def iceberg_tables(catalog: SqlCatalog, namespace: str = "sqquid", tables=None) -> dict[str, list[tuple]]:
    out = {}
    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        for table, columns in COMPARED.items():
            if tables is None or table in tables:
                data = catalog.load_table((namespace, table)).scan().to_arrow()  # noqa: F841
                out[table] = sorted(conn.execute(f"SELECT {columns} FROM data").fetchall(), key=repr)
    return out


def test_extract_to_a_local_warehouse_equals_the_sandbox_and_merges(make_sandbox, tmp_path):
    sandbox = make_sandbox(orders=600, products=300)
    client = make_client(sandbox)
    warehouse = tmp_path / "warehouse"
    assert extract(iceberg=str(warehouse), client=client).ok
    catalog = _catalog(warehouse.as_uri(), warehouse / "catalog.db")
    assert_tables_equal(iceberg_tables(catalog), expected_tables(sandbox.store))
    orders = catalog.load_table(("sqquid", "orders"))
    assert str(orders.schema().find_field("total").field_type) == "decimal(18, 4)"
    assert str(orders.schema().find_field("created_at").field_type) == "timestamptz"
    state = json.loads(orders.properties["sqquid.state"])  # the cursor, in the table's own metadata
    assert state["cursors"]

    sandbox.store.add_orders(30)
    sandbox.store.update_products(5)
    second = extract(["orders", "products"], iceberg=str(warehouse), client=client)
    assert second.ok and second.stream("orders").rows["orders"] < 600
    tables = ["orders", "order_items", "products", "product_variants"]
    assert_tables_equal(iceberg_tables(catalog, tables=tables), expected_tables(sandbox.store), tables)
    orders = catalog.load_table(("sqquid", "orders"))
    assert json.loads(orders.properties["sqquid.state"])["cursors"] != state["cursors"]
    summary = orders.current_snapshot().summary
    assert summary is not None  # the state and the merged rows: one snapshot commit

    destination = open_existing(iceberg=str(warehouse), tuning=Tuning())
    try:
        assert set(destination.load_states()) >= {"orders", "products"}
        assert destination.count_since("orders", "created_at", None, {}) == len(sandbox.store.orders)
    finally:
        destination.close()
    runs = catalog.load_table(("sqquid", "_sqquid_runs")).scan().to_arrow()
    assert {"ok"} == set(runs.column("status").to_pylist())


def test_extract_to_an_s3_warehouse(make_sandbox, bucket, s3_endpoint, tmp_path):
    sandbox = make_sandbox(orders=300, products=120)
    location = f"s3://{bucket}/warehouse?catalog=sqlite:///{tmp_path}/catalog.db&namespace=shop"
    assert extract(iceberg=location, client=make_client(sandbox)).ok
    catalog = _catalog(f"s3://{bucket}/warehouse", tmp_path / "catalog.db", s3_endpoint)
    assert_tables_equal(iceberg_tables(catalog, "shop"), expected_tables(sandbox.store))
    assert catalog.load_table(("shop", "orders")).location().startswith(f"s3://{bucket}/warehouse/")


@pytest.mark.parametrize("where", ["local", "s3"])
def test_sigkill_mid_run_then_rerun_is_exact(make_sandbox, tmp_path, where, request):
    sandbox = make_sandbox(orders=1500, products=300, latency=0.002)
    if where == "s3":
        endpoint, name = request.getfixturevalue("s3_endpoint"), request.getfixturevalue("bucket")
        warehouse_uri, location = f"s3://{name}/warehouse", f"s3://{name}/warehouse?catalog=sqlite:///{tmp_path}/catalog.db"
    else:
        endpoint, warehouse_uri, location = None, (tmp_path / "warehouse").as_uri(), str(tmp_path / "warehouse")
    args = ["--iceberg", location]
    rng = random.Random(f"kill-iceberg-{where}")
    kills, points = 0, KILL_POINTS if where == "local" else KILL_POINTS // 2  # S3 through moto is slower
    for _ in range(points):
        process = subprocess.Popen(_extract_cmd(sandbox, args), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kills += _kill_after_requests(process, sandbox, rng.randint(1, 30))
        sandbox.store.add_orders(25)
    assert kills >= points // 2
    finished = subprocess.run(_extract_cmd(sandbox, args), env=_env(), capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    catalog = _catalog(warehouse_uri, tmp_path / ("catalog.db" if where == "s3" else "warehouse/catalog.db"), endpoint)
    assert_tables_equal(iceberg_tables(catalog), expected_tables(sandbox.store))
    for name in COMPARED:  # every data file a snapshot lists exists, and no other is left
        table = catalog.load_table(("sqquid", name))
        listed = set(table.inspect.all_files().column("file_path").to_pylist())
        assert _data_files(table.location()) == listed, name


def _data_files(location: str) -> set[str]:
    """The data files stored under a table's location (local or S3), as URIs."""
    if location.startswith("s3://"):
        import boto3

        name, _, prefix = location[len("s3://"):].partition("/")
        pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=name, Prefix=f"{prefix}/data/")
        return {f"s3://{name}/{o['Key']}" for page in pages for o in page.get("Contents", [])}
    return {f"file://{p}" for p in (Path(location.removeprefix("file://")) / "data").glob("*.parquet")}


def test_two_writers_of_one_namespace_at_once_both_commit(make_sandbox, tmp_path):
    """Two processes extract different streams into one namespace at the same moment: both
    commit (conflicts on the shared run table retried), every row present."""
    sandbox = make_sandbox(orders=800, products=400, latency=0.001)
    warehouse = tmp_path / "warehouse"
    open_destination(iceberg=str(warehouse), tuning=Tuning()).close()  # the catalog, made once
    writers = [subprocess.Popen(_extract_cmd(sandbox, ["--streams", streams, "--iceberg", str(warehouse)]), env=_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for streams in ("orders,locations", "products,buffers")]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
    catalog = _catalog(warehouse.as_uri(), warehouse / "catalog.db")
    tables = ["orders", "order_items", "locations", "products", "product_variants", "buffers"]
    assert_tables_equal(iceberg_tables(catalog, tables=tables), expected_tables(sandbox.store), tables)
    runs = catalog.load_table(("sqquid", "_sqquid_runs")).scan().to_arrow()
    assert set(runs.column("stream").to_pylist()) == {"orders", "locations", "products", "buffers"}


def test_a_second_writer_of_the_same_stream_is_refused_clearly(tmp_path):
    from sqquid_etl.definitions import load_definitions

    destination = open_destination(iceberg=str(tmp_path / "w"), tuning=Tuning())
    other = open_destination(iceberg=str(tmp_path / "w"), tuning=Tuning())
    try:
        writer = destination.begin(load_definitions()["locations"], replace=False)
        with pytest.raises(StateError, match="'locations' .* is being written by another process"):
            other.begin(load_definitions()["locations"], replace=False)
        other.begin(load_definitions()["buffers"], replace=False).abort()  # another stream: fine
        writer.abort()
        other.begin(load_definitions()["locations"], replace=False).abort()  # released
    finally:
        destination.close()
        other.close()


def test_a_location_that_is_not_a_warehouse_is_refused(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match="not made by sqquid-etl"):
        open_destination(iceberg=str(mine), tuning=Tuning())
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    with pytest.raises(ConfigError, match="unknown option"):
        open_destination(iceberg=f"{tmp_path}/w?catalogue=x", tuning=Tuning())
    with pytest.raises(ConfigError, match="nothing extracted there yet"):
        open_existing(iceberg=str(tmp_path / "none"), tuning=Tuning())
    assert not (tmp_path / "none").exists()


def test_state_commands_work_on_an_iceberg_extract(sandbox, tmp_path):
    from click.testing import CliRunner

    from sqquid_etl.cli import main

    warehouse = str(tmp_path / "warehouse")
    assert extract(["locations"], iceberg=warehouse, client=make_client(sandbox)).ok
    runner = CliRunner()
    shown = runner.invoke(main, ["state", "show", "--iceberg", warehouse, "--json"])
    assert shown.exit_code == 0, shown.output
    assert "locations" in json.loads(shown.output)
    done = runner.invoke(main, ["state", "set", "orders", "--cursor", "2024-05-01T00:00:00Z", "--iceberg", warehouse])
    assert done.exit_code == 0, done.output
    done = runner.invoke(main, ["state", "reset", "locations", "--yes", "--iceberg", warehouse])
    assert done.exit_code == 0, done.output
    destination = open_existing(iceberg=warehouse, tuning=Tuning())
    try:
        assert destination.state_streams() == ["orders"]
        assert destination.load_states()["orders"].cursors
    finally:
        destination.close()
    missing = runner.invoke(main, ["state", "show", "--iceberg", str(tmp_path / "none")])
    assert missing.exit_code != 0 and "nothing extracted there yet" in missing.output
    assert not (tmp_path / "none").exists()


def test_undocumented_fields_become_columns_and_a_full_refresh_drops_them(tmp_path):
    from sqquid_etl.records import page_to_tables
    from sqquid_etl.runs import RunRecord
    from sqquid_etl.state import StreamState
    from tests.test_destinations import ORDERS, _commit, _order

    destination = open_destination(iceberg=str(tmp_path / "w"), tuning=Tuning())
    try:
        record = {**_order(1, "2024-01-01T00:00:00Z", items=(10,)), "flag": 7}
        writer = destination.begin(ORDERS, replace=False)
        writer.write(page_to_tables(ORDERS, [record]))
        writer.commit(StreamState(), RunRecord(run_id="r1", stream="orders", started_at="2024-01-01T00:00:00+00:00"))
        assert destination.distinct_values("orders", "flag") == [7]
        assert str(destination.table("orders").schema().find_field("flag").field_type) == "long"  # a schema update
        changes = destination.table("_sqquid_schema_changes").scan().to_arrow().to_pylist()
        assert {(c["table"], c["column"]) for c in changes} == {("orders", "flag")}
        _commit(destination, [[_order(2, "2024-01-01T00:00:00Z")]], StreamState(), run_id="r2", replace=True)
        assert "flag" not in [f.name for f in destination.table("orders").schema().fields]
        _commit(destination, [[_order(3, "2024-01-01T00:00:00Z")]], StreamState(), run_id="r3")
        assert destination.distinct_values("orders", "id") == [2, 3]
    finally:
        destination.close()


def test_a_commit_that_loses_a_race_is_retried_and_loses_nothing(tmp_path):
    """Another writer commits to the same table between this commit's read and its write: the
    commit is made again on the table as it now is; every row of both is there."""
    from sqquid_etl.destinations.iceberg_commit import retried
    from sqquid_etl.destinations.parquet import run_table
    from sqquid_etl.runs import RunRecord

    def run(run_id):
        return RunRecord(run_id=run_id, stream="orders", started_at="2024-01-01T00:00:00+00:00", status="ok")

    ours = open_destination(iceberg=str(tmp_path / "w"), tuning=Tuning())
    theirs = open_destination(iceberg=str(tmp_path / "w"), tuning=Tuning())
    try:
        ours.record_run(run("r0"))
        attempts = []

        def change(table, tx):
            attempts.append(table.metadata_location)
            if len(attempts) == 1:
                theirs.record_run(run("theirs"))  # gets in first
            tx.append(run_table(run("ours")))
        retried(ours.catalog, ("sqquid", "_sqquid_runs"), change)
        runs = ours.table("_sqquid_runs").scan().to_arrow().column("run_id").to_pylist()
        assert sorted(runs) == ["ours", "r0", "theirs"]
    finally:
        ours.close()
        theirs.close()


def test_the_sql_command_reads_a_local_warehouse_with_the_views(make_sandbox, tmp_path):
    """`sqquid-etl sql --iceberg`: a view a table over its current data files, and the SQL views;
    a column added by a later run reads as null in the files written before it."""
    from click.testing import CliRunner

    from sqquid_etl.cli import main

    sandbox = make_sandbox(orders=120, products=60)
    warehouse = tmp_path / "warehouse"
    assert extract(["orders"], iceberg=str(warehouse), client=make_client(sandbox)).ok
    sandbox.store.add_orders(10)
    assert extract(["orders"], iceberg=str(warehouse), client=make_client(sandbox)).ok
    runner = CliRunner()
    out = runner.invoke(main, ["sql", "--iceberg", str(warehouse), "--format", "json",
                               "SELECT (SELECT count(*) FROM orders) AS o, (SELECT count(*) FROM order_lines) AS l"])
    assert out.exit_code == 0, out.output
    row = json.loads(out.output.splitlines()[0])
    expected = expected_tables(sandbox.store)
    assert row == {"o": len(expected["orders"]), "l": len(expected["order_items"])}
    (tmp_path / "remote.db").touch()
    remote = runner.invoke(main, ["sql", "--iceberg", f"s3://bucket/warehouse?catalog=sqlite:///{tmp_path}/remote.db", "SELECT 1"])
    assert remote.exit_code != 0 and "reads a local warehouse" in remote.output
