"""The Python API: the CLI's config chain and argument meanings, project exceptions, and a
result that hands back the data without the user opening a connection of their own."""

from __future__ import annotations

import duckdb
import pytest

import sqquid_etl
from sqquid_etl import ConfigError, SqquidError, StateError
from sqquid_etl.api import ExtractResult, UnknownStreamError, UnknownTableError, resolve_settings
from tests.support import API_KEY


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean environment in an empty directory: no SQQUID_* variable leaks in from the machine."""
    for name in ("SQQUID_CONFIG", "SQQUID_BASE_URL", "SQQUID_API_KEY", "SQQUID_USERNAME", "SQQUID_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def _toml(path, sandbox_url, **extra):
    lines = ["[api]", f'base_url = "{sandbox_url}"', 'api_key_env = "MY_KEY"', "rate = 0",
             "[destination]", 'duckdb = "from-config.duckdb"', "[extract]", 'streams = ["orders", "locations"]']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_extract_reads_sqquid_toml_like_the_cli(make_sandbox, env, tmp_path):
    sandbox = make_sandbox(orders=30, products=10)
    env.setenv("MY_KEY", API_KEY)
    _toml(tmp_path / "sqquid.toml", sandbox.url)
    with sqquid_etl.extract() as result:  # nothing given: ./sqquid.toml says everything
        assert isinstance(result, ExtractResult) and result.ok
        assert [s.stream for s in result.streams] == ["locations", "orders"]
        assert result.destination == str(tmp_path / "from-config.duckdb")
        assert result.stream("orders").rows["orders"] == 30
        assert result.table("orders").count("*").fetchall()[0][0] == 30


def test_sqquid_config_variable_and_arguments_override_the_file(make_sandbox, env, tmp_path):
    sandbox = make_sandbox(orders=20, products=10)
    env.setenv("MY_KEY", API_KEY)
    config = _toml(tmp_path / "elsewhere.toml", "http://127.0.0.1:9")  # a wrong URL, overridden below
    env.setenv("SQQUID_CONFIG", str(config))
    env.setenv("SQQUID_BASE_URL", sandbox.url)  # environment > file
    with sqquid_etl.extract(["locations"], duckdb=tmp_path / "arg.duckdb") as result:  # argument > file
        assert result.ok and [s.stream for s in result.streams] == ["locations"]
        assert result.destination == str(tmp_path / "arg.duckdb")


def test_rate_means_what_the_cli_option_means(env, tmp_path):
    assert resolve_settings(rate=0).rate is None  # --rate 0: no pacing
    assert resolve_settings().rate == 2.0  # left out: the default
    assert resolve_settings(rate=5).rate == 5.0
    (tmp_path / "sqquid.toml").write_text("[api]\nrate = 0\nburst = 7\n", encoding="utf-8")
    resolved = resolve_settings()
    assert resolved.rate is None and resolved.burst == 7
    with pytest.raises(ConfigError, match="rate -1"):
        resolve_settings(rate=-1)


def test_errors_are_the_projects_own(make_sandbox, env, tmp_path):
    sandbox = make_sandbox(orders=5, products=5)
    with pytest.raises(ConfigError, match="no credentials"):
        sqquid_etl.extract(base_url=sandbox.url, rate=0)
    with pytest.raises(ConfigError, match="nope"):
        sqquid_etl.extract(["nope"], base_url=sandbox.url, api_key=API_KEY, rate=0)
    with pytest.raises(ConfigError, match="--config missing.toml: no such file"):
        sqquid_etl.extract(config="missing.toml")
    with sqquid_etl.extract(["locations"], base_url=sandbox.url, api_key=API_KEY, rate=0) as result:
        with pytest.raises(UnknownStreamError, match="no stream 'orders' in this run") as raised:
            result.stream("orders")
        assert isinstance(raised.value, SqquidError) and isinstance(raised.value, KeyError)
        with pytest.raises(UnknownTableError, match="no table 'orderz'"):
            result.table("orderz")


def test_result_hands_back_relations_arrow_and_pandas(make_sandbox, env, tmp_path):
    sandbox = make_sandbox(orders=40, products=15)
    result = sqquid_etl.extract(base_url=sandbox.url, api_key=API_KEY, rate=0, duckdb="d.duckdb")
    assert result.ok
    assert {"orders", "order_items", "inventory", "order_lines", "available_to_sell"} <= set(result.tables())
    orders = result.arrow("orders")
    assert orders.num_rows == 40 and "created_at" in orders.column_names
    frame = result.df("order_items")
    assert len(frame) == result.stream("orders").rows["order_items"]
    top = result.sql("SELECT sku, sum(qty) AS units FROM order_lines GROUP BY sku ORDER BY units DESC LIMIT 3")
    assert len(top.fetchall()) == 3
    assert result.summary()["streams"][0]["count_check"] in ("ok", "n/a")
    # the result's connection stays open: the next run into the same file works all the same
    sandbox.store.add_orders(5)
    again = sqquid_etl.extract(["orders"], base_url=sandbox.url, api_key=API_KEY, rate=0, duckdb="d.duckdb")
    assert again.ok and again.stream("orders").rows["orders"] >= 5
    assert result.table("orders").count("*").fetchall()[0][0] == 45  # the same database, seen fresh
    result.close()
    again.close()


def test_a_read_only_connection_held_gives_a_clear_error_and_the_pattern_works(make_sandbox, env, tmp_path):
    sandbox = make_sandbox(orders=10, products=5)
    args = dict(base_url=sandbox.url, api_key=API_KEY, rate=0, duckdb="held.duckdb")
    sqquid_etl.extract(["locations"], **args).close()
    held = duckdb.connect("held.duckdb", read_only=True)
    try:
        with pytest.raises(StateError, match="read_only=True"):
            sqquid_etl.extract(["locations"], **args)
    finally:
        held.close()
    # the documented pattern: a connection without read_only shares the database with the run
    mine = duckdb.connect("held.duckdb")
    try:
        assert sqquid_etl.extract(["orders"], **args).ok
        assert mine.execute("SELECT count(*) FROM orders").fetchall()[0][0] == 10
    finally:
        mine.close()


def test_parquet_result_reads_through_views(make_sandbox, env, tmp_path):
    sandbox = make_sandbox(orders=25, products=10)
    with sqquid_etl.extract(["orders"], parquet="lake", base_url=sandbox.url, api_key=API_KEY, rate=0) as result:
        assert result.kind == "parquet" and result.ok
        assert result.arrow("orders").num_rows == 25
        assert result.sql("SELECT count(*) FROM order_lines").fetchall()[0][0] == result.stream("orders").rows["order_items"]


def test_iceberg_argument_wins_over_the_config_destination(env, tmp_path):
    (tmp_path / "sqquid.toml").write_text('[destination]\nduckdb = "from-config.duckdb"\n', encoding="utf-8")
    resolved = resolve_settings(iceberg="warehouse")
    assert (resolved.iceberg, resolved.duckdb, resolved.parquet) == ("warehouse", None, None)  # as --iceberg
    assert resolve_settings().duckdb == str(tmp_path / "from-config.duckdb")
    result = ExtractResult(run_id="r", destination="warehouse", kind="iceberg")
    with pytest.raises(ConfigError, match="pyiceberg"):
        result.table("orders")


def test_the_cli_and_the_api_read_one_config_the_same_way(make_sandbox, env, tmp_path):
    import json

    from click.testing import CliRunner

    from sqquid_etl.cli import main

    sandbox = make_sandbox(orders=15, products=5)
    env.setenv("MY_KEY", API_KEY)
    _toml(tmp_path / "sqquid.toml", sandbox.url, lookback='"2s"')
    out = CliRunner().invoke(main, ["extract", "--log-format", "json", "--no-progress"], env={"MY_KEY": API_KEY})
    assert out.exit_code == 0, out.output
    cli = json.loads(out.stdout)
    with sqquid_etl.extract() as api:
        assert api.destination == cli["destination"]
        assert [s.stream for s in api.streams] == [s["stream"] for s in cli["streams"]]
        # the same file and state: the API's run goes on from the CLI's cursor
        assert api.stream("orders").window_start is not None and cli["streams"][1]["window_start"] is None
        assert api.stream("orders").rows["orders"] < cli["streams"][1]["rows"]["orders"] == 15
