"""Staging: a stream's pages, numbered in arrival order, in one Parquet file per table until the
destination commits them. Written in batches of about `Tuning.flush_rows` rows, so memory is
bounded by the batch and not by the stream; read back by DuckDB (`relation`) to merge.

A table that received no row has no file until its relation is asked for (then an empty file
of its shape): a stream with nothing new costs no file, and no Parquet writer is loaded.

The undocumented values of a page (`PageTables.extras`, see `evolve.py`) are staged beside its
table's rows, one row a value (`EXTRA_SCHEMA`), and their columns' types kept (`extra_types`)
for the commit (`duckdb_evolve.py`, `parquet_evolve.py`)."""

from __future__ import annotations

import array
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..definitions import StreamDefinition
from ..evolve import widen
from ..records import arrow_schema
from ..runs import REJECTED_COLUMNS, REJECTED_TABLE
from .buffer import SEQ, PageBuffer
from .merge_sql import sql_path


REJECTED_SCHEMA = pa.schema([(name, pa.string()) for name in REJECTED_COLUMNS])
EXTRA_ROW = "_sqquid_row"  # the staged row (its SEQ in its table's file) an undocumented value belongs to
EXTRA_SCHEMA = pa.schema([(EXTRA_ROW, pa.int64()), ("column", pa.string()), ("value", pa.string())])


def extra_name(table: str) -> str:
    """The staged table of the undocumented values of a table's rows (`duckdb_evolve.py`)."""
    return f"_sqquid_extra.{table}"


class ParquetStage:
    """The staged pages of a stream's tables, and its records quarantined (`REJECTED_TABLE`)."""

    def __init__(self, directory: Path, stream: StreamDefinition, flush_rows: int):
        self.directory = directory
        self.stream = stream
        shutil.rmtree(directory, ignore_errors=True)
        self._tables = [t.name for t in stream.tables] + [REJECTED_TABLE] + [extra_name(t.name) for t in stream.tables]
        self._buffer = PageBuffer(self._tables, flush_rows)
        self._writers: dict[str, Any] = {}  # table -> its open pyarrow.parquet.ParquetWriter
        self._rows: dict[str, int] = {name: 0 for name in self._tables}
        self.extra_types: dict[str, dict[str, str]] = {}  # table -> {undocumented column: its type so far}

    def path(self, table: str) -> Path:
        return self.directory / f"{table}.parquet"

    def rows(self, table: str) -> int:
        """Rows staged for a table so far (repeated keys counted each time they came)."""
        return self._rows[table]

    def write(self, tables: dict[str, pa.Table]) -> None:
        """Stage a page's tables, and its undocumented values (`extras`) where it has any."""
        extras = getattr(tables, "extras", None)
        if extras:
            self._write_extras(extras)  # before the page's rows: numbered by the rows staged before them
        for name, data in tables.items():
            if data.num_rows:
                self._rows[name] += data.num_rows
                self._append(name, self._buffer.add(name, data))

    def _write_extras(self, extras: list) -> None:
        by_table: dict[str, list] = {}
        for extra in extras:
            types = self.extra_types.setdefault(extra.table, {})
            types[extra.column] = widen(types.get(extra.column, "NULL"), extra.type)
            by_table.setdefault(extra.table, []).append(extra)
        for table, found in by_table.items():
            start = self.rows(table)
            rows = array.array("q", [start + row for extra in found for row in extra.rows])
            columns = [extra.column for extra in found for _ in extra.rows]
            values = [value for extra in found for value in extra.values]
            data = pa.Table.from_arrays(
                [pa.Array.from_buffers(pa.int64(), len(rows), [None, pa.py_buffer(rows)]),
                 pa.array(columns, pa.string()), pa.array(values, pa.string())], schema=EXTRA_SCHEMA)
            self.write({extra_name(table): data})

    def _append(self, name: str, batch: pa.Table | None) -> None:
        if batch is None:
            return
        writer = self._writers.get(name)
        if writer is None:
            import pyarrow.parquet as pq  # only once something is staged

            self.directory.mkdir(parents=True, exist_ok=True)
            # plain (no compression, dictionaries or statistics): staged files live for one run,
            # and DuckDB encodes the data when it stores it
            writer = self._writers[name] = pq.ParquetWriter(
                self.path(name), batch.schema, compression="none", use_dictionary=False, write_statistics=False
            )
        writer.write_table(batch)

    def finish(self) -> None:
        """Write what is buffered and close the files (idempotent)."""
        for name in self._tables:
            self._append(name, self._buffer.take(name))
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def relation(self, table: str) -> str:
        """SQL naming the staged rows of a table (read by DuckDB from the file); a table that
        received no row gets an empty file of its shape."""
        self.finish()
        if not self.path(table).exists():
            spec = next((t for t in self.stream.tables if t.name == table), None)
            schema = REJECTED_SCHEMA if table == REJECTED_TABLE else EXTRA_SCHEMA if spec is None else arrow_schema(spec)
            schema = schema.append(pa.field(SEQ, pa.int64()))
            # from empty arrays: `Schema.empty_table()` makes pyarrow import pandas
            self._append(table, pa.Table.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema))
            self.finish()
        return f"read_parquet({sql_path(self.path(table))})"

    def discard(self) -> None:
        """Drop the staged pages (idempotent: a failed commit and its caller may both discard)."""
        self._buffer.clear()
        try:
            for writer in self._writers.values():
                writer.close()
        finally:
            self._writers.clear()
            shutil.rmtree(self.directory, ignore_errors=True)
