"""`sqquid-etl load-inventory`: a thin click command over `reverse.load_inventory`."""

from __future__ import annotations


import click

from .cli_common import api_connection, api_options, fail, load_settings
from .errors import ConfigError, SqquidError

SHOWN_DIFF_ROWS = 20


@click.command("load-inventory")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--mode", type=click.Choice(["partial", "full"]), required=True,
              help="partial: set the listed records only. full: set the listed records and ZERO the others "
                   "(see --zero), after reading the account's inventory and counting the effect.")
@click.option("--zero", type=click.Choice(["unlisted-skus", "unlisted-records"]), default="unlisted-skus",
              show_default=True, help="Full: zero the records of skus not in the input (the reference's reading), "
                                      "or every record not in the input.")
@click.option("--via", type=click.Choice(["chunks", "full-endpoint"]), default="chunks", show_default=True,
              help="Full: send explicit partial updates in journaled chunks, or one PATCH /v1/inventory/full "
                   "(the server's own zeroing; always needs --yes).")
@click.option("--duckdb", "duckdb_path", type=click.Path(dir_okay=False),
              help="Load the result of --query on this DuckDB file instead of FILE.")
@click.option("--query", help="SELECT giving sku, qty_on_hand[, location_external_id, bin] (with --duckdb).")
@click.option("--dry-run", is_flag=True, help="Print the diff against current inventory; send no update.")
@click.option("--yes", "confirm", is_flag=True, help="Confirm a full update that zeroes more than --threshold.")
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True,
              help="Skus per request (a chunk is also never over 2 MiB).")
@click.option("--journal", type=click.Path(dir_okay=False),
              help="Journal of acknowledged chunks (default FILE.journal.jsonl; none for --duckdb unless given).")
@click.option("--baseline", type=click.Path(dir_okay=False),
              help="Full: the DuckDB file of a recent extract, read as the current inventory instead of the API.")
@click.option("--baseline-max-age", default="1h", show_default=True,
              help="Full: refuse a baseline whose inventory was read longer ago (90s, 30m, 1h, 2d).")
@click.option("--diff-out", type=click.Path(dir_okay=False), help="Write the diff as CSV.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="Share of records above 0 a full update may zero without --yes.")
@api_options
@click.option("--progress/--no-progress", "show_progress", default=True, show_default=True,
              help="Progress of reading the account's inventory (a bar on a terminal, log lines otherwise).")
def load_inventory_command(file, mode, zero, via, duckdb_path, query, dry_run, confirm, batch_size, journal, baseline,
                           baseline_max_age, diff_out, threshold, config, account, base_url, api_key, username, password, rate, burst,
                           show_progress) -> None:
    """Set Sqquid inventory from FILE (CSV or Parquet) or from a DuckDB query.

    Columns: sku, qty_on_hand (an integer; negative = oversold), and optionally
    location_external_id and bin (empty = "default"). The whole input is validated before
    anything is sent; a full update is counted (and guarded) before anything is sent.
    """
    from .cli import _use_system_allocator

    _use_system_allocator()  # freed Arrow buffers go back to the system: a lower peak for a large load
    from .progress import ProgressReporter
    from .reverse import load_inventory
    from .reverse_input import read_duckdb_query, refuse_overlaps

    reporter = None
    try:
        connection = api_connection(load_settings(config), account, base_url, api_key, username, password, rate, burst)
        reporter = ProgressReporter.for_terminal(show_progress, False, connection["rate"])
        if (file is None) == (duckdb_path is None):
            raise ConfigError("give either FILE or --duckdb PATH --query SQL (not both, not neither)")
        if (duckdb_path is None) != (query is None):
            raise ConfigError("--duckdb and --query go together")
        refuse_overlaps([("--duckdb file", duckdb_path)], [("--journal", journal), ("--diff-out", diff_out)])
        data = file if file is not None else read_duckdb_query(duckdb_path, query)
        report = load_inventory(
            data, mode=mode, dry_run=dry_run, confirm=confirm, batch_size=batch_size, journal=journal, baseline=baseline,
            baseline_max_age=baseline_max_age, zero=zero, via=via, zero_threshold=threshold, diff_out=diff_out,
            progress=reporter, **connection,
        )
    except SqquidError as exc:
        if reporter is not None:
            reporter.close()
        fail(exc)
    reporter.close()
    if dry_run and report.diff is not None:
        _print_diff(report.diff)
    click.echo(report.summary())


def _print_diff(diff) -> None:
    moving = diff[~diff["change"].isin(["unchanged", "kept"])]
    if moving.empty:
        click.echo("diff: no record changes")
        return
    click.echo(f"diff: {len(moving)} record(s) change (first {min(len(moving), SHOWN_DIFF_ROWS)} shown; "
               "--diff-out writes them all):")
    click.echo(f"  {'change':<8} {'sku':<24} {'location':<12} {'bin':<10} {'current':>9} {'new':>9}")
    for row in moving.head(SHOWN_DIFF_ROWS).itertuples(index=False):
        current = "" if row.current_qty is None or str(row.current_qty) == "<NA>" else str(row.current_qty)
        click.echo(f"  {row.change:<8} {row.sku:<24} {row.location_external_id:<12} {row.bin:<10} "
                   f"{current:>9} {row.new_qty:>9}{'  ' + row.flag if row.flag else ''}")
