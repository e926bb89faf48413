"""Many accounts in one process (issue #15 item 2): each account its own client, token, bucket
and state, all at once; one that fails, is slow or throttled never stops or delays another.

Each account here has a sandbox of its own (its own key, seed and size, faults and clock), and
all write one DuckDB file (the destination bound to each account: tests/test_accounts_warehouse.py)."""

from __future__ import annotations

import threading

import duckdb
import pytest

from sqquid_etl.accounts import Account
from sqquid_etl.accounts_progress import AccountsProgress
from sqquid_etl.accounts_run import AccountJob, plan_jobs, run_accounts
from sqquid_etl.client import Credentials, SqquidClient
from sqquid_etl.errors import ConfigError
from sqquid_etl.pacing import LeakyBucketPacer
from sqquid_etl.sandbox import FaultConfig
from tests.expected import COMPARED, assert_tables_equal, duckdb_tables, expected_tables
from tests.support import FakeClock, make_client

WAIT = 20  # seconds a test waits for another thread at most (a deadlock fails, never hangs)


def _accounts(make_sandbox, sizes):
    """name -> (sandbox, job): a sandbox each, seeded apart, its own api key."""
    out = {}
    for i, (name, orders) in enumerate(sizes.items(), 1):
        sandbox = make_sandbox(seed=i, orders=orders, products=orders // 3, api_keys=(f"key-{name}",))
        account = Account(name=name, base_url=sandbox.url, api_key_env=f"{name.upper()}_KEY", rate=None)
        out[name] = sandbox, AccountJob(account, Credentials(api_key=f"key-{name}"))
    return out


def _files(tmp_path):
    """A DuckDB file per account instead of one for all (`location_for`)."""
    return lambda name: {"duckdb": str(tmp_path / f"{name}.duckdb")}


def _one(tmp_path):
    return {"duckdb": str(tmp_path / "w.duckdb")}


def account_tables(db, account: str) -> dict[str, list[tuple]]:
    """The compared columns of every table, of one account's rows."""
    with duckdb.connect(str(db), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return {t: sorted(conn.execute(f"SELECT {COMPARED[t]} FROM {t} WHERE account = ?", [account]).fetchall(), key=repr)
                for t in COMPARED}


def _fast_client(**options):
    """Clients that never sleep for real: backoff of a millisecond."""
    def client_for(job):
        return SqquidClient(job.credentials, job.account.base_url, rate=job.account.rate, backoff_base=0.001, **options)
    return client_for


def test_three_accounts_at_once_each_equal_to_its_sandbox(make_sandbox, tmp_path):
    accounts = _accounts(make_sandbox, {"acme": 300, "globex": 150, "initech": 450})
    sandboxes = {name: sb for name, (sb, _) in accounts.items()}
    arrived = threading.Barrier(3, timeout=WAIT)  # every account logs in before any goes on: all at once

    def client_for(job):
        client = make_client(sandboxes[job.account.name], credentials=job.credentials)
        login = client.ensure_token
        client.ensure_token = lambda: (arrived.wait(), login())[1]
        return client

    result = run_accounts([job for _, job in accounts.values()], _one(tmp_path), client_for=client_for)
    assert result.ok and result.exit_code == 0 and result.failed == []
    assert [a.account for a in result.accounts] == ["acme", "globex", "initech"]
    for name, sandbox in sandboxes.items():
        assert result.account(name).status == "ok" and len(result.account(name).streams) == 7
        assert_tables_equal(account_tables(tmp_path / "w.duckdb", name), expected_tables(sandbox.store))
        assert sandbox.stats.logins == 1
    counts = {name: result.account(name).streams[-1] for name in sandboxes}
    assert len({sum(s.rows.values()) for s in counts.values()}) == 3  # different data, each its own


@pytest.mark.parametrize("fault", ["bad-key", "unreachable", "every-request-503"])
def test_a_failing_account_does_not_stop_the_others(make_sandbox, tmp_path, fault):
    accounts = _accounts(make_sandbox, {"acme": 300, "broken": 150, "initech": 200})
    sandboxes = {name: sb for name, (sb, _) in accounts.items()}
    jobs = [job for _, job in accounts.values()]
    if fault == "bad-key":
        jobs[1] = AccountJob(jobs[1].account, Credentials(api_key="not-the-key"))
    elif fault == "unreachable":
        sandboxes["broken"].stop()  # nothing listens: the login cannot be made
    else:
        sandboxes["broken"].set_faults(FaultConfig(error_every=1, error_status=503))
    progress = AccountsProgress(3, "off")
    result = run_accounts(jobs, _one(tmp_path), progress=progress,
                          client_for=_fast_client(max_tries=2, timeout=(2.0, 2.0)))
    assert not result.ok and result.failed == ["broken"]
    broken = result.account("broken")
    assert broken.status == "failed" and broken.message
    assert result.exit_code == broken.exit_code == {"bad-key": 3, "unreachable": 4, "every-request-503": 4}[fault]
    assert "not-the-key" not in broken.message
    for name in ("acme", "initech"):
        assert result.account(name).status == "ok"
        assert_tables_equal(account_tables(tmp_path / "w.duckdb", name), expected_tables(sandboxes[name].store))
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as conn:  # nothing stored of the failed one
        assert conn.execute("SELECT count(*) FROM orders WHERE account = 'broken'").fetchone()[0] == 0
    assert (sorted(progress.done), progress.failed, progress.running) == (["acme", "initech"], ["broken"], set())


def test_a_throttled_account_does_not_delay_the_others(make_sandbox, tmp_path):
    """The throttled account's every wait (429 backoff, its bucket) is held until the others have
    finished: were the accounts run one after another, or did one wait for another, it would
    never be released (the test fails on its timeout instead)."""
    accounts = _accounts(make_sandbox, {"acme": 300, "slow": 300, "initech": 150})
    sandboxes = {name: sb for name, (sb, _) in accounts.items()}
    sandboxes["slow"].set_faults(FaultConfig(storm_429=6, storm_retry_after=2))
    others_done, released = threading.Event(), threading.Event()
    clock = FakeClock()

    def held_sleep(seconds):  # the slow account's sleeps: nothing moves until the others are done
        assert released.wait(WAIT), "the throttled account was never released: the others waited for it"
        clock.sleep(seconds)

    def client_for(job):
        if job.account.name != "slow":
            return make_client(sandboxes[job.account.name], credentials=job.credentials)
        pacer = LeakyBucketPacer(rate=2.0, burst=2, clock=clock, sleep=held_sleep)
        return make_client(sandboxes["slow"], credentials=job.credentials, pacer=pacer, sleep=held_sleep)

    class Watch(AccountsProgress):
        def account_done(self, account_result):
            super().account_done(account_result)
            if {"acme", "initech"} <= set(self.done):
                others_done.set()

    progress = Watch(3, "off")
    holder = {}
    runner = threading.Thread(target=lambda: holder.update(
        result=run_accounts([job for _, job in accounts.values()], _one(tmp_path),
                            progress=progress, client_for=client_for)))
    runner.start()
    assert others_done.wait(WAIT)
    assert progress.running == {"slow"}  # the others finished while it was held
    released.set()
    runner.join(WAIT)
    result = holder["result"]
    assert result.ok, [(a.account, a.message) for a in result.accounts]
    assert sandboxes["slow"].stats.throttled == 6
    assert clock.now > 1000.0  # its waits were on its own clock
    for name, sandbox in sandboxes.items():
        assert_tables_equal(account_tables(tmp_path / "w.duckdb", name), expected_tables(sandbox.store))


def test_a_file_per_account_instead(make_sandbox, tmp_path):
    accounts = _accounts(make_sandbox, {"acme": 90, "globex": 60})
    result = run_accounts([job for _, job in accounts.values()], {}, location_for=_files(tmp_path))
    assert result.ok
    for name, (sandbox, _) in accounts.items():
        assert_tables_equal(duckdb_tables(tmp_path / f"{name}.duckdb"), expected_tables(sandbox.store))


def test_each_account_at_its_own_rate(make_sandbox, tmp_path):
    accounts = _accounts(make_sandbox, {"acme": 60, "globex": 60})
    jobs = plan_jobs([job.account for _, job in accounts.values()],
                     {name: job.credentials for name, (_, job) in accounts.items()}, rate=False)
    assert [j.account.rate for j in jobs] == [None, None]
    jobs = plan_jobs([job.account for _, job in accounts.values()],
                     {name: job.credentials for name, (_, job) in accounts.items()},
                     rate=5.0, burst=7, streams=["orders"], start_date="2024-01-01")
    assert {(j.account.rate, j.account.burst, j.account.streams, j.account.start_date) for j in jobs} == {
        (5.0, 7, ("orders",), "2024-01-01")}
    seen = {}

    def client_for(job):
        seen[job.account.name] = client = make_client(accounts[job.account.name][0], credentials=job.credentials,
                                                      rate=100_000.0, burst=job.account.burst)
        return client

    result = run_accounts(jobs, {}, location_for=_files(tmp_path), client_for=client_for)
    assert result.ok and [s.stream for s in result.account("acme").streams] == ["orders"]
    assert seen["acme"].pacer is not seen["globex"].pacer and seen["acme"].pacer.capacity == 6


def test_a_bad_option_of_one_account_is_refused_before_any_request(make_sandbox, tmp_path):
    accounts = _accounts(make_sandbox, {"acme": 30, "globex": 30})
    jobs = [job for _, job in accounts.values()]
    jobs[1] = AccountJob(Account(name="globex", base_url=jobs[1].account.base_url, api_key_env="G",
                                 streams=("ordrs",)), jobs[1].credentials)
    with pytest.raises(ConfigError, match="account globex: unknown stream"):
        run_accounts(jobs, {}, location_for=_files(tmp_path))
    assert all(sb.stats.requests == 0 for sb, _ in accounts.values())
    assert not list(tmp_path.iterdir())


def test_log_lines_of_an_account_s_threads_name_it(capsys):
    import logging

    from sqquid_etl.progress import configure_logging
    from sqquid_etl.threads import account_thread_name, worker_name

    configure_logging(1, "json")
    log = logging.getLogger("sqquid_etl.client")

    def account_thread():
        log.warning("retrying GET /v1/orders")
        worker = threading.Thread(target=lambda: log.warning("from a worker"), name=worker_name("fetch-0"))
        worker.start()
        worker.join()

    thread = threading.Thread(target=account_thread, name=account_thread_name("acme"))
    thread.start()
    thread.join()
    log.warning("outside")
    configure_logging(0, "text")
    import json

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line.get("account"), line["message"]) for line in lines] == [
        ("acme", "[acme] retrying GET /v1/orders"), ("acme", "[acme] from a worker"), (None, "outside")]


def test_progress_shows_accounts_done_running_failed():
    import io

    from sqquid_etl.accounts_run import AccountResult
    from sqquid_etl.engine import StreamResult

    clock = FakeClock()
    out = io.StringIO()
    progress = AccountsProgress(3, "bar", out=out, clock=clock, width=160)
    for name in ("acme", "globex", "initech"):
        progress.account_started(name)
    feed = progress.feed("acme")
    feed("orders", 3, 250)
    clock.sleep(1.0)
    progress.stream_done("acme", StreamResult("orders", rows={"orders": 300, "order_items": 900}))
    done = AccountResult("acme", status="ok", streams=[StreamResult("orders", rows={"orders": 300})])
    progress.account_done(done)
    progress.account_done(AccountResult("globex", status="failed", exit_code=3, message="login refused"))
    line = out.getvalue().split("\r")[-1]
    assert "accounts" in line and "2/3" in line and "1 running, 1 failed, 300 records" in line
    assert progress.counts().startswith("1 done, 1 running, 1 failed of 3 accounts; 300 records")
    progress.close()
    assert out.getvalue().endswith("\n")


def test_two_accounts_into_one_parquet_directory(make_sandbox, tmp_path):
    accounts = _accounts(make_sandbox, {"acme": 90, "globex": 60})
    result = run_accounts([job for _, job in accounts.values()], {"parquet": str(tmp_path / "lake")})
    assert result.ok, [(a.account, a.message) for a in result.accounts]
    assert result.destination == str(tmp_path / "lake")
    orders = {name: result.account(name).streams[-3] for name in accounts}
    assert {s.stream for s in orders.values()} == {"orders"}
    assert [orders[name].rows["orders"] for name in accounts] == [len(sb.store.orders) for sb, _ in accounts.values()]
    assert {p.name for p in (tmp_path / "lake").rglob("account=*")} >= {"account=acme", "account=globex"}


def test_the_default_staging_batch_is_divided_among_the_accounts():
    from sqquid_etl.accounts_run import MIN_FLUSH_ROWS, STAGED_ROWS, accounts_tuning
    from sqquid_etl.settings import DEFAULT_FLUSH_ROWS, Tuning

    assert accounts_tuning(Tuning(), 1).flush_rows == DEFAULT_FLUSH_ROWS
    assert accounts_tuning(Tuning(), 40).flush_rows == STAGED_ROWS // 40
    assert accounts_tuning(Tuning(), 100).flush_rows == MIN_FLUSH_ROWS
    assert accounts_tuning(Tuning(), 5000).flush_rows == MIN_FLUSH_ROWS
    chosen = Tuning(memory_limit="64MB", flush_rows=50_000)
    assert accounts_tuning(chosen, 100) == chosen  # a batch the user set is kept
    # ... even when the user set the default's value, in the environment or the config file
    assert accounts_tuning(Tuning.from_env({"SQQUID_FLUSH_ROWS": str(DEFAULT_FLUSH_ROWS)}), 40).flush_rows == DEFAULT_FLUSH_ROWS
    assert accounts_tuning(Tuning.from_env({}, {"flush_rows": DEFAULT_FLUSH_ROWS}), 40).flush_rows == DEFAULT_FLUSH_ROWS
    assert accounts_tuning(Tuning.from_env({}, {}), 40).flush_rows == STAGED_ROWS // 40
    assert accounts_tuning(Tuning(memory_limit="64MB"), 40).memory_limit == "64MB"


def test_every_account_runs_with_the_divided_batch(make_sandbox, tmp_path, monkeypatch):
    from sqquid_etl import accounts_run
    from sqquid_etl.accounts_run import STAGED_ROWS

    monkeypatch.delenv("SQQUID_FLUSH_ROWS", raising=False)
    seen = []
    real = accounts_run.extract_one
    monkeypatch.setattr(accounts_run, "extract_one", lambda *a, **k: seen.append(k["tuning"].flush_rows) or real(*a, **k))
    accounts = _accounts(make_sandbox, {f"a{i}": 30 for i in range(20)})
    result = run_accounts([job for _, job in accounts.values()], {}, location_for=_files(tmp_path))
    assert result.ok
    assert seen == [STAGED_ROWS // 20] * 20


@pytest.mark.parametrize("accounts, spare", [(2, 1), (10, 0)])
def test_many_accounts_keep_no_spare_request_in_flight(make_sandbox, tmp_path, monkeypatch, accounts, spare):
    """From `MANY_ACCOUNTS` on, each account's client asks no request beyond what its pace needs
    (`fetch.default_concurrency`: threads and pages held in one process); fewer keep the spare."""
    from sqquid_etl import accounts_run
    from sqquid_etl.accounts_run import MANY_ACCOUNTS

    assert MANY_ACCOUNTS == 10
    made = []
    real = accounts_run.SqquidClient
    monkeypatch.setattr(accounts_run, "SqquidClient", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    jobs = [job for _, job in _accounts(make_sandbox, {f"a{i}": 20 for i in range(accounts)}).values()]
    result = run_accounts(jobs, {}, location_for=_files(tmp_path))
    assert result.ok
    assert [client.spare_in_flight for client in made] == [spare] * accounts


@pytest.mark.parametrize("accounts", [2, 10])
def test_many_accounts_share_one_cpu_gate(make_sandbox, tmp_path, monkeypatch, accounts):
    """From `MANY_ACCOUNTS` on, the accounts' page work shares one `CpuGate` (cpu_gate.py, of the
    machine's cores less one); fewer accounts run ungated, as one account does."""
    from sqquid_etl import accounts_run
    from sqquid_etl.cpu_gate import UNGATED, CpuGate

    made = []
    real = accounts_run.SqquidClient
    monkeypatch.setattr(accounts_run, "SqquidClient", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    jobs = [job for _, job in _accounts(make_sandbox, {f"a{i}": 20 for i in range(accounts)}).values()]
    assert run_accounts(jobs, {}, location_for=_files(tmp_path)).ok
    gates = {id(client.cpu_gate) for client in made}
    assert len(gates) == 1
    if accounts < accounts_run.MANY_ACCOUNTS:
        assert made[0].cpu_gate is UNGATED
    else:
        assert isinstance(made[0].cpu_gate, CpuGate) and made[0].cpu_gate.slots >= 1
        assert made[0].cpu_gate._free == made[0].cpu_gate.slots  # every slot given back


def test_the_cpu_gate_of_many_accounts_leaves_a_core_to_the_rest(monkeypatch):
    """The gate's slots: one core fewer than the machine's, at least one; CPU_SLOTS when set."""
    from sqquid_etl import accounts_run

    for cores, slots in ((None, 1), (1, 1), (2, 1), (8, 7)):
        monkeypatch.setattr(accounts_run.os, "cpu_count", lambda cores=cores: cores)
        assert accounts_run.cpu_slots() == slots
    monkeypatch.setattr(accounts_run, "CPU_SLOTS", 2)
    assert accounts_run.cpu_slots() == 2


def test_each_account_renews_its_own_token(make_sandbox, tmp_path):
    """One account's tokens expire every few requests (its sandbox's clock and its client's jump
    50 s a page, tokens live 60 s): it logs in again and again, on its own; the others keep the
    one token each they logged in with, and every account's data is whole."""
    clock = FakeClock()
    expiring = make_sandbox(seed=9, orders=600, products=200, api_keys=("key-expiring",), token_ttl=60.0, clock=clock)
    accounts = _accounts(make_sandbox, {"acme": 300, "initech": 150})
    sandboxes = {"expiring": expiring, **{name: sb for name, (sb, _) in accounts.items()}}
    jobs = [AccountJob(Account(name="expiring", base_url=expiring.url, api_key_env="EXPIRING_KEY", rate=None),
                       Credentials(api_key="key-expiring"))] + [job for _, job in accounts.values()]

    def client_for(job):
        if job.account.name != "expiring":
            return make_client(sandboxes[job.account.name], credentials=job.credentials)
        client = make_client(expiring, credentials=job.credentials, clock=clock)
        get_body = client.get_body

        def aging(*args, **kwargs):
            clock.sleep(50.0)
            return get_body(*args, **kwargs)
        client.get_body = aging
        return client

    result = run_accounts(jobs, _one(tmp_path), client_for=client_for)
    assert result.ok, [(a.account, a.message) for a in result.accounts]
    assert expiring.stats.logins > 3
    assert sandboxes["acme"].stats.logins == sandboxes["initech"].stats.logins == 1
    for name, sandbox in sandboxes.items():
        assert_tables_equal(account_tables(tmp_path / "w.duckdb", name), expected_tables(sandbox.store))
