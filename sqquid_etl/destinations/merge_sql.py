"""SQL the destinations build to merge staged pages and to read their tables (DuckDB dialect)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from ..definitions import StreamDefinition, TableSpec
from ..errors import StateError
from .buffer import SEQ


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_path(path: Path) -> str:
    """A file path as an SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


def latest_versions_sql(staged: str, table: TableSpec, conn: Any, unique: bool | None = None, extra: tuple = ()) -> str:
    """SQL selecting the staged rows of a table, one per primary key: where a key came twice
    (records that changed while the stream was paged) its last version, found by an anti-join
    with the few keys that came twice; else every row as it is. Memory stays within DuckDB's
    limit: the GROUP BY spills, and the join's build side holds only the repeated keys.
    `unique`: the caller knows whether a key came twice (True: none did), so nothing is asked.
    `extra`: columns of `staged` selected too (undocumented fields, `duckdb_evolve.with_extras_sql`)."""
    q = quote_identifier
    columns = ", ".join(q(c) for c in (*table.column_names, *extra))
    if unique is None:
        unique = not keys_repeat(staged, table, conn)
    if unique:
        return f"SELECT {columns} FROM {staged}"
    match = " AND ".join(f"r.{q(k)} = s.{q(k)}" for k in table.primary_key)
    return (
        f"SELECT {columns} FROM {staged} s "
        f"WHERE NOT EXISTS (SELECT 1 FROM ({_repeated_sql(staged, table)}) r WHERE {match} AND s.{SEQ} < r._last)"
    )


def keys_repeat(staged: str, table: TableSpec, conn: Any) -> bool:
    """Whether a primary key comes twice in the staged rows `staged` (one query)."""
    return bool(conn.execute(f"SELECT 1 FROM ({_repeated_sql(staged, table)}) LIMIT 1").fetchall())


def _repeated_sql(staged: str, table: TableSpec) -> str:
    keys = ", ".join(quote_identifier(k) for k in table.primary_key)
    return f"SELECT {keys}, max({SEQ}) AS _last FROM {staged} GROUP BY {keys} HAVING count(*) > 1"


def where_clause(column: str | None, since: datetime | None, equals: dict[str, str], live: bool = False,
                 until: datetime | None = None) -> tuple[str, list]:
    """SQL ` WHERE column >= since [AND column < until] AND k = v ...` (or "") and its parameters;
    `live`: only rows not marked deleted (`_sqquid_deleted_at IS NULL`)."""
    clauses, params = (["_sqquid_deleted_at IS NULL"] if live else []), []
    for op, bound in ((">=", since), ("<", until)):
        if column is not None and bound is not None:
            clauses.append(f"{quote_identifier(column)} {op} ?")
            params.append(bound)
    for name, value in equals.items():
        clauses.append(f"{quote_identifier(name)} = ?")
        params.append(value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def counts_at(column: str, times: list[datetime | None]) -> tuple[str, list]:
    """SQL of the counts of rows with `column >= t` for each of `times` (None: every row), one
    scan for all, and its parameters."""
    counts = ", ".join("count(*)" if t is None else f"count(*) FILTER (WHERE {quote_identifier(column)} >= ?)" for t in times)
    return counts, [t for t in times if t is not None]


def counts_by(column: str, by: str, times: list[datetime]) -> tuple[str, list]:
    """SQL of each `by` value's rows and those with `column >= t` for each of `times`, one scan
    grouped by `by` (a FILTER a value costs as much as a scan of its own), and its parameters."""
    since = "".join(f", count(*) FILTER (WHERE {quote_identifier(column)} >= ?)" for _ in times)
    return f"SELECT {quote_identifier(by)}, count(*){since}", list(times)


def check_columns(where: str, table_name: str, have: list[str], stream: StreamDefinition, want: list[str]) -> None:
    """An existing table must have the columns its stream defines now (else: full refresh)."""
    if have != want:
        raise StateError(
            f"table {table_name!r} in {where} has columns {have}, but stream {stream.name!r} now defines "
            f"{want}; re-extract it with --full-refresh {stream.name}"
        )
