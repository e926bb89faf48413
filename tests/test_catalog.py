"""Discovery (the committed catalog.json) and selection: `extract --catalog` extracts only the
selected streams and fields; keys, cursors and parent links are always kept."""

import copy
import json
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from sqquid_etl.catalog import apply_catalog, build_catalog, narrow_definition, render_catalog
from sqquid_etl.cli import main
from sqquid_etl.definitions import load_definitions
from sqquid_etl.errors import ConfigError
from tests.expected import assert_tables_equal, duckdb_tables, expected_tables
from tests.support import API_KEY

ROOT = Path(__file__).resolve().parent.parent


def test_committed_catalog_is_in_sync_with_definitions():
    committed = (ROOT / "catalog.json").read_text(encoding="utf-8")
    assert committed == render_catalog(), "catalog.json is stale: run `sqquid-etl discover`"


def _entry(catalog, name):
    return next(s for s in catalog["streams"] if s["stream"] == name)


def _crumbs(entry):
    return {tuple(m["breadcrumb"]): m["metadata"] for m in entry["metadata"]}


def test_catalog_is_singer_shaped():
    catalog = build_catalog()
    orders = _entry(catalog, "orders")
    assert orders["key_properties"] == ["id"]
    assert orders["replication_key"] == "created_at"
    assert orders["schema"]["properties"]["total"]["format"] == "singer.decimal"
    assert orders["schema"]["properties"]["order_items"]["type"] == ["array", "null"]
    assert orders["metadata"][0]["breadcrumb"] == [] and orders["metadata"][0]["metadata"]["selected"] is True
    crumbs = _crumbs(orders)
    # every schema property has its field breadcrumb; keys and the cursor are automatic
    assert {c[1] for c in crumbs if len(c) == 2} == set(orders["schema"]["properties"])
    assert crumbs[("properties", "id")]["inclusion"] == "automatic"
    assert crumbs[("properties", "created_at")]["inclusion"] == "automatic"
    assert crumbs[("properties", "total")] == {"inclusion": "available", "selected-by-default": True,
                                              "selected": True, "sql-datatype": "decimal"}
    assert crumbs[("properties", "order_items", "items", "properties", "discount")]["inclusion"] == "available"
    assert crumbs[("properties", "order_items", "items", "properties", "id")]["inclusion"] == "automatic"
    # products.sku feeds the inventory listing: always kept
    assert _crumbs(_entry(catalog, "products"))[("properties", "sku")]["inclusion"] == "automatic"


def test_discover_command_writes_file(tmp_path):
    out = tmp_path / "c.json"
    result = CliRunner().invoke(main, ["discover", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == build_catalog()


def _deselect(catalog, stream, *crumb):
    for m in _entry(catalog, stream)["metadata"]:
        if tuple(m["breadcrumb"]) == crumb:
            m["metadata"]["selected"] = False
            return
    raise AssertionError(crumb)


def _only(catalog, *streams):
    for entry in catalog["streams"]:
        entry["metadata"][0]["metadata"]["selected"] = entry["stream"] in streams
    return catalog


def test_narrowing_keeps_keys_cursor_and_links():
    catalog = _only(build_catalog(), "orders", "shipment_items")
    for name in ("id", "created_at", "total", "customer_email"):
        _deselect(catalog, "orders", "properties", name)
    _deselect(catalog, "orders", "properties", "order_items", "items", "properties", "discount")
    _deselect(catalog, "shipment_items", "properties", "tracking_urls")
    chosen = apply_catalog(catalog)
    assert list(chosen) == ["orders", "shipment_items"]
    orders, items = chosen["orders"].tables
    assert "id" in orders.column_names and "created_at" in orders.column_names  # key, cursor: kept
    assert "total" not in orders.column_names and "customer_email" not in orders.column_names
    assert "tax" in orders.column_names
    assert items.column_names[:2] == ["order_id", "id"] and "discount" not in items.column_names
    assert items.parent_link == ("order_id", "id")
    ship = chosen["shipment_items"].tables[0]
    assert "scope" in ship.column_names and "tracking_urls" not in ship.column_names
    # a pure function: the loaded definitions are untouched
    assert "total" in load_definitions()["orders"].tables[0].column_names


def test_deselecting_a_nested_table_drops_it_but_not_an_only_table():
    definitions = load_definitions()
    narrowed = narrow_definition(definitions["orders"], {("order_items",)})
    assert narrowed.table_names == ["orders"]
    with pytest.raises(ConfigError, match="deselect the stream"):
        narrow_definition(definitions["inventory"], {("inventory",)})


def test_catalog_errors_name_the_problem(tmp_path):
    catalog = build_catalog()
    bad = copy.deepcopy(catalog)
    bad["streams"][0]["metadata"].append({"breadcrumb": ["properties", "nope"], "metadata": {"selected": False}})
    with pytest.raises(ConfigError, match="has no field"):
        apply_catalog(bad)
    bad = copy.deepcopy(catalog)
    bad["streams"][0]["tap_stream_id"] = "widgets"
    with pytest.raises(ConfigError, match="unknown stream 'widgets'"):
        apply_catalog(bad)
    with pytest.raises(ConfigError, match="selects no stream"):
        apply_catalog(_only(copy.deepcopy(catalog)))
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(ConfigError, match="c.json"):
        apply_catalog(tmp_path / "c.json")
    # a stream without a `selected` on its [] breadcrumb is not selected (Singer's rule)
    partial = _only(copy.deepcopy(catalog), "locations")
    del _entry(partial, "buffers")["metadata"][0]["metadata"]["selected"]
    _entry(partial, "buffers")["metadata"][0]["metadata"]["selected-by-default"] = False
    assert list(apply_catalog(partial)) == ["locations"]


def test_extract_with_catalog_selects_streams_and_fields(make_sandbox, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sandbox = make_sandbox(orders=80, products=30)
    catalog = _only(build_catalog(), "orders", "locations")
    _deselect(catalog, "orders", "properties", "customer_email")
    _deselect(catalog, "orders", "properties", "order_items", "items", "properties", "discount")
    _deselect(catalog, "locations", "properties", "phone")
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    db = tmp_path / "s.duckdb"
    env = {"SQQUID_BASE_URL": sandbox.url, "SQQUID_API_KEY": API_KEY}
    result = CliRunner().invoke(main, ["extract", "--catalog", "catalog.json", "--duckdb", str(db), "--rate", "0"], env=env)
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(db), read_only=True) as conn:
        tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_type='BASE TABLE'").fetchall()}
        columns = {t: [r[0] for r in conn.execute(f"DESCRIBE {t}").fetchall()] for t in ("orders", "order_items", "locations")}
    assert {"orders", "order_items", "locations"} <= tables
    assert not tables & {"products", "inventory", "shipments", "buffers"}
    assert "customer_email" not in columns["orders"] and "customer_name" in columns["orders"]
    assert "discount" not in columns["order_items"] and "order_id" in columns["order_items"]
    assert "phone" not in columns["locations"]
    expected = expected_tables(sandbox.store)
    actual = duckdb_tables(db, ["orders", "order_items", "locations"])
    assert_tables_equal(actual, {t: expected[t] for t in actual})
    # --streams narrows the catalog's selection further; a stream the catalog leaves out is an error
    again = CliRunner().invoke(main, ["extract", "--catalog", "catalog.json", "--duckdb", str(db), "--rate", "0",
                                      "--streams", "products"], env=env)
    assert again.exit_code == 2 and "products" in again.stderr
