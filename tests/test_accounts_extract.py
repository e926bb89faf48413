"""Many accounts end to end (issue #15 items 1-2): `sqquid-etl extract --all-accounts` /
`--account a,b` and `extract(accounts=...)` against a sandbox serving several accounts, into one
DuckDB file: each account's rows equal its data, a failing account fails alone, the summary has
a line per account and stream, the exit code and stderr say which failed."""

from __future__ import annotations

import json

import duckdb
import pytest
from click.testing import CliRunner

from sqquid_etl import extract
from sqquid_etl.cli import main
from tests.expected import COMPARED, assert_tables_equal, expected_tables

TABLES = ["orders", "order_items", "products", "product_variants", "inventory", "buffers", "locations", "shipments"]


def account_tables(db, account: str, tables=TABLES) -> dict[str, list[tuple]]:
    with duckdb.connect(str(db), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return {t: sorted(conn.execute(f"SELECT {COMPARED[t]} FROM {t} WHERE account = ?", [account]).fetchall(),
                          key=repr) for t in tables}


@pytest.fixture
def three(make_sandbox, tmp_path):
    """A sandbox of 3 accounts (acct1..acct3, each its own key, data and size) and a sqquid.toml
    naming them as acme, globex, initech; the environment holding their keys."""
    sandbox = make_sandbox(accounts=3, orders=240, products=90)
    names = {"acme": "acct1", "globex": "acct2", "initech": "acct3"}
    tables = "".join(f'[accounts.{name}]\nbase_url = "{sandbox.url}"\napi_key_env = "{name.upper()}_KEY"\nrate = 0\n\n'
                     for name in names)
    (tmp_path / "sqquid.toml").write_text(f'[destination]\nduckdb = "w.duckdb"\n\n{tables}', encoding="utf-8")
    env = {f"{name.upper()}_KEY": sandbox.api_keys[acct] for name, acct in names.items()}
    env.update({"SQQUID_API_KEY": None, "SQQUID_CONFIG": None, "SQQUID_BASE_URL": None})
    return sandbox, names, env


def _run(tmp_path, env, *args):
    return CliRunner().invoke(main, ["extract", "--config", str(tmp_path / "sqquid.toml"), "--no-progress", *args],
                              env=env)


def _check_equal(sandbox, db, pairs):
    for name, acct in pairs.items():
        assert_tables_equal(account_tables(db, name), expected_tables(sandbox.store_for(acct)), TABLES)


def test_all_accounts_into_one_duckdb_then_incremental(three, tmp_path):
    sandbox, names, env = three
    result = _run(tmp_path, env, "--all-accounts")
    assert result.exit_code == 0, result.output
    db = tmp_path / "w.duckdb"
    _check_equal(sandbox, db, names)
    lines = [line for line in result.output.splitlines() if line.split()[:1] and line.split()[0] in names]
    assert len(lines) == 3 * 7  # a line per account and stream
    assert "3 accounts" in result.output.splitlines()[-1] and "failed" not in result.output.splitlines()[-1]
    with duckdb.connect(str(db), read_only=True) as conn:
        sizes = dict(conn.execute("SELECT account, count(*) FROM orders GROUP BY 1").fetchall())
    assert set(sizes) == set(names) and len(set(sizes.values())) == 3  # sizes differ per account
    # the next run reads each account from its own cursor
    sandbox.store_for("acct2").add_orders(12)
    again = _run(tmp_path, env, "--account", "globex,acme", "--streams", "orders", "--log-format", "json")
    assert again.exit_code == 0, again.output
    summary = json.loads(again.output.splitlines()[-1])
    assert [a["account"] for a in summary["accounts"]] == ["globex", "acme"] and summary["ok"]
    orders = {a["account"]: a["streams"][0]["rows"]["orders"] for a in summary["accounts"]}
    assert 12 <= orders["globex"] < sizes["globex"] and orders["acme"] < sizes["acme"]
    _check_equal(sandbox, db, names)


def test_a_failing_account_fails_alone_and_is_named(three, tmp_path):
    sandbox, names, env = three
    env = {**env, "GLOBEX_KEY": "not-globex-s-key"}
    result = _run(tmp_path, env, "--all-accounts")
    assert result.exit_code == 3, result.output  # login refused
    assert "error: account globex:" in result.stderr and "not-globex-s-key" not in result.output
    assert "error: account acme" not in result.stderr and "error: account initech" not in result.stderr
    assert result.stdout.splitlines()[-1].endswith("1 failed: globex")
    _check_equal(sandbox, tmp_path / "w.duckdb", {"acme": "acct1", "initech": "acct3"})
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM orders WHERE account = 'globex'").fetchone()[0] == 0


def test_the_python_api(three, tmp_path, monkeypatch):
    sandbox, names, env = three
    for variable, value in env.items():
        monkeypatch.delenv(variable, raising=False) if value is None else monkeypatch.setenv(variable, value)
    with extract(config=tmp_path / "sqquid.toml", accounts=["initech", "acme"], streams=["orders", "products"]) as result:
        assert result.ok and result.exit_code == 0 and result.failed == []
        assert [a.account for a in result.accounts] == ["initech", "acme"]
        assert [s.stream for s in result.account("acme").streams] == ["products", "orders"]
        counts = dict(result.sql("SELECT account, count(*) FROM orders GROUP BY 1").fetchall())
    assert counts == {"initech": len(sandbox.store_for("acct3").orders), "acme": len(sandbox.store_for("acct1").orders)}
    with extract(config=tmp_path / "sqquid.toml", accounts=True, streams=["orders"]) as result:
        assert [a.account for a in result.accounts] == ["acme", "globex", "initech"] and result.ok
