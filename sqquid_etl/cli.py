"""`sqquid-etl` command line: thin click commands over the Python API."""

from __future__ import annotations

import atexit
import gc
import importlib
import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path

import click

from .errors import ConfigError, SqquidError
from .no_pandas import refuse_numpy, refuse_pandas
from .cli_common import (STREAM_HEADER, choose_destination, config_option, credentials_from, fail, last_resort, load_settings,
                         stream_cells)
from .progress import configure_logging
from .settings import DEFAULT_BURST, DEFAULT_LOOKBACK, DEFAULT_RATE

log = logging.getLogger("sqquid_etl")

DEFAULTS = {"lookback": DEFAULT_LOOKBACK, "rate": DEFAULT_RATE, "burst": DEFAULT_BURST}
OWN_PROCESS = "own_process"  # in the root context's obj: the program runs in its own process (`run`)

# commands whose modules load only when they run: the sandbox is a product of its own, and the
# reverse load brings pandas
LAZY_COMMANDS = {
    "capture": ("sqquid_etl.capture_cli", "capture_command"),
    "check": ("sqquid_etl.check_cli", "check_command"),
    "state": ("sqquid_etl.state_cli", "state"),
    "load-buffers": ("sqquid_etl.buffers_cli", "load_buffers_command"),
    "load-inventory": ("sqquid_etl.reverse_cli", "load_inventory_command"),
    "sandbox": ("sqquid_etl.sandbox.cli", "sandbox_command"),
    "sql": ("sqquid_etl.sql_cli", "sql_command"),
    "upgrade": ("sqquid_etl.upgrade_cli", "upgrade_command"),
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module, attribute = LAZY_COMMANDS[cmd_name]
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context):
        """Every failure ends as one `error:` line and a documented exit code, never a traceback."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - the last word of the command line
            last_resort(exc)


def _use_system_allocator() -> None:
    """Arrow's buffers from the system allocator, which gives freed memory back to the operating
    system; pyarrow's default (mimalloc) keeps it: ~25 MB more peak RSS for an extract
    (bench/memory.py). ARROW_DEFAULT_MEMORY_POOL, when set, is the user's choice and is kept."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    # read by Arrow's C++ code when pyarrow loads: buffers allocated without a pool (the JSON
    # reader's own) come from it too (~29 MB less peak RSS for 40,000 orders, bench/startup.py)
    os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"
    import pyarrow

    pyarrow.set_memory_pool(pyarrow.system_memory_pool())


def _one_blas_thread() -> None:
    """pyarrow loads numpy, whose OpenBLAS starts a thread per core that spins waiting for work
    an extract never gives it: ~0.1 s of CPU on 2 cores, more with more cores (bench/startup.py).
    Set before pyarrow loads; OPENBLAS_NUM_THREADS, when set, is the user's choice and is kept."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _one_pyiceberg_worker() -> None:
    """pyiceberg reads and writes data files on a pool of cores + 4 threads; an Iceberg extract
    hands it one file at a time, and every thread's allocations keep an arena of freed memory of
    their own: ~30 MB more peak RSS on S3 (bench/shared_storage.py). PYICEBERG_MAX_WORKERS, when
    set, is the user's choice and is kept."""
    os.environ.setdefault("PYICEBERG_MAX_WORKERS", "1")


def _prepare_process(own: bool) -> None:
    """The extract command's choices for its process, made before pyarrow loads; `own`: the
    `sqquid-etl` program's own process (`run`), where pyarrow goes without numpy (no_pandas.py)."""
    if own:
        refuse_numpy()
    _one_blas_thread()
    _one_pyiceberg_worker()
    _use_system_allocator()


def _output_options(f):
    """-v/-q/--log-format, accepted before the command (`sqquid-etl -v extract`) or after it."""
    f = click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
                     help="Log lines as text (default) or one JSON object a line.")(f)
    f = click.option("-q", "--quiet", is_flag=True, default=None, help="Only warnings and errors; no progress.")(f)
    f = click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")(f)
    return f


def _output(ctx: click.Context, verbose: int = 0, quiet: bool | None = None, log_format: str | None = None) -> dict:
    """Merge the group's output options with the command's and (re)configure logging."""
    settings = dict(ctx.find_root().obj or {})
    settings["verbose"] = settings.get("verbose", 0) + (verbose or 0)
    settings["quiet"] = bool(settings.get("quiet") or quiet)
    settings["log_format"] = log_format or settings.get("log_format") or "text"
    configure_logging(-1 if settings["quiet"] else settings["verbose"], settings["log_format"])
    return settings


@click.group(cls=LazyGroup)
@_output_options
@click.version_option(package_name="sqquid-etl")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool, log_format: str | None) -> None:
    """ELT connector for the Sqquid retail API."""
    own = bool((ctx.obj or {}).get(OWN_PROCESS))
    ctx.obj = {"verbose": verbose, "quiet": bool(quiet), "log_format": log_format or "text", OWN_PROCESS: own}
    configure_logging(-1 if quiet else verbose, log_format or "text")


def _stream_list(value: str | list[str] | None) -> list[str] | None:
    if not value:
        return None
    if isinstance(value, list):
        return value
    return [s.strip() for s in value.split(",") if s.strip()]


@main.command()
@click.option("--streams", help="Comma-separated streams (default: all, or the config's / catalog's).")
@click.option("--catalog", "catalog_path", type=click.Path(dir_okay=False),
              help="Singer catalog (from `discover`): extract only its selected streams and fields.")
@config_option
@click.option("--duckdb", "duckdb_path", type=click.Path(dir_okay=False), help="DuckDB file (default sqquid.duckdb).")
@click.option("--parquet", "parquet_dir", type=click.Path(file_okay=False),
              help="Write Parquet files under this directory, or an object-store URL (s3://bucket/prefix), instead.")
@click.option("--iceberg", help="Write Apache Iceberg tables instead: WAREHOUSE[?catalog=URL&namespace=NAME].")
@click.option("--start-date", help="Earliest date to extract (ISO 8601), for the first run or a full refresh.")
@click.option("--lookback", help="Re-read this much before the stored cursor (1s, 15m, 2h, 1d). [default: 1s]")
@click.option("--full-refresh", "full_refresh", is_flag=False, flag_value="*", default=None,
              help="Re-extract from the start date: all selected streams, or a comma-separated list.")
@click.option("--strict", is_flag=True, default=None, help="Fail a stream whose records differ from the API's /count, or that would quarantine a record.")
@click.option("--schema-contract", "schema_contract", type=click.Choice(["evolve", "freeze", "discard"]), default=None,
              help="Undocumented fields: new columns (evolve, the default), fail the stream (freeze) or drop them (discard).")
@click.option("--reread", help="Trailing window re-read every run, per stream: orders=30d,products=all,shipments=0 "
              "(overrides the definitions' `reread:` and the config's [reread]).")
@click.option("--verify-keys", "verify_keys", is_flag=True, default=False,
              help="Deep check (e.g. weekly): list every key of the incremental streams again, range by range, "
                   "merged; records gone upstream are marked, late ones stored; a killed run resumes from the last "
                   "range verified (the cost of a full listing, in the summary).")
@click.option("--hard-delete", "hard_delete", is_flag=True, default=None,
              help="Remove the records a run proves gone upstream instead of marking them _sqquid_deleted_at.")
@click.option("--base-url", envvar="SQQUID_BASE_URL", help="API base URL (env SQQUID_BASE_URL).")
@click.option("--api-key", envvar="SQQUID_API_KEY", help="API key (env SQQUID_API_KEY).")
@click.option("--username", envvar="SQQUID_USERNAME", help="Username (env SQQUID_USERNAME).")
@click.option("--password", envvar="SQQUID_PASSWORD", help="Password (env SQQUID_PASSWORD).")
@click.option("--rate", type=float, help="Requests per second the client allows itself. [default: 2]")
@click.option("--burst", type=int, help="Leaky-bucket size the client allows itself. [default: 40]")
@click.option("--progress/--no-progress", "show_progress", default=True, show_default=True,
              help="A progress bar per stream on a terminal, log lines otherwise.")
@click.option("--account", "account_names", help="Many accounts: extract these accounts of the config file "
              "(comma-separated [accounts.NAME]), all at once, each at its own rate.")
@click.option("--all-accounts", "all_accounts", is_flag=True, default=False,
              help="Many accounts: extract every account of the config file, all at once.")
@_output_options
@click.pass_context
def extract(ctx, streams, catalog_path, config, duckdb_path, parquet_dir, iceberg, start_date, lookback, full_refresh, strict,
            schema_contract, reread, verify_keys, hard_delete, base_url, api_key, username, password, rate, burst, show_progress,
            account_names, all_accounts, verbose, quiet, log_format) -> None:
    """Extract streams into DuckDB (default) or Parquet, incrementally.

    With a config file (`--config`, or ./sqquid.toml) a scheduled job is `sqquid-etl extract`.
    """
    _prepare_process(bool((ctx.find_root().obj or {}).get(OWN_PROCESS)))
    from .pipeline import extract as run_extract
    from .progress import ProgressReporter

    # at exit, the collector need not go through everything the run loaded (~0.03 s of CPU,
    # bench/startup.py); nothing changes for a process that goes on after the command
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)

    output = _output(ctx, verbose, quiet, log_format)
    try:
        settings = load_settings(config)
        if not iceberg:
            duckdb_path, parquet_dir = choose_destination(settings, duckdb_path, parquet_dir)
        shared = _shared_options(settings, duckdb_path, parquet_dir, iceberg, lookback, full_refresh, strict,
                                 catalog_path, schema_contract, reread, verify_keys, hard_delete)
        if account_names or all_accounts:
            from .accounts_cli import extract_accounts

            return extract_accounts(ctx, settings, output, shared, _stream_list(account_names), all_accounts,
                                    streams=_stream_list(streams), start_date=start_date, rate=rate, burst=burst,
                                    show_progress=show_progress)
        api_key, username, password = credentials_from(settings, api_key, username, password)
        if not (api_key or (username and password)) and (settings.accounts or settings.accounts_file):
            raise ConfigError("no credentials for one account (--api-key, SQQUID_API_KEY or [api]); the config file "
                              "has accounts: extract them with --account NAME[,NAME...] or --all-accounts")
        rate = rate if rate is not None else settings.get("rate", DEFAULTS["rate"])
        reporter = ProgressReporter.for_terminal(show_progress and not output["quiet"],
                                                 output["log_format"] == "json", rate or None)
        allow_pandas = refuse_pandas()
        try:
            result = run_extract(
                _stream_list(streams) or settings.get("streams"), base_url=base_url or settings.get("base_url"),
                api_key=api_key, username=username, password=password, start_date=start_date or settings.get("start_date"),
                rate=rate or None, burst=burst if burst is not None else settings.get("burst", DEFAULTS["burst"]),
                progress=reporter, stream_done=reporter.stream_done, **shared)
        finally:
            allow_pandas()
            reporter.close()
    except SqquidError as exc:
        fail(exc)
        return
    _report(result, output)


def _shared_options(settings, duckdb_path, parquet_dir, iceberg, lookback, full_refresh, strict, catalog_path,
                    schema_contract, reread, verify_keys, hard_delete) -> dict:
    """The pipeline's options that do not depend on the account: the destination and how to run."""
    from .freshness import split_reread

    if full_refresh == "*":
        refresh: bool | list[str] = True
    elif full_refresh:
        refresh = _stream_list(full_refresh) or False
    else:
        refresh = settings.get("full_refresh", False)
    return dict(
        duckdb=duckdb_path, parquet=parquet_dir, iceberg=iceberg,
        lookback=lookback or settings.get("lookback", DEFAULTS["lookback"]),
        full_refresh=refresh, strict=bool(strict if strict is not None else settings.get("strict", False)),
        catalog=catalog_path or settings.get("catalog"), tuning=settings.tuning(),
        schema_contract=schema_contract or settings.get("schema_contract"),
        reread={**settings.get("reread", {}), **split_reread(reread)}, verify_keys=bool(verify_keys),
        hard_delete=bool(hard_delete if hard_delete is not None else settings.get("hard_delete", False)),
    )


def _report(result, output: dict) -> None:
    """The summary (a table, or JSON), the failed streams on stderr, and the exit code."""
    if output["log_format"] == "json":
        click.echo(json.dumps(summary_dict(result)))
    elif not output["quiet"] or not result.ok:
        print_summary(result)
    if not result.ok:
        for s in result.streams:
            if s.status == "failed":
                click.echo(f"error: stream {s.stream}: {s.message}", err=True)
        sys.exit(result.exit_code)


def summary_dict(result) -> dict:
    return {
        "run_id": result.run_id,
        "destination": result.destination,
        "ok": result.ok,
        "streams": [dict(asdict(s), count_check=s.count_check) for s in result.streams],
    }


def print_summary(result) -> None:
    header = f"{STREAM_HEADER}  count total  check"
    click.echo(f"run {result.run_id} -> {result.destination}")
    click.echo(header)
    click.echo("-" * len(header))
    for s in result.streams:
        cells, check = stream_cells(s)
        total = "n/a" if s.count_expected is None else f"{s.count_expected}"
        click.echo(f"{cells}  {total:<11}  {check}")
        detail = ", ".join(f"{t}={n}" for t, n in s.rows.items())
        if detail:
            click.echo(f"{'':<16}{detail}")
        if s.records_new or s.records_changed or s.records_unchanged or s.records_deleted:  # by content hash
            click.echo(f"{'':<16}changes: {s.records_new} new, {s.records_changed} changed, "
                       f"{s.records_unchanged} unchanged, {s.records_deleted} deleted upstream")
        if s.records_stored or s.records_quarantined:
            click.echo(f"{'':<16}records: {s.records_stored} stored ({s.values_coerced} values coerced), "
                       f"{s.records_quarantined} quarantined")
    totals = sum(sum(s.rows.values()) for s in result.streams)
    failed = sum(s.status == "failed" for s in result.streams)
    click.echo("-" * len(header))
    quarantined = sum(s.records_quarantined for s in result.streams)
    click.echo(f"{len(result.streams)} streams, {totals} rows, {sum(s.requests for s in result.streams)} requests"
               + (f", {quarantined} records quarantined (_sqquid_rejected)" if quarantined else "")
               + (f", {failed} failed" if failed else ""))


@main.command()
@click.option("--output", default="catalog.json", show_default=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="Where to write it; - for stdout.")
def discover(output: str) -> None:
    """Write the Singer-style catalog of every stream (generated from the definitions).

    Edit `selected` in it (stream: the [] breadcrumb; field: ["properties", NAME]) and pass it
    to `extract --catalog`.
    """
    from .catalog import render_catalog, write_catalog

    if output == "-":  # stdout, as Singer tools expect
        click.echo(render_catalog(), nl=False)
        return
    try:
        path = write_catalog(Path(output))
    except SqquidError as exc:
        fail(exc)
        return
    click.echo(f"wrote {path}")


@main.command()
@click.option("--duckdb", "duckdb_path", default="sqquid-demo.duckdb", show_default=True, type=click.Path(dir_okay=False))
@click.option("--orders", default=5000, show_default=True, type=click.IntRange(0, 10_000_000))
@click.option("--products", default=2000, show_default=True, type=click.IntRange(0, 10_000_000))
@click.option("--rate", default=20.0, show_default=True, type=click.FloatRange(min=0),
              help="Requests/s of the demo sandbox and client (the real API allows 2).")
@click.option("--drift", is_flag=True, help="Run against the sandbox's drift profile (undocumented fields, string ids, ...).")
def demo(duckdb_path: str, orders: int, products: int, rate: float, drift: bool) -> None:
    """Start the sandbox, extract every stream into DuckDB, print a summary and a sample query."""
    from .demo import run_demo

    try:
        ok = run_demo(Path(duckdb_path), orders=orders, products=products, rate=rate, drift=drift)
    except SqquidError as exc:
        fail(exc)
        return
    if not ok:
        sys.exit(1)


def run() -> None:
    """The `sqquid-etl` program (its console script, `python -m sqquid_etl.cli`): the commands run
    in a process of their own, which they may set up for themselves (`_prepare_process`). A
    process that calls `main` (a test's CliRunner) keeps its own set-up."""
    main(obj={OWN_PROCESS: True})


if __name__ == "__main__":  # pragma: no cover
    run()
