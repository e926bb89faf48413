"""One warehouse for many accounts (issue #15, item 3): a destination bound to an account stamps
an `account` column on every row, keeps state and runs per (account, stream), limits every query
to its account, and several accounts write one DuckDB file at once from threads."""

from __future__ import annotations

import json
import threading

import duckdb
import pytest

from sqquid_etl.definitions import load_definitions
from sqquid_etl.destinations import open_destination, open_existing
from sqquid_etl.errors import ConfigError
from sqquid_etl.pipeline import extract
from sqquid_etl.records import page_to_tables
from sqquid_etl.runs import RunRecord
from sqquid_etl.state import StreamState
from tests.expected import COMPARED, assert_tables_equal, expected_tables
from tests.s3_server import bucket, s3_endpoint  # noqa: F401 (fixtures)
from tests.support import make_client

DEFINITIONS = load_definitions()
ORDERS = DEFINITIONS["orders"]
TABLES = ["orders", "order_items", "products", "product_variants", "inventory", "buffers", "locations"]


def account_tables(db, account: str, tables=TABLES) -> dict[str, list[tuple]]:
    """The compared columns of each table, of one account's rows."""
    with duckdb.connect(str(db), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return {t: sorted(conn.execute(f"SELECT {COMPARED[t]} FROM {t} WHERE account = ?", [account]).fetchall(), key=repr)
                for t in tables}


def run_account(db, account: str, sandbox, streams=None, **options):
    destination = open_destination(duckdb=db, account=account)
    result = extract(streams, destination=destination, client=make_client(sandbox), **options)
    assert result.ok, [(s.stream, s.message) for s in result.streams if s.status != "ok"]
    return result

def extract_at_once(destinations: dict, sandboxes: dict) -> dict:
    """Every account's extract at once, each from its own thread, into its own destination; all ok."""
    results, errors = {}, []

    def run(name):
        try:
            results[name] = extract(destination=destinations[name], client=make_client(sandboxes[name]))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in sandboxes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors and all(r.ok for r in results.values()), errors or [
        (s.stream, s.message) for r in results.values() for s in r.streams if s.status != "ok"]
    assert set(results) == set(sandboxes)
    return results


@pytest.fixture
def two_sandboxes(make_sandbox):
    """Two accounts' APIs: their records have the same ids (1, 2, ...) and other contents."""
    return make_sandbox(seed=1, orders=300, products=120), make_sandbox(seed=2, orders=180, products=70)


def test_two_accounts_into_one_duckdb_file_then_incremental(two_sandboxes, tmp_path):
    acme, globex = two_sandboxes
    db = tmp_path / "w.duckdb"
    run_account(db, "acme", acme)
    run_account(db, "globex", globex)
    assert_tables_equal(account_tables(db, "acme"), expected_tables(acme.store), TABLES)
    assert_tables_equal(account_tables(db, "globex"), expected_tables(globex.store), TABLES)
    with duckdb.connect(str(db), read_only=True) as conn:
        # the same key in both accounts: two rows; every primary key begins with the account
        assert conn.execute("SELECT count(*) FROM orders WHERE id = 1").fetchone()[0] == 2
        assert conn.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'orders' "
                            "AND column_index = 1").fetchone()[0] == "account"
        states = conn.execute("SELECT account, stream FROM _sqquid_state ORDER BY ALL").fetchall()
        assert {a for a, _ in states} == {"acme", "globex"} and len(states) == len(set(states))
        assert conn.execute("SELECT count(DISTINCT account) FROM _sqquid_runs").fetchone()[0] == 2
        # globex's first load into tables acme filled: every record new, none compared with acme's
        assert conn.execute("SELECT records_new, records_changed FROM _sqquid_runs WHERE account = 'globex' "
                            "AND stream = 'orders'").fetchall() == [(len(globex.store.orders), 0)]
    # the second run of one account reads only its window and leaves the other account's rows alone
    acme.store.add_orders(30)
    second = run_account(db, "acme", acme, ["orders"])
    assert 30 <= second.stream("orders").rows["orders"] < 300
    tables = ["orders", "order_items"]
    assert_tables_equal(account_tables(db, "acme", tables), expected_tables(acme.store), tables)
    assert_tables_equal(account_tables(db, "globex", tables), expected_tables(globex.store), tables)
    globex_second = run_account(db, "globex", globex, ["orders"])
    assert globex_second.stream("orders").rows["orders"] < 180  # its own state: not the acme cursor, not the start


def test_views_across_accounts(two_sandboxes, tmp_path):
    acme, globex = two_sandboxes
    db = tmp_path / "w.duckdb"
    run_account(db, "acme", acme)
    run_account(db, "globex", globex)
    with duckdb.connect(str(db), read_only=True) as conn:
        lines = dict(conn.execute("SELECT account, count(*) FROM order_lines GROUP BY 1").fetchall())
        items = dict(conn.execute("SELECT account, count(*) FROM order_items GROUP BY 1").fetchall())
        assert lines == items  # joined on the account too: no item joined to another account's order
        mixed = conn.execute("SELECT count(*) FROM order_lines l JOIN orders o ON o.account = l.account "
                             "AND o.id = l.order_id WHERE o.external_id IS DISTINCT FROM l.order_external_id").fetchone()[0]
        assert mixed == 0
        assert {r[0] for r in conn.execute("SELECT DISTINCT account FROM available_to_sell").fetchall()} == {"acme", "globex"}
        stock = dict(conn.execute("SELECT account, sum(qty_on_hand) FROM (SELECT DISTINCT account, sku, "
                                  "location_external_id, qty_on_hand FROM available_to_sell) GROUP BY 1").fetchall())
        on_hand = dict(conn.execute("SELECT account, sum(qty_on_hand) FROM inventory GROUP BY 1").fetchall())
        assert stock == on_hand


def _commit(destination, pages, state, run_id="r1", replace=False):
    writer = destination.begin(ORDERS, replace=replace)
    for page in pages:
        writer.write(page_to_tables(ORDERS, page))
    writer.commit(state, RunRecord(run_id=run_id, stream="orders", started_at="2024-01-01T00:00:00+00:00", status="ok"))


def _order(id_, created, items=()):
    return {"id": id_, "created_at": created, "total": "1.00",
            "order_items": [{"id": i, "sku": f"S{i}", "qty": 1} for i in items]}


def test_every_query_state_and_replace_is_the_accounts_own(tmp_path):
    db = tmp_path / "w.duckdb"
    acme, globex = (open_destination(duckdb=db, account=name) for name in ("acme", "globex"))
    try:
        _commit(acme, [[_order(1, "2024-01-01T00:00:00Z", [10, 11]), _order(2, "2024-02-01T00:00:00Z", [12])]],
                StreamState(cursors={"": "2024-02-01T00:00:00Z"}))
        _commit(globex, [[_order(1, "2025-01-01T00:00:00Z", [10])]], StreamState(cursors={"": "2025-01-01T00:00:00Z"}))
        assert acme.count_since("orders", "created_at", None, {}) == 2
        assert globex.count_since("orders", "created_at", None, {}) == 1
        assert [str(v.year) for v in acme.cursor_bounds("orders", "created_at", {})] == ["2024", "2024"]
        assert globex.distinct_values("order_items", "sku") == ["S10"]
        assert acme.load_state("orders").cursors == {"": "2024-02-01T00:00:00Z"}
        assert globex.load_states()["orders"].cursors == {"": "2025-01-01T00:00:00Z"}
        # an order of acme fetched again replaces its items; globex's item 10 of its order 1 stays
        _commit(acme, [[_order(1, "2024-01-01T00:00:00Z", [11])]], StreamState(cursors={"": "2024-02-01T00:00:00Z"}))
        assert acme.distinct_values("order_items", "sku") == ["S11", "S12"]
        assert globex.distinct_values("order_items", "sku") == ["S10"]
        # state changes of one account: the other's are kept
        globex.save_state("orders", None)
        assert acme.state_streams() == ["orders"] and globex.state_streams() == []
        acme.clear_states()
        assert acme.load_states() == {}
        # a full refresh replaces the account's rows only
        _commit(globex, [[_order(5, "2025-03-01T00:00:00Z")]], StreamState(), replace=True)
        assert globex.count_since("orders", "created_at", None, {}) == 1
        assert acme.count_since("orders", "created_at", None, {}) == 2
    finally:
        acme.close()
        globex.close()


def test_records_proven_gone_are_the_accounts_own(tmp_path):
    db = tmp_path / "w.duckdb"
    acme, globex = (open_destination(duckdb=db, account=name) for name in ("acme", "globex"))
    try:
        for destination in (acme, globex):
            _commit(destination, [[_order(1, "2024-01-01T00:00:00Z", [10]), _order(2, "2024-01-02T00:00:00Z", [11])]],
                    StreamState())
        writer = acme.begin(ORDERS, replace=False)
        writer.write(page_to_tables(ORDERS, [_order(1, "2024-01-01T00:00:00Z", [10])]))
        writer.prove_gone("created_at", None, {})
        run = RunRecord(run_id="r2", stream="orders", started_at="2024-01-03T00:00:00+00:00", status="ok")
        writer.commit(StreamState(), run)
        assert run.records_deleted == 1
        assert acme.count_since("orders", "created_at", None, {}) == 1  # order 2 marked gone
        assert acme.distinct_values("order_items", "sku") == ["S10"]
        assert globex.count_since("orders", "created_at", None, {}) == 2  # globex's order 2 is not acme's
        assert globex.distinct_values("order_items", "sku") == ["S10", "S11"]
    finally:
        acme.close()
        globex.close()


def test_a_single_and_a_multi_account_file_are_never_mixed(tmp_path):
    single, multi = tmp_path / "single.duckdb", tmp_path / "multi.duckdb"
    open_destination(duckdb=single).close()
    open_destination(duckdb=multi, account="acme").close()
    with pytest.raises(ConfigError, match="single-account.*sqquid-etl upgrade --account NAME"):
        open_destination(duckdb=single, account="acme")
    with pytest.raises(ConfigError, match="multi-account.*--account"):
        open_destination(duckdb=multi)
    with pytest.raises(ConfigError, match="multi-account"):
        open_existing(duckdb=multi, read_only=True)
    with pytest.raises(ConfigError, match="not a valid account name"):
        open_destination(duckdb=multi, account="Bad Name")
    with duckdb.connect(str(single), read_only=True) as conn:  # left as it was
        assert "account" not in {r[0] for r in conn.execute("DESCRIBE _sqquid_state").fetchall()}
    shown = open_existing(duckdb=multi, read_only=True, account="globex")
    assert shown.load_states() == {}
    shown.close()


def test_accounts_commit_from_threads_one_writer_and_stage_while_another_commits(tmp_path):
    db = tmp_path / "w.duckdb"
    acme, globex = (open_destination(duckdb=db, account=name) for name in ("acme", "globex"))
    try:
        _commit(acme, [[_order(1, "2024-01-01T00:00:00Z", [10])]], StreamState())
        holding, release, staged = threading.Event(), threading.Event(), threading.Event()
        failures = []

        def long_commit():  # acme's commit holds the file's write lock until told to finish
            writer = acme.begin(ORDERS, replace=False)
            writer.write(page_to_tables(ORDERS, [_order(2, "2024-01-02T00:00:00Z", [11])]))
            real = writer._store

            def store(*args):
                holding.set()
                assert release.wait(30)
                real(*args)
            writer._store = store
            writer.commit(StreamState(), RunRecord(run_id="r2", stream="orders", started_at="2024-01-02T00:00:00+00:00"))

        def globex_work():  # reads and stages while acme commits; its own commit waits for acme's
            try:
                assert holding.wait(30)
                assert globex.count_since("orders", "created_at", None, {}) == 0
                writer = globex.begin(ORDERS, replace=False)
                writer.write(page_to_tables(ORDERS, [_order(1, "2025-01-01T00:00:00Z", [10])]))
                assert writer.distinct_keys("orders") == 1
                staged.set()
                writer.commit(StreamState(), RunRecord(run_id="g1", stream="orders", started_at="2025-01-01T00:00:00+00:00"))
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        threads = [threading.Thread(target=long_commit), threading.Thread(target=globex_work)]
        for thread in threads:
            thread.start()
        assert staged.wait(30), failures  # globex read and staged while acme held the writer
        assert globex.count_since("orders", "created_at", None, {}) == 0  # its commit has not happened: it waits
        release.set()
        for thread in threads:
            thread.join(30)
        assert not failures
        assert acme.count_since("orders", "created_at", None, {}) == 2
        assert globex.count_since("orders", "created_at", None, {}) == 1
    finally:
        acme.close()
        globex.close()


def test_accounts_extract_at_once_from_threads(two_sandboxes, tmp_path):
    acme, globex = two_sandboxes
    db = tmp_path / "w.duckdb"
    destinations = {name: open_destination(duckdb=db, account=name) for name in ("acme", "globex")}
    extract_at_once(destinations, {"acme": acme, "globex": globex})
    assert_tables_equal(account_tables(db, "acme"), expected_tables(acme.store), TABLES)
    assert_tables_equal(account_tables(db, "globex"), expected_tables(globex.store), TABLES)
    assert not (tmp_path / "w.duckdb.staging").exists()


def test_upgrade_a_single_account_duckdb_then_the_account_continues_incrementally(two_sandboxes, tmp_path):
    from click.testing import CliRunner

    from sqquid_etl.cli import main

    acme, globex = two_sandboxes
    db = tmp_path / "old.duckdb"
    assert extract(duckdb=db, client=make_client(acme)).ok  # today's single-account layout
    with duckdb.connect(str(db), read_only=True) as conn:
        states_before = conn.execute("SELECT stream, state FROM _sqquid_state ORDER BY 1").fetchall()
    with pytest.raises(ConfigError, match="sqquid-etl upgrade --account NAME"):
        open_destination(duckdb=db, account="acme")
    done = CliRunner().invoke(main, ["upgrade", "--account", "acme", "--duckdb", str(db)])
    assert done.exit_code == 0, done.output
    assert "multi-account" in done.output and "'acme'" in done.output
    assert_tables_equal(account_tables(db, "acme"), expected_tables(acme.store), TABLES)
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("SELECT stream, state FROM _sqquid_state WHERE account = 'acme' ORDER BY 1").fetchall() == states_before
        assert conn.execute("SELECT count(*) FROM _sqquid_runs WHERE account IS DISTINCT FROM 'acme'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM order_lines WHERE account = 'acme'").fetchone()[0] > 0  # views made again
    # run again: nothing changes; for another account: refused
    again = CliRunner().invoke(main, ["upgrade", "--account", "acme", "--duckdb", str(db)])
    assert again.exit_code == 0 and "nothing was changed" in again.output
    other = CliRunner().invoke(main, ["upgrade", "--account", "globex", "--duckdb", str(db)])
    assert other.exit_code == 2 and "already a multi-account" in other.output
    with pytest.raises(ConfigError, match="multi-account"):
        open_destination(duckdb=db)
    # the account continues from its upgraded state: only the new window, nothing counted as changed
    acme.store.add_orders(20)
    second = run_account(db, "acme", acme, ["orders"])
    orders = second.stream("orders")
    assert 20 <= orders.rows["orders"] < 300
    with duckdb.connect(str(db), read_only=True) as conn:
        new, changed = conn.execute("SELECT records_new, records_changed FROM _sqquid_runs WHERE run_id = ? AND "
                                    "stream = 'orders'", [second.run_id]).fetchone()
    assert new == 20 and changed == 0  # the hashes of the upgraded rows still hold
    run_account(db, "globex", globex)  # and another account joins
    tables = ["orders", "order_items"]
    assert_tables_equal(account_tables(db, "acme", tables), expected_tables(acme.store), tables)
    assert_tables_equal(account_tables(db, "globex", tables), expected_tables(globex.store), tables)


def test_an_upgrade_leaves_the_users_own_tables_and_views_as_they_are(sandbox, tmp_path):
    """What the user added to the file is not the tool's: no account column, no rebuild, kept."""
    from sqquid_etl.destinations import upgrade_destination

    db = tmp_path / "old.duckdb"
    assert extract(["orders", "locations"], duckdb=db, client=make_client(sandbox)).ok
    with duckdb.connect(str(db)) as conn:
        conn.execute("CREATE TABLE my_targets AS SELECT 1 AS store, 100 AS target")
        conn.execute("CREATE VIEW my_orders AS SELECT id, created_at FROM orders")
    upgrade_destination(duckdb=db, account="acme")
    with duckdb.connect(str(db), read_only=True) as conn:
        assert [r[0] for r in conn.execute("DESCRIBE my_targets").fetchall()] == ["store", "target"]
        assert conn.execute("SELECT * FROM my_targets").fetchall() == [(1, 100)]
        assert conn.execute("SELECT count(*) FROM my_orders").fetchone()[0] == len(sandbox.store.orders)
        assert [r[0] for r in conn.execute("DESCRIBE orders").fetchall()][0] == "account"


def test_an_upgrade_that_fails_changes_nothing(sandbox, tmp_path, monkeypatch):
    from sqquid_etl.destinations import duckdb_upgrade, upgrade_destination

    db = tmp_path / "old.duckdb"
    assert extract(["orders", "locations"], duckdb=db, client=make_client(sandbox)).ok
    real, seen = duckdb_upgrade._stamp, []

    def failing(conn, table, account):
        seen.append(table)
        if len(seen) == 3:
            raise duckdb.IOException("disk full (injected)")
        real(conn, table, account)

    monkeypatch.setattr(duckdb_upgrade, "_stamp", failing)
    with pytest.raises(Exception, match="not upgraded.*left as it was"):
        upgrade_destination(duckdb=db, account="acme")
    with duckdb.connect(str(db), read_only=True) as conn:
        for table in ("orders", "order_items", "_sqquid_state"):
            assert "account" not in {r[0] for r in conn.execute(f"DESCRIBE {table}").fetchall()}
    assert extract(["orders"], duckdb=db, client=make_client(sandbox)).ok  # still a single-account extract


def test_state_commands_take_the_account(tmp_path):
    from click.testing import CliRunner

    from sqquid_etl.cli import main

    db = tmp_path / "w.duckdb"
    for name, cursor in (("acme", "2024-02-01T00:00:00Z"), ("globex", "2025-01-01T00:00:00Z")):
        destination = open_destination(duckdb=db, account=name)
        _commit(destination, [[_order(1, cursor)]], StreamState(cursors={"_": cursor}))
        destination.close()
    runner = CliRunner()
    shown = runner.invoke(main, ["state", "show", "orders", "--duckdb", str(db), "--account", "globex"])
    assert shown.exit_code == 0 and "2025-01-01" in shown.output and "2024-02-01" not in shown.output
    assert runner.invoke(main, ["state", "reset", "--duckdb", str(db), "--account", "acme", "--yes"]).exit_code == 0
    refused = runner.invoke(main, ["state", "show", "--duckdb", str(db)])
    assert refused.exit_code == 2 and "--account" in refused.output
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("SELECT account FROM _sqquid_state").fetchall() == [("globex",)]


# -- Parquet -----------------------------------------------------------------------------------------


def parquet_account_tables(root, account: str, tables=TABLES) -> dict[str, list[tuple]]:
    """The compared columns of each table, of one account's partition."""
    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return {t: sorted(conn.execute(f"SELECT {COMPARED[t]} FROM read_parquet('{root / t / f'account={account}'}/*.parquet') "
                                       "WHERE account = ?", [account]).fetchall(), key=repr) for t in tables}


def run_parquet_account(root, account: str, sandbox, streams=None):
    result = extract(streams, destination=open_destination(parquet=root, account=account), client=make_client(sandbox))
    assert result.ok, [(s.stream, s.message) for s in result.streams if s.status != "ok"]
    return result


def test_two_accounts_into_one_parquet_directory_at_once_then_incremental(two_sandboxes, tmp_path):
    acme, globex = two_sandboxes
    root = tmp_path / "lake"
    destinations = {name: open_destination(parquet=root, account=name) for name in ("acme", "globex")}
    extract_at_once(destinations, {"acme": acme, "globex": globex})
    assert_tables_equal(parquet_account_tables(root, "acme"), expected_tables(acme.store), TABLES)
    assert_tables_equal(parquet_account_tables(root, "globex"), expected_tables(globex.store), TABLES)
    assert (root / "orders" / "account=acme").is_symlink() and (root / "orders" / "account=globex").is_symlink()
    assert {p.name for p in (root / "_sqquid_state").iterdir()} == {"account=acme.json", "account=globex.json"}
    with duckdb.connect() as conn:  # every account at once, as a reader sees the directory
        both = conn.execute(f"SELECT account, count(*) FROM read_parquet('{root}/orders/*/*.parquet') GROUP BY 1 ORDER BY 1").fetchall()
        assert both == [("acme", len(acme.store.orders)), ("globex", len(globex.store.orders))]
        runs = conn.execute(f"SELECT DISTINCT account FROM read_parquet('{root}/_sqquid_runs/*/*.parquet') ORDER BY 1").fetchall()
        assert runs == [("acme",), ("globex",)]
        from sqquid_etl.sql_views import attach_parquet

        assert "order_lines" in attach_parquet(conn, str(root))
        lines = dict(conn.execute("SELECT account, count(DISTINCT order_id) FROM order_lines GROUP BY 1").fetchall())
        assert lines == {"acme": len({o["id"] for o in acme.store.orders if o.get("order_items")}),
                         "globex": len({o["id"] for o in globex.store.orders if o.get("order_items")})}
    acme.store.add_orders(25)
    second = run_parquet_account(root, "acme", acme, ["orders"])
    assert 25 <= second.stream("orders").rows["orders"] < 300
    tables = ["orders", "order_items"]
    assert_tables_equal(parquet_account_tables(root, "acme", tables), expected_tables(acme.store), tables)
    assert_tables_equal(parquet_account_tables(root, "globex", tables), expected_tables(globex.store), tables)


def test_parquet_single_and_multi_account_are_never_mixed_and_one_account_is_held_once(tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    destination = open_destination(parquet=single)
    _commit(destination, [[_order(1, "2024-01-01T00:00:00Z")]], StreamState())
    destination.close()
    held = open_destination(parquet=multi, account="acme")
    try:
        with pytest.raises(ConfigError, match="single-account.*sqquid-etl upgrade --account NAME"):
            open_destination(parquet=single, account="acme")
        with pytest.raises(ConfigError, match="multi-account"):
            open_destination(parquet=multi)
        with pytest.raises(ConfigError, match="multi-account"):
            open_existing(parquet=multi, read_only=True)
        with pytest.raises(Exception, match="in use"):
            open_destination(parquet=multi, account="acme")  # the account is held by `held`
        open_destination(parquet=multi, account="globex").close()  # another account is not
    finally:
        held.close()


def test_the_accounts_of_a_parquet_directory_share_one_duckdb_database_in_a_process(tmp_path):
    """An in-memory DuckDB costs ~4.4 MB before any query: a hundred accounts' destinations held one
    each. They share one (a connection each: their own temporary views, commits a few at once); a
    single-account destination keeps its own; the shared one closes with its last destination."""
    import duckdb

    from sqquid_etl.destinations.duckdb_shared import opened

    root, single = tmp_path / "lake", tmp_path / "single"
    acme, globex = (open_destination(parquet=root, account=name) for name in ("acme", "globex"))
    alone = open_destination(parquet=single)
    try:
        assert opened(root / ".sqquid" / "spill").users == 2  # both in one
        assert opened(single / ".sqquid" / "spill") is None  # the single-account one: its own
        assert acme.sql is not globex.sql
        limit = acme.sql.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        assert limit == globex.sql.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        assert limit != alone.sql.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]  # (160 MB / 40 MB)
        _commit(acme, [[_order(1, "2024-01-01T00:00:00Z", [10, 11])]], StreamState(cursors={"": "2024-01-01T00:00:00Z"}))
        _commit(globex, [[_order(1, "2025-01-01T00:00:00Z", [10]), _order(2, "2025-01-02T00:00:00Z")]],
                StreamState(cursors={"": "2025-01-02T00:00:00Z"}))
        _commit(alone, [[_order(7, "2024-01-01T00:00:00Z")]], StreamState())
        assert acme.count_since("orders", "created_at", None, {}) == 1
        assert globex.count_since("orders", "created_at", None, {}) == 2
    finally:
        acme.close()
        assert opened(root / ".sqquid" / "spill").users == 1
        globex.close()
        alone.close()
    assert opened(root / ".sqquid" / "spill") is None  # closed with its last destination
    for closed in (acme.sql, globex.sql):
        with pytest.raises(duckdb.ConnectionException):
            closed.execute("SELECT 1")
    assert len(parquet_account_tables(root, "globex", ["orders"])["orders"]) == 2


def test_upgrade_a_single_account_parquet_directory_then_the_account_continues(sandbox, tmp_path):
    from click.testing import CliRunner

    from sqquid_etl.cli import main

    root = tmp_path / "lake"
    assert extract(parquet=root, client=make_client(sandbox)).ok
    states_before = open_existing(parquet=root, read_only=True).load_states()
    done = CliRunner().invoke(main, ["upgrade", "--account", "acme", "--parquet", str(root)])
    assert done.exit_code == 0, done.output
    assert_tables_equal(parquet_account_tables(root, "acme"), expected_tables(sandbox.store), TABLES)
    assert open_existing(parquet=root, read_only=True, account="acme").load_states() == states_before
    assert not (root / "_sqquid_state.json").exists() and not list((root / "_sqquid_runs").glob("*.parquet"))
    again = CliRunner().invoke(main, ["upgrade", "--account", "acme", "--parquet", str(root)])
    assert again.exit_code == 0 and "nothing was changed" in again.output
    sandbox.store.add_orders(20)
    second = run_parquet_account(root, "acme", sandbox, ["orders"])
    assert 20 <= second.stream("orders").rows["orders"] < 300
    tables = ["orders", "order_items"]
    assert_tables_equal(parquet_account_tables(root, "acme", tables), expected_tables(sandbox.store), tables)


def test_a_parquet_upgrade_interrupted_after_its_commit_is_finished_by_running_it_again(sandbox, tmp_path, monkeypatch):
    from sqquid_etl.destinations import parquet_upgrade, upgrade_destination

    root = tmp_path / "lake"
    assert extract(["orders", "locations"], parquet=root, client=make_client(sandbox)).ok
    real, calls = parquet_upgrade.replace_symlink, []

    def crash(link, target):
        calls.append(link)
        if len(calls) == 2:
            raise OSError("killed (injected)")
        real(link, target)

    monkeypatch.setattr(parquet_upgrade, "replace_symlink", crash)
    with pytest.raises(OSError):
        upgrade_destination(parquet=root, account="acme")
    with pytest.raises(Exception, match="upgrade.*interrupted"):
        open_destination(parquet=root, account="acme")
    monkeypatch.setattr(parquet_upgrade, "replace_symlink", real)
    with pytest.raises(ConfigError, match="to account 'acme'"):
        upgrade_destination(parquet=root, account="globex")
    assert "upgraded" in upgrade_destination(parquet=root, account="acme")
    tables = ["orders", "order_items", "locations"]
    assert_tables_equal(parquet_account_tables(root, "acme", tables), expected_tables(sandbox.store), tables)


def test_a_parquet_upgrade_interrupted_before_its_commit_changes_nothing(sandbox, tmp_path, monkeypatch):
    from sqquid_etl.destinations import parquet_upgrade, upgrade_destination

    root = tmp_path / "lake"
    assert extract(["orders"], parquet=root, client=make_client(sandbox)).ok
    monkeypatch.setattr(parquet_upgrade, "write_atomic", lambda *a: (_ for _ in ()).throw(OSError("killed (injected)")))
    with pytest.raises(OSError):
        upgrade_destination(parquet=root, account="acme")
    assert (root / "orders").is_symlink() and (root / "_sqquid_state.json").exists()
    assert extract(["orders"], parquet=root, client=make_client(sandbox)).ok  # still a single-account extract


# -- crash safety ------------------------------------------------------------------------------------

_ACCOUNTS_RUN = """
import sys, threading
from sqquid_etl.client import Credentials, SqquidClient
from sqquid_etl.destinations import open_destination
from sqquid_etl.pipeline import extract

kind, location = sys.argv[1], sys.argv[2]
failed = []

def run(name, url):
    client = SqquidClient(Credentials(api_key="sandbox-api-key"), url, rate=None)
    if not extract(destination=open_destination(**{kind: location}, account=name), client=client).ok:
        failed.append(name)

threads = [threading.Thread(target=run, args=(n, u)) for n, u in zip(("acme", "globex"), sys.argv[3:])]
for t in threads:
    t.start()
for t in threads:
    t.join()
sys.exit(1 if failed else 0)
"""


@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_sigkill_while_two_accounts_write_then_rerun_is_exact(make_sandbox, tmp_path, kind):
    import random
    import subprocess
    import sys

    from tests.test_crash import _kill_after_requests

    acme = make_sandbox(seed=1, orders=900, products=200, latency=0.002)
    globex = make_sandbox(seed=2, orders=600, products=150, latency=0.002)
    target = tmp_path / ("w.duckdb" if kind == "duckdb" else "lake")
    command = [sys.executable, "-c", _ACCOUNTS_RUN, kind, str(target), acme.url, globex.url]
    rng, kills = random.Random(f"accounts-kill-{kind}"), 0
    for _ in range(4):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kills += _kill_after_requests(process, acme, rng.randint(1, 25))
        acme.store.add_orders(20)
        globex.store.add_orders(10)
    assert kills >= 2, "the extract finished before it could be killed: make the sandbox slower"
    finished = subprocess.run(command, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    for name, sandbox in (("acme", acme), ("globex", globex)):
        actual = account_tables(target, name) if kind == "duckdb" else parquet_account_tables(target, name)
        assert_tables_equal(actual, expected_tables(sandbox.store), TABLES)
    staging = target / ".sqquid" / "staging" if kind == "parquet" else target.with_name(target.name + ".staging")
    assert [p for p in staging.rglob("*") if p.is_file()] == []


def test_iceberg_refuses_an_account_before_anything_is_made(tmp_path):
    from sqquid_etl.destinations import check_destination

    warehouse = tmp_path / "warehouse"
    for call in (check_destination, open_destination):
        with pytest.raises(ConfigError, match="Iceberg has no multi-account form yet"):
            call(iceberg=str(warehouse), account="acme")
    assert not warehouse.exists()


# -- Parquet on object storage ------------------------------------------------------------------------


def test_two_accounts_into_one_s3_prefix_at_once_each_its_own_manifest(make_sandbox, bucket):
    import boto3

    from tests.test_parquet_store import _objects

    acme, globex = make_sandbox(seed=1, orders=300, products=100), make_sandbox(seed=2, orders=200, products=80)
    lake = f"s3://{bucket}/lake"
    from sqquid_etl.destinations.duckdb_shared import opened
    from sqquid_etl.destinations.parquet_store_layout import process_spill

    users = lambda: getattr(opened(process_spill()), "users", 0)  # noqa: E731 (another test's may be open)
    before = users()
    destinations = {name: open_destination(parquet=lake, account=name) for name in ("acme", "globex")}
    assert users() == before + 2  # one DuckDB for both (parquet_sql.py)
    extract_at_once(destinations, {"acme": acme, "globex": globex})
    assert users() == before
    s3 = boto3.client("s3")
    for name, sandbox in (("acme", acme), ("globex", globex)):
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"lake/_sqquid/accounts/{name}/manifest.json")["Body"].read())
        listed = {f"lake/{n}" for names in manifest["tables"].values() for n in names}
        stored = {k for k in _objects(bucket, "lake/") if f"/account={name}/" in k and "/part-" in k}
        assert listed == stored  # every file of the account's partitions listed, none orphaned
        assert manifest["states"]["orders"]["cursors"]
        destination = open_existing(parquet=lake, account=name)
        try:
            assert destination.count_since("orders", "created_at", None, {}) == len(sandbox.store.orders)
        finally:
            destination.close()
    assert "lake/_sqquid/manifest.json" not in _objects(bucket)
    with pytest.raises(ConfigError, match="multi-account"):
        open_destination(parquet=lake)
    acme.store.add_orders(15)
    second = extract(["orders"], destination=open_destination(parquet=lake, account="acme"), client=make_client(acme))
    assert second.ok and 15 <= second.stream("orders").rows["orders"] < 300


def test_mixing_is_refused_before_anything_is_requested(tmp_path):
    from sqquid_etl.destinations import check_destination

    single_db, single_dir = tmp_path / "single.duckdb", tmp_path / "single"
    open_destination(duckdb=single_db).close()
    destination = open_destination(parquet=single_dir)
    _commit(destination, [[_order(1, "2024-01-01T00:00:00Z")]], StreamState())
    destination.close()
    for location in ({"duckdb": single_db}, {"parquet": single_dir}):
        with pytest.raises(ConfigError, match="sqquid-etl upgrade --account NAME"):
            check_destination(**location, account="acme")
        check_destination(**location)  # as it is: fine
    multi = tmp_path / "multi.duckdb"
    held = open_destination(duckdb=multi, account="acme")  # open in this process: looked at through it
    try:
        with pytest.raises(ConfigError, match="multi-account"):
            check_destination(duckdb=multi)
        check_destination(duckdb=multi, account="globex")
    finally:
        held.close()


def test_upgrade_a_single_account_s3_prefix_then_the_account_continues(sandbox, bucket):
    from tests.test_parquet_store import _objects

    from sqquid_etl.destinations import upgrade_destination

    lake = f"s3://{bucket}/lake"
    assert extract(["orders", "locations"], parquet=lake, client=make_client(sandbox)).ok
    before = open_existing(parquet=lake, read_only=True)
    states = before.load_states()
    before.close()
    assert "upgraded" in upgrade_destination(parquet=lake, account="acme")
    objects = _objects(bucket, "lake/")
    assert "lake/_sqquid/manifest.json" not in objects and "lake/_sqquid/accounts.json" in objects
    assert not [k for k in objects if k.startswith(("lake/orders/part-", "lake/order_items/part-"))]  # the old files gone
    destination = open_existing(parquet=lake, account="acme")
    try:
        assert destination.load_states() == states
        assert destination.count_since("orders", "created_at", None, {}) == len(sandbox.store.orders)
    finally:
        destination.close()
    assert "nothing was changed" in upgrade_destination(parquet=lake, account="acme")
    with pytest.raises(ConfigError, match="already a multi-account"):
        upgrade_destination(parquet=lake, account="globex")
    sandbox.store.add_orders(10)
    second = extract(["orders"], destination=open_destination(parquet=lake, account="acme"), client=make_client(sandbox))
    assert second.ok and 10 <= second.stream("orders").rows["orders"] < 300


def test_an_s3_upgrade_interrupted_before_its_commit_changes_nothing_after_it_is_finished_again(sandbox, bucket, monkeypatch):
    from sqquid_etl.destinations import parquet_store_upgrade, upgrade_destination
    from sqquid_etl.destinations.object_store import ObjectStore

    lake = f"s3://{bucket}/lake"
    assert extract(["orders"], parquet=lake, client=make_client(sandbox)).ok
    real_write, real_delete = ObjectStore.write, ObjectStore.delete

    def no_marker(self, name, data):
        if name == parquet_store_upgrade.MULTI_ACCOUNT:
            raise OSError("killed (injected)")
        real_write(self, name, data)

    monkeypatch.setattr(ObjectStore, "write", no_marker)
    with pytest.raises(OSError):
        upgrade_destination(parquet=lake, account="acme")
    monkeypatch.setattr(ObjectStore, "write", real_write)
    assert extract(["orders"], parquet=lake, client=make_client(sandbox)).ok  # still single-account
    def no_cleaning(self, names):  # the lock is released (a killed process's would be stale, taken over)
        if not all(name.endswith("lock.json") for name in names):
            raise OSError("killed (injected)")
        real_delete(self, names)

    monkeypatch.setattr(ObjectStore, "delete", no_cleaning)
    with pytest.raises(OSError):
        upgrade_destination(parquet=lake, account="acme")  # committed, not cleaned
    monkeypatch.setattr(ObjectStore, "delete", real_delete)
    with pytest.raises(ConfigError, match="multi-account"):
        open_destination(parquet=lake)
    assert "upgraded" in upgrade_destination(parquet=lake, account="acme")  # finishes
    destination = open_existing(parquet=lake, account="acme")
    try:
        assert destination.count_since("orders", "created_at", None, {}) == len(sandbox.store.orders)
    finally:
        destination.close()


def test_one_destination_of_a_process_writes_an_account(tmp_path):
    from sqquid_etl.errors import StateError

    db = tmp_path / "w.duckdb"
    first = open_destination(duckdb=db, account="acme")
    try:
        with pytest.raises(StateError, match="account 'acme' is being written"):
            open_destination(duckdb=db, account="acme")
        open_destination(duckdb=db, account="globex").close()
        looking = open_existing(duckdb=db, account="acme", read_only=True)  # looking is not writing
        looking.close()
    finally:
        first.close()
    open_destination(duckdb=db, account="acme").close()  # released with its destination
