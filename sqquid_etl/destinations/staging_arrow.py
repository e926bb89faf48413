"""Staging for the DuckDB destination of many accounts: a stream's pages in Arrow IPC files, read
back by DuckDB as Arrow streams registered on the connection that reads them.

A staged file lives for seconds (until its part or the stream is committed). Parquet encoded every
value for DuckDB to decode it again; an IPC file is Arrow's own memory written out, and read back
by memory-mapping it, without decoding (a page of 250 orders staged ~3x cheaper, read back ~1.7x:
docs/benchmarks.md, eleventh session). Each batch is serialized whole and written at once (IPC's
stream format): Arrow's file writers write a batch's ~100 buffers one by one, and a buffer held
by every open file would cost ~1 MB an account. The DuckDB bundled here reads no IPC file itself,
so a table's files are given to it as an object (`StagedFiles`) that DuckDB asks for an Arrow
stream each time it scans it (the Arrow PyCapsule protocol): a stream made anew that maps each
file only while its batches are read, so memory stays bounded by a file (`ARROW_FILE_BATCHES`
batches), whatever the staged rows, and a query may scan the rows twice.

A registered name belongs to the connection, and is dropped by a rollback of the transaction that
registered it: the stage registers a table's files once (again when they changed), `forget` says
its names may be gone (the writer calls it when a commit failed), `discard` unregisters them."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa

from .account_scope import ACCOUNT
from .merge_sql import quote_identifier, sql_path
from .staging import ParquetStage, Stage

_NAMES = itertools.count(1)  # a stage's names unique in the process (a connection may hold several stages')
ARROW_STAGING = True  # a DuckDB destination bound to an account stages in Arrow IPC files; False: in Parquet (to compare)
# batches an IPC file holds before the next begins (a batch ~300 KB of 1,000 orders: ~10 MB a file, mapped while
# read). An open IPC file holds nothing but its descriptor (each batch written at once), unlike a Parquet writer
# (`staging.FILE_BATCHES`, 8): at 8, a part of 100 accounts' runs (~27 pages, every 10 s) was 4 files, its items 3
# of them; at 32, 2. A new file costs the kernel far more than its bytes where files are made and deleted by the
# thousand (ext4 looks for a free inode past those deleted within seconds): docs/benchmarks.md, fourteenth session
ARROW_FILE_BATCHES = 32


def new_stage(directory: Path, stream: Any, flush_rows: int, account: str | None, conn: Any) -> Stage:
    """The DuckDB destination's stage of a stream, read by DuckDB through `conn`: in Arrow IPC files
    for a destination bound to an account (`account`: stamped on the batches of the stream's tables,
    its column `ACCOUNT`), else in Parquet. Scanning
    Arrow imports DuckDB's Python package (~0.03 s of CPU, `StagedFiles.register`): nothing to a run of
    many accounts, which commits hundreds of parts a minute, but a tenth of a scheduled single-account
    run that re-reads a few pages (bench/startup.py, issue #11)."""
    if account is None:
        return ParquetStage(directory, stream, flush_rows)
    stage = ArrowStage(directory, stream, flush_rows, ACCOUNT, conn=conn) if ARROW_STAGING \
        else ParquetStage(directory, stream, flush_rows, ACCOUNT)
    return stage.stamp(account)


class StagedFiles:
    """Staged Arrow IPC files as one Arrow stream of `schema` (a file with fewer of its columns, one
    staged before undocumented columns came, read with them null), made anew at each scan."""

    def __init__(self, paths: list[Path], schema: pa.Schema):
        self.paths = list(paths)
        self.schema = schema

    @classmethod
    def of(cls, paths: list[Path], schemas: list[pa.Schema]) -> "StagedFiles":
        """Files of these columns (one schema a file), read with the columns of all of them."""
        distinct = list(dict.fromkeys(schemas))
        return cls(paths, distinct[0] if len(distinct) == 1 else pa.unify_schemas(distinct, promote_options="permissive"))

    @classmethod
    def joined(cls, staged: list["StagedFiles"]) -> "StagedFiles":
        """The files of several (the parts of many accounts, inserted by one statement)."""
        return cls.of([p for s in staged for p in s.paths], [s.schema for s in staged for _ in s.paths])

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return pa.RecordBatchReader.from_batches(self.schema, self._batches()).__arrow_c_stream__(requested_schema)

    def _batches(self) -> Iterator[pa.RecordBatch]:
        import pyarrow.ipc as ipc

        for path in self.paths:
            # closed when read: the batches DuckDB still holds keep their pages mapped until freed
            with pa.memory_map(str(path)) as source:
                for batch in ipc.open_stream(source):
                    yield batch if batch.schema == self.schema else _widened(batch, self.schema)

    def register(self, conn: Any, name: str) -> str:
        """Register the files on `conn` as `name`; returns SQL naming them."""
        # DuckDB scans a Python object through its package's sources (`duckdb._sources`), set up when the package
        # is imported: the destinations import its extension alone (duckdb_engine.py), so the package is imported
        # the first time files are registered (~0.03 s of CPU once a process; a run that stages nothing never does)
        import duckdb  # noqa: F401

        conn.register(name, self)
        return quote_identifier(name)


class ParquetFiles:
    """Staged Parquet files (a `ParquetStage`'s), read by `read_parquet`."""

    def __init__(self, paths: list[Path]):
        self.paths = list(paths)


GROUP_NAME = "_sqquid_group_staged"  # the files the group writer inserts (`duckdb_group.py`), registered on its connection


def staged_files(stage: Stage, table: str) -> StagedFiles | ParquetFiles:
    """A table's staged files (after `finish`), to be read by another connection (`read_sql`)."""
    return stage.staged(table) if isinstance(stage, ArrowStage) else ParquetFiles(stage.files(table))


def read_sql(conn: Any, staged: list) -> str:
    """SQL reading the rows of all these staged files (of one table and columns) on `conn`
    (Arrow ones registered on it as `GROUP_NAME` until `unregister`)."""
    if all(isinstance(s, StagedFiles) for s in staged):
        return StagedFiles.joined(staged).register(conn, GROUP_NAME)
    return "read_parquet([" + ", ".join(sql_path(p) for s in staged for p in s.paths) + "])"


def unregister(conn: Any) -> None:
    """The files `read_sql` registered on `conn` let go (none: nothing)."""
    conn.unregister(GROUP_NAME)


class ScratchBuffers:
    """Buffers a staged batch is serialized into before it is written, used again (the process's).

    A batch of 1,000 orders serializes into ~300 KB: where many accounts run, glibc maps every block
    of 128 KB or more anew (`heap.large_blocks_mapped`), so a buffer made for each batch was mapped,
    each of its pages faulted in, then unmapped (~45 page faults a page; combine and serialize ~2x
    the CPU: docs/benchmarks.md, thirteenth session). A buffer taken here is given back once its
    batch is written; at most `kept` are kept, none over `largest` bytes: a few MB at most."""

    def __init__(self, kept: int = 4, largest: int = 4 << 20):
        self.kept, self.largest = kept, largest
        self.made = 0  # buffers made (a batch larger than every buffer kept, or all of them taken)
        self._free: list[pa.Buffer] = []
        self._lock = threading.Lock()

    def write(self, sink: Any, batch: pa.RecordBatch, schema: pa.Schema, head: int) -> None:
        """`sink.write(batch.serialize())`, the bytes serialized into a buffer used again (after
        `schema`'s message, `head` bytes, which the stream writer writes first: the stream's own schema,
        not the batch's, whose metadata may differ and with it the message's size)."""
        import pyarrow.ipc as ipc

        size = head + ipc.get_record_batch_size(batch) + 64  # (the stream's end marker written by `close`: 8)
        buffer = self._take(size)
        try:
            into = pa.FixedSizeBufferWriter(buffer)
            with ipc.new_stream(into, schema) as stream:  # the schema message, then the batch's
                stream.write_batch(batch)
                end = into.tell()
            sink.write(buffer.slice(head, end - head))
        finally:
            self._give(buffer)

    def held(self) -> int:
        """Bytes of the buffers kept."""
        with self._lock:
            return sum(b.size for b in self._free)

    def _take(self, size: int) -> pa.Buffer:
        with self._lock:
            fits = [b for b in self._free if b.size >= size]
            if fits:
                buffer = min(fits, key=lambda b: b.size)
                self._free.remove(buffer)
                return buffer
            self.made += 1
        return pa.allocate_buffer(size + (size >> 3))  # (room for a batch a little larger next time)

    def _give(self, buffer: pa.Buffer) -> None:
        if buffer.size > self.largest:
            return
        with self._lock:
            self._free.append(buffer)
            if len(self._free) > self.kept:
                self._free.remove(min(self._free, key=lambda b: b.size))


SCRATCH = ScratchBuffers()


class SerializedStream:
    """An Arrow IPC stream written a batch at a time, each serialized whole first (one write; into a
    buffer used again, `ScratchBuffers`: an open file holds none), its pages' chunks made one."""

    END = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # the stream's end-of-stream marker

    def __init__(self, sink: Any, schema: pa.Schema):
        self._sink, self._schema = sink, schema
        message = schema.serialize()
        self._head = message.size  # (the message a stream writer begins with: cut off each batch's serialized bytes)
        sink.write(message)

    def write_table(self, table: pa.Table) -> None:
        # one batch of its rows, not one a page: DuckDB reads a batch into vectors of its rows, and
        # appends them to a table a vector at a time (pages of 250 rows made 250-row vectors: the
        # group writer's INSERT -13% from batches of 1,000 rows, docs/benchmarks.md, twelfth session)
        for batch in table.combine_chunks().to_batches():
            SCRATCH.write(self._sink, batch, self._schema, self._head)

    def close(self) -> None:
        self._sink.write(self.END)


def _widened(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch with the columns of `schema`, by name (null where it has none)."""
    have = set(batch.schema.names)
    columns = [(batch.column(f.name) if f.name in have else pa.nulls(batch.num_rows, f.type)) for f in schema]
    columns = [c if c.type == f.type else c.cast(f.type) for c, f in zip(columns, schema)]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class ArrowStage(Stage):
    """Staged pages in Arrow IPC files, read by DuckDB through `conn` (the writer's connection):
    `relation` names a table's files registered on it."""

    suffix = "arrow"

    def file_batches(self) -> int:
        return ARROW_FILE_BATCHES

    def __init__(self, directory: Path, stream: Any, flush_rows: int, key_column: str | None = None, *, conn: Any):
        super().__init__(directory, stream, flush_rows, key_column)
        self.conn = conn
        self._prefix = f"_sqquid_staged_{next(_NAMES)}_"
        self._registered: dict[str, tuple[tuple[Path, ...], str]] = {}  # table -> (its files, the name registered)

    def relation(self, table: str) -> str:
        """SQL naming the staged rows of a table (its files registered on the connection; a table
        that received no row: an empty Parquet file of its shape, as a `ParquetStage`'s, so that a
        run that stages nothing registers nothing)."""
        self.finish()
        files = tuple(self._files.get(table, ()))
        if not files:
            return self._empty_sql(table)
        known = self._registered.get(table)
        if known is None or known[0] != files:
            self.staged(table).register(self.conn, f"{self._prefix}{table}")
            self._registered[table] = (files, f"{self._prefix}{table}")
        return quote_identifier(self._registered[table][1])

    def staged(self, table: str) -> StagedFiles:
        """A table's staged files (after `finish`), as DuckDB reads them."""
        return StagedFiles.of(self.files(table), self.schemas(table))

    def _empty_sql(self, table: str) -> str:
        import pyarrow.parquet as pq

        path = self.directory / f"{table}.empty.parquet"
        if not path.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            pq.write_table(self.empty(table), path)
        return f"read_parquet({sql_path(path)})"

    def forget(self) -> None:
        """The names registered may be gone (the transaction that registered one rolled back):
        registered again when next asked."""
        self._registered.clear()

    def discard(self) -> None:
        try:
            for _, name in self._registered.values():
                try:
                    self.conn.unregister(name)
                except Exception:  # noqa: BLE001 - the connection closed or the name gone: nothing to drop
                    pass
        finally:
            self._registered.clear()
            super().discard()

    def _open(self, sink: Any, schema: pa.Schema) -> Any:
        return SerializedStream(sink, schema)

    def _sql(self, table: str) -> str:
        raise NotImplementedError  # (relation registers the files)
