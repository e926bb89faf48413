"""`sqquid-etl state show|set|reset` on DuckDB and Parquet, and corrupt state: a clear error
naming the file, never a silent full re-extract."""

from __future__ import annotations

import json

import duckdb
import pytest
from click.testing import CliRunner

from sqquid_etl import extract
from sqquid_etl.cli import main
from tests.support import API_KEY, make_client

STREAMS = ["orders", "shipment_items", "locations"]


@pytest.fixture(params=["duckdb", "parquet"])
def extracted(request, make_sandbox, tmp_path, monkeypatch):
    """A destination holding one extract, and the CLI options that name it."""
    monkeypatch.chdir(tmp_path)
    sandbox = make_sandbox(orders=60, products=20)
    path = tmp_path / ("s.duckdb" if request.param == "duckdb" else "lake")
    assert extract(STREAMS, client=make_client(sandbox), **{request.param: path}).ok
    return request.param, path, [f"--{request.param}", str(path)], sandbox


def run(*args, **kw):
    return CliRunner().invoke(main, list(args), **kw)


def _cursor(sandbox):
    return max(o["created_at"] for o in sandbox.store.orders).replace(".000Z", ".000000Z")


def test_show_set_reset(extracted):
    kind, path, dest, sandbox = extracted
    shown = run("state", "show", *dest)
    assert shown.exit_code == 0, shown.output
    assert _cursor(sandbox) in shown.stdout and "toship" in shown.stdout
    assert "buffers" in shown.stdout and "no state" in shown.stdout  # not extracted yet
    as_json = json.loads(run("state", "show", "orders", *dest, "--json").stdout)
    assert as_json["orders"]["cursors"] == {"_": _cursor(sandbox)}

    out = run("state", "set", "orders", "--cursor", "2024-03-01T10:00:00+02:00", *dest)
    assert out.exit_code == 0, out.output
    assert "2024-03-01T08:00:00.000000Z" in out.stdout
    assert json.loads(run("state", "show", "orders", *dest, "--json").stdout)["orders"]["cursors"] == {
        "_": "2024-03-01T08:00:00.000000Z"}

    out = run("state", "set", "shipment_items", "--cursor", "2024-01-01", "--partition", "flagged", *dest)
    assert out.exit_code == 0, out.output
    cursors = json.loads(run("state", "show", "shipment_items", *dest, "--json").stdout)["shipment_items"]["cursors"]
    assert cursors["flagged"] == "2024-01-01T00:00:00.000000Z" and cursors["toship"] == _cursor(sandbox)

    for bad, message in ((["locations", "--cursor", "2024-01-01"], "full refresh"),
                         (["orders", "--cursor", "2024-01-01", "--partition", "x"], "not partitioned"),
                         (["shipment_items", "--cursor", "2024-01-01", "--partition", "lost"], "has partitions"),
                         (["orders", "--cursor", "yesterday"], "not an ISO 8601"),
                         (["nope", "--cursor", "2024-01-01"], "unknown stream")):
        out = run("state", "set", *bad, *dest)
        assert out.exit_code == 2 and message in out.stderr, (bad, out.output)

    refused = run("state", "reset", "orders", *dest, input="n\n")
    assert refused.exit_code == 1 and "orders" in json.loads(run("state", "show", *dest, "--json").stdout)
    out = run("state", "reset", "orders", *dest, input="y\n")
    assert out.exit_code == 0 and "state reset" in out.stdout
    left = json.loads(run("state", "show", *dest, "--json").stdout)
    assert "orders" not in left and "shipment_items" in left
    out = run("state", "reset", *dest, "--yes")
    assert out.exit_code == 0 and "shipment_items" in out.stdout
    assert json.loads(run("state", "show", *dest, "--json").stdout) == {}


def test_set_cursor_moves_the_next_extract_window(extracted):
    kind, path, dest, sandbox = extracted
    run("state", "set", "orders", "--cursor", "2000-01-01", *dest)
    env = {"SQQUID_BASE_URL": sandbox.url, "SQQUID_API_KEY": API_KEY}
    out = run("--log-format", "json", "extract", "--streams", "orders", "--rate", "0", "--reread", "orders=0", *dest,
              env=env)  # the lookback alone (no re-read window)
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)
    assert summary["streams"][0]["rows"]["orders"] == len(sandbox.store.orders)  # everything since 2000
    assert summary["streams"][0]["window_start"].startswith("1999-12-31T23:59:59")


def _corrupt(kind, path):
    if kind == "duckdb":
        with duckdb.connect(str(path)) as conn:
            conn.execute("UPDATE _sqquid_state SET state = '{\"cursors\": {\"_\": \"not a date\"}}' WHERE stream = 'orders'")
        return str(path)
    (path / "_sqquid_state.json").write_text("{ truncated")
    return str(path / "_sqquid_state.json")


def test_corrupt_state_is_a_clear_error_never_a_full_reextract(extracted):
    kind, path, dest, sandbox = extracted
    named = _corrupt(kind, path)
    sandbox.stats.reset()
    env = {"SQQUID_BASE_URL": sandbox.url, "SQQUID_API_KEY": API_KEY}
    out = run("extract", "--streams", "orders", "--rate", "0", *dest, env=env)
    assert out.exit_code == 7, out.output
    assert named in out.stderr and "corrupt state" in out.stderr and "state reset" in out.stderr
    assert sandbox.stats.by_route.get("GET /v1/orders", 0) == 0  # nothing was re-extracted
    shown = run("state", "show", *dest)
    assert shown.exit_code == 7 and named in shown.stderr
    # the fix the message gives works
    fix = ["state", "set", "orders", "--cursor", "2024-01-01"] if kind == "duckdb" else ["state", "reset", "--yes"]
    assert run(*fix, *dest).exit_code == 0
    assert run("state", "show", *dest).exit_code == 0
    assert run("extract", "--streams", "orders", "--rate", "0", *dest, env=env).exit_code == 0


def test_state_of_a_missing_destination_is_an_error_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = run("state", "show", "--duckdb", "missing.duckdb")
    assert out.exit_code == 2 and "missing.duckdb" in out.stderr
    out = run("state", "show")  # default ./sqquid.duckdb
    assert out.exit_code == 2 and "sqquid.duckdb" in out.stderr
    assert list(tmp_path.iterdir()) == []
