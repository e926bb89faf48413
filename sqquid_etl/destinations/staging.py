"""Staging: a stream's pages, numbered in arrival order, in files per table until the destination
commits them. Written in batches of about `Tuning.flush_rows` rows, so memory is bounded by the
batch and not by the stream; read back by DuckDB (`relation`) to merge. `Stage` keeps the batches,
keys and files; the format of the files is its kind's: `ParquetStage` (Parquet, read by DuckDB's
`read_parquet`: the Parquet and Iceberg destinations, whose DuckDB may be another process's
or in memory) or `staging_arrow.ArrowStage` (Arrow IPC, the DuckDB destination's).

A table that received no row has no file until its relation is asked for (then an empty file
of its shape): a stream with nothing new costs no file, and no Parquet writer is loaded.

The undocumented values of a page (`PageTables.extras`, see `evolve.py`) are staged as more
columns of its tables' rows (`extras_stage.py`; a batch with a column the table's file lacks
starts a new file, read with the others by column name), and their columns' types kept
(`extra_types`) for the commit (`duckdb_evolve.py`, `parquet_evolve.py`)."""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..definitions import StreamDefinition
from ..records import arrow_schema
from ..runs import REJECTED_COLUMNS, REJECTED_TABLE
from .account_scope import stamp_column
from .buffer import SEQ, PageBuffer
from .extras_stage import ExtraColumns
from .merge_sql import sql_path


REJECTED_SCHEMA = pa.schema([(name, pa.string()) for name in REJECTED_COLUMNS])
# batches (row groups) a staged file holds before the next begins: an open Parquet writer keeps the
# metadata of each row group it wrote (~25 KB for 30 columns) until it is closed, and a Parquet
# destination stages a whole run (at 100 accounts x 60 s ~190 MB of it: docs/benchmarks.md, tenth session)
FILE_BATCHES = 8


def keys_unique(batch: pa.Table, keys: list[str]) -> bool:
    """Whether no key comes twice in the batch, where one column tells (key columns holding one
    value, as an account stamped on every row, are left out); False when it takes more (DuckDB
    counts them then: a group_by in Arrow would import pandas)."""
    from .. import arrow_compute as pc

    distinct = {k: len(pc.unique(batch[k])) for k in keys}  # one hash a column (count_distinct: ~2.5x the CPU)
    varying = [k for k in keys if distinct[k] > 1]
    if len(varying) != 1:
        return batch.num_rows <= 1 if not varying else False
    return distinct[varying[0]] == batch.num_rows


class StagedFile:
    """A staged file being written: its format's writer and the file (closed together)."""

    def __init__(self, path: Path, schema: pa.Schema, open_writer):
        self.schema = schema
        self._sink = pa.OSFile(str(path), "wb")
        try:
            self._writer = open_writer(self._sink, schema)
        except BaseException:
            self._sink.close()
            raise

    def write_table(self, batch: pa.Table) -> None:
        self._writer.write_table(batch)

    def close(self) -> None:
        try:
            self._writer.close()
        finally:
            self._sink.close()


class Stage:
    """The staged pages of a stream's tables, and its records quarantined (`REJECTED_TABLE`), in
    files of its kind's format (`suffix`, `_open`, `_sql`)."""

    suffix = ""

    def file_batches(self) -> int:
        """Batches a staged file of this kind holds before the next begins."""
        return FILE_BATCHES

    def __init__(self, directory: Path, stream: StreamDefinition, flush_rows: int, key_column: str | None = None):
        self.directory = directory
        self.stream = stream
        shutil.rmtree(directory, ignore_errors=True)
        self._tables = [t.name for t in stream.tables] + [REJECTED_TABLE]
        self._buffer = PageBuffer(self._tables, flush_rows)
        self._writers: dict[str, StagedFile] = {}  # table -> its open file
        self._rows: dict[str, int] = {name: 0 for name in self._tables}
        self._files: dict[str, list[Path]] = {}  # table -> its staged files (one more each time its columns grow)
        self._schemas: dict[str, list[pa.Schema]] = {}  # table -> the columns of each of its files
        self._widened: set[str] = set()  # tables whose files differ in columns (undocumented ones came)
        self._in_file: dict[str, int] = {}  # table -> batches in its open file
        self.extras = ExtraColumns()
        self.extra_types = self.extras.types  # table -> {undocumented column: its type so far}
        self._keys = {t.name: t.primary_key for t in stream.tables}
        self._batches: dict[str, int] = {name: 0 for name in self._tables}  # batches written a table
        self._unique: dict[str, bool] = {}  # table -> its one batch holds each key once
        # table -> the values of its key column beside `key_column` (a stamped account), batch by batch
        self._key_column = {t.name: [k for k in t.primary_key if k != key_column] for t in stream.tables}
        self._key_chunks: dict[str, list] | None = None if key_column is None else {t.name: [] for t in stream.tables}

    def stamp(self, account: str) -> "Stage":
        """Bound to an account (`stream` its account-scoped form): its column put first in each batch of
        the stream's tables, not in each page given (`account_scope.stamp_column`; quarantined records
        are not stamped). Before anything is written; returns the stage."""
        self._buffer = PageBuffer(self._tables, self._buffer.flush_rows,
                                  {t.name: partial(stamp_column, account) for t in self.stream.tables})
        return self

    def path(self, table: str) -> Path:
        return self.directory / f"{table}.{self.suffix}"

    def rows(self, table: str) -> int:
        """Rows staged for a table so far (repeated keys counted each time they came)."""
        return self._rows[table]

    def write(self, tables: dict[str, pa.Table]) -> None:
        """Stage a page's tables, and its undocumented values (`extras`) where it has any."""
        extras = getattr(tables, "extras", None)
        if extras or self.extra_types:
            tables = self.extras.add(tables, extras)
        for name, data in tables.items():
            if data.num_rows:
                self._rows[name] += data.num_rows
                self._append(name, self._buffer.add(name, data))

    def unique(self, table: str) -> bool:
        """Whether the staged rows of a table are known to hold each key once (written in one batch,
        its keys counted then: a few hundred µs in Arrow, where DuckDB would read the file again;
        where the stage keeps the key's values for a part, counted from them when first asked)."""
        if self._batches[table] != 1:
            return False
        if table not in self._unique and self._keys_kept(table):
            self._unique[table] = self.key_range(table)[0]
        return self._unique.get(table, False)

    def _keys_kept(self, table: str) -> bool:
        """Whether the values of a table's key beside `key_column` are kept batch by batch (`key_range`)."""
        return self._key_chunks is not None and table in self._key_chunks and len(self._key_column[table]) == 1

    def _append(self, name: str, batch: pa.Table | None) -> None:
        if batch is None:
            return
        self._batches[name] += 1
        if self._batches[name] == 1 and name in self._keys and not self._keys_kept(name):
            # (a stage that keeps the keys for a part counts them only if asked: a run of parts never asks,
            # and its first batch of each part hashed its keys and the stamped account for nothing)
            self._unique[name] = keys_unique(batch, self._keys[name])
        if self._keys_kept(name):
            # the key values copied: the batch's own chunks would hold its pages' Arrow memory until the part
            chunks = batch[self._key_column[name][0]].chunks
            self._key_chunks[name].extend([pa.concat_arrays(chunks)] if chunks else [])
        writer = self._writers.get(name)
        if writer is not None and writer.schema != batch.schema:  # undocumented columns came: a wider file
            self._writers.pop(name).close()
            writer = None
        if writer is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            files = self._files.setdefault(name, [])
            schemas = self._schemas.setdefault(name, [])
            if schemas and schemas[-1] != batch.schema:
                self._widened.add(name)
            files.append(self.directory / (f"{name}.{self.suffix}" if not files else f"{name}.{len(files)}.{self.suffix}"))
            writer = self._writers[name] = StagedFile(files[-1], batch.schema, self._open)
            schemas.append(batch.schema)
            self._in_file[name] = 0
        writer.write_table(batch)
        self._in_file[name] += 1
        if self._in_file[name] >= self.file_batches():  # (Parquet: its row groups' metadata written out and freed)
            self._writers.pop(name).close()

    def key_range(self, table: str) -> tuple[bool, object, object] | None:
        """Of a table's staged rows (after `finish`): whether each key came once, and the smallest
        and largest key (None: not known in Arrow: no `key_column` given, or a key of more columns
        beside it)."""
        if self._key_chunks is None or len(self._key_column.get(table, ())) != 1:
            return None
        from .. import arrow_compute as pc

        keys = pa.chunked_array(self._key_chunks[table], type=self._key_chunks[table][0].type) \
            if self._key_chunks[table] else pa.chunked_array([], pa.int64())
        n = len(keys)
        if n and not keys.null_count and (n == 1 or pc.call_function("all", [pc.call_function(
                "greater", [keys.slice(1), keys.slice(0, n - 1)])]).as_py()):
            # keys strictly increasing (a listing by id, as the API's pages come): each came once, the first
            # and the last the bounds (two kernels, ~10 µs, against a hash of every key: ~0.08 ms a page)
            return True, keys[0].as_py(), keys[n - 1].as_py()
        bounds = pc.min_max(keys)
        return len(pc.unique(keys)) == len(keys), bounds["min"].as_py(), bounds["max"].as_py()

    def finish(self) -> None:
        """Write what is buffered and close the files (idempotent)."""
        for name in self._tables:
            self._append(name, self._buffer.take(name))
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def relation(self, table: str) -> str:
        """SQL naming the staged rows of a table (read by DuckDB from its files, by column name
        where undocumented columns made more than one); a table that received no row gets an
        empty file of its shape."""
        self.finish()
        if not self.path(table).exists():
            self._append(table, self.empty(table))
            self.finish()
        return self._sql(table)

    def empty(self, table: str) -> pa.Table:
        """No row, in the shape of a table's staged rows."""
        spec = next((t for t in self.stream.tables if t.name == table), None)
        schema = REJECTED_SCHEMA if table == REJECTED_TABLE else arrow_schema(spec)
        schema = schema.append(pa.field(SEQ, pa.int64()))
        # from empty arrays: `Schema.empty_table()` makes pyarrow import pandas
        return pa.Table.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema)

    def _open(self, sink: Any, schema: pa.Schema) -> Any:
        """The file format's writer of `schema` into `sink` (its `write_table`, `close`)."""
        raise NotImplementedError

    def _sql(self, table: str) -> str:
        """SQL naming the rows of a table's staged files (written and closed)."""
        raise NotImplementedError

    def files(self, table: str) -> list[Path]:
        """A table's staged files (after `finish`; none when it received no row)."""
        return list(self._files.get(table, ()))

    def forget(self) -> None:
        """(What a stage registers on a connection may be gone: nothing here.)"""

    def schemas(self, table: str) -> list[pa.Schema]:
        """The columns of each of a table's staged files (after `finish`)."""
        return list(self._schemas.get(table, ()))

    def discard(self) -> None:
        """Drop the staged pages (idempotent: a failed commit and its caller may both discard)."""
        self._buffer.clear()
        try:
            for writer in self._writers.values():
                writer.close()
        finally:
            self._writers.clear()
            shutil.rmtree(self.directory, ignore_errors=True)


class ParquetStage(Stage):
    """Staged pages in Parquet files, read by DuckDB's `read_parquet` (any DuckDB: the Parquet and
    Iceberg destinations')."""

    suffix = "parquet"

    def _open(self, sink: Any, schema: pa.Schema) -> Any:
        import pyarrow.parquet as pq  # only once something is staged

        # plain (no compression, dictionaries or statistics): staged files live for one run,
        # and DuckDB encodes the data when it stores it
        return pq.ParquetWriter(sink, schema, compression="none", use_dictionary=False, write_statistics=False)

    def _sql(self, table: str) -> str:
        files = self._files[table]
        if len(files) == 1:
            return f"read_parquet({sql_path(files[0])})"
        by_name = ", union_by_name = true" if table in self._widened else ""
        return f"read_parquet([{', '.join(sql_path(p) for p in files)}]{by_name})"
