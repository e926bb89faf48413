"""`extract(accounts=[...])`: the Python API of a run of many accounts (`accounts_run.py`).

    from sqquid_etl import extract
    with extract(accounts=["acme", "globex"]) as result:     # accounts=True: every account
        result.ok, result.failed, result.exit_code
        result.account("acme").streams                        # its StreamResults
        result.sql("SELECT account, count(*) FROM orders GROUP BY 1").fetchall()

The other arguments mean what they mean for one account and apply to every account; `streams`,
`start_date`, `rate`, `burst` given override each account's own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable

from .accounts import accounts_from_settings, resolve_credentials, select_accounts
from .accounts_run import AccountOutcomes, AccountResult, plan_jobs, run_accounts
from .api import ExtractResult, Resolved
from .config import find_config, load_config
from .errors import ConfigError

__all__ = ["AccountsExtractResult", "extract_accounts"]


@dataclass
class AccountsExtractResult(AccountOutcomes, ExtractResult):
    """What `extract(accounts=...)` did, account by account (`ok`, `failed`, `exit_code`,
    `account(NAME)`, `summary()`), and the data of the shared destination (`table`, `sql`,
    `arrow`, `df`: every account's rows, with their `account`)."""

    accounts: list[AccountResult] = field(default_factory=list)

    def stream(self, name: str):
        raise ConfigError(f"stream {name!r}: this run has {len(self.accounts)} accounts; each account's streams "
                          "are in result.account(NAME).streams")


def extract_accounts(accounts: Iterable[str] | str | bool, resolved: Resolved, config: str | os.PathLike | None,
                     *, streams: Iterable[str] | str | None, start_date: Any, rate: float | None, burst: int | None,
                     client: Any = None, progress: Any = None, stream_done: Any = None, stop_on_failure: bool = False,
                     reconcile: bool = True) -> AccountsExtractResult:
    """Run the accounts named (a list, or a comma-separated string; True: all) of the config file."""
    if client is not None or stream_done is not None:
        raise ConfigError("extract(accounts=...): each account has its own client; client= and stream_done= are "
                          "for one account (progress= takes an accounts_progress.AccountsProgress)")
    if progress is not None and not hasattr(progress, "account_started"):
        raise ConfigError("extract(accounts=...): progress= takes an accounts_progress.AccountsProgress")
    settings = load_config(find_config(config or os.environ.get("SQQUID_CONFIG") or None))
    names = [n.strip() for n in accounts.split(",")] if isinstance(accounts, str) else \
        None if accounts is True else list(accounts)
    selected = select_accounts(accounts_from_settings(settings), names, accounts is True, where="accounts=")
    streams = [streams] if isinstance(streams, str) else list(streams) if streams else None
    jobs = plan_jobs(selected, resolve_credentials(selected), streams=streams, start_date=start_date,
                     rate=False if rate is None else (float(rate) or None), burst=burst)
    kwargs = resolved.pipeline_kwargs()
    location = {k: kwargs.pop(k) for k in ("duckdb", "parquet", "iceberg") if kwargs.get(k)}
    done = run_accounts(jobs, location, {**kwargs, "stop_on_failure": stop_on_failure, "reconcile": reconcile},
                        progress=progress)
    kind = "iceberg" if resolved.iceberg else "parquet" if resolved.parquet else "duckdb"
    return AccountsExtractResult(run_id="", destination=done.destination, kind=kind, accounts=done.accounts)
