"""`sqquid-etl extract --account acme,globex` / `--all-accounts`: the accounts of the config file,
extracted at once in this process (`accounts_run.py`), a summary line per account and stream.

Exit code: 0 when every account succeeded; else the code of the first account that failed (in
the order selected: 2 config, 3 login refused, 4 API errors, 5 schema, 7 state), every failed
account named on stderr (`error: account NAME: ...`) and in the summary.
"""

from __future__ import annotations

import json
import sys

import click
from click.core import ParameterSource

from .accounts import accounts_from_settings, resolve_credentials, select_accounts
from .accounts_progress import AccountsProgress
from .accounts_run import AccountsResult, plan_jobs, run_accounts
from .cli_common import STREAM_HEADER, stream_cells
from .errors import ConfigError
from .heap import Trimmer, large_blocks_mapped
from .no_pandas import refuse_pandas

# options that say who the client is: each account's own in the config file, never one for all
_PER_ACCOUNT = ("base_url", "api_key", "username", "password")


def extract_accounts(ctx: click.Context, settings, output: dict, shared: dict, names: list[str] | None,
                     all_accounts: bool, *, streams: list[str] | None, start_date: str | None, rate: float | None,
                     burst: int | None, show_progress: bool) -> None:
    """Run the selected accounts; print the summary; exit non-zero when any failed."""
    given = [f"--{name.replace('_', '-')}" for name in _PER_ACCOUNT
             if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE]
    if given:
        raise ConfigError(f"{', '.join(given)} with --account/--all-accounts: each account's base_url and "
                          "credentials come from its [accounts.NAME] table (the variables it names)")
    accounts = select_accounts(accounts_from_settings(settings), names, all_accounts)
    credentials = resolve_credentials(accounts)
    jobs = plan_jobs(accounts, credentials, streams=streams, start_date=start_date,
                     rate=False if rate is None else (rate or None), burst=burst)
    location = {k: v for k in ("duckdb", "parquet", "iceberg") if (v := shared.pop(k, None))}
    progress = AccountsProgress.for_terminal(len(jobs), show_progress and not output["quiet"],
                                             output["log_format"] == "json")
    allow_pandas = refuse_pandas()  # as for one account (no_pandas.py)
    large_blocks_mapped()  # the C heap kept small through a long run of many accounts (heap.py)
    try:
        with Trimmer():
            result = run_accounts(jobs, location, shared, progress=progress)
    finally:
        allow_pandas()
        progress.close()
    report(result, output)


def report(result: AccountsResult, output: dict) -> None:
    if output["log_format"] == "json":
        click.echo(json.dumps(result.summary()))
    elif not output["quiet"] or not result.ok:
        print_accounts_summary(result)
    if not result.ok:
        for account in result.accounts:
            if not account.ok:
                click.echo(f"error: account {account.account}: {account.message}", err=True)
        sys.exit(result.exit_code)


def print_accounts_summary(result: AccountsResult) -> None:
    """A line per account and stream (an account stopped before its streams: one line, its error)."""
    header = f"{'account':<16}{STREAM_HEADER}  check"
    click.echo(f"{len(result.accounts)} accounts -> {result.destination}")
    click.echo(header)
    click.echo("-" * len(header))
    for account in result.accounts:
        if not account.streams:
            click.echo(f"{account.account:<16}{'-':<16}{account.status:<9}{'':>44}  {account.message or ''}")
        for s in account.streams:
            cells, check = stream_cells(s)
            click.echo(f"{account.account:<16}{cells}  {check}")
    click.echo("-" * len(header))
    rows = sum(sum(s.rows.values()) for a in result.accounts for s in a.streams)
    requests = sum(s.requests for a in result.accounts for s in a.streams)
    slowest = max((a.seconds for a in result.accounts), default=0.0)
    failed = result.failed
    click.echo(f"{len(result.accounts)} accounts, {rows} rows, {requests} requests, {slowest:.1f}s (the slowest account)"
               + (f", {len(failed)} failed: {', '.join(failed)}" if failed else ""))
