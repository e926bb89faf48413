"""Bad environments: the tool never writes into what it did not make, looking never writes, edge
values are a clear `error:` with the documented exit code, and a run tells one truth about
each stream. (The fuzzers over the same ground: tests/test_fuzz_cli.py.)"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from sqquid_etl import extract
from sqquid_etl.catalog import build_catalog
from sqquid_etl.cli import main
from sqquid_etl.errors import ApiError, ConfigError
from sqquid_etl.reverse_journal import Journal
from sqquid_etl.state import StreamState, format_param, format_timestamp, parse_duration, window_start
from tests.support import API_KEY, PASSWORD, USERNAME, make_client


def run(*args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], **kw)


def snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` with its content's hash (a symlink: its target): what a test
    compares to show nothing changed."""
    found = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            found[key] = "-> " + str(path.readlink())
        elif path.is_file():
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[key] = "dir"
    return found


def clean_error(out, code: int, *words: str) -> None:
    """One `error:` line naming what is wrong, the documented exit code, no traceback."""
    assert out.exit_code == code, (out.exit_code, out.output)
    assert out.exception is None or isinstance(out.exception, SystemExit), out.exception
    assert "error: " in out.stderr.lower() and "Traceback" not in out.output and "unexpected" not in out.stderr
    for word in words:
        assert word in out.stderr, (word, out.stderr)


@pytest.fixture
def user_files(tmp_path, monkeypatch):
    """A working directory holding the user's own things: a DuckDB database, a directory with
    a file, and a file."""
    monkeypatch.chdir(tmp_path)
    with duckdb.connect(str(tmp_path / "mine.duckdb")) as conn:
        conn.execute("CREATE TABLE orders AS SELECT 1 AS id")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine\n")
    (tmp_path / "plain.txt").write_text("mine too\n")
    return tmp_path


# -- what the tool did not make is never written ------------------------------------------------


@pytest.mark.parametrize("command", [["state", "show"], ["state", "show", "orders", "--json"],
                                     ["state", "set", "orders", "--cursor", "2024-01-01"], ["state", "reset", "--yes"]])
@pytest.mark.parametrize("target", [["--duckdb", "mine.duckdb"], ["--parquet", "notes"], ["--duckdb", "plain.txt"],
                                    ["--duckdb", "notes"], ["--parquet", "plain.txt"]])
def test_state_commands_refuse_what_no_extract_made_and_change_nothing(user_files, command, target):
    before = snapshot(user_files)
    out = run(*command, *target)
    clean_error(out, 2, target[1])
    assert snapshot(user_files) == before


def test_extract_into_a_users_duckdb_is_refused_and_leaves_it_as_it_is(user_files, sandbox):
    before = snapshot(user_files)
    with pytest.raises(ConfigError, match="did not make .*orders"):
        extract(["locations"], duckdb=user_files / "mine.duckdb", client=make_client(sandbox))
    assert snapshot(user_files) == before
    # an empty database (no table at all) holds nothing of the user's: it is used
    duckdb.connect(str(user_files / "empty.duckdb")).close()
    assert extract(["locations"], duckdb=user_files / "empty.duckdb", client=make_client(sandbox)).ok


@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_state_show_of_an_extract_writes_nothing(kind, sandbox, tmp_path):
    location = tmp_path / ("s.duckdb" if kind == "duckdb" else "lake")
    assert extract(["orders", "locations"], client=make_client(sandbox), **{kind: location}).ok
    before = snapshot(tmp_path)
    for args in (["state", "show"], ["state", "show", "orders", "--json"]):
        out = run(*args, f"--{kind}", location)
        assert out.exit_code == 0 and "orders" in out.stdout, out.output
    assert snapshot(tmp_path) == before


# -- edge values: a clear error, the documented exit code, nothing stored -------------------------


@pytest.mark.parametrize("option", [["--rate", "1e400"], ["--rate", "inf"], ["--rate", "nan"], ["--rate", "-1"],
                                    ["--burst", "9" * 30], ["--burst", "0"], ["--lookback", "1" * 40 + "d"],
                                    ["--lookback", "99999999999d"], ["--lookback", "1e5d"],
                                    ["--start-date", "9999-12-31T23:59:59-05:00"], ["--start-date", "2999-01-01"]])
def test_overflowing_options_are_a_clear_error_and_create_nothing(option, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = run("extract", "--streams", "orders", "--api-key", "k", "--base-url", "http://127.0.0.1:9", *option)
    clean_error(out, 2, option[0])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("variable, value", [("SQQUID_DUCKDB_THREADS", "9" * 30), ("SQQUID_FLUSH_ROWS", "²"),
                                             ("SQQUID_DUCKDB_THREADS", "0"), ("SQQUID_DUCKDB_MEMORY_LIMIT", "lots")])
def test_overflowing_tuning_is_a_clear_error(variable, value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = run("extract", "--streams", "orders", "--api-key", "k", "--base-url", "http://127.0.0.1:9", env={variable: value})
    clean_error(out, 2)
    assert list(tmp_path.iterdir()) == []


def test_durations_and_dates_at_the_edges():
    with pytest.raises(ConfigError, match="too long"):
        parse_duration("1" * 400 + "d")
    early = datetime(999, 1, 1, tzinfo=timezone.utc)
    assert format_timestamp(early) == "0999-01-01T00:00:00.000000Z"
    assert format_param(early) == "0999-01-01T00:00:00+00:00"
    # a cursor an earlier version stored unpadded is read as the year it is, not as corrupt
    assert StreamState.from_json('{"cursors": {"_": "999-01-01T00:00:00.000000Z"}}', "x").cursors
    first = format_timestamp(datetime(1, 1, 1, tzinfo=timezone.utc))
    assert window_start(first, timedelta(days=1), None) is None  # not an overflow: from the beginning


@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_a_cursor_before_year_1000_round_trips_and_the_next_run_works(kind, sandbox, tmp_path):
    location = tmp_path / ("s.duckdb" if kind == "duckdb" else "lake")
    assert extract(["orders"], client=make_client(sandbox), **{kind: location}).ok
    out = run("state", "set", "orders", "--cursor", "0999-01-01", f"--{kind}", location)
    assert out.exit_code == 0 and "0999-01-01T00:00:00.000000Z" in out.stdout, out.output
    shown = json.loads(run("state", "show", "orders", "--json", f"--{kind}", location).stdout)
    assert shown["orders"]["cursors"] == {"_": "0999-01-01T00:00:00.000000Z"}
    again = extract(["orders"], client=make_client(sandbox), **{kind: location})
    assert again.ok and again.stream("orders").rows["orders"] == len(sandbox.store.orders)


def test_a_cursor_in_the_future_is_refused_and_one_stored_is_warned_about_every_run(sandbox, tmp_path, caplog):
    db = tmp_path / "s.duckdb"
    assert extract(["orders"], duckdb=db, client=make_client(sandbox)).ok
    clean_error(run("state", "set", "orders", "--cursor", "2999-01-01", "--duckdb", db), 2, "after now")
    with duckdb.connect(str(db)) as conn:  # as an older version, or a hand, could have stored it
        conn.execute("UPDATE _sqquid_state SET state = ? WHERE stream = 'orders'",
                     [StreamState(cursors={"_": "2999-01-01T00:00:00.000000Z"}).to_json()])
    for _ in range(2):
        with caplog.at_level(logging.WARNING, logger="sqquid_etl"):
            result = extract(["orders"], duckdb=db, client=make_client(sandbox))
        orders = result.stream("orders")
        assert result.ok and orders.status == "warning" and "after now" in orders.message
        assert "2999-01-01" in caplog.text and "state set orders" in caplog.text
        caplog.clear()


def test_a_journal_with_undecodable_bytes_is_a_clear_error_and_nothing_is_sent(tmp_path):
    from sqquid_etl.sandbox import Sandbox, SandboxConfig

    csv = tmp_path / "inv.csv"
    csv.write_text("sku,qty_on_hand\n007,3\n")
    journal = tmp_path / "j.jsonl"
    journal.write_bytes(b'{"event":"batch","input":"x","batch":"y"}\n\xff\xfe oops\n')
    before = journal.read_bytes()
    with Sandbox(SandboxConfig(seed=1, orders=10, products=20, rate=None)) as sb:
        out = CliRunner().invoke(main, ["load-inventory", str(csv), "--mode", "partial", "--journal", str(journal),
                                        "--base-url", sb.url, "--rate", "0"], env={"SQQUID_API_KEY": API_KEY})
        clean_error(out, 7, "j.jsonl", "line 2", "not UTF-8")
        assert sb.stats.by_route.get("PATCH /v1/inventory/partial", 0) == 0
    assert journal.read_bytes() == before
    with pytest.raises(ConfigError, match="cannot be read"):
        Journal(tmp_path, "x")  # a directory


def test_a_duckdb_state_table_missing_a_column_is_a_clear_error_that_reset_repairs(sandbox, tmp_path):
    db = tmp_path / "s.duckdb"
    assert extract(["orders"], duckdb=db, client=make_client(sandbox)).ok
    with duckdb.connect(str(db)) as conn:
        conn.execute("ALTER TABLE _sqquid_state DROP COLUMN state")
    env = {"SQQUID_BASE_URL": sandbox.url, "SQQUID_API_KEY": API_KEY}
    clean_error(run("extract", "--streams", "orders", "--rate", "0", "--duckdb", db, env=env), 7, "_sqquid_state", "state reset")
    clean_error(run("state", "show", "--duckdb", db), 7, "_sqquid_state")
    clean_error(run("state", "set", "orders", "--cursor", "2024-01-01", "--duckdb", db), 7, "state reset")
    assert run("state", "reset", "--yes", "--duckdb", db).exit_code == 0
    assert run("extract", "--streams", "orders", "--rate", "0", "--duckdb", db, env=env).exit_code == 0


def test_a_parquet_state_path_that_is_a_directory_is_a_clear_error_and_is_left_alone(sandbox, tmp_path):
    lake = tmp_path / "lake"
    assert extract(["orders"], parquet=lake, client=make_client(sandbox)).ok
    state = lake / "_sqquid_state.json"
    state.unlink()
    state.mkdir()
    (state / "keep.txt").write_text("the user's")
    env = {"SQQUID_BASE_URL": sandbox.url, "SQQUID_API_KEY": API_KEY}
    clean_error(run("extract", "--streams", "orders", "--rate", "0", "--parquet", lake, env=env), 7, "_sqquid_state.json")
    for args in (["state", "show"], ["state", "set", "orders", "--cursor", "2024-01-01"], ["state", "reset", "--yes"]):
        clean_error(run(*args, "--parquet", lake), 7, "_sqquid_state.json")
    assert (state / "keep.txt").read_text() == "the user's"


# -- a run tells one truth -------------------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True])
def test_a_failure_after_the_commit_does_not_report_the_stored_stream_as_failed(strict, sandbox, tmp_path, monkeypatch):
    import sqquid_etl.pipeline as pipeline

    def count_fails(*args, **kwargs):
        raise ApiError("GET /v1/orders/count failed: HTTP 500 boom", status=500, endpoint="GET /v1/orders/count")

    monkeypatch.setattr(pipeline, "find_gaps", count_fails)
    db = tmp_path / "s.duckdb"
    result = extract(["orders"], duckdb=db, client=make_client(sandbox), strict=strict)
    orders = result.stream("orders")
    assert "committed" in orders.message and "HTTP 500" in orders.message
    assert (orders.status, result.exit_code) == (("failed", 4) if strict else ("warning", 0))
    with duckdb.connect(str(db), read_only=True) as conn:
        runs = conn.execute("SELECT status, message, rows FROM _sqquid_runs").fetchall()
        stored = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
        state = conn.execute("SELECT state FROM _sqquid_state WHERE stream = 'orders'").fetchone()
    assert runs == [(orders.status, orders.message, sum(orders.rows.values()))]  # the run row says the same
    assert stored == len(sandbox.store.orders) and state is not None


def _set_state(db: Path, stream: str, text: str | None, rows: int = 1) -> None:
    with duckdb.connect(str(db)) as conn:
        conn.execute("DELETE FROM _sqquid_state WHERE stream = ?", [stream])
        for _ in range(rows if text is not None else 0):
            conn.execute("INSERT INTO _sqquid_state VALUES (?, ?, now())", [stream, text])


def test_one_streams_corrupt_state_fails_that_stream_and_its_dependents_only(sandbox, tmp_path):
    db = tmp_path / "s.duckdb"
    streams = ["orders", "products", "inventory", "locations"]
    assert extract(streams, duckdb=db, client=make_client(sandbox)).ok
    _set_state(db, "orders", '{"cursors": {"_": "not a date"}}')
    _set_state(db, "products", "{ truncated")
    result = extract(streams, duckdb=db, client=make_client(sandbox))
    status = {s.stream: (s.status, s.exit_code) for s in result.streams}
    assert status == {"orders": ("failed", 7), "products": ("failed", 7), "inventory": ("failed", 7), "locations": ("ok", 0)}
    assert "depends on stream 'products'" in result.stream("inventory").message
    assert result.exit_code == 7
    # `state show STREAM` of a sound stream still works; of all: the corrupt one named
    assert run("state", "show", "locations", "--duckdb", db).exit_code == 0
    clean_error(run("state", "show", "--duckdb", db), 7, "orders")


def test_duplicated_state_rows_are_corruption_and_a_deleted_one_is_said(sandbox, tmp_path):
    db = tmp_path / "s.duckdb"
    assert extract(["orders"], duckdb=db, client=make_client(sandbox)).ok
    state = StreamState(cursors={"_": "2024-01-01T00:00:00.000000Z"}).to_json()
    _set_state(db, "orders", state, rows=2)
    result = extract(["orders"], duckdb=db, client=make_client(sandbox))
    assert result.exit_code == 7 and "2 rows, one expected" in result.stream("orders").message
    assert run("state", "set", "orders", "--cursor", "2024-01-01", "--duckdb", db).exit_code == 0  # the fix
    _set_state(db, "orders", None)
    result = extract(["orders"], duckdb=db, client=make_client(sandbox))
    orders = result.stream("orders")
    assert result.ok and orders.status == "warning" and "no stored state while table orders holds" in orders.message


def test_a_parquet_state_naming_a_stream_twice_is_corruption(sandbox, tmp_path):
    lake = tmp_path / "lake"
    assert extract(["orders", "locations"], parquet=lake, client=make_client(sandbox)).ok
    state = lake / "_sqquid_state.json"
    entry = json.dumps({"cursors": {"_": "2024-01-01T00:00:00.000000Z"}})
    state.write_text('{"orders": %s, "orders": %s}' % (entry, entry))
    result = extract(["orders", "locations"], parquet=lake, client=make_client(sandbox))
    assert result.stream("orders").exit_code == 7 and "'orders' given more than once" in result.stream("orders").message


def _catalog(tmp_path: Path, change) -> Path:
    catalog = build_catalog()
    change(catalog["streams"])
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(catalog))
    return path


def _select(streams: list, name: str, value) -> None:
    entry = next(e for e in streams if e["tap_stream_id"] == name)
    entry["metadata"][0]["metadata"]["selected"] = value


@pytest.mark.parametrize("change, message", [
    (lambda s: _select(s, "orders", "false"), "'selected' is 'false'; expected true or false"),
    (lambda s: s.append(json.loads(json.dumps(s[0]))), "listed more than once"),
    (lambda s: s[0]["metadata"].append(json.loads(json.dumps(s[0]["metadata"][1]))), "given more than once"),
])
def test_catalog_mistakes_are_refused_clearly(change, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _catalog(tmp_path, change)
    out = run("extract", "--catalog", path, "--api-key", "k", "--base-url", "http://127.0.0.1:9")
    clean_error(out, 2, message)


def test_streams_a_catalog_deselects_are_said_to_be_deselected(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _catalog(tmp_path, lambda s: _select(s, "orders", False))
    for option in (["--streams", "orders"], ["--full-refresh", "orders"]):
        out = run("extract", "--catalog", path, *option, "--api-key", "k", "--base-url", "http://127.0.0.1:9")
        clean_error(out, 2, "not selected in catalog", option[0])
        assert "unknown stream" not in out.stderr


def test_the_username_is_never_logged_even_at_debug(sandbox, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"SQQUID_BASE_URL": sandbox.url, "SQQUID_USERNAME": USERNAME, "SQQUID_PASSWORD": PASSWORD}
    out = run("-vv", "extract", "--streams", "locations", "--rate", "0", "--no-progress", env=env)
    assert out.exit_code == 0, out.output
    assert "sha256:" in out.output and USERNAME not in out.output and USERNAME.split("@")[0] not in out.output
    bad = run("extract", "--streams", "locations", "--rate", "0", env={**env, "SQQUID_PASSWORD": "wrong-password"})
    clean_error(bad, 3, "login refused", "sha256:")
    assert USERNAME not in bad.output


def test_an_unexpected_error_is_one_error_line_never_a_traceback(monkeypatch, tmp_path):
    import sqquid_etl.state_commands as commands

    def broken(*args, **kwargs):
        raise RuntimeError("something no one foresaw")

    monkeypatch.setattr(commands, "open_state_destination", broken)
    monkeypatch.chdir(tmp_path)
    out = run("state", "show")
    assert out.exit_code == 1 and "error: unexpected RuntimeError: something no one foresaw" in out.stderr
    assert "Traceback" not in out.output


def test_a_bug_in_one_stream_fails_that_stream_and_the_others_are_stored(sandbox, tmp_path, monkeypatch):
    """An error no part of the tool raised on purpose fails its stream (exit 1, said as a bug, no
    traceback, its state not advanced); the streams after it run and are stored."""
    import sqquid_etl.pipeline as pipeline

    planned = pipeline.plan_windows

    def broken(stream, *args, **kwargs):
        if stream.name == "locations":  # it runs before orders
            raise RuntimeError("something no one foresaw")
        return planned(stream, *args, **kwargs)

    monkeypatch.setattr(pipeline, "plan_windows", broken)
    monkeypatch.chdir(tmp_path)
    env = {"SQQUID_BASE_URL": sandbox.url, "SQQUID_API_KEY": API_KEY}
    out = run("extract", "--streams", "orders,locations", "--rate", "0", "--no-progress", env=env)
    assert out.exit_code == 1 and "Traceback" not in out.output, out.output
    assert "unexpected RuntimeError: something no one foresaw (a bug of sqquid-etl" in out.output
    with duckdb.connect("sqquid.duckdb", read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchall()[0][0] == len(sandbox.store.orders)
        assert conn.execute("SELECT stream FROM _sqquid_state ORDER BY 1").fetchall() == [("orders",)]


# -- overlapping paths: one option pointing at what another names -------------------------------------


@pytest.fixture
def extracted(sandbox, tmp_path, monkeypatch):
    """A working directory with a DuckDB extract, a Parquet extract, a config and a catalog."""
    monkeypatch.chdir(tmp_path)
    assert extract(["locations"], duckdb=tmp_path / "s.duckdb", client=make_client(sandbox)).ok
    assert extract(["locations"], parquet=tmp_path / "lake", client=make_client(sandbox)).ok
    (tmp_path / "sqquid.toml").write_text('[extract]\nstreams = ["locations"]\n')
    (tmp_path / "catalog.json").write_text(json.dumps(build_catalog()))
    return tmp_path


@pytest.mark.parametrize("args, code", [
    (["extract", "--config", "s.duckdb"], 2),  # the database as the config file
    (["extract", "--catalog", "s.duckdb"], 2),  # ... as the catalog
    (["extract", "--catalog", "sqquid.toml"], 2),  # the config as the catalog
    (["extract", "--duckdb", "catalog.json"], 2),  # the catalog as the database
    (["extract", "--duckdb", "sqquid.toml"], 2),
    (["extract", "--duckdb", "s.duckdb", "--parquet", "lake"], 2),
    (["discover", "--output", "s.duckdb"], 2),  # only a catalog is replaced
    (["discover", "--output", "sqquid.toml"], 2),
    (["state", "show", "--duckdb", "catalog.json"], 2),
    (["state", "reset", "--yes", "--parquet", "lake/locations"], 2),  # a table of the extract, not the extract
    (["sql", "DROP TABLE locations", "--duckdb", "s.duckdb"], 1),  # looking is read-only
])
def test_overlapping_paths_are_refused_and_change_nothing(extracted, sandbox, args, code):
    before = snapshot(extracted)
    out = run(*args, "--api-key", API_KEY, "--base-url", sandbox.url) if args[0] == "extract" else run(*args)
    clean_error(out, code)
    assert snapshot(extracted) == before


def test_a_users_directory_named_like_the_staging_directory_is_left_alone(sandbox, tmp_path):
    staging = tmp_path / "s.duckdb.staging"
    staging.mkdir()
    (staging / "mine.txt").write_text("the user's")
    with pytest.raises(ConfigError, match="did not stage"):
        extract(["locations"], duckdb=tmp_path / "s.duckdb", client=make_client(sandbox))
    assert (staging / "mine.txt").read_text() == "the user's" and not (tmp_path / "s.duckdb").exists()
    (staging / "mine.txt").unlink()
    (staging / "orders").mkdir()
    (staging / "orders" / "orders.parquet").write_bytes(b"a crashed run's page")
    assert extract(["locations"], duckdb=tmp_path / "s.duckdb", client=make_client(sandbox)).ok
    assert not staging.exists()  # a crashed run's pages are removed


@pytest.mark.parametrize("args", [["demo", "--orders", "-1"], ["demo", "--products", "9" * 20], ["demo", "--rate", "-2"],
                                  ["sandbox", "--port", "99999"], ["sandbox", "--latency", "-1"],
                                  ["sandbox", "--token-ttl", "0"], ["sandbox", "--orders", "99999999999"]])
def test_demo_and_sandbox_options_out_of_range_are_refused_before_anything_starts(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clean_error(run(*args), 2, args[1])
    assert list(tmp_path.iterdir()) == []


def test_state_show_of_an_iceberg_extract_writes_nothing(sandbox, tmp_path):
    pytest.importorskip("pyiceberg")
    from sqquid_etl.pipeline import extract as extract_into

    assert extract_into(["orders", "locations"], iceberg=str(tmp_path / "wh"), client=make_client(sandbox)).ok
    before = snapshot(tmp_path)
    out = run("state", "show", "orders", "--json", "--iceberg", tmp_path / "wh")
    assert out.exit_code == 0 and json.loads(out.stdout)["orders"]["cursors"], out.output
    assert snapshot(tmp_path) == before
