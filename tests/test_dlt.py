"""The dlt source: loaded into dlt's DuckDB destination it gives the tables and rows of
`sqquid-etl extract`, and a second run is incremental through dlt's own state."""

from __future__ import annotations


import duckdb
import pytest
from click.testing import CliRunner

from sqquid_etl.cli import main
from sqquid_etl.definitions import load_definitions
from tests.expected import COMPARED
from tests.support import API_KEY

dlt = pytest.importorskip("dlt", reason="dlt is not installed (it is in the test extra: pip install -e '.[test]')")


def _pipeline(tmp_path):
    return dlt.pipeline(pipeline_name="sqquid_test", destination=dlt.destinations.duckdb(str(tmp_path / "dlt.duckdb")),
                        dataset_name="sqquid", pipelines_dir=str(tmp_path / "pipelines"))


def _tables(path, schema: str) -> dict[str, list[tuple]]:
    with duckdb.connect(str(path), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return {t: sorted(conn.execute(f"SELECT {cols} FROM {schema}.{t}").fetchall(), key=repr) for t, cols in COMPARED.items()}


def test_dlt_source_loads_what_extract_stores_then_runs_incrementally(make_sandbox, tmp_path, monkeypatch):
    from sqquid_etl.dlt import sqquid_source

    monkeypatch.chdir(tmp_path)
    sandbox = make_sandbox(orders=150, products=50)
    pipeline = _pipeline(tmp_path)
    pipeline.run(sqquid_source(base_url=sandbox.url, api_key=API_KEY, rate=0))
    extracted = CliRunner().invoke(main, ["extract", "--duckdb", "cli.duckdb", "--rate", "0", "-q"],
                                   env={"SQQUID_BASE_URL": sandbox.url, "SQQUID_API_KEY": API_KEY})
    assert extracted.exit_code == 0, extracted.output
    loaded = _tables(tmp_path / "dlt.duckdb", "sqquid")
    assert loaded == _tables(tmp_path / "cli.duckdb", "main")  # every table, every row, the same values
    schema = pipeline.default_schema
    assert schema.get_table("orders")["write_disposition"] == "merge"
    assert schema.get_table("inventory")["write_disposition"] == "replace"
    assert [c for c, v in schema.get_table_columns("inventory").items() if v.get("primary_key")] == \
        ["sku", "location_external_id", "bin"]
    state = pipeline.state["sources"]["sqquid"]["sqquid"]
    cursor = state["bookmarks"]["orders"]["cursors"]["_"]
    assert set(state["bookmarks"]) == set(load_definitions()) and state["keys"]["products.sku"]

    new = sandbox.store.add_orders(6)
    pipeline.run(sqquid_source(base_url=sandbox.url, api_key=API_KEY, rate=0))
    counts = pipeline.last_trace.last_normalize_info.row_counts
    since = _parse(cursor) - load_definitions()["orders"].reread  # the bookmark less the re-read window (14d)
    assert counts["orders"] == sum(_parse(o["created_at"]) >= since for o in sandbox.store.orders) < len(sandbox.store.orders)
    assert counts.get("products", 0) == len(sandbox.store.products)  # products: re-read whole every run (variants)
    with duckdb.connect(str(tmp_path / "dlt.duckdb"), read_only=True) as conn:
        ids = {r[0] for r in conn.execute("SELECT id FROM sqquid.orders").fetchall()}
        assert len(ids) == len(sandbox.store.orders) == 156 and {o["id"] for o in new} <= ids  # merged, no duplicate
        assert conn.execute("SELECT count(*) FROM sqquid.orders").fetchall()[0][0] == 156


def test_dlt_source_selects_streams_with_their_dependencies(make_sandbox, tmp_path):
    from sqquid_etl.dlt import sqquid_source

    sandbox = make_sandbox(orders=10, products=10)
    source = sqquid_source(["inventory"], base_url=sandbox.url, api_key=API_KEY, rate=0)
    assert set(source.resources) == {"products", "product_variants", "inventory"}  # inventory is listed by their skus
    assert source.resources["inventory"].write_disposition == "replace"


def test_a_failed_extract_loads_nothing_and_keeps_no_state(make_sandbox, tmp_path):
    from dlt.pipeline.exceptions import PipelineStepFailed

    from sqquid_etl.dlt import sqquid_source
    from sqquid_etl.errors import AuthError

    sandbox = make_sandbox(orders=10, products=10)
    pipeline = _pipeline(tmp_path)
    with pytest.raises(PipelineStepFailed) as raised:
        pipeline.run(sqquid_source(["orders"], base_url=sandbox.url, api_key="wrong-key", rate=0))
    causes, error = [], raised.value
    while error is not None:
        causes.append(error)
        error = error.__cause__ or error.__context__
    assert any(isinstance(e, AuthError) for e in causes)
    assert "wrong-key" not in str(raised.value)
    assert "sqquid" not in pipeline.state.get("sources", {})


def _parse(value: str):
    from sqquid_etl.state import parse_timestamp

    return parse_timestamp(value, "test")


def test_with_resources_runs_only_their_streams_and_moves_only_their_bookmarks(make_sandbox, tmp_path):
    """dlt's `with_resources`: the streams of the resources selected are read, and those they
    depend on (inventory: the skus of products), whose bookmarks stay put (their rows were not loaded)."""
    from sqquid_etl.dlt import sqquid_source

    sandbox = make_sandbox(orders=30, products=12)
    pipeline = _pipeline(tmp_path)
    pipeline.run(sqquid_source(base_url=sandbox.url, api_key=API_KEY, rate=0).with_resources("orders", "order_items"))
    routes = {route.split("?")[0] for route in sandbox.stats.by_route}
    assert any("/v1/orders" in r for r in routes) and not any("product" in r or "shipment" in r for r in routes), routes
    state = pipeline.state["sources"]["sqquid"]["sqquid"]
    assert set(state["bookmarks"]) == {"orders"}

    sandbox.stats.reset()
    pipeline.run(sqquid_source(base_url=sandbox.url, api_key=API_KEY, rate=0).with_resources("inventory"))
    routes = {route.split("?")[0] for route in sandbox.stats.by_route}
    assert any("inventory" in r for r in routes) and any("product" in r for r in routes), routes  # skus from products
    state = pipeline.state["sources"]["sqquid"]["sqquid"]
    assert set(state["bookmarks"]) == {"orders", "inventory"}  # products ran for inventory's sake only
    with duckdb.connect(str(tmp_path / "dlt.duckdb"), read_only=True) as conn:
        tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables "
                                             "WHERE table_schema = 'sqquid' AND table_name NOT LIKE '_dlt%'").fetchall()}
        assert tables == {"orders", "order_items", "inventory"}
        assert conn.execute("SELECT count(*) FROM sqquid.orders").fetchall()[0][0] == len(sandbox.store.orders)
