"""`sqquid-etl` command line: thin click commands over the Python API."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from .errors import SqquidError
from .redaction import install_redaction

log = logging.getLogger("sqquid_etl")


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    install_redaction()


def _fail(exc: SqquidError) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(exc.exit_code)


@click.group()
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.version_option(package_name="sqquid-etl")
def main(verbose: int, quiet: bool) -> None:
    """ELT connector for the Sqquid retail API."""
    _setup_logging(verbose, quiet)


def _stream_list(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [s.strip() for s in value.split(",") if s.strip()]


@main.command()
@click.option("--streams", help="Comma-separated streams (default: all).")
@click.option("--duckdb", "duckdb_path", type=click.Path(dir_okay=False), help="DuckDB file (default sqquid.duckdb).")
@click.option("--parquet", "parquet_dir", type=click.Path(file_okay=False), help="Write Parquet files under this directory instead.")
@click.option("--start-date", help="Earliest date to extract (ISO 8601), for the first run or a full refresh.")
@click.option("--lookback", default="1s", show_default=True, help="Re-read this much before the stored cursor (1s, 15m, 2h, 1d).")
@click.option("--full-refresh", "full_refresh", is_flag=False, flag_value="*", default=None,
              help="Re-extract from the start date: all selected streams, or a comma-separated list.")
@click.option("--strict", is_flag=True, help="Fail a stream whose records differ from the API's /count.")
@click.option("--base-url", envvar="SQQUID_BASE_URL", help="API base URL (env SQQUID_BASE_URL).")
@click.option("--api-key", envvar="SQQUID_API_KEY", help="API key (env SQQUID_API_KEY).")
@click.option("--username", envvar="SQQUID_USERNAME", help="Username (env SQQUID_USERNAME).")
@click.option("--password", envvar="SQQUID_PASSWORD", help="Password (env SQQUID_PASSWORD).")
@click.option("--rate", type=float, default=2.0, show_default=True, help="Requests per second the client allows itself.")
@click.option("--burst", type=int, default=40, show_default=True, help="Leaky-bucket size the client allows itself.")
def extract(streams, duckdb_path, parquet_dir, start_date, lookback, full_refresh, strict, base_url, api_key,
            username, password, rate, burst) -> None:
    """Extract streams into DuckDB (default) or Parquet, incrementally."""
    from .pipeline import extract as run_extract

    if full_refresh == "*":
        refresh: bool | list[str] = True
    else:
        refresh = _stream_list(full_refresh) or False
    try:
        result = run_extract(
            _stream_list(streams), duckdb=duckdb_path, parquet=parquet_dir, base_url=base_url, api_key=api_key,
            username=username, password=password, start_date=start_date, lookback=lookback,
            full_refresh=refresh, strict=strict, rate=rate, burst=burst,
        )
    except SqquidError as exc:
        _fail(exc)
        return
    print_summary(result)
    if not result.ok:
        failed = [s for s in result.streams if s.status == "failed"]
        for s in failed:
            click.echo(f"error: stream {s.stream}: {s.message}", err=True)
        sys.exit(result.exit_code)


def print_summary(result) -> None:
    header = f"{'stream':<16}{'status':<9}{'rows':>9}{'pages':>7}{'requests':>10}{'seconds':>9}  count check"
    click.echo(f"run {result.run_id} -> {result.destination}")
    click.echo(header)
    click.echo("-" * len(header))
    for s in result.streams:
        rows = sum(s.rows.values())
        check = s.count_check
        if s.count_expected is not None:
            check += f" ({s.count_received}/{s.count_expected})"
        click.echo(f"{s.stream:<16}{s.status:<9}{rows:>9}{s.pages:>7}{s.requests:>10}{s.seconds:>9.1f}  {check}")
        detail = ", ".join(f"{t}={n}" for t, n in s.rows.items())
        if detail:
            click.echo(f"{'':<16}{detail}")


@main.command()
@click.option("--output", default="catalog.json", show_default=True, type=click.Path(dir_okay=False))
def discover(output: str) -> None:
    """Write the Singer-style catalog of every stream (generated from the definitions)."""
    from .catalog import write_catalog

    try:
        path = write_catalog(Path(output))
    except SqquidError as exc:
        _fail(exc)
        return
    click.echo(f"wrote {path}")


@main.command()
@click.option("--duckdb", "duckdb_path", default="sqquid-demo.duckdb", show_default=True, type=click.Path(dir_okay=False))
@click.option("--orders", default=5000, show_default=True)
@click.option("--products", default=2000, show_default=True)
@click.option("--rate", default=20.0, show_default=True, help="Requests/s of the demo sandbox and client (the real API allows 2).")
def demo(duckdb_path: str, orders: int, products: int, rate: float) -> None:
    """Start the sandbox, extract every stream into DuckDB, print a summary and a sample query."""
    from .demo import run_demo

    try:
        ok = run_demo(Path(duckdb_path), orders=orders, products=products, rate=rate)
    except SqquidError as exc:
        _fail(exc)
        return
    if not ok:
        sys.exit(1)


def _register_optional_commands() -> None:
    try:
        from .sandbox.cli import sandbox_command
    except ImportError:  # pragma: no cover - the sandbox ships with the package
        return
    main.add_command(sandbox_command, name="sandbox")
    from .reverse_cli import load_inventory_command

    main.add_command(load_inventory_command, name="load-inventory")


_register_optional_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
