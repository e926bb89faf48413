"""Schema evolution in DuckDB: the undocumented fields a writer is given (`PageTables.extras`,
see `evolve.py`) become nullable columns of their tables, added by the commit that stores
their data, and are recorded once in `_sqquid_schema_changes`.

Their values are staged as more columns of the table's rows (`extras_stage.py`: a text column
a field). At commit the table first gains its new columns (ALTER TABLE; a column whose values
disagree across pages or runs is widened: BIGINT -> DOUBLE, anything else -> VARCHAR), then the
rows are merged with their undocumented values (`with_extras_sql`: each staged column cast to
its column's type), inserted with the rows. A run without undocumented fields runs
none of this."""

from __future__ import annotations

from typing import Any

from ..definitions import StreamDefinition, TableSpec
from ..evolve import widen
from .extras_stage import staged_column
from .merge_sql import check_columns, quote_identifier as q

HISTORY_TABLE = "_sqquid_schema_changes"
_TYPES = ("BIGINT", "DOUBLE", "BOOLEAN", "JSON", "VARCHAR")


def column_type(existing: str | None, kind: str) -> str:
    """The type of an undocumented column: `kind` as found (NULL: VARCHAR), widened with the
    type the column has already (None: it is new)."""
    kind = "VARCHAR" if kind == "NULL" else kind
    return kind if existing is None else widen(existing if existing in _TYPES else "VARCHAR", kind)


def with_extras_sql(staged: str, types: dict[str, str]) -> str:
    """SQL of the staged rows `staged` with their undocumented values (staged as text, in columns
    of `extras_stage.staged_column`), each column cast to its type (null in a row without)."""
    cast = ", ".join(f"CAST(s.{q(staged_column(c))} AS {kind}) AS {q(c)}" for c, kind in types.items())
    return f"(SELECT s.*, {cast} FROM {staged} s)"


def documented_columns(conn: Any, where: str, table: str, have: list[str], stream: StreamDefinition,
                       want: list[str]) -> None:
    """`merge_sql.check_columns`, the columns an earlier run added for undocumented fields aside."""
    if have != want and history_exists(conn):
        evolved = {r[0] for r in conn.execute(f"SELECT {q('column')} FROM {HISTORY_TABLE} WHERE {q('table')} = ?",
                                                [table]).fetchall()}
        have = [c for c in have if c not in evolved or c in want]
    check_columns(where, table, have, stream, want)


def history_exists(conn: Any) -> bool:
    return bool(conn.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main' "
                             "AND database_name = current_database()", [HISTORY_TABLE]).fetchall())


def add_columns(conn: Any, table: TableSpec, types: dict[str, str], stream: str, run_id: str) -> dict[str, str]:
    """The table's new columns added (or widened), each recorded once in the history; returns
    the type of each column (within the caller's transaction)."""
    conn.execute(f"CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (stream VARCHAR, {q('table')} VARCHAR, "
                 f"{q('column')} VARCHAR, type VARCHAR, first_run VARCHAR, recorded_at TIMESTAMPTZ)")
    have = dict(conn.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? AND schema_name = 'main' "
        "AND database_name = current_database()", [table.name]).fetchall())
    recorded = {(c, t) for c, t in conn.execute(
        f"SELECT {q('column')}, type FROM {HISTORY_TABLE} WHERE {q('table')} = ?", [table.name]).fetchall()}
    final = {}
    for column, found in types.items():
        existing = have.get(column)
        kind = column_type(existing, found)
        if existing is None:
            conn.execute(f"ALTER TABLE {q(table.name)} ADD COLUMN {q(column)} {kind}")
        elif kind != existing:
            conn.execute(f"ALTER TABLE {q(table.name)} ALTER COLUMN {q(column)} TYPE {kind}")
        if (column, kind) not in recorded:
            conn.execute(f"INSERT INTO {HISTORY_TABLE} VALUES (?, ?, ?, ?, ?, now())",
                         [stream, table.name, column, kind, run_id])
        final[column] = kind
    return final
