import json
from pathlib import Path

from click.testing import CliRunner

from sqquid_etl.catalog import build_catalog, render_catalog
from sqquid_etl.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_committed_catalog_is_in_sync_with_definitions():
    committed = (ROOT / "catalog.json").read_text(encoding="utf-8")
    assert committed == render_catalog(), "catalog.json is stale: run `sqquid-etl discover`"


def test_catalog_is_singer_shaped():
    catalog = build_catalog()
    orders = next(s for s in catalog["streams"] if s["stream"] == "orders")
    assert orders["key_properties"] == ["id"]
    assert orders["replication_key"] == "created_at"
    assert orders["schema"]["properties"]["total"]["format"] == "singer.decimal"
    assert orders["schema"]["properties"]["order_items"]["type"] == ["array", "null"]
    assert orders["metadata"][0]["metadata"]["selected"] is True


def test_discover_command_writes_file(tmp_path):
    out = tmp_path / "c.json"
    result = CliRunner().invoke(main, ["discover", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["streams"]
