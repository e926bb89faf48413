"""`sqquid-etl load-buffers`: a thin click command over `buffers.load_buffers`."""

from __future__ import annotations


import click

from .cli_common import api_connection, api_options, fail, load_settings
from .errors import ConfigError, SqquidError
from .settings import DEFAULT_DUCKDB

SHOWN_PLAN_ROWS = 20


def _channel_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        channels = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"a comma-separated list of channel ids, not {value!r}") from None
    if not channels or any(c < 1 for c in channels):
        raise click.BadParameter(f"channel ids are whole numbers >= 1, not {value!r}")
    return channels


@click.command("load-buffers")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--from-duckdb", "query", help="Load the result of this SELECT on --duckdb instead of FILE "
                                             "(sku, channel_id, location_external_id, quantity).")
@click.option("--duckdb", "duckdb_path", type=click.Path(dir_okay=False), default=DEFAULT_DUCKDB, show_default=True,
              help="The DuckDB file --from-duckdb reads.")
@click.option("--mode", type=click.Choice(["partial", "full"]), default="partial", show_default=True,
              help="partial: create the missing buffers and update the changed. full: also DELETE the account's "
                   "buffers the input does not have.")
@click.option("--dry-run", is_flag=True, help="Print the plan against the account's buffers; send nothing.")
@click.option("--yes", "confirm", is_flag=True, help="Confirm a full load that deletes more than --threshold.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="Share of the account's buffers a full load may delete without --yes.")
@click.option("--channels", callback=_channel_list,
              help="The account's channel ids (e.g. 1,2,3), besides those its buffers already use.")
@click.option("--journal", type=click.Path(dir_okay=False),
              help="Journal of acknowledged operations (default FILE.journal.jsonl; none for --from-duckdb unless "
                   "given).")
@click.option("--diff-out", type=click.Path(dir_okay=False), help="Write the plan as CSV.")
@api_options
@click.option("--progress/--no-progress", "show_progress", default=True, show_default=True,
              help="Progress of reading the account's buffers.")
def load_buffers_command(file, query, duckdb_path, mode, dry_run, confirm, threshold, channels, journal, diff_out,
                         config, account, base_url, api_key, username, password, rate, burst, show_progress) -> None:
    """Make the account's dynamic buffers those of FILE (CSV or Parquet) or of a DuckDB query.

    Columns: sku, channel_id, location_external_id (each optional; empty = any) and quantity
    (or qty). Buffers are found by (sku, channel, location): no ids needed. The whole input is
    validated before anything is sent.
    """
    from .cli import _use_system_allocator

    _use_system_allocator()
    from .buffers import load_buffers
    from .progress import ProgressReporter
    from .reverse_input import read_duckdb_query, refuse_overlaps

    reporter = None
    try:
        connection = api_connection(load_settings(config), account, base_url, api_key, username, password, rate, burst)
        reporter = ProgressReporter.for_terminal(show_progress, False, connection["rate"])
        if (file is None) == (query is None):
            raise ConfigError("give either FILE or --from-duckdb QUERY (not both, not neither)")
        if query is not None:
            refuse_overlaps([("--duckdb file", duckdb_path)], [("--journal", journal), ("--diff-out", diff_out)])
        data = file if file is not None else read_duckdb_query(duckdb_path, query)
        report = load_buffers(data, mode=mode, dry_run=dry_run, confirm=confirm, channels=channels, journal=journal,
                              delete_threshold=threshold, diff_out=diff_out, progress=reporter,
                              **connection)
    except SqquidError as exc:
        if reporter is not None:
            reporter.close()
        fail(exc)
    reporter.close()
    if dry_run and report.plan is not None:
        _print_plan(report.plan)
    click.echo(report.summary())


def _print_plan(plan) -> None:
    import pandas as pd

    moving = plan[plan["op"].isin(["create", "update", "delete"])]
    if moving.empty:
        click.echo("plan: the account's buffers already are the input's")
        return
    click.echo(f"plan: {len(moving)} operation(s) (first {min(len(moving), SHOWN_PLAN_ROWS)} shown; --diff-out "
               "writes them all):")
    show = lambda v: "any" if v is None or pd.isna(v) else str(v)  # noqa: E731
    for row in moving.head(SHOWN_PLAN_ROWS).itertuples(index=False):
        click.echo(f"  {row.op:<7} id {show(row.id):<6} sku {show(row.sku):<20} channel {show(row.channel_id):<4} "
                   f"location {show(row.location_external_id):<8} {show(row.current_qty):>6} -> {show(row.new_qty)}")
