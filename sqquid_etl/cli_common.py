"""What the CLI's commands share: failing with a clear error, the config file, the destination."""

from __future__ import annotations

import logging
import sys

import click

from .errors import SqquidError

log = logging.getLogger("sqquid_etl")


def fail(exc: SqquidError) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(exc.exit_code)


def load_settings(config: str | None):
    from .config import find_config, load_config

    path = find_config(config)
    if path is not None:
        log.info("config: %s", path)
    return load_config(path)


def choose_destination(settings, duckdb_path: str | None, parquet_dir: str | None) -> tuple[str | None, str | None]:
    """Command-line destination wins; else the config file's; else the default DuckDB file."""
    if duckdb_path or parquet_dir:
        return duckdb_path, parquet_dir
    return settings.get("duckdb"), settings.get("parquet")


config_option = click.option(
    "--config", "config", type=click.Path(dir_okay=False), envvar="SQQUID_CONFIG",
    help="Settings file (env SQQUID_CONFIG; default ./sqquid.toml when present). Options override it.",
)
