"""Staging of a stream's undocumented values (`PageTables.extras`, see `evolve.py`), beside its
tables' staged rows: for each table, one row a staged row holding any (`EXTRA_ROW`: that row's
number, its `buffer.SEQ`), one text column an undocumented field (the text its type reads back
exactly, `evolve.value_text`). A page that brings a field not seen yet starts a new file with
the wider set of columns, so a file never changes shape; DuckDB reads a table's files by column
name. Each column's type is kept as found, widened across pages (`types`). The commit casts the
columns to their types and stores them with the rows they belong to (`duckdb_evolve.py`,
`parquet_evolve.py`): one join on the row number, no row a value."""

from __future__ import annotations

import array
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa

from ..evolve import widen
from .merge_sql import sql_path

EXTRA_ROW = "_sqquid_row"  # the staged row (its SEQ in its table's file) the undocumented values belong to


class ExtraStage:
    """The undocumented values of a stream's staged pages, a table's in files of their own."""

    def __init__(self, directory: Path, flush_rows: int):
        self.directory = directory
        self.flush_rows = flush_rows
        self.types: dict[str, dict[str, str]] = {}  # table -> {undocumented column: its type so far}
        self._columns: dict[str, list[str]] = {}  # table -> the columns of its current file
        self._pending: dict[str, list[pa.Table]] = {}
        self._writers: dict[str, Any] = {}  # table -> its current file's open ParquetWriter
        self._files: dict[str, list[Path]] = {}

    def write(self, extras: list, staged_rows: Callable[[str], int]) -> None:
        """Stage a page's undocumented values; `staged_rows(table)`: the table's rows staged
        before the page's (the number of its first row)."""
        by_table: dict[str, dict[str, Any]] = {}
        for extra in extras:
            types = self.types.setdefault(extra.table, {})
            types[extra.column] = widen(types.get(extra.column, "NULL"), extra.type)
            by_table.setdefault(extra.table, {})[extra.column] = extra
        for table, found in by_table.items():
            self._add(table, found, staged_rows(table))

    def _add(self, table: str, found: dict[str, Any], start: int) -> None:
        rows = next(iter(found.values())).rows
        if any(extra.rows != rows for extra in found.values()):  # (else: every one of the same rows, in order)
            rows = sorted(set().union(*(extra.rows for extra in found.values())))
        at: dict[int, int] = {}
        columns = self._columns.setdefault(table, [])
        new = [column for column in found if column not in columns]
        if new:  # a wider file from here on
            self._flush(table, close=True)
            columns.extend(new)
        arrays = [_numbers(rows, start)]
        for column in columns:
            extra = found.get(column)
            if extra is None:
                arrays.append(pa.nulls(len(rows), pa.string()))
                continue
            given = extra.values if isinstance(extra.values, pa.Array) else None  # text Arrow read
            if extra.rows == rows:
                arrays.append(given if given is not None else pa.array(extra.values, pa.string()))
                continue
            at = at or {row: i for i, row in enumerate(rows)}
            values: list = [None] * len(rows)
            for row, value in zip(extra.rows, given.to_pylist() if given is not None else extra.values):
                values[at[row]] = value
            arrays.append(pa.array(values, pa.string()))
        self._pending.setdefault(table, []).append(pa.Table.from_arrays(arrays, names=[EXTRA_ROW, *columns]))
        if sum(t.num_rows for t in self._pending[table]) >= self.flush_rows:
            self._flush(table)

    def _flush(self, table: str, close: bool = False) -> None:
        pending = self._pending.pop(table, [])
        if pending:
            batch = pa.concat_tables(pending)
            writer = self._writers.get(table)
            if writer is None:
                import pyarrow.parquet as pq

                self.directory.mkdir(parents=True, exist_ok=True)
                path = self.directory / f"_sqquid_extra.{table}.{len(self._files.get(table, []))}.parquet"
                self._files.setdefault(table, []).append(path)
                writer = self._writers[table] = pq.ParquetWriter(
                    path, batch.schema, compression="none", use_dictionary=False, write_statistics=False)
            writer.write_table(batch)
        if close and table in self._writers:
            self._writers.pop(table).close()

    def finish(self) -> None:
        """Write what is pending and close the files (idempotent)."""
        for table in list(self._pending) + list(self._writers):
            self._flush(table, close=True)

    def relation(self, table: str) -> str | None:
        """SQL naming a table's staged undocumented values (None: it has none)."""
        self.finish()
        files = self._files.get(table)
        if not files:
            return None
        return f"read_parquet([{', '.join(sql_path(p) for p in files)}], union_by_name = true)"

    def discard(self) -> None:
        self._pending.clear()
        try:
            for writer in self._writers.values():
                writer.close()
        finally:
            self._writers.clear()


def _numbers(rows: range | list[int], start: int) -> pa.Array:
    """The staged rows' numbers, from a buffer."""
    numbers = range(start + rows.start, start + rows.stop) if isinstance(rows, range) else [start + r for r in rows]
    return pa.Array.from_buffers(pa.int64(), len(rows), [None, pa.py_buffer(array.array("q", numbers))])
