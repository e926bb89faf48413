"""Many accounts in one process: every selected account extracted at once, each at its own ceiling.

Each account runs `pipeline.extract` in a thread of its own, with its own client (token, leaky
bucket at the account's rate and burst, connection pool, retries) and its destination opened
bound to it (`account=NAME`: its rows, state and run records apart from the others'). The work
is I/O (an account waits on its bucket at 2 requests/s), so the run takes about as long as the
largest account, not the sum. Nothing is shared between the accounts but the destination,
which serialises its commits: an account that is slow, throttled, refused at login or failing
with 5xx never holds another up, and fails alone (`AccountResult.status`).

Everything is validated before the first request: the options of every account (its streams,
start date, pacing) and the destination, each error naming the account.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterable

from .accounts import Account
from .client import SqquidClient
from .body_buffers import BodyBuffers
from .cpu_gate import UNGATED, CpuGate
from .credentials import Credentials
from .destinations import check_destination
from .engine import StreamResult
from .errors import ConfigError, SqquidError, unexpected
from .pipeline import check_options
from .pipeline import extract as extract_one
from .redaction import SECRETS
from .settings import DEFAULT_FLUSH_ROWS, Tuning
from .threads import account_thread_name

log = logging.getLogger(__name__)

# what the pipeline takes that is the same for every account (the rest is the account's)
SHARED = ("lookback", "full_refresh", "strict", "catalog", "tuning", "schema_contract", "reread", "hard_delete",
          "verify_keys", "reconcile", "stop_on_failure")

# the rows every account of a run stages in memory before writing them out, together (`Tuning.flush_rows`
# each, the default divided among them): ~70 MB of Arrow for orders, whatever the number of accounts
STAGED_ROWS = 100_000
MIN_FLUSH_ROWS = 1_000
# from this many accounts in a run, each account's client keeps no spare request in flight beyond
# what its pace needs (`fetch.default_concurrency`): fewer threads and pages held in the process
MANY_ACCOUNTS = 10
# from as many accounts, the page work of all of them (decoding, conversion, staging) shares this many
# slots of CPU (`cpu_gate.CpuGate`: threads waiting for a slot sleep instead of asking for the
# interpreter's lock every 5 ms); None: the machine's cores less one (`cpu_slots`). 0: no gate (to compare)
CPU_SLOTS: int | None = None
# from as many accounts, their list pages' bodies read into buffers used again (`body_buffers.py`);
# False: a new block each body (to compare: bench/accounts_inside.py BENCH_BODY_BUFFERS=0)
BODY_BUFFERS = True


def cpu_slots() -> int:
    """The slots of the CPU gate of many accounts: `CPU_SLOTS`, else one fewer than the machine's
    cores (at least one). The rest of the process works beside the pages' holders: the group
    writer (DuckDB, without the interpreter's lock), the fetch workers, the kernel's network and
    files. On 2 cores one slot cost 6-9% less of the client's CPU than two at the same share of the
    ceiling (100 accounts, through the CLI): two pages worked at once each cost more (the caches,
    the allocator, the interpreter's lock handed between them: an account's thread ~6 voluntary
    context switches a page against ~12); docs/benchmarks.md, fourteenth session (gil14)."""
    if CPU_SLOTS is not None:
        return CPU_SLOTS
    return max(1, (os.cpu_count() or 1) - 1)


@dataclass
class AccountResult:
    """What one account did: its streams' results, or the error that stopped it before them."""

    account: str
    status: str = "pending"  # pending | running | ok | warning | failed
    exit_code: int = 0
    message: str | None = None
    run_id: str | None = None
    seconds: float = 0.0
    streams: list[StreamResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def summary(self) -> dict:
        return {"account": self.account, "status": self.status, "exit_code": self.exit_code, "message": self.message,
                "run_id": self.run_id, "seconds": round(self.seconds, 3),
                "streams": [dict(asdict(s), count_check=s.count_check) for s in self.streams]}


class AccountOutcomes:
    """What a run of many accounts tells of its accounts (`self.accounts`, in the order they were
    selected) and its destination (`self.destination`): shared by `AccountsResult` and the
    Python API's `AccountsExtractResult`."""

    accounts: list[AccountResult]
    destination: str

    @property
    def ok(self) -> bool:
        return all(a.ok for a in self.accounts)

    @property
    def failed(self) -> list[str]:
        return [a.account for a in self.accounts if not a.ok]

    @property
    def exit_code(self) -> int:
        """0 when every account succeeded, else the exit code of the first account that failed
        (in the order selected); `failed` names them all."""
        return next((a.exit_code or 1 for a in self.accounts if not a.ok), 0)

    def account(self, name: str) -> AccountResult:
        for result in self.accounts:
            if result.account == name:
                return result
        raise ConfigError(f"no account {name!r} in this run (it ran: {', '.join(a.account for a in self.accounts)})")

    def summary(self) -> dict:
        return {"destination": self.destination, "ok": self.ok, "failed": self.failed,
                "accounts": [a.summary() for a in self.accounts]}


@dataclass
class AccountsResult(AccountOutcomes):
    """A run of many accounts: one `AccountResult` each, in the order they were selected."""

    destination: str
    accounts: list[AccountResult] = field(default_factory=list)


@dataclass(frozen=True)
class AccountJob:
    """One account's run: the account as it will run (overrides applied) and its credentials."""

    account: Account
    credentials: Credentials = field(repr=False)


def plan_jobs(accounts: Iterable[Account], credentials: dict[str, Credentials], *, streams: list[str] | None = None,
              start_date: Any = None, rate: float | None | bool = False, burst: int | None = None) -> list[AccountJob]:
    """Each account with the run's overrides (given: not None; `rate` False: not given, None: no
    pacing) applied over its own settings."""
    jobs = []
    for account in accounts:
        changes: dict[str, Any] = {}
        if streams:
            changes["streams"] = tuple(streams)
        if start_date is not None:
            changes["start_date"] = start_date
        if rate is not False:
            changes["rate"] = rate
        if burst is not None:
            changes["burst"] = burst
        jobs.append(AccountJob(replace(account, **changes), credentials[account.name]))
    return jobs


def check_jobs(jobs: list[AccountJob], location: dict, shared: dict,
               location_for: Callable[[str], dict] | None = None) -> None:
    """Refuse, before anything is requested, any account whose options or destination would not
    do: a ConfigError naming the account."""
    for job in jobs:
        account = job.account
        try:
            check_options(list(account.streams or ()), catalog=shared.get("catalog"), start_date=account.start_date,
                          lookback=shared.get("lookback", "1s"), full_refresh=shared.get("full_refresh", False),
                          schema_contract=shared.get("schema_contract"), reread=shared.get("reread"),
                          rate=account.rate, burst=account.burst)
            target = location_for(account.name) if location_for else {**location, "account": account.name}
            check_destination(tuning=shared.get("tuning"), **target)
        except ConfigError as exc:
            raise ConfigError(f"account {account.name}: {exc}") from None


def run_accounts(jobs: list[AccountJob], location: dict, shared: dict | None = None, *,
                 progress: Any = None, client_for: Callable[[AccountJob], SqquidClient] | None = None,
                 location_for: Callable[[str], dict] | None = None) -> AccountsResult:
    """Extract every account at once, a thread each, into the destination at `location`
    ({"duckdb": path} or {"parquet": ...} or {"iceberg": ...}) bound to each account in turn
    (`location_for(name)`: another location per account instead). `shared`: the pipeline's
    options common to all accounts (`SHARED`). `progress`: an `accounts_progress.AccountsProgress`
    (or None). `client_for(job)`: the account's client instead of one made from its settings.
    Returns when every account has finished; one that failed does not stop the others."""
    shared = {k: v for k, v in (shared or {}).items() if k in SHARED and v is not None}
    shared["tuning"] = accounts_tuning(shared.get("tuning"), len(jobs))
    check_jobs(jobs, location, shared, location_for)
    for job in jobs:
        SECRETS.add(job.credentials.secret)  # kept out of every log line, whichever thread writes it
    result = AccountsResult(destination=_describe(location), accounts=[AccountResult(j.account.name) for j in jobs])
    threads = []
    many = len(jobs) >= MANY_ACCOUNTS
    gate = CpuGate(cpu_slots()) if many and CPU_SLOTS != 0 else UNGATED
    buffers = BodyBuffers() if many and BODY_BUFFERS else None
    for job, account_result in zip(jobs, result.accounts):
        target = location_for(job.account.name) if location_for else {**location, "account": job.account.name}
        runner = _AccountRunner(job, account_result, target, shared, progress, client_for,
                                many=many, cpu_gate=gate, body_buffers=buffers)
        threads.append(threading.Thread(target=runner.run, name=account_thread_name(job.account.name), daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def accounts_tuning(tuning: Tuning | None, accounts: int) -> Tuning:
    """The tuning every account runs with: the default staging batch (`flush_rows`) divided
    among the accounts, so that the pages they hold in memory together stay about `STAGED_ROWS`
    (between `MIN_FLUSH_ROWS` and the default an account; measured at 20 accounts: Arrow's peak
    81 -> 11 MB at 1,000 rows, the same CPU, docs/benchmarks.md). A batch the user chose is kept:
    SQQUID_FLUSH_ROWS or [tuning] flush_rows (even at the default's value), a Tuning of another."""
    tuning = Tuning.from_env() if tuning is None else tuning  # as the pipeline resolves it
    if tuning.flush_rows_chosen or tuning.flush_rows != DEFAULT_FLUSH_ROWS:
        return tuning
    rows = max(MIN_FLUSH_ROWS, min(DEFAULT_FLUSH_ROWS, STAGED_ROWS // max(1, accounts)))
    return replace(tuning, flush_rows=rows)


def _describe(location: dict) -> str:
    return next((str(v) for k, v in location.items() if k != "account" and v), "sqquid.duckdb")


class _AccountRunner:
    """One account's thread: its client, its pipeline run, its result; nothing it raises leaves it."""

    def __init__(self, job: AccountJob, result: AccountResult, location: dict, shared: dict, progress: Any,
                 client_for: Callable[[AccountJob], SqquidClient] | None, many: bool = False,
                 cpu_gate: Any = UNGATED, body_buffers: BodyBuffers | None = None):
        self.job, self.result, self.location, self.shared = job, result, location, shared
        self.progress, self.client_for, self.many = progress, client_for, many
        self.cpu_gate, self.body_buffers = cpu_gate, body_buffers

    def run(self) -> None:
        account, result = self.job.account, self.result
        started = time.monotonic()
        result.status = "running"
        if self.progress is not None:
            self.progress.account_started(account.name)
        client = None
        try:
            client = self.client_for(self.job) if self.client_for else self._client()
            done = extract_one(list(account.streams) if account.streams else None, client=client,
                               start_date=account.start_date, rate=account.rate, burst=account.burst,
                               progress=self._feed(), stream_done=self._stream_done, **self.location, **self.shared)
            self._finished(done)
        except SqquidError as exc:
            self._failed(exc.exit_code, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug in one account must not stop the others
            log.debug("account %s: the error's traceback", account.name, exc_info=exc)
            self._failed(1, unexpected(exc))
        finally:
            if client is not None:
                client.close()
            result.seconds = time.monotonic() - started
            if self.progress is not None:
                self.progress.account_done(result)

    def _client(self) -> SqquidClient:
        account = self.job.account
        return SqquidClient(self.job.credentials, account.base_url, rate=account.rate, burst=account.burst,
                            spare_in_flight=0 if self.many else 1, cpu_gate=self.cpu_gate, one_of_many=self.many,
                            body_buffers=self.body_buffers)

    def _feed(self) -> Any:
        return None if self.progress is None else self.progress.feed(self.job.account.name)

    def _stream_done(self, stream: StreamResult) -> None:
        if self.progress is not None:
            self.progress.stream_done(self.job.account.name, stream)

    def _finished(self, done: Any) -> None:
        result = self.result
        result.run_id, result.streams = done.run_id, list(done.streams)
        failed = [s for s in done.streams if s.status == "failed"]
        result.exit_code = done.exit_code
        result.status = "failed" if failed else "warning" if any(s.status == "warning" for s in done.streams) else "ok"
        if failed:
            result.message = "; ".join(f"stream {s.stream}: {s.message}" for s in failed)
            log.error("account %s: %d stream(s) failed: %s", result.account, len(failed), result.message,
                      extra={"account": result.account})

    def _failed(self, exit_code: int, message: str) -> None:
        result = self.result
        result.status, result.exit_code, result.message = "failed", exit_code, SECRETS.redact(message)
        log.error("account %s failed: %s", result.account, result.message, extra={"account": result.account})
