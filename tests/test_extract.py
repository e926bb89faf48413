"""Extraction against the sandbox: every table equals the sandbox's data, incrementally, in
DuckDB and in Parquet; bad options touch nothing."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest
from click.testing import CliRunner

from sqquid_etl import extract
from sqquid_etl.cli import main
from sqquid_etl.errors import ConfigError
from tests.support import API_KEY, make_client
from tests.expected import assert_tables_equal, duckdb_tables, expected_tables, parquet_tables


def test_full_extract_into_duckdb_equals_sandbox(make_sandbox, tmp_path):
    sandbox = make_sandbox(orders=3000, products=1500)  # thousands: many pages of every stream
    db = tmp_path / "s.duckdb"
    result = extract(duckdb=db, client=make_client(sandbox))
    assert result.ok, [(s.stream, s.message) for s in result.streams]
    assert_tables_equal(duckdb_tables(db), expected_tables(sandbox.store))
    orders = result.stream("orders")
    assert orders.count_check == "ok" and orders.count_expected == len(sandbox.store.orders)
    assert orders.pages == len(sandbox.store.orders) // 250 + 1
    assert extract(parquet=tmp_path / "lake", client=make_client(sandbox)).ok
    assert_tables_equal(parquet_tables(tmp_path / "lake"), expected_tables(sandbox.store))
    with duckdb.connect(str(db), read_only=True) as conn:
        runs = conn.execute("SELECT stream, status FROM _sqquid_runs ORDER BY stream").fetchall()
        assert {r[0] for r in runs} == {s.stream for s in result.streams} and {r[1] for r in runs} == {"ok"}
        types = dict(conn.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name='orders'").fetchall())
        assert types["id"] == "BIGINT" and types["total"] == "DECIMAL(18,4)" and types["created_at"] == "TIMESTAMP WITH TIME ZONE"
        attr = conn.execute("SELECT data_type FROM information_schema.columns WHERE table_name='products' AND column_name='attributes'").fetchone()[0]
        assert attr.replace('"', "") == "STRUCT(label VARCHAR, value VARCHAR)[]"


def test_second_run_fetches_only_new_window_and_stays_exact(sandbox, tmp_path):
    db = tmp_path / "s.duckdb"
    client = make_client(sandbox)
    assert extract(duckdb=db, client=client).ok
    sandbox.store.add_orders(30)
    sandbox.store.update_products(5)
    sandbox.stats.reset()
    # products re-read everything every run by default (variants change without their parent): not here
    second = extract(["orders", "products"], duckdb=db, client=client, reread={"products": "0"})
    assert second.ok
    assert second.stream("orders").rows["orders"] < 300  # only the window since the cursor (and its re-read)
    assert second.stream("orders").rows["orders"] >= 30
    assert second.stream("products").rows["products"] < 120
    tables = ["orders", "order_items", "products", "product_variants"]
    assert_tables_equal(duckdb_tables(db, tables), expected_tables(sandbox.store), tables)


def test_parquet_extract_equals_sandbox_and_keys_are_unique(sandbox, tmp_path):
    root = tmp_path / "lake"
    client = make_client(sandbox)
    assert extract(parquet=root, client=client).ok
    sandbox.store.add_orders(10)
    sandbox.store.update_products(4)
    assert extract(parquet=root, client=client).ok
    assert_tables_equal(parquet_tables(root), expected_tables(sandbox.store))
    with duckdb.connect() as conn:
        total, distinct = conn.execute(f"SELECT count(*), count(DISTINCT id) FROM read_parquet('{root}/orders/*.parquet')").fetchone()
    assert total == distinct == len(sandbox.store.orders)
    assert not list((root / ".sqquid" / "staging").iterdir())
    assert (root / "_sqquid_state.json").exists()


def test_full_refresh_replaces_tables(sandbox, tmp_path):
    db = tmp_path / "s.duckdb"
    client = make_client(sandbox)
    assert extract(["locations", "orders"], duckdb=db, client=client).ok
    with duckdb.connect(str(db)) as conn:
        conn.execute("INSERT INTO orders (id, created_at) VALUES (999999, now())")
    assert extract(["orders"], duckdb=db, client=client, full_refresh=True).ok
    assert_tables_equal(duckdb_tables(db, ["orders"]), expected_tables(sandbox.store), ["orders"])


def test_failure_mid_stream_keeps_old_data_and_state(sandbox, tmp_path):
    db = tmp_path / "s.duckdb"
    client = make_client(sandbox)
    assert extract(["orders"], duckdb=db, client=client).ok
    before = duckdb_tables(db, ["orders"])["orders"]
    sandbox.store.add_orders(600)
    calls = {"n": 0}
    real_get_body = client.get_body

    def failing_get_body(path, params=None, **kwargs):  # list pages are fetched with get_body
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated crash")
        return real_get_body(path, params, **kwargs)

    client.get_body = failing_get_body
    with pytest.raises(KeyboardInterrupt):
        extract(["orders"], duckdb=db, client=client)
    assert duckdb_tables(db, ["orders"])["orders"] == before  # nothing half-written
    client.get_body = real_get_body
    assert extract(["orders"], duckdb=db, client=client).ok
    assert_tables_equal(duckdb_tables(db, ["orders"]), expected_tables(sandbox.store), ["orders"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--streams", "orders,nope"], "unknown stream"),
        (["--start-date", "last tuesday"], "not an ISO 8601"),
        (["--lookback", "a while"], "not a duration"),
        (["--duckdb", "/nonexistent-dir/x.duckdb"], "does not exist"),
        (["--rate", "-1"], "--rate -1"),
        (["--burst", "0"], "--burst 0"),
    ],
)
def test_invalid_options_fail_clearly_without_touching_destination(sandbox, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SQQUID_API_KEY", API_KEY)
    sandbox.stats.reset()
    result = CliRunner().invoke(main, ["extract", "--base-url", sandbox.url, *args])
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "sqquid.duckdb").exists()
    assert sandbox.stats.requests == 0


def test_no_credentials_is_a_clear_error(sandbox, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("SQQUID_API_KEY", "SQQUID_USERNAME", "SQQUID_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(main, ["extract", "--base-url", sandbox.url])
    assert result.exit_code == 2
    assert "no credentials" in result.output
    assert not (tmp_path / "sqquid.duckdb").exists()


def test_bad_credentials_exit_code_and_message(sandbox, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["extract", "--base-url", sandbox.url, "--api-key", "wrong-key-123", "--streams", "locations"])
    assert result.exit_code == 3
    assert "login refused" in result.output
    assert "wrong-key-123" not in result.output
    assert not (tmp_path / "sqquid.duckdb").exists()


def test_cli_extract_prints_summary(sandbox, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SQQUID_API_KEY", API_KEY)
    result = CliRunner().invoke(main, ["extract", "--base-url", sandbox.url, "--streams", "locations,buffers", "--rate", "1000"])
    assert result.exit_code == 0, result.output
    assert "locations" in result.output and "buffers" in result.output
    assert (tmp_path / "sqquid.duckdb").exists()


def test_inventory_without_products_is_a_clear_error(sandbox, tmp_path):
    result = extract(["inventory"], duckdb=tmp_path / "s.duckdb", client=make_client(sandbox))
    assert not result.ok
    assert "has not been extracted yet" in result.stream("inventory").message


def test_an_extract_reads_pages_with_arrow_and_never_imports_pandas(make_sandbox, tmp_path):
    """Bodies are read by Arrow's JSON reader, and nothing on the extract path builds Arrow
    data from Python values: pyarrow would import pandas for it (~50 MB of memory). The same
    for an incremental run after the first (tables that receive no row)."""
    sandbox = make_sandbox(orders=600, products=200)
    script = (
        "import sys\n"
        "from sqquid_etl import decode\n"
        "from sqquid_etl.pipeline import extract\n"
        "kinds = []\n"
        "real = decode.PageDecoder.decode\n"
        "def read(self, body):\n"
        "    page = real(self, body)\n"
        "    kinds.append('arrow' if page.read_by_arrow else 'dicts')\n"
        "    return page\n"
        "decode.PageDecoder.decode = read\n"
        "for target in ({'duckdb': sys.argv[2] + '/s.duckdb'}, {'parquet': sys.argv[2] + '/lake'}):\n"
        "    for _ in range(2):\n"
        "        assert extract(base_url=sys.argv[1], api_key=sys.argv[3], rate=None, **target).ok\n"
        "print(sorted(set(kinds)), 'pandas' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, sandbox.url, str(tmp_path), API_KEY],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "['arrow'] False"


@pytest.mark.parametrize("variable, value", [("SQQUID_DUCKDB_MEMORY_LIMIT", "lots"), ("SQQUID_DUCKDB_THREADS", "0"),
                                             ("SQQUID_FLUSH_ROWS", "ten")])
def test_a_bad_tuning_variable_is_refused_before_anything_is_requested(sandbox, tmp_path, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    client = make_client(sandbox)
    with pytest.raises(ConfigError, match=variable):
        extract(duckdb=tmp_path / "s.duckdb", client=client)
    assert client.stats.requests == 0 and not (tmp_path / "s.duckdb").exists()


@pytest.mark.parametrize("target", ["duckdb", "parquet"])
def test_duckdb_out_of_memory_is_a_clear_error_and_stores_nothing(make_sandbox, tmp_path, monkeypatch, target):
    sandbox = make_sandbox(orders=3000, products=50)
    monkeypatch.setenv("SQQUID_DUCKDB_MEMORY_LIMIT", "1MB")
    where = {"duckdb": tmp_path / "s.duckdb"} if target == "duckdb" else {"parquet": tmp_path / "lake"}
    result = extract(["orders"], client=make_client(sandbox), **where)
    orders = result.stream("orders")
    assert orders.status == "failed" and result.exit_code == 2
    assert "SQQUID_DUCKDB_MEMORY_LIMIT" in orders.message and "nothing of the stream was stored" in orders.message
    monkeypatch.delenv("SQQUID_DUCKDB_MEMORY_LIMIT")
    assert extract(["orders"], client=make_client(sandbox), **where).stream("orders").window_start is None  # state not advanced


@pytest.mark.parametrize("target", ["duckdb", "parquet"])
def test_a_merge_out_of_the_default_memory_runs_again_with_more(make_sandbox, tmp_path, monkeypatch, caplog, target):
    """The default limit is low (memory stays flat); a merge that needs more is not a failure."""
    from sqquid_etl.destinations import duckdb_tuning

    sandbox = make_sandbox(orders=3000, products=50)
    monkeypatch.delenv("SQQUID_DUCKDB_MEMORY_LIMIT", raising=False)
    monkeypatch.setattr(duckdb_tuning, "DEFAULT_MEMORY_LIMIT", "1MB")  # too little for any merge
    where = {"duckdb": tmp_path / "s.duckdb"} if target == "duckdb" else {"parquet": tmp_path / "lake"}
    with caplog.at_level("WARNING", logger="sqquid_etl.destinations.duckdb_tuning"):
        result = extract(["orders"], client=make_client(sandbox), **where)
    assert result.ok, [s.message for s in result.streams]
    assert "merging again with 256MB" in caplog.text
    tables = ["orders", "order_items"]
    actual = duckdb_tables(where["duckdb"], tables) if target == "duckdb" else parquet_tables(where["parquet"], tables)
    assert_tables_equal(actual, expected_tables(sandbox.store), tables)
