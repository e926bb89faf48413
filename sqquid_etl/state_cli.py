"""`sqquid-etl state show|set|reset`: thin click commands over `state_commands`."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from .cli_common import choose_destination, config_option, fail, load_settings
from .errors import SqquidError
from .settings import DEFAULT_DUCKDB

_state_destination_options = [
    click.option("--duckdb", "duckdb_path", type=click.Path(dir_okay=False), help="DuckDB file (default sqquid.duckdb)."),
    click.option("--parquet", "parquet_dir", type=click.Path(file_okay=False), help="A Parquet extract's directory (or s3://... URL)."),
    click.option("--iceberg", help="An Iceberg extract: WAREHOUSE[?catalog=URL&namespace=NAME]."),
    click.option("--account", help="In a multi-account destination: this account's state."),
    config_option,
]


def _with_state_destination(f):
    for option in reversed(_state_destination_options):
        f = option(f)
    return f


def _open_state(config, duckdb_path, parquet_dir, iceberg=None, read_only=False, account=None):
    from .state_commands import open_state_destination

    settings = load_settings(config)
    if not iceberg:
        duckdb_path, parquet_dir = choose_destination(settings, duckdb_path, parquet_dir)
    where = iceberg or parquet_dir or duckdb_path or DEFAULT_DUCKDB
    others = {"iceberg": iceberg} if iceberg else {}
    if account:
        others["account"] = account
        where = f"{where} (account {account})"
    return open_state_destination(duckdb_path, parquet_dir, tuning=settings.tuning(), read_only=read_only, **others), where


@click.group()
def state() -> None:
    """Show, set or reset the incremental state (bookmarks) of a destination."""


@state.command("show")
@click.argument("stream", required=False)
@_with_state_destination
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def state_show(stream, duckdb_path, parquet_dir, iceberg, account, config, as_json) -> None:
    """Print the stored state of every stream, or of STREAM."""
    from .definitions import load_definitions
    from .state_commands import show

    try:
        opened, where = _open_state(config, duckdb_path, parquet_dir, iceberg, read_only=True, account=account)  # looking never writes
        with opened as destination:
            states = show(destination, stream)
    except SqquidError as exc:
        fail(exc)
        return
    if as_json:
        click.echo(json.dumps({name: asdict(s) for name, s in states.items()}, indent=2, sort_keys=True))
        return
    names = [stream] if stream else list(load_definitions())
    click.echo(f"state of {where}")
    header = f"{'stream':<16}{'partition':<11}{'cursor':<29}{'last run':<34}{'rows':>8}"
    click.echo(header)
    click.echo("-" * len(header))
    for name in names:
        s = states.get(name)
        if s is None or not (s.cursors or s.last_run_at):
            click.echo(f"{name:<16}{'-':<11}{'(no state: next extract starts from the start date)'}")
            continue
        cursors = sorted(s.cursors.items()) or [("-", "-")]
        for i, (partition, cursor) in enumerate(cursors):
            last = f"{s.last_run_at or '-'}" if i == 0 else ""
            rows = str(s.rows_last_run) if i == 0 else ""
            click.echo(f"{name if i == 0 else '':<16}{partition:<11}{cursor:<29}{last:<34}{rows:>8}")


@state.command("set")
@click.argument("stream")
@click.option("--cursor", required=True, help="ISO 8601 date or timestamp; the next extract starts there (minus --lookback).")
@click.option("--partition", help="Only this partition (shipment_items: toship, shipped, cancelled, flagged).")
@_with_state_destination
def state_set(stream, cursor, partition, duckdb_path, parquet_dir, iceberg, account, config) -> None:
    """Set the cursor (bookmark) of STREAM."""
    from .state_commands import set_cursor

    try:
        opened, where = _open_state(config, duckdb_path, parquet_dir, iceberg, account=account)
        with opened as destination:
            new = set_cursor(destination, stream, cursor, partition)
    except SqquidError as exc:
        fail(exc)
        return
    for key, value in sorted(new.cursors.items()):
        if partition is None or key == partition:
            label = "" if key == "_" else f" [{key}]"
            click.echo(f"{stream}{label}: cursor set to {value} in {where}")


@state.command("reset")
@click.argument("stream", required=False)
@_with_state_destination
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def state_reset(stream, duckdb_path, parquet_dir, iceberg, account, config, yes) -> None:
    """Forget the state of STREAM (or of every stream): the next extract re-reads from the start date."""
    from .state_commands import reset

    try:
        opened, where = _open_state(config, duckdb_path, parquet_dir, iceberg, account=account)
        with opened as destination:
            if not yes:
                what = f"stream {stream}" if stream else "EVERY stream"
                click.confirm(f"reset the state of {what} in {where}? The next extract re-reads it from the "
                              "start date", abort=True, err=True)
            removed = reset(destination, stream)
    except SqquidError as exc:
        fail(exc)
        return
    if removed:
        click.echo(f"state reset in {where}: {', '.join(removed)}")
    else:
        click.echo(f"no state to reset in {where}" + (f" for {stream}" if stream else ""))


