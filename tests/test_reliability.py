"""Exact under faults: every table equals the sandbox's data after faults, late arrivals,
records changing while paging, and concurrent runs are refused."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections import Counter

import duckdb
import pytest

from sqquid_etl import extract, fetch
from sqquid_etl.client import quote_segment
from sqquid_etl.errors import StateError
from sqquid_etl.pacing import LeakyBucketPacer
from sqquid_etl.sandbox import FaultConfig
from tests.expected import assert_tables_equal, duckdb_tables, expected_tables, parquet_tables
from tests.support import FakeClock, make_client

FAULTS = {
    "500-every-7th": FaultConfig(error_every=7),
    "503-every-5th": FaultConfig(error_every=5, error_status=503),
    "drop-every-6th": FaultConfig(drop_every=6),
    "truncate-every-5th": FaultConfig(truncate_every=5),
    "429-storm": FaultConfig(storm_429=12, storm_retry_after=0),
}


@pytest.mark.parametrize("name", list(FAULTS))
@pytest.mark.parametrize("rate", [None, 100_000.0], ids=["sequential", "concurrent"])
def test_extract_every_stream_under_faults_is_exact(make_sandbox, tmp_path, name, rate):
    # pacing off fetches one page at a time; paced (however fast) keeps several in flight
    sandbox = make_sandbox(orders=600, products=150)
    sandbox.set_faults(FAULTS[name])
    client = make_client(sandbox, rate=rate)
    result = extract(duckdb=tmp_path / "s.duckdb", client=client)
    assert result.ok, [(s.stream, s.message) for s in result.streams]
    assert sandbox.stats.faults_injected > 0 and client.stats.retries > 0
    assert_tables_equal(duckdb_tables(tmp_path / "s.duckdb"), expected_tables(sandbox.store))


def test_token_expiry_mid_run_is_exact(make_sandbox, tmp_path):
    sandbox = make_sandbox(orders=600, products=150)
    client = make_client(sandbox)
    calls = {"n": 0}

    def expiring(real):
        def request(path, params=None, **kwargs):
            calls["n"] += 1
            if calls["n"] % 9 == 0:
                sandbox.expire_tokens()
            return real(path, params, **kwargs)
        return request

    client.get = expiring(client.get)
    client.get_body = expiring(client.get_body)  # list pages
    result = extract(duckdb=tmp_path / "s.duckdb", client=client)
    assert result.ok
    assert client.stats.logins > 3
    assert_tables_equal(duckdb_tables(tmp_path / "s.duckdb"), expected_tables(sandbox.store))


@pytest.mark.parametrize("workers", [1, None], ids=["one-at-a-time", "concurrent"])
def test_tokens_living_1_5_s_at_2_requests_per_s_under_faults_are_exact(make_sandbox, tmp_path, monkeypatch, workers):
    # issue #12 item 7: one fake clock for the sandbox (tokens' exp, its bucket), the pacer and the
    # client (token refresh, backoff): every "sleep" advances it, nothing sleeps for real
    clock = _SharedClock()
    sandbox = make_sandbox(orders=600, products=150, clock=clock, token_ttl=1.5, rate=2.0, burst=40)
    sandbox.set_faults(FaultConfig(error_every=7, error_status=503, drop_every=6))
    # 2 requests/s from the start (a burst of 40 would let this small extract out at once)
    pacer = LeakyBucketPacer(rate=2.0, burst=2, clock=clock, sleep=clock.sleep)
    client = make_client(sandbox, pacer=pacer, sleep=clock.sleep, clock=clock)
    if workers:  # paced, the fetcher keeps several requests in flight; here one at a time
        monkeypatch.setattr(fetch, "default_concurrency", lambda client: workers)
    statuses = _count_statuses(client, clock)
    start = clock.now
    result = extract(duckdb=tmp_path / "s.duckdb", client=client)
    assert result.ok, [(s.stream, s.message) for s in result.streams]
    lifetimes = (clock.now - start) / 1.5
    assert lifetimes > 10 and client.stats.logins > lifetimes / 2  # the run outlived many tokens
    assert sandbox.stats.faults_by_kind.keys() >= {"error", "drop"} and sandbox.stats.throttled == 0
    assert statuses[401] == 0  # no token was ever sent expired: each was renewed before its exp
    assert_tables_equal(duckdb_tables(tmp_path / "s.duckdb"), expected_tables(sandbox.store))


class _SharedClock(FakeClock):
    """A fake clock several threads share, as real time passes for threads running at once: a
    sleep waits (without sleeping for real) until the clock reaches its end, and the clock moves
    to the earliest end only while no request is in flight (`busy`), so that a request takes no
    time on it, whatever the other threads do meanwhile."""

    def __init__(self):
        super().__init__()
        self._cond = threading.Condition()
        self._ends: list[float] = []
        self._busy = 0

    def sleep(self, seconds: float) -> None:
        with self._cond:
            end = self.now + max(0.0, seconds)
            self._ends.append(end)
            while self.now < end:
                self._advance()
                self._cond.wait(0.002)  # woken by a move; else try again (nothing else moved it)
            self._ends.remove(end)

    @contextlib.contextmanager
    def busy(self):
        with self._cond:
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._advance()

    def _advance(self) -> None:
        if not self._busy and self._ends and min(self._ends) > self.now:
            self.now = min(self._ends)
            self._cond.notify_all()


def _count_statuses(client, clock: _SharedClock) -> Counter:
    """The statuses of the answers the client's transport receives."""
    statuses: Counter = Counter()
    send = client.transport.send

    def request(*args, **kwargs):
        with clock.busy():
            response = send(*args, **kwargs)
        statuses[response.status] += 1
        return response

    client.transport.send = request
    return statuses


@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_late_arriving_orders_are_found_by_bisection_and_fetched(sandbox, tmp_path, kind):
    target = {"duckdb": tmp_path / "s.duckdb"} if kind == "duckdb" else {"parquet": tmp_path / "lake"}
    client = make_client(sandbox)
    assert extract(["orders", "shipment_items"], client=client, **target).ok
    oldest = min(o["created_at"] for o in sandbox.store.orders)
    middle = sorted(o["created_at"] for o in sandbox.store.orders)[150]
    sandbox.store.add_orders(3, created_at=middle)  # imported late, original dates kept
    sandbox.store.add_orders(2, created_at=oldest)
    sandbox.store.add_orders(4)  # and some ordinary new ones
    second = extract(["orders", "shipment_items"], client=client, **target)
    assert second.ok, [(s.stream, s.message) for s in second.streams]
    orders = second.stream("orders")
    assert orders.repaired == 5 and "reconciled" in orders.message
    runs = _run_rows(tmp_path, kind, second.run_id)  # one row a stream for the run, the repair included
    assert sorted(r[0] for r in runs) == ["orders", "shipment_items"]
    _, rows, pages, message = next(r for r in runs if r[0] == "orders")
    assert (rows, pages) == (sum(orders.rows.values()), orders.pages) and "reconciled" in message
    tables = ["orders", "order_items", "shipment_items"]
    read = duckdb_tables(tmp_path / "s.duckdb", tables) if kind == "duckdb" else parquet_tables(tmp_path / "lake", tables)
    assert_tables_equal(read, expected_tables(sandbox.store), tables)


def _run_rows(tmp_path, kind, run_id):
    """(stream, rows, pages, message) of a run's rows in `_sqquid_runs`."""
    source = "_sqquid_runs" if kind == "duckdb" else f"read_parquet('{tmp_path / 'lake' / '_sqquid_runs' / '*.parquet'}')"
    with duckdb.connect(str(tmp_path / "s.duckdb") if kind == "duckdb" else ":memory:") as conn:
        return conn.execute(f"SELECT stream, rows, pages, message FROM {source} WHERE run_id = ?", [run_id]).fetchall()


def test_scope_change_behind_the_cursor_is_reconciled(sandbox, tmp_path):
    db = tmp_path / "s.duckdb"
    client = make_client(sandbox)
    assert extract(["shipment_items"], duckdb=db, client=client).ok
    toship = [i["id"] for i in sandbox.store.shipment_items if sandbox.store.shipment_item_scope[i["id"]] == "toship"]
    client.request("PATCH", f"/v1/shipmentitems/{quote_segment(toship[0])}/cancel")
    assert sandbox.store.shipment_item_scope[toship[0]] == "cancelled"
    result = extract(["shipment_items"], duckdb=db, client=client)
    assert result.stream("shipment_items").repaired >= 1
    assert_tables_equal(duckdb_tables(db, ["shipment_items"]), expected_tables(sandbox.store), ["shipment_items"])


def test_records_inserted_and_updated_while_paging(make_sandbox, tmp_path):
    sandbox = make_sandbox(orders=900, products=600)
    sandbox.set_faults(FaultConfig(mutate_every=2, mutate={"add_orders": 3, "update_products": 2}))
    db = tmp_path / "s.duckdb"
    client = make_client(sandbox)
    assert extract(["orders", "products"], duckdb=db, client=client).ok
    sandbox.set_faults(FaultConfig())
    assert extract(["orders", "products"], duckdb=db, client=client).ok  # updates after a page was read
    tables = ["orders", "order_items", "products", "product_variants"]
    assert_tables_equal(duckdb_tables(db, tables), expected_tables(sandbox.store), tables)


def test_count_mismatch_fails_under_strict(make_sandbox, tmp_path):
    sandbox = make_sandbox()
    db = tmp_path / "s.duckdb"
    client = make_client(sandbox)
    assert extract(["orders"], duckdb=db, client=client).ok
    import duckdb

    with duckdb.connect(str(db)) as conn:  # a record the API never had, in no range a listing can prove
        conn.execute("INSERT INTO orders (id) VALUES (987654321)")
    lenient = extract(["orders"], duckdb=db, client=client)
    assert lenient.ok and lenient.stream("orders").status == "warning" and "more records" in lenient.stream("orders").message
    strict = extract(["orders"], duckdb=db, client=client, strict=True)
    assert not strict.ok and strict.exit_code == 1


def test_second_extract_into_same_parquet_dir_is_refused(tmp_path):
    from sqquid_etl.destinations.parquet import ParquetDestination

    first = ParquetDestination(tmp_path / "lake")
    try:
        with pytest.raises(StateError, match="in use by another process"):
            ParquetDestination(tmp_path / "lake")
    finally:
        first.close()
    ParquetDestination(tmp_path / "lake").close()  # free again once the first is done


def test_second_extract_into_same_duckdb_is_refused(sandbox, tmp_path):
    db = tmp_path / "s.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys, time; c = duckdb.connect({str(db)!r}); print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StateError, match="in use by another process"):
            extract(["locations"], duckdb=db, client=make_client(sandbox))
    finally:
        holder.kill()
        holder.wait()
