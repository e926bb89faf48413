"""`sqquid.toml`: a scheduled job is `sqquid-etl extract`; options override the file; secrets
stay out of it."""

from __future__ import annotations

import json

import duckdb
import pytest
from click.testing import CliRunner

from sqquid_etl.cli import main
from sqquid_etl.config import load_config
from sqquid_etl.errors import ConfigError
from tests.support import API_KEY


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def _toml(sandbox, extra=""):
    return f"""
[api]
base_url = "{sandbox.url}"
api_key_env = "MY_SQQUID_KEY"
rate = 0

[destination]
duckdb = "data/warehouse.duckdb"

[extract]
streams = ["orders", "locations"]
start_date = "2000-01-01"
{extra}
"""


def _tables(db):
    with duckdb.connect(str(db), read_only=True) as conn:
        return {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_type='BASE TABLE'").fetchall()}


def test_default_sqquid_toml_makes_extract_one_command(make_sandbox, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SQQUID_API_KEY", raising=False)
    monkeypatch.delenv("SQQUID_BASE_URL", raising=False)
    sandbox = make_sandbox(orders=40, products=10)
    (tmp_path / "data").mkdir()
    _write(tmp_path / "sqquid.toml", _toml(sandbox))
    out = CliRunner().invoke(main, ["extract"], env={"MY_SQQUID_KEY": API_KEY})
    assert out.exit_code == 0, out.output
    db = tmp_path / "data" / "warehouse.duckdb"
    assert {"orders", "order_items", "locations", "_sqquid_state"} <= _tables(db)
    assert "products" not in _tables(db)
    # the state commands read the destination from the file too
    shown = CliRunner().invoke(main, ["state", "show", "--json"])
    assert shown.exit_code == 0 and set(json.loads(shown.stdout)) == {"orders", "locations"}

    # command-line options override the file
    out = CliRunner().invoke(main, ["extract", "--streams", "buffers", "--duckdb", "other.duckdb"],
                             env={"MY_SQQUID_KEY": API_KEY})
    assert out.exit_code == 0, out.output
    assert "buffers" in _tables(tmp_path / "other.duckdb") and "orders" not in _tables(tmp_path / "other.duckdb")

    # the variable the file names must be set: a clear error naming it
    out = CliRunner().invoke(main, ["extract"], env={"MY_SQQUID_KEY": ""})
    assert out.exit_code == 2 and "$MY_SQQUID_KEY" in out.stderr


def test_config_from_option_with_relative_paths(make_sandbox, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sandbox = make_sandbox(orders=30, products=10)
    job = tmp_path / "job"
    job.mkdir()
    (job / "data").mkdir()
    _write(job / "nightly.toml", _toml(sandbox, 'catalog = "cat.json"'))
    CliRunner().invoke(main, ["discover", "--output", str(job / "cat.json")])
    catalog = json.loads((job / "cat.json").read_text())
    for entry in catalog["streams"]:
        entry["metadata"][0]["metadata"]["selected"] = entry["stream"] == "locations"
    (job / "cat.json").write_text(json.dumps(catalog))
    out = CliRunner().invoke(main, ["extract", "--config", str(job / "nightly.toml"), "--streams", "locations"],
                             env={"MY_SQQUID_KEY": API_KEY})
    assert out.exit_code == 0, out.output
    assert "locations" in _tables(job / "data" / "warehouse.duckdb")  # relative to the file


@pytest.mark.parametrize("text, message", [
    ('[api]\napi_key = "abc123"\n', "secrets do not belong in the file"),
    ('[api]\npassword = "hunter22"\n', "password_env"),
    ('[api]\nbase_urll = "x"\n', "unknown key"),
    ('[extrct]\n', "unknown section"),
    ('[api]\nrate = "fast"\n', "expected int or float"),
    ('[extract]\nstrict = 1\n', "expected bool"),
    ('[destination]\nduckdb = "a"\nparquet = "b"\n', "both duckdb and parquet"),
    ("[api\n", "not valid TOML"),
])
def test_bad_config_is_a_config_error_naming_file_and_key(tmp_path, text, message):
    path = _write(tmp_path / "sqquid.toml", text)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert "abc123" not in str(err.value) and "hunter22" not in str(err.value)


def test_missing_explicit_config_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(main, ["extract", "--config", "nope.toml"])
    assert out.exit_code == 2 and "nope.toml" in out.stderr


def test_the_cli_allocates_arrow_buffers_from_the_system_allocator():
    """The extract command takes Arrow's buffers from the system allocator (unless the user chose
    one with ARROW_DEFAULT_MEMORY_POOL): it gives freed memory back (bench/memory.py). Importing
    the CLI changes nothing: no environment variable, no pyarrow."""
    import os
    import subprocess
    import sys

    script = (
        "import os, sys, sqquid_etl.cli as c; before = ('pyarrow' in sys.modules, 'ARROW_DEFAULT_MEMORY_POOL' in os.environ); "
        "c._use_system_allocator(); import pyarrow; print(*before, pyarrow.default_memory_pool().backend_name)"
    )
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.split() == ["False", "False", "system"], done.stderr
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**env, "ARROW_DEFAULT_MEMORY_POOL": "jemalloc"})
    assert done.stdout.split()[2] in ("jemalloc", "mimalloc"), done.stderr  # the user's choice is left alone


def test_tuning_comes_from_the_file_unless_the_environment_sets_it(tmp_path, monkeypatch):
    for name in ("SQQUID_DUCKDB_MEMORY_LIMIT", "SQQUID_DUCKDB_THREADS", "SQQUID_FLUSH_ROWS"):
        monkeypatch.delenv(name, raising=False)
    path = _write(tmp_path / "sqquid.toml", '[tuning]\nduckdb_memory_limit = "64MB"\nflush_rows = 500\n')
    tuning = load_config(path).tuning()
    assert (tuning.memory_limit, tuning.threads, tuning.flush_rows) == ("64MB", 1, 500)
    monkeypatch.setenv("SQQUID_FLUSH_ROWS", "700")
    assert load_config(path).tuning().flush_rows == 700


def test_bad_tuning_in_the_file_fails_before_any_request(make_sandbox, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SQQUID_FLUSH_ROWS", raising=False)
    sandbox = make_sandbox(orders=20, products=5)
    _write(tmp_path / "sqquid.toml", _toml(sandbox, "[tuning]\nflush_rows = 0\n"))
    out = CliRunner().invoke(main, ["extract"], env={"MY_SQQUID_KEY": API_KEY})
    assert out.exit_code == 2 and "[tuning] flush_rows" in out.stderr
    assert sandbox.stats.requests == 0 and not (tmp_path / "data" / "warehouse.duckdb").exists()


def test_the_load_commands_reach_the_api_the_config_file_names(make_sandbox, tmp_path, monkeypatch):
    """load-inventory and load-buffers read [api] as extract does: base URL, the key's variable, rate."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SQQUID_API_KEY", raising=False)
    monkeypatch.delenv("SQQUID_BASE_URL", raising=False)
    sandbox = make_sandbox(orders=20, products=10)
    with sandbox.store.lock:
        sku = sorted(sandbox.store.inventory)[0][0]
    _write(tmp_path / "sqquid.toml", _toml(sandbox))
    _write(tmp_path / "stock.csv", f"sku,qty_on_hand\n{sku},7\n")
    _write(tmp_path / "buffers.csv", f"sku,channel_id,quantity\n{sku},1,3\n")
    for args in (["load-inventory", "stock.csv", "--mode", "partial", "--dry-run"],
                 ["load-buffers", "buffers.csv", "--channels", "1", "--dry-run"]):
        out = CliRunner().invoke(main, args, env={"MY_SQQUID_KEY": API_KEY})
        assert out.exit_code == 0, (args, out.output)
        assert "dry run" in out.output.lower(), out.output
        # the variable the file names must be set: a clear error naming it, nothing sent
        out = CliRunner().invoke(main, args, env={"MY_SQQUID_KEY": ""})
        assert out.exit_code == 2 and "$MY_SQQUID_KEY" in out.stderr, (args, out.output)


def _two_accounts(sandbox) -> str:
    return f"""
[accounts.acct1]
base_url = "{sandbox.url}"
api_key_env = "ACCT1_KEY"
rate = 0

[accounts.acct2]
base_url = "{sandbox.url}"
api_key_env = "ACCT2_KEY"
rate = 0
"""


def test_the_api_commands_reach_one_account_of_the_config_file(make_sandbox, tmp_path, monkeypatch):
    """--account NAME: check, capture and the loads use that account's base URL, key and rate; the
    environment's SQQUID_API_KEY is not read, credentials beside it are refused, and an unknown
    name lists the known ones."""
    monkeypatch.chdir(tmp_path)
    sandbox = make_sandbox(accounts=2, orders=20, products=10)
    keys = sandbox.api_keys
    _write(tmp_path / "sqquid.toml", _two_accounts(sandbox))
    env = {"ACCT1_KEY": keys["acct1"], "ACCT2_KEY": keys["acct2"], "SQQUID_API_KEY": "someone-elses-key",
           "SQQUID_BASE_URL": "http://127.0.0.1:9"}
    store = sandbox.store_for("acct2")
    with store.lock:
        key = sorted(store.inventory)[0]
    _write(tmp_path / "stock.csv", f"sku,qty_on_hand,location_external_id,bin\n{key[0]},7,{key[1]},{key[2]}\n")
    out = CliRunner().invoke(main, ["check", "--account", "acct2", "--streams", "locations", "--json"], env=env)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["streams"][0]["records"] == len(store.locations)
    out = CliRunner().invoke(main, ["load-inventory", "stock.csv", "--mode", "partial", "--account", "acct2"], env=env)
    assert out.exit_code == 0, out.output
    with store.lock:
        assert store.inventory[key]["qty_on_hand"] == 7
    out = CliRunner().invoke(main, ["capture", "caps", "--account", "acct1", "--streams", "locations", "--name", "c",
                                    "--no-verify"], env=env)
    assert out.exit_code == 0, out.output
    assert keys["acct1"] not in (tmp_path / "caps" / "c.yaml").read_text()  # recorded, the key scrubbed

    refused = CliRunner().invoke(main, ["check", "--account", "acct1", "--api-key", "x"], env=env)
    assert refused.exit_code == 2 and "--account acct1 and --api-key" in refused.stderr
    unknown = CliRunner().invoke(main, ["load-buffers", "stock.csv", "--account", "nope"], env=env)
    assert unknown.exit_code == 2 and "no account nope" in unknown.stderr and "acct1, acct2" in unknown.stderr
    unset = CliRunner().invoke(main, ["check", "--account", "acct1"], env={**env, "ACCT1_KEY": ""})
    assert unset.exit_code == 2 and "$ACCT1_KEY" in unset.stderr and keys["acct1"] not in unset.output
