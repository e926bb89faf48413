"""The one interface every destination implements: stage pages, then commit them with state."""

from __future__ import annotations

import array
import logging
import os
from datetime import datetime
from typing import Any, Callable, Protocol, TypeVar

import duckdb
import pyarrow as pa

from ..definitions import StreamDefinition, TableSpec
from ..errors import ConfigError, StateError
from ..runs import RUN_COLUMNS, RunRecord  # noqa: F401 - re-exported
from ..state import StreamState

log = logging.getLogger(__name__)
T = TypeVar("T")

SEQ = "_sqquid_seq"  # staging column: arrival order, so the last version of a key wins


def number_rows(data: pa.Table, start: int) -> pa.Table:
    """The page with its arrival order in a SEQ column, numbered from `start`."""
    return data.append_column(SEQ, integer_range(start, data.num_rows))


def integer_range(start: int, n: int) -> pa.Array:
    """start, start + 1, ... (n values), built from a buffer (`pa.array` would import pandas)."""
    return pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(array.array("q", range(start, start + n)))])


DEFAULT_MEMORY_LIMIT = "40MB"  # DuckDB's; an extract's peak RSS is ~160 MB beside it (bench/memory.py)


def positive_setting(name: str, default: int) -> int:
    """A whole-number tuning variable from the environment (a bad value is a ConfigError)."""
    text = os.environ.get(name, str(default)).strip()
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"environment variable {name}={text!r}: must be a whole number, at least 1")
    return int(text)


def check_tuning() -> None:
    """The tuning variables (SQQUID_FLUSH_ROWS, SQQUID_DUCKDB_*) parse, or a ConfigError says which does not."""
    positive_setting("SQQUID_FLUSH_ROWS", 10000)
    with duckdb.connect() as conn:
        tune_duckdb(conn)


# merges that run out of the default limit are run again with these (never above what they need)
ESCALATED_MEMORY_LIMITS = ("256MB", "1GB")


def within_memory_limit(conn: Any, stream: str, work: Callable[[], T]) -> T:
    """Run DuckDB work of a stream (a merge, which rolls itself back on failure). When it runs out
    of the default memory limit it is run again with a larger one (logged), so the low default
    costs no failure; the limit is then set back. A limit the user set is kept: running out of
    it is a ConfigError that says which setting to raise."""
    chosen = os.environ.get("SQQUID_DUCKDB_MEMORY_LIMIT")
    if chosen:
        return _or_config_error(work, stream, chosen)
    limits = (DEFAULT_MEMORY_LIMIT, *ESCALATED_MEMORY_LIMITS)
    try:
        for smaller, larger in zip(limits, limits[1:]):
            try:
                return work()
            except duckdb.OutOfMemoryException:
                log.warning("stream %s: DuckDB ran out of %s while merging; merging again with %s", stream, smaller, larger)
                conn.execute(f"SET memory_limit = '{larger}'")
        return _or_config_error(work, stream, limits[-1])
    finally:
        conn.execute(f"SET memory_limit = '{DEFAULT_MEMORY_LIMIT}'")


def _or_config_error(work: Callable[[], T], stream: str, limit: str) -> T:
    try:
        return work()
    except duckdb.OutOfMemoryException as exc:
        raise ConfigError(
            f"stream {stream!r}: DuckDB ran out of its memory limit ({limit}) while merging the staged pages "
            f"({str(exc).splitlines()[0]}); nothing of the stream was stored. Raise SQQUID_DUCKDB_MEMORY_LIMIT"
        ) from None


def tune_duckdb(conn: Any) -> None:
    """Settings for a connection that merges staged pages: memory bounded by
    SQQUID_DUCKDB_MEMORY_LIMIT (default DEFAULT_MEMORY_LIMIT), spilling to disk beyond it, and
    SQQUID_DUCKDB_THREADS threads (default 1: each holds its own buffers, and an extract's wall
    time is the API's rate limit, not the merge)."""
    conn.execute("SET preserve_insertion_order = false")
    conn.execute("SET allocator_flush_threshold = '8MB'")  # give freed memory back after each task
    limit = os.environ.get("SQQUID_DUCKDB_MEMORY_LIMIT", DEFAULT_MEMORY_LIMIT).strip()
    try:
        conn.execute("SET memory_limit = '" + limit.replace("'", "''") + "'")
    except duckdb.Error as exc:
        raise ConfigError(f"environment variable SQQUID_DUCKDB_MEMORY_LIMIT={limit!r}: {exc}") from None
    conn.execute(f"SET threads = {positive_setting('SQQUID_DUCKDB_THREADS', 1)}")


class PageBuffer:
    """Collects numbered pages per table and hands them out in batches of about SQQUID_FLUSH_ROWS rows:
    one write per batch instead of one per 250-record page, memory bounded by the batch."""

    def __init__(self, tables: list[str], flush_rows: int | None = None):
        self.flush_rows = flush_rows if flush_rows is not None else positive_setting("SQQUID_FLUSH_ROWS", 10000)
        self._seq = 0
        self._pages: dict[str, list[pa.Table]] = {name: [] for name in tables}
        self._rows: dict[str, int] = {name: 0 for name in tables}

    def add(self, name: str, data: pa.Table) -> pa.Table | None:
        """Buffer a page; return a full batch to write when there is one."""
        self._pages[name].append(number_rows(data, self._seq))
        self._seq += data.num_rows
        self._rows[name] += data.num_rows
        return self.take(name) if self._rows[name] >= self.flush_rows else None

    def take(self, name: str) -> pa.Table | None:
        """Everything buffered for a table, as one batch (None when empty)."""
        if not self._pages[name]:
            return None
        batch = pa.concat_tables(self._pages[name])
        self._pages[name], self._rows[name] = [], 0
        return batch

    def clear(self) -> None:
        for name in self._pages:
            self._pages[name], self._rows[name] = [], 0


def latest_versions_sql(staged: str, table: TableSpec, conn: Any) -> str:
    """SQL selecting the staged rows of a table, one per primary key: where a key came twice
    (records that changed while the stream was paged) its last version, found by an anti-join
    with the few keys that came twice; else every row as it is. Memory stays within DuckDB's
    limit: the GROUP BY spills, and the join's build side holds only the repeated keys."""
    columns = ", ".join(quote_identifier(c) for c in table.column_names)
    keys = ", ".join(quote_identifier(k) for k in table.primary_key)
    repeated = f"SELECT {keys}, max({SEQ}) AS _last FROM {staged} GROUP BY {keys} HAVING count(*) > 1"
    if not conn.execute(f"SELECT 1 FROM ({repeated}) LIMIT 1").fetchall():
        return f"SELECT {columns} FROM {staged}"
    match = " AND ".join(f"r.{quote_identifier(k)} = s.{quote_identifier(k)}" for k in table.primary_key)
    return (
        f"SELECT {columns} FROM {staged} s "
        f"WHERE NOT EXISTS (SELECT 1 FROM ({repeated}) r WHERE {match} AND s.{SEQ} < r._last)"
    )


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def where_clause(column: str | None, since: datetime | None, equals: dict[str, str]) -> tuple[str, list]:
    """SQL ` WHERE column >= since AND k = v ...` (or "") and its parameters."""
    clauses, params = [], []
    if column is not None and since is not None:
        clauses.append(f"{quote_identifier(column)} >= ?")
        params.append(since)
    for name, value in equals.items():
        clauses.append(f"{quote_identifier(name)} = ?")
        params.append(value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def check_columns(where: str, table_name: str, have: list[str], stream: StreamDefinition, want: list[str]) -> None:
    """An existing table must have the columns its stream defines now (else: full refresh)."""
    if have != want:
        raise StateError(
            f"table {table_name!r} in {where} has columns {have}, but stream {stream.name!r} now defines "
            f"{want}; re-extract it with --full-refresh {stream.name}"
        )


class StreamWriter(Protocol):
    """Stages one stream's pages; nothing is visible until `commit`, which also stores state."""

    def write(self, tables: dict[str, pa.Table]) -> None: ...

    def distinct_keys(self, table: str) -> int: ...

    def commit(self, state: StreamState, run: RunRecord) -> None: ...

    def abort(self) -> None: ...


class Destination(Protocol):
    def load_states(self) -> dict[str, StreamState]: ...

    def save_state(self, stream: str, state: StreamState | None) -> None: ...

    def distinct_values(self, table: str, column: str) -> list[Any] | None: ...

    def count_since(self, table: str, column: str, since: datetime | None, equals: dict[str, str]) -> int: ...

    def cursor_bounds(self, table: str, column: str, equals: dict[str, str]) -> tuple[Any, Any]: ...

    def begin(self, stream: StreamDefinition, replace: bool) -> StreamWriter: ...

    def record_run(self, run: RunRecord) -> None: ...

    def close(self) -> None: ...
