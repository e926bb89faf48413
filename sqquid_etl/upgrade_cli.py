"""`sqquid-etl upgrade --account NAME`: a single-account destination made multi-account in place
(`destinations.upgrade_destination`): its rows, states and run records become account NAME's,
all at once or not at all. Run it once, before the first `extract --account`; run again, it
changes nothing."""

from __future__ import annotations

import click

from .cli_common import choose_destination, config_option, fail, load_settings
from .errors import SqquidError
from .settings import DEFAULT_DUCKDB


@click.command("upgrade")
@click.option("--account", required=True, help="The account the destination's existing rows and state become.")
@click.option("--duckdb", "duckdb_path", type=click.Path(dir_okay=False), help="DuckDB file (default sqquid.duckdb).")
@click.option("--parquet", "parquet_dir", help="A Parquet extract's directory.")
@config_option
def upgrade_command(account, duckdb_path, parquet_dir, config) -> None:
    """Make a single-account destination multi-account (every table gains an `account` column)."""
    from .destinations import upgrade_destination

    try:
        settings = load_settings(config)
        duckdb_path, parquet_dir = choose_destination(settings, duckdb_path, parquet_dir)
        if not (duckdb_path or parquet_dir):
            duckdb_path = DEFAULT_DUCKDB
        click.echo(upgrade_destination(duckdb_path, parquet_dir, account=account))
    except SqquidError as exc:
        fail(exc)
