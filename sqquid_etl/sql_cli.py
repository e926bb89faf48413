"""`sqquid-etl sql "SELECT ..."`: query an extract with the DuckDB the package installed.

No separate `duckdb` command is needed (and a DuckDB CLI of another version may not read the
file): the query runs on the Python package that wrote it, read-only, so looking never writes and
never waits for more than the file's lock. A Parquet directory is read through one view a table
and the SQL views (`sql_views.attach_parquet`), a local Iceberg warehouse likewise over its tables'
current data files (`sql_views.attach_files`).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click

from .cli_common import choose_destination, config_option, fail, load_settings
from .errors import ConfigError, SqquidError, StateError
from .settings import DEFAULT_DUCKDB

CELL_WIDTH = 40  # a wider value is cut, with "…", in the table format


@click.command("sql")
@click.argument("query")
@click.option("--duckdb", "duckdb_path", type=click.Path(dir_okay=False), help=f"DuckDB file (default: the config's, else {DEFAULT_DUCKDB}).")
@click.option("--parquet", "parquet_dir", type=click.Path(file_okay=False), help="A Parquet directory an extract wrote.")
@click.option("--iceberg", "iceberg", help="An Iceberg extract: WAREHOUSE[?catalog=URL&namespace=NAME], a local warehouse.")
@config_option
@click.option("--format", "output_format", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="An aligned table, CSV with a header, or one JSON object a row.")
@click.option("--max-rows", type=click.IntRange(min=0), default=1000, show_default=True, help="Rows printed at most (0: all).")
def sql_command(query: str, duckdb_path: str | None, parquet_dir: str | None, iceberg: str | None, config: str | None,
                output_format: str, max_rows: int) -> None:
    """Run a SQL query on an extract (read-only) and print the result.

    Example: sqquid-etl sql --duckdb sqquid-demo.duckdb "SELECT * FROM available_to_sell LIMIT 10"
    """
    try:
        conn = _open_iceberg(iceberg) if iceberg else _open(*choose_destination(load_settings(config), duckdb_path, parquet_dir))
        try:
            columns, rows, more = _run(conn, query, max_rows)
        finally:
            conn.close()
    except SqquidError as exc:
        fail(exc)
        return
    _print(columns, rows, output_format)
    if more:
        click.echo(f"(first {max_rows} rows; --max-rows 0 for all)", err=True)


def _open_iceberg(location: str):
    """An in-memory DuckDB with a view a table of the Iceberg extract (its current data files) and the SQL views."""
    import duckdb

    from .destinations import open_existing
    from .sql_views import attach_files

    destination = open_existing(iceberg=location, read_only=True)
    try:
        files = destination.data_files()
    finally:
        destination.close()
    conn = duckdb.connect()
    attach_files(conn, files)
    return conn


def _open(duckdb_path: str | None, parquet_dir: str | None):
    import duckdb

    if parquet_dir:
        if "://" in parquet_dir:
            raise ConfigError(f"--parquet {parquet_dir}: `sqquid-etl sql` reads a local Parquet directory; query object "
                              "storage with DuckDB's httpfs extension (read_parquet('s3://.../TABLE/*.parquet'))")
        if not Path(parquet_dir).is_dir():
            raise ConfigError(f"--parquet {parquet_dir}: no such directory (nothing extracted there yet)")
        from .sql_views import attach_parquet

        conn = duckdb.connect()
        attach_parquet(conn, parquet_dir)
        return conn
    path = Path(duckdb_path or DEFAULT_DUCKDB)
    if not path.is_file():
        raise ConfigError(f"--duckdb {path}: no such DuckDB file (run `sqquid-etl extract` or `sqquid-etl demo` first)")
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StateError(f"{path} is in use by another process (an extract running?); try again when it ends") from None
        raise ConfigError(f"cannot open DuckDB file {path}: {exc}") from None
    except duckdb.Error as exc:
        raise ConfigError(f"cannot open DuckDB file {path}: {exc}") from None


def _run(conn, query: str, max_rows: int) -> tuple[list[str], list[tuple], bool]:
    import duckdb

    try:
        cursor = conn.execute(query)
        columns = [d[0] for d in cursor.description or []]
        rows = cursor.fetchall() if max_rows == 0 else cursor.fetchmany(max_rows + 1)
    except duckdb.Error as exc:
        raise SqquidError(f"query failed: {exc}") from None
    more = bool(max_rows) and len(rows) > max_rows
    return columns, rows[:max_rows] if more else rows, more


def _text(value) -> str:
    return "NULL" if value is None else str(value)


def _print(columns: list[str], rows: list[tuple], output_format: str) -> None:
    if output_format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[("" if v is None else v) for v in row] for row in rows])
        return
    if output_format == "json":
        for row in rows:
            click.echo(json.dumps(dict(zip(columns, row)), default=str))
        return
    cells = [[_cut(_text(v)) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    click.echo(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def _cut(text: str) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= CELL_WIDTH else text[:CELL_WIDTH - 1] + "…"
