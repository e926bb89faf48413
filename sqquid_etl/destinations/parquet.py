"""Parquet destination: `DIR/<table>/*.parquet`, merged by primary key, switched atomically.

Layout:
  DIR/<table>                 -> a symlink to `.sqquid/generations/<table>/<generation>/`
  DIR/_sqquid_state.json      state of every stream (temp file + rename)
  DIR/_sqquid_runs/*.parquet  one file per stream per run
  DIR/.sqquid/staging/<run>/  pages of the running stream, before commit
  DIR/.sqquid/lock            held while a run is using the directory

A commit builds a new generation of each table (unchanged files hard-linked, files holding a
replaced key rewritten without it, the new rows in one file), then swaps the table's symlink in
one rename, then writes the state. A reader, or a crash, sees either the old or the new
generation of a table; state never covers data that was not switched in.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from ..definitions import StreamDefinition, TableSpec
from ..errors import ConfigError, StateError
from ..state import StreamState
from .base import (
    RUN_COLUMNS, RunRecord, check_columns, latest_versions_sql, quote_identifier, tune_duckdb, where_clause, within_memory_limit,
)
from .staging import ParquetStage, sql_path

STATE_FILE = "_sqquid_state.json"
RUNS_DIR = "_sqquid_runs"
META_DIR = ".sqquid"


_sql_path = sql_path


_q = quote_identifier


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that a crash leaves either the old or the new content."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_path(path.parent)


class ParquetDestination:
    def __init__(self, directory: str | os.PathLike):
        self.root = Path(directory)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / META_DIR / "staging").mkdir(parents=True, exist_ok=True)
            (self.root / META_DIR / "generations").mkdir(parents=True, exist_ok=True)
            (self.root / RUNS_DIR).mkdir(exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--parquet {self.root}: cannot create the directory ({exc.strerror})") from None
        if not os.access(self.root, os.W_OK):
            raise ConfigError(f"--parquet {self.root}: not writable")
        self._lock_file = open(self.root / META_DIR / "lock", "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise StateError(f"{self.root} is in use by another process (another extract is running?); wait for it to finish") from None
        self.sql = duckdb.connect()
        spill = self.root / META_DIR / "spill"
        self.sql.execute(f"SET temp_directory = {_sql_path(spill)}")
        tune_duckdb(self.sql)
        self._clean_leftovers()

    # -- layout -----------------------------------------------------------------------------------

    def _table_link(self, table: str) -> Path:
        return self.root / table

    def _current_generation(self, table: str) -> Path | None:
        link = self._table_link(table)
        if link.is_symlink():
            return link.resolve()
        if link.exists():
            raise StateError(f"{link} exists but is not managed by sqquid-etl (expected a symlink to a generation)")
        return None

    def _clean_leftovers(self) -> None:
        """Remove what a crashed run left: staging files and generations no table points to."""
        shutil.rmtree(self.root / META_DIR / "staging", ignore_errors=True)
        (self.root / META_DIR / "staging").mkdir(parents=True, exist_ok=True)
        generations = self.root / META_DIR / "generations"
        for table_dir in generations.iterdir():
            current = self._current_generation(table_dir.name)
            for gen in table_dir.iterdir():
                if current is None or gen.resolve() != current:
                    shutil.rmtree(gen, ignore_errors=True)
        for tmp in self.root.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)

    # -- state ------------------------------------------------------------------------------------

    def load_states(self) -> dict[str, StreamState]:
        path = self.root / STATE_FILE
        if not path.exists():
            return {}
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            raise StateError(f"{path}: corrupt state ({exc}); fix it with 'sqquid-etl state set' or 'state reset'") from None
        return {name: StreamState.from_json(json.dumps(value), f"{path}, stream {name!r}") for name, value in raw.items()}

    def save_state(self, stream: str, state: StreamState | None) -> None:
        states = self.load_states()
        if state is None:
            states.pop(stream, None)
        else:
            states[stream] = state
        payload = {name: json.loads(s.to_json()) for name, s in sorted(states.items())}
        write_atomic(self.root / STATE_FILE, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())

    def record_run(self, run: RunRecord) -> None:
        row = run.as_row()
        # read from a JSON line: `pa.Table.from_pylist` would make pyarrow import pandas (~50 MB)
        table = pa_json.read_json(
            pa.BufferReader(json.dumps(row).encode()),
            parse_options=pa_json.ParseOptions(explicit_schema=_RUNS_SCHEMA, unexpected_field_behavior="error"),
        ).select(_RUNS_SCHEMA.names)
        target = self.root / RUNS_DIR / f"{run.run_id}-{run.stream}.parquet"
        tmp = target.with_name(f".{target.name}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, target)

    # -- reading ----------------------------------------------------------------------------------

    def distinct_values(self, table: str, column: str) -> list[Any] | None:
        current = self._current_generation(table)
        if current is None:
            return None
        rows = self.sql.execute(
            f"SELECT DISTINCT {_q(column)} FROM read_parquet({_sql_path(current / '*.parquet')}) "
            f"WHERE {_q(column)} IS NOT NULL ORDER BY 1"
        ).fetchall()
        return [r[0] for r in rows]

    def _scan(self, table: str, column: str | None, since: datetime | None, equals: dict[str, str]) -> tuple[str, list] | None:
        current = self._current_generation(table)
        if current is None:
            return None
        where, params = where_clause(column, since, equals)
        return f"FROM read_parquet({_sql_path(current / '*.parquet')}){where}", params

    def count_since(self, table: str, column: str, since: datetime | None, equals: dict[str, str]) -> int:
        scan = self._scan(table, column, since, equals)
        return 0 if scan is None else self.sql.execute(f"SELECT count(*) {scan[0]}", scan[1]).fetchall()[0][0]

    def cursor_bounds(self, table: str, column: str, equals: dict[str, str]) -> tuple[Any, Any]:
        scan = self._scan(table, None, None, equals)
        if scan is None:
            return None, None
        return self.sql.execute(f"SELECT min({_q(column)}), max({_q(column)}) {scan[0]}", scan[1]).fetchall()[0]

    # -- writing ----------------------------------------------------------------------------------

    def begin(self, stream: StreamDefinition, replace: bool) -> "ParquetStreamWriter":
        return ParquetStreamWriter(self, stream, replace)

    def close(self) -> None:
        self.sql.close()
        if not self._lock_file.closed:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()


_RUNS_SCHEMA = pa.schema(
    [
        (name, pa.int64() if name in ("rows", "pages", "requests", "count_expected", "count_received") else pa.string())
        for name in RUN_COLUMNS
    ]
)


# rows per row group of the files written: DuckDB holds a row group in memory while writing it,
# and its default (122,880 rows) does not fit a small memory limit
ROW_GROUP_ROWS = 16_384


class ParquetStreamWriter:
    def __init__(self, destination: ParquetDestination, stream: StreamDefinition, replace: bool):
        self.dest = destination
        self.sql = destination.sql
        self.stream = stream
        self.replace = replace
        if not replace:
            for table in stream.tables:
                self._check_columns(table)
        self.stage = ParquetStage(destination.root / META_DIR / "staging" / f"{stream.name}-{os.getpid()}", stream)

    def _check_columns(self, table: TableSpec) -> None:
        current = self.dest._current_generation(table.name)
        if current is None:
            return
        files = sorted(current.glob("*.parquet"))
        if not files:
            return
        check_columns(str(self.dest.root), table.name, pq.read_schema(files[0]).names, self.stream, table.column_names)

    def write(self, tables: dict[str, pa.Table]) -> None:
        self.stage.write(tables)

    def _staged(self, table: TableSpec) -> str:
        return self.stage.relation(table.name)

    def distinct_keys(self, table: str) -> int:
        spec = next(t for t in self.stream.tables if t.name == table)
        keys = ", ".join(_q(k) for k in spec.primary_key)
        sql = f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {self._staged(spec)})"
        return within_memory_limit(self.sql, self.stream.name, lambda: self.sql.execute(sql).fetchall()[0][0])

    def commit(self, state: StreamState, run: RunRecord) -> None:
        try:
            parent = self.stream.tables[0] if self.stream.tables[0].nested_path is None else None
            # a generation built before running out of memory is left to _clean_leftovers
            switched = within_memory_limit(
                self.sql, self.stream.name,
                lambda: [(t, self._build_generation(t, parent, run.run_id)) for t in self.stream.tables],
            )
            for table, generation in switched:
                self._switch(table.name, generation)
            self.dest.save_state(self.stream.name, state)
            self.dest.record_run(run)
        finally:
            self.abort()
        self.dest._clean_leftovers()

    def _build_generation(self, table: TableSpec, parent: TableSpec | None, run_id: str) -> Path:
        commit_id = f"{run_id}-{uuid.uuid4().hex[:8]}"  # unique even when a run commits a stream twice
        generation = self.dest.root / META_DIR / "generations" / table.name / commit_id
        generation.mkdir(parents=True, exist_ok=False)
        staged = self._staged(table)
        self.sql.execute(f"CREATE OR REPLACE TEMP VIEW _new AS {latest_versions_sql(staged, table, self.sql)}")
        current = None if self.replace else self.dest._current_generation(table.name)
        old_files = sorted(current.glob("*.parquet")) if current else []
        drop = " AND ".join(f"o.{_q(k)} IS NOT DISTINCT FROM n.{_q(k)}" for k in table.primary_key)
        condition = f"EXISTS (SELECT 1 FROM _new n WHERE {drop})"
        if table.parent_link and parent is not None:
            link, parent_key = table.parent_link
            self.sql.execute(f"CREATE OR REPLACE TEMP TABLE _parents AS SELECT DISTINCT {_q(parent_key)} AS k FROM {self._staged(parent)}")
            condition += f" OR o.{_q(link)} IN (SELECT k FROM _parents)"
        for old in old_files:
            source = f"read_parquet({_sql_path(old)}) o"
            hit = self.sql.execute(f"SELECT count(*) FROM {source} WHERE {condition}").fetchall()[0][0]
            if hit == 0:
                _link_or_copy(old, generation / old.name)
                continue
            kept = self.sql.execute(f"SELECT count(*) FROM {source} WHERE NOT ({condition})").fetchall()[0][0]
            if kept:
                self.sql.execute(
                    f"COPY (SELECT o.* FROM {source} WHERE NOT ({condition})) TO {_sql_path(generation / old.name)} (FORMAT parquet, ROW_GROUP_SIZE {ROW_GROUP_ROWS})"
                )
        new_rows = self.sql.execute("SELECT count(*) FROM _new").fetchall()[0][0]
        if new_rows or not any(generation.iterdir()):
            target = generation / f"part-{commit_id}.parquet"
            self.sql.execute(f"COPY (SELECT * FROM _new) TO {_sql_path(target)} (FORMAT parquet, ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
        for path in generation.iterdir():
            _fsync_path(path)
        _fsync_path(generation)
        return generation

    def _switch(self, table: str, generation: Path) -> None:
        link = self.dest._table_link(table)
        tmp = link.with_name(f".{table}.link.tmp")
        tmp.unlink(missing_ok=True)
        os.symlink(os.path.relpath(generation, link.parent), tmp)
        os.replace(tmp, link)
        _fsync_path(link.parent)

    def abort(self) -> None:
        self.stage.discard()


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
