"""tap-sqquid: the Singer tap. Its messages, its settings and errors, and a Meltano-style run
piped into a real Singer target from PyPI (target-jsonl, in a venv of its own: its pins are
old), which is incremental with the state it gives back."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from sqquid_etl.singer import json_schema, load_state
from sqquid_etl.singer_cli import main, run_tap
from sqquid_etl.errors import ConfigError, StateError
from tests.expected import COMPARED, expected_tables
from tests.support import API_KEY

REPO = Path(__file__).resolve().parent.parent
TARGET_VENV = REPO / ".venv-singer-target"  # ignored by git; built once, then reused
TAP = Path(sys.executable).parent / "tap-sqquid"


@pytest.fixture(scope="session")
def target_jsonl() -> Path:
    """target-jsonl from PyPI in a venv of its own (its pins, jsonschema 2.6 and singer-python 5,
    conflict with ours), built by the README's test command (.ci/run) before the tests run: a test
    never reaches the network."""
    binary = TARGET_VENV / "bin" / "target-jsonl"
    if not binary.exists():
        pytest.skip(f"target-jsonl is not installed in {TARGET_VENV.name}/ (the README's test command builds it: "
                    f"python3 -m venv {TARGET_VENV.name} && {TARGET_VENV.name}/bin/pip install -q target-jsonl==0.1.4)")
    return binary


def _config(tmp_path: Path, sandbox, **extra) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"api_key": API_KEY, "base_url": sandbox.url, "rate": 0, **extra}), encoding="utf-8")
    return path


def _pipe(tmp_path: Path, target: Path, config: Path, *tap_args: str) -> dict:
    """tap-sqquid ... | target-jsonl: the files it wrote ({stream: [records]}) and the last state."""
    out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
    out.mkdir()
    target_config = tmp_path / "target.json"
    target_config.write_text(json.dumps({"destination_path": str(out), "do_timestamp_file": False}), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQQUID_")}
    tap = subprocess.Popen([str(TAP), "--config", str(config), *tap_args], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env)
    sink = subprocess.run([str(target), "--config", str(target_config)], stdin=tap.stdout, capture_output=True, timeout=120)
    tap.stdout.close()
    tap_err = tap.stderr.read().decode()
    assert tap.wait(timeout=60) == 0, tap_err
    assert sink.returncode == 0, sink.stderr.decode()[-2000:]
    states = [line for line in sink.stdout.decode().splitlines() if line.strip()]
    files = {p.stem: [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()] for p in out.glob("*.jsonl")}
    return {"files": files, "state": json.loads(states[-1]), "log": tap_err}


def _ts(value):
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


def _rows(records: list[dict], table: str) -> list[tuple]:
    columns = [c.strip() for c in COMPARED[table].split(",")]
    convert = {c: _ts for c in ("created_at", "updated_at")}
    return sorted((tuple(convert.get(c, lambda v: v)(r[c]) for c in columns) for r in records), key=repr)


def test_meltano_style_run_into_target_jsonl_then_incremental(make_sandbox, tmp_path, target_jsonl):
    sandbox = make_sandbox(orders=120, products=40)
    config = _config(tmp_path, sandbox)
    catalog = tmp_path / "catalog.json"
    catalog.write_text(subprocess.run([str(TAP), "--discover"], capture_output=True, check=True).stdout.decode(), encoding="utf-8")
    first = _pipe(tmp_path, target_jsonl, config, "--catalog", str(catalog))
    expected = expected_tables(sandbox.store)
    assert set(first["files"]) == set(COMPARED)  # every selected stream's tables
    for table in COMPARED:
        assert _rows(first["files"][table], table) == expected[table], table
    bookmarks = first["state"]["bookmarks"]
    assert bookmarks["orders"]["cursors"]["_"] and bookmarks["products"]["cursors"]["_"]

    state = tmp_path / "state.json"
    state.write_text(json.dumps(first["state"]), encoding="utf-8")
    new = sandbox.store.add_orders(5)
    second = _pipe(tmp_path, target_jsonl, config, "--catalog", str(catalog), "--state", str(state))
    orders = {r["id"] for r in second["files"].get("orders", [])}
    assert {o["id"] for o in new} <= orders
    since = _ts(bookmarks["orders"]["cursors"]["_"]) - timedelta(days=14)  # the bookmark less the re-read window
    assert orders == {o["id"] for o in sandbox.store.orders if _ts(o["created_at"]) >= since}  # incremental
    assert len(orders) < len(sandbox.store.orders)
    assert len(second["files"]["inventory"]) == len(expected["inventory"])  # listed by every sku kept in the state
    assert second["state"]["bookmarks"]["orders"]["cursors"]["_"] >= bookmarks["orders"]["cursors"]["_"]


def test_messages_schema_before_records_and_state_last(make_sandbox, tmp_path):
    sandbox = make_sandbox(orders=30, products=10)
    out = io.StringIO()
    config = {"api_key": API_KEY, "base_url": sandbox.url, "rate": 0, "streams": ["orders", "locations"]}
    assert run_tap(config, None, None, out) == 0
    messages = [json.loads(line) for line in out.getvalue().splitlines()]
    seen_schema = set()
    for m in messages:
        if m["type"] == "SCHEMA":
            seen_schema.add(m["stream"])
        elif m["type"] == "RECORD":
            assert m["stream"] in seen_schema
    assert messages[-1]["type"] == "STATE" and set(messages[-1]["value"]["bookmarks"]) == {"orders", "locations"}
    schema = next(m for m in messages if m["type"] == "SCHEMA" and m["stream"] == "orders")
    assert schema["key_properties"] == ["id"] and schema["bookmark_properties"] == ["created_at"]
    assert schema["schema"]["properties"]["created_at"]["format"] == "date-time"
    record = next(m["record"] for m in messages if m["type"] == "RECORD" and m["stream"] == "order_items")
    assert isinstance(record["price"], str)  # decimals exact, as text (singer.decimal)
    assert sum(m["type"] == "RECORD" and m["stream"] == "orders" for m in messages) == 30


def test_about_discover_and_errors(tmp_path):
    runner = CliRunner()
    about = json.loads(runner.invoke(main, ["--about"]).stdout)
    assert about["name"] == "tap-sqquid" and "discover" in about["capabilities"]
    assert any(s["name"] == "api_key" and s["sensitive"] for s in about["settings"])
    catalog = json.loads(runner.invoke(main, ["--discover"]).stdout)
    assert {s["tap_stream_id"] for s in catalog["streams"]} >= {"orders", "inventory"}
    assert runner.invoke(main, []).exit_code == 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"api_key": "s3cret", "pasword": "x"}), encoding="utf-8")
    result = runner.invoke(main, ["--config", str(bad)])
    assert result.exit_code == 2 and "unknown setting 'pasword'" in result.stderr and "s3cret" not in result.stderr
    bad.write_text(json.dumps({"api_key": 12345}), encoding="utf-8")
    result = runner.invoke(main, ["--config", str(bad)])
    assert result.exit_code == 2 and "api_key must be str" in result.stderr and "12345" not in result.stderr


def test_state_file_errors_name_the_file(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(StateError, match="--state .*state.json: not JSON"):
        load_state(path)
    path.write_text(json.dumps({"bookmarks": {"orders": {"cursors": {"_": "yesterday"}}}}), encoding="utf-8")
    with pytest.raises(StateError, match="stream 'orders'"):
        load_state(path)
    path.write_text("{}", encoding="utf-8")
    assert load_state(path) == ({}, {})
    with pytest.raises(ConfigError):
        run_tap({"rate": -1}, None, None, io.StringIO())


def test_json_schema_of_arrow_types():
    import pyarrow as pa

    assert json_schema(pa.decimal128(18, 4))["format"] == "singer.decimal"
    assert json_schema(pa.list_(pa.struct([("label", pa.string())])))["items"]["properties"]["label"] == {"type": ["string", "null"]}
    assert json_schema(pa.timestamp("us", tz="UTC"))["format"] == "date-time"


def test_discover_to_stdout_is_the_taps_catalog(tmp_path, monkeypatch):
    from sqquid_etl.cli import main as cli

    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(cli, ["discover", "--output", "-"])
    assert out.exit_code == 0 and not (tmp_path / "-").exists()
    assert json.loads(out.stdout) == json.loads(CliRunner().invoke(main, ["--discover"]).stdout)


def test_meltano_example_names_the_taps_settings_and_capabilities():
    import yaml

    from sqquid_etl.singer_cli import SETTINGS, about

    project = yaml.safe_load((REPO / "examples" / "meltano" / "meltano.yml").read_text(encoding="utf-8"))
    tap = next(p for p in project["plugins"]["extractors"] if p["name"] == "tap-sqquid")
    assert tap["executable"] == "tap-sqquid" and set(tap["capabilities"]) == set(about()["capabilities"])
    assert {s["name"] for s in tap["settings"]} <= set(SETTINGS) and set(tap["config"]) <= set(SETTINGS)
    assert all(s.get("sensitive") for s in tap["settings"] if s["name"] in ("api_key", "password"))


def test_a_target_that_stops_reading_is_an_error_not_a_traceback(make_sandbox, tmp_path):
    sandbox = make_sandbox(orders=300, products=20)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQQUID_")}
    tap = subprocess.Popen([str(TAP), "--config", str(_config(tmp_path, sandbox, streams=["orders"]))],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    tap.stdout.readline()  # the target reads one message, then goes away
    tap.stdout.close()
    assert tap.wait(timeout=60) == 1
    err = tap.stderr.read().decode()
    assert "the target stopped reading" in err and "Traceback" not in err


def test_small_memory_limit_and_batches_emit_every_row_once(make_sandbox, tmp_path, monkeypatch):
    sandbox = make_sandbox(orders=1500, products=30)
    monkeypatch.setenv("SQQUID_DUCKDB_MEMORY_LIMIT", "16MB")
    monkeypatch.setenv("SQQUID_FLUSH_ROWS", "100")  # many staged batches
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    assert run_tap({"api_key": API_KEY, "base_url": sandbox.url, "rate": 0, "streams": ["orders"]}, None, None, out) == 0
    ids = [json.loads(line)["record"]["id"] for line in out.getvalue().splitlines() if '"stream":"orders"' in line
           and '"RECORD"' in line]
    assert sorted(ids) == sorted(o["id"] for o in sandbox.store.orders)  # each once, none missing
    assert list(tmp_path.iterdir()) == []  # nothing spilled or staged into the working directory
