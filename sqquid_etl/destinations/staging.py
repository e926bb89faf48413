"""Staging: a stream's pages, numbered in arrival order, in one Parquet file per table until the
destination commits them. Written in batches of about `Tuning.flush_rows` rows, so memory is
bounded by the batch and not by the stream; read back by DuckDB (`relation`) to merge."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..definitions import StreamDefinition
from ..records import arrow_schema
from .buffer import SEQ, PageBuffer
from .merge_sql import sql_path


class ParquetStage:
    def __init__(self, directory: Path, stream: StreamDefinition, flush_rows: int):
        self.directory = directory
        self.stream = stream
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        self._buffer = PageBuffer([t.name for t in stream.tables], flush_rows)
        self._writers: dict[str, pq.ParquetWriter] = {}

    def path(self, table: str) -> Path:
        return self.directory / f"{table}.parquet"

    def write(self, tables: dict[str, pa.Table]) -> None:
        for name, data in tables.items():
            if data.num_rows:
                self._append(name, self._buffer.add(name, data))

    def _append(self, name: str, batch: pa.Table | None) -> None:
        if batch is None:
            return
        writer = self._writers.get(name)
        if writer is None:
            # plain (no compression, dictionaries or statistics): staged files live for one run,
            # and DuckDB encodes the data when it stores it
            writer = self._writers[name] = pq.ParquetWriter(
                self.path(name), batch.schema, compression="none", use_dictionary=False, write_statistics=False
            )
        writer.write_table(batch)

    def finish(self) -> None:
        """Write what is buffered and close the files (idempotent); a table that received no row
        gets an empty file of its shape, so every table has a file to read."""
        for table in self.stream.tables:
            self._append(table.name, self._buffer.take(table.name))
            if table.name not in self._writers and not self.path(table.name).exists():
                empty = arrow_schema(table).empty_table().append_column(SEQ, pa.nulls(0, pa.int64()))
                self._append(table.name, empty)
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def relation(self, table: str) -> str:
        """SQL naming the staged rows of a table (read by DuckDB from the file)."""
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
