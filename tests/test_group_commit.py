"""The parts of many accounts' first loads committed together into one DuckDB file
(`destinations/duckdb_group.py`): one transaction for the parts of every account waiting, each
account's rows, state and run row in it together; when it fails, each part alone, so that an
account whose part cannot be stored fails alone and the others' parts are stored."""

from __future__ import annotations

import duckdb
import pytest

from sqquid_etl import commit_parts
from sqquid_etl.accounts_run import run_accounts
from sqquid_etl.definitions import load_definitions
from sqquid_etl.destinations import duckdb_group, open_destination
from sqquid_etl.destinations.duckdb_own import cursor
from sqquid_etl.errors import StateError
from sqquid_etl.records import page_to_tables
from sqquid_etl.runs import RunRecord
from sqquid_etl.state import StreamState
from tests.expected import assert_tables_equal, expected_tables
from tests.test_accounts_run import _accounts, _one, account_tables
from tests.support import make_client

ACCOUNTS = ("acme", "globex", "initech")
NEW = StreamState(cursors={"_": "2024-02-01T00:00:00Z"})


def _page(first: int, n: int) -> list[dict]:
    return [{"id": i, "created_at": f"2024-01-{1 + i % 28:02d}T00:00:00Z", "total": f"{i}.00",
             "order_items": [{"id": i * 10, "sku": f"s{i}", "qty": 1}, {"id": i * 10 + 1, "sku": f"t{i}", "qty": 2}]}
            for i in range(first, first + n)]


@pytest.fixture
def grouped(monkeypatch):
    """Parts wait for the group until an account asks (no timer); returns the accounts of each
    group transaction, in order."""
    monkeypatch.setattr(duckdb_group, "GROUP_SECONDS", 3600.0)
    groups: list = []
    real = duckdb_group.GroupWriter._transaction

    def spied(self, conn, parts):
        groups.append(sorted(p.account for p in parts))
        return real(self, conn, parts)

    monkeypatch.setattr(duckdb_group.GroupWriter, "_transaction", spied)
    return groups


def _done(run: RunRecord) -> RunRecord:
    run.status = "ok"  # (the engine's last commit: a record of the run's end)
    return run


def _writers(path, tuning=None):
    stream = load_definitions()["orders"]
    destinations = {name: open_destination(path, account=name, tuning=tuning) for name in ACCOUNTS}
    writers = {name: d.begin(stream, replace=False) for name, d in destinations.items()}
    runs = {name: RunRecord(run_id=f"r-{name}", stream="orders", started_at="2024-01-01T00:00:00+00:00") for name in ACCOUNTS}
    return stream, destinations, writers, runs


def _first_parts(stream, writers, runs):
    """acme's first part alone (it creates the tables); then a part of each account, handed to the group."""
    writers["acme"].write(page_to_tables(stream, _page(1, 5)))
    assert writers["acme"].commit_part(StreamState(), runs["acme"])
    for k, name in enumerate(ACCOUNTS):
        writers[name].write(page_to_tables(stream, _page(100 * (k + 1), 4)))
        assert writers[name].commit_part(StreamState(), runs[name])
    assert all(len(w._grouped) == 1 for w in writers.values())  # waiting for the group, the next pages staged anew


def _stored(path, conn=None):
    """Rows, items, states and run rows by account (`conn`: a destination's, while it is open)."""
    with cursor(conn) if conn is not None else duckdb.connect(str(path), read_only=True) as conn:
        orders = dict(conn.execute("SELECT account, count(*) FROM orders GROUP BY 1").fetchall())
        items = dict(conn.execute("SELECT account, count(*) FROM order_items GROUP BY 1").fetchall())
        states = dict(conn.execute("SELECT account, state FROM _sqquid_state WHERE stream = 'orders'").fetchall())
        runs = {r[0]: r[1:] for r in conn.execute(
            "SELECT account, status, records_new FROM _sqquid_runs WHERE stream = 'orders'").fetchall()}
    return orders, items, {a: StreamState.from_json(s, "test").cursors for a, s in states.items()}, runs


def test_the_parts_of_every_account_are_committed_in_one_transaction(tmp_path, grouped):
    path = tmp_path / "w.duckdb"
    stream, destinations, writers, runs = _writers(path)
    try:
        _first_parts(stream, writers, runs)
        for k, name in enumerate(ACCOUNTS):
            writers[name].write(page_to_tables(stream, _page(1000 * (k + 1), 3)))
            assert writers[name].distinct_keys("orders") == (12 if name == "acme" else 7)  # the group settled first
            writers[name].commit(NEW, _done(runs[name]))
    finally:
        for d in destinations.values():
            d.close()
    # the three parts waiting, in one transaction; then each account's last commit (its new state, its run's last row)
    assert grouped == [list(ACCOUNTS), ["acme"], ["globex"], ["initech"]]
    orders, items, states, run_rows = _stored(path)
    assert orders == {"acme": 12, "globex": 7, "initech": 7} and items == {a: 2 * n for a, n in orders.items()}
    assert states == {a: NEW.cursors for a in ACCOUNTS}
    assert run_rows == {"acme": ("ok", 12), "globex": ("ok", 7), "initech": ("ok", 7)}  # one row a run, replaced


def test_a_part_that_cannot_be_stored_fails_its_account_alone(tmp_path, grouped, monkeypatch):
    path = tmp_path / "w.duckdb"
    real = duckdb_group._write_runs

    def refuse_globex(conn, parts):  # after the rows of every part were inserted in the transaction
        if any(p.account == "globex" for p in parts):
            raise StateError("simulated: globex's run row cannot be written")
        return real(conn, parts)

    monkeypatch.setattr(duckdb_group, "_write_runs", refuse_globex)
    stream, destinations, writers, runs = _writers(path)
    try:
        _first_parts(stream, writers, runs)
        writers["acme"].write(page_to_tables(stream, _page(5000, 2)))
        writers["acme"].commit(NEW, _done(runs["acme"]))  # settles the group: acme's and the others' parts
        # the group failed: each alone; then acme's last commit
        assert grouped == [list(ACCOUNTS), ["acme"], ["globex"], ["initech"], ["acme"]]
        mid = _stored(path, destinations["acme"].conn)  # initech's part stored, its run still going; globex: nothing of it
        writers["globex"].write(page_to_tables(stream, _page(6000, 2)))
        with pytest.raises(StateError, match="globex's run row"):
            writers["globex"].commit(NEW, _done(runs["globex"]))
        writers["globex"].abort()
        writers["initech"].commit(NEW, _done(runs["initech"]))
    finally:
        for d in destinations.values():
            d.close()
    assert grouped[-1] == ["initech"]  # (globex's last commit never handed over: its part before had failed)
    assert mid[0] == {"acme": 11, "initech": 4} and mid[3]["initech"] == ("running", 4)
    assert "globex" not in mid[2] and "globex" not in mid[3]  # its rows, state and run row: none of them
    orders, items, states, run_rows = _stored(path)
    assert orders == {"acme": 11, "initech": 4} and items == {"acme": 22, "initech": 8}
    assert states == {"acme": NEW.cursors, "initech": NEW.cursors}  # globex's state never moved
    assert run_rows == {"acme": ("ok", 11), "initech": ("ok", 4)}


def test_many_accounts_committed_in_parts_through_the_group_equal_their_sandboxes(make_sandbox, tmp_path, monkeypatch):
    monkeypatch.setattr(commit_parts, "COMMIT_SECONDS", 0.0)  # a part after every page
    monkeypatch.setattr(duckdb_group, "GROUP_SECONDS", 0.05)
    parts: list = []
    real = duckdb_group.GroupWriter._transaction
    monkeypatch.setattr(duckdb_group.GroupWriter, "_transaction",
                        lambda self, conn, p: (parts.extend(x.account for x in p), real(self, conn, p))[1])
    # (an account's part goes to the group once its tables exist: one of 4 pages a stream could end
    # before another account's commit made them, its parts waiting while the file's writer was busy)
    accounts = _accounts(make_sandbox, {"acme": 2400, "globex": 1800, "initech": 3000})
    sandboxes = {name: sb for name, (sb, _) in accounts.items()}
    result = run_accounts([job for _, job in accounts.values()], _one(tmp_path),
                          {"streams": None}, client_for=lambda job: make_client(sandboxes[job.account.name],
                                                                                credentials=job.credentials))
    assert result.ok, result.summary()
    # the group writer stored parts of several accounts (which ones is the threads' timing: an account
    # whose parts all came before the tables existed commits them itself; every one in a file made
    # beforehand: test_the_parts_of_every_account_are_committed_in_one_transaction above)
    assert len(parts) >= 6 and set(parts) <= set(ACCOUNTS)  # (one account only, at times, under load)
    for name, sandbox in sandboxes.items():
        assert_tables_equal(account_tables(tmp_path / "w.duckdb", name), expected_tables(sandbox.store))
        orders = next(s for s in result.account(name).streams if s.stream == "orders")
        assert orders.count_check == "ok" and orders.records_new == len(sandbox.store.orders)


def test_accounts_into_parquet_commit_a_few_at_once(make_sandbox, tmp_path, monkeypatch):
    """Their commits at the end hold memory each (a DuckDB of their own): at most COMMITS_AT_ONCE at
    once (here 1), every account's rows stored all the same."""
    import threading
    import time

    from sqquid_etl.destinations import commit_slots
    from sqquid_etl.destinations.parquet import ParquetStreamWriter

    monkeypatch.setattr(commit_slots, "_SLOTS", threading.BoundedSemaphore(1))
    active, most, lock = [0], [0], threading.Lock()
    real = ParquetStreamWriter._commit

    def counted(self, state, run):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            time.sleep(0.01)  # (a commit that lasts: another account's would overlap it without the slot)
            return real(self, state, run)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(ParquetStreamWriter, "_commit", counted)
    accounts = _accounts(make_sandbox, {"acme": 90, "globex": 60, "initech": 120})
    result = run_accounts([job for _, job in accounts.values()], {"parquet": str(tmp_path / "lake")})
    assert result.ok, [(a.account, a.message) for a in result.accounts]
    assert most == [1]
    for name, (sandbox, _) in accounts.items():
        orders = next(s for s in result.account(name).streams if s.stream == "orders")
        assert orders.rows["orders"] == len(sandbox.store.orders)


def test_no_part_waits_for_a_group_writer_that_ended(tmp_path, grouped, monkeypatch):
    """Whatever ends the group writer's thread fails the parts waiting and those handed over after
    (their accounts' runs fail with it) instead of leaving them waiting."""
    def broken(self, conn, parts):
        raise SystemExit("simulated: the group writer's thread ends")

    monkeypatch.setattr(duckdb_group.GroupWriter, "_commit", broken)
    path = tmp_path / "w.duckdb"
    stream, destinations, writers, runs = _writers(path)
    try:
        _first_parts(stream, writers, runs)
        with pytest.raises(SystemExit, match="thread ends"):
            writers["acme"].commit(NEW, _done(runs["acme"]))
        writers["globex"].write(page_to_tables(stream, _page(7000, 2)))
        with pytest.raises(SystemExit, match="thread ends"):
            writers["globex"].commit_part(StreamState(), runs["globex"])  # its part before, failed
        writers["initech"].write(page_to_tables(stream, _page(8000, 2)))
        with pytest.raises(SystemExit, match="thread ends"):
            writers["initech"].commit(NEW, _done(runs["initech"]))
        for writer in writers.values():
            writer.abort()
    finally:
        for d in destinations.values():
            d.close()
    orders, _, states, _ = _stored(path)
    assert orders == {"acme": 5} and states == {"acme": {}}  # acme's first part (its own), the old state


def test_the_group_writer_connects_under_the_process_lock(tmp_path, grouped, monkeypatch):
    """The file's root connection takes one call at a time (DuckDB refuses a second thread's:
    ResourceInUseException): the group writer's connection is made, as every destination's, while
    the process's lock is held, never by its thread beside an account opening its destination."""
    from sqquid_etl.destinations import duckdb_shared

    made: list[bool] = []
    real = duckdb_shared.cursor

    def watched(conn):
        made.append(duckdb_shared._LOCK.locked())
        return real(conn)

    monkeypatch.setattr(duckdb_shared, "cursor", watched)
    path = tmp_path / "w.duckdb"
    stream, destinations, writers, runs = _writers(path)
    try:
        _first_parts(stream, writers, runs)
        for name in ACCOUNTS:
            writers[name].commit(NEW, _done(runs[name]))
    finally:
        for d in destinations.values():
            d.close()
    assert grouped == [list(ACCOUNTS), ["acme"], ["globex"], ["initech"]]
    assert len(made) == len(ACCOUNTS) + 1 and all(made)  # three destinations' and the group writer's, each under the lock
    assert _stored(path)[0] == {"acme": 9, "globex": 4, "initech": 4}


def test_a_part_staged_in_several_files_is_committed_whole(tmp_path, grouped, monkeypatch):
    """A part's pages staged in several files (`staging_arrow.ARROW_FILE_BATCHES`): the group inserts all of them."""
    from sqquid_etl.destinations import staging_arrow
    from sqquid_etl.settings import Tuning

    monkeypatch.setattr(staging_arrow, "ARROW_FILE_BATCHES", 1)
    path = tmp_path / "w.duckdb"
    stream, destinations, writers, runs = _writers(path, Tuning(flush_rows=1))
    try:
        writers["acme"].write(page_to_tables(stream, _page(1, 5)))
        assert writers["acme"].commit_part(StreamState(), runs["acme"])  # (creates the tables)
        for k, name in enumerate(ACCOUNTS):
            for n in range(3):
                writers[name].write(page_to_tables(stream, _page(100 * (k + 1) + 10 * n, 4)))
            assert writers[name].commit_part(StreamState(), runs[name])
        assert [len(w._grouped[0].files["orders"][0].paths) for w in writers.values()] == [3, 3, 3]
        for name in ACCOUNTS:
            writers[name].commit(NEW, _done(runs[name]))
    finally:
        for d in destinations.values():
            d.close()
    assert grouped == [list(ACCOUNTS), ["acme"], ["globex"], ["initech"]]
    orders, items, states, run_rows = _stored(path)
    assert orders == {"acme": 17, "globex": 12, "initech": 12} and items == {a: 2 * n for a, n in orders.items()}
    assert run_rows == {"acme": ("ok", 17), "globex": ("ok", 12), "initech": ("ok", 12)}


def test_a_part_is_handed_over_while_the_group_writer_commits(tmp_path, grouped):
    """The group writer holds the file's lock through its transaction: an account handing it a
    part (`commit_part`) does not wait for that lock (it stages its next pages at once)."""
    import threading

    path = tmp_path / "w.duckdb"
    stream, destinations, writers, runs = _writers(path)
    try:
        _first_parts(stream, writers, runs)  # (the group writer made)
        held, release = threading.Event(), threading.Event()
        shared = destinations["acme"].shared

        def commit_in_progress():  # as the group writer's transaction holds it
            with shared.lock:
                held.set()
                release.wait(30)

        holder = threading.Thread(target=commit_in_progress)
        holder.start()
        held.wait(30)
        handed: list[bool] = []
        writers["globex"].write(page_to_tables(stream, _page(9000, 2)))
        worker = threading.Thread(target=lambda: handed.append(writers["globex"].commit_part(StreamState(), runs["globex"])))
        worker.start()
        worker.join(10)
        done = not worker.is_alive()
        release.set()
        holder.join()
        worker.join()
        assert done and handed == [True]  # handed over while the lock was held
        for name in ACCOUNTS:
            writers[name].commit(NEW, _done(runs[name]))
    finally:
        for d in destinations.values():
            d.close()
    assert _stored(path)[0] == {"acme": 9, "globex": 6, "initech": 4}


def test_a_last_commit_that_cannot_be_stored_leaves_the_old_state_and_fails_alone(tmp_path, grouped, monkeypatch):
    """An account's last commit handed to the group (its new state, its run's last row) is stored
    with its rows or not at all: when it cannot be, its run fails, its state stays the old one and
    the part of another account in the same group is stored."""
    path = tmp_path / "w.duckdb"
    real = duckdb_group._write_states

    def refuse_acmes_new_state(conn, parts):
        if any(p.account == "acme" and p.state == NEW.to_json() for p in parts):
            raise StateError("simulated: acme's new state cannot be written")
        return real(conn, parts)

    monkeypatch.setattr(duckdb_group, "_write_states", refuse_acmes_new_state)
    stream, destinations, writers, runs = _writers(path)
    try:
        _first_parts(stream, writers, runs)
        assert writers["acme"].distinct_keys("orders") == 9  # (settles the parts waiting)
        writers["globex"].write(page_to_tables(stream, _page(2000, 3)))
        assert writers["globex"].commit_part(StreamState(), runs["globex"])  # waits beside acme's last commit
        writers["acme"].write(page_to_tables(stream, _page(3000, 2)))
        with pytest.raises(StateError, match="acme's new state"):
            writers["acme"].commit(NEW, _done(runs["acme"]))
        writers["acme"].abort()
        for name in ("globex", "initech"):
            writers[name].commit(NEW, _done(runs[name]))
    finally:
        for d in destinations.values():
            d.close()
    assert grouped[:4] == [list(ACCOUNTS), ["acme", "globex"], ["globex"], ["acme"]]  # the group failed: each alone
    orders, items, states, run_rows = _stored(path)
    assert orders == {"acme": 9, "globex": 7, "initech": 4}  # acme: its parts, not the last commit's rows
    assert items == {a: 2 * n for a, n in orders.items()}
    assert states == {"acme": {}, "globex": NEW.cursors, "initech": NEW.cursors}  # acme's: the old one
    assert run_rows["acme"] == ("running", 9) and run_rows["globex"] == ("ok", 7)


def test_a_last_commit_repeating_a_key_of_the_parts_is_merged_by_key(tmp_path, grouped):
    """Keys the parts stored, staged again for the last commit (a record listed twice): not handed to
    the group, merged by the account's own commit: each key once, the last version kept."""
    path = tmp_path / "w.duckdb"
    stream, destinations, writers, runs = _writers(path)
    try:
        _first_parts(stream, writers, runs)
        repeated = _page(100, 2)
        repeated[0]["total"] = "99.00"
        writers["acme"].write(page_to_tables(stream, repeated))  # ids 100, 101: stored by acme's part
        writers["acme"].commit(NEW, _done(runs["acme"]))
        for name in ("globex", "initech"):
            writers[name].commit(NEW, _done(runs[name]))
    finally:
        for d in destinations.values():
            d.close()
    assert grouped == [list(ACCOUNTS), ["globex"], ["initech"]]  # acme's last commit its own
    with duckdb.connect(str(path), read_only=True) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT id) FROM orders WHERE account = 'acme'").fetchall() == [(9, 9)]
        assert conn.execute("SELECT total::VARCHAR FROM orders WHERE account = 'acme' AND id = 100").fetchall() == [("99.0000",)]
    assert _stored(path)[2]["acme"] == NEW.cursors


def test_a_file_of_many_accounts_takes_its_blocks_from_a_pool_of_its_memory_limit(tmp_path):
    """DuckDB's blocks of a file of many accounts come from a pool of its memory limit, used again
    (`duckdb_tuning.ACCOUNTS_BLOCK_ALLOCATOR`): at its limit, each new block was fresh C heap, faulted
    in, and each eviction flushed the process's allocators. From `POOL_ACCOUNTS` accounts writing it
    in the process; a file of fewer, of one account, or of many with a limit of the user's, keeps
    DuckDB's default (no pool)."""
    from sqquid_etl.settings import Tuning

    def pool(destination) -> str:
        return destination.conn.execute("SELECT current_setting('block_allocator_memory')").fetchall()[0][0]

    def limit(destination) -> str:
        return destination.conn.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]

    from sqquid_etl.accounts_run import MANY_ACCOUNTS
    from sqquid_etl.destinations.duckdb_tuning import POOL_ACCOUNTS

    assert POOL_ACCOUNTS == MANY_ACCOUNTS
    many = []
    try:
        for n in range(POOL_ACCOUNTS):
            many.append(open_destination(tmp_path / "many.duckdb", account=f"a{n}"))
            # fewer accounts: no pool (its touched blocks were RSS for nothing: one account 156 -> 172 MB)
            assert pool(many[0]) == ("61.0 MiB" if n == POOL_ACCOUNTS - 1 else "0 bytes")
        assert pool(many[-1]) == limit(many[0]) == "61.0 MiB"  # (64 MB)
    finally:
        for d in many:
            d.close()
    one = open_destination(tmp_path / "one.duckdb")
    try:
        assert pool(one) == "0 bytes"
    finally:
        one.close()
    chosen = open_destination(tmp_path / "chosen.duckdb", account="acme", tuning=Tuning(memory_limit="128MB"))
    try:
        assert pool(chosen) == "0 bytes"
    finally:
        chosen.close()


def test_a_duckdb_without_the_block_pool_setting_tunes_the_rest(tmp_path):
    """`block_allocator_memory` came with DuckDB 1.3 (pyproject admits 1.0): where the setting is
    unknown, a file of many accounts is tuned without the pool, not refused."""
    from sqquid_etl.destinations import duckdb_tuning
    from sqquid_etl.settings import Tuning

    class OlderDuckDB:
        def __init__(self, conn):
            self.conn, self.sent = conn, []

        def execute(self, sql):
            if "block_allocator_memory" in sql:
                raise duckdb.CatalogException("unrecognized configuration parameter \"block_allocator_memory\"")
            self.sent.append(sql)
            return self.conn.execute(sql)

    conn = OlderDuckDB(duckdb.connect(str(tmp_path / "many.duckdb")))
    duckdb_tuning.tune(conn, Tuning(), accounts=True)
    assert not duckdb_tuning.pool_blocks(conn, Tuning(), duckdb_tuning.POOL_ACCOUNTS - 1)
    assert duckdb_tuning.pool_blocks(conn, Tuning(), duckdb_tuning.POOL_ACCOUNTS)  # (refused: decided all the same)
    assert conn.conn.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] == "61.0 MiB"
    assert any(sql.startswith("SET threads") for sql in conn.sent)
