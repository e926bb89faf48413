"""DuckDB destination: one table per stream table, merged by primary key; data and state of a
stream committed in one transaction."""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ..definitions import StreamDefinition, TableSpec
from ..errors import ConfigError, StateError
from ..state import StreamState
from .base import (
    SEQ, RunRecord, check_columns, latest_versions_sql, quote_identifier, tune_duckdb, where_clause, within_memory_limit,
)
from .staging import ParquetStage

STATE_TABLE = "_sqquid_state"
RUNS_TABLE = "_sqquid_runs"


q = quote_identifier


class DuckDBDestination:
    def __init__(self, path: str | os.PathLike, read_only: bool = False):
        self.path = Path(path)
        if not read_only:
            from . import check_destination

            check_destination(duckdb=self.path)
        try:
            self.conn = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StateError(
                    f"{self.path} is in use by another process (another extract is running?); "
                    "wait for it to finish"
                ) from None
            raise ConfigError(f"cannot open DuckDB file {self.path}: {exc}") from None
        except duckdb.Error as exc:
            raise ConfigError(f"cannot open DuckDB file {self.path}: {exc}") from None
        tune_duckdb(self.conn)  # spill to disk rather than grow with the extract
        self.staging_dir = self.path.with_name(self.path.name + ".staging")
        if not read_only:
            shutil.rmtree(self.staging_dir, ignore_errors=True)  # a crashed run's pages (we hold the lock)
            self._ensure_meta_tables()

    def _ensure_meta_tables(self) -> None:
        self.conn.execute(
            f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (stream VARCHAR, state VARCHAR, updated_at TIMESTAMPTZ)"
        )
        self.conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {RUNS_TABLE} (
                run_id VARCHAR, stream VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
                status VARCHAR, rows BIGINT, pages BIGINT, requests BIGINT, window_start VARCHAR,
                cursor VARCHAR, count_expected BIGINT, count_received BIGINT, count_check VARCHAR,
                message VARCHAR)"""
        )

    # -- state ------------------------------------------------------------------------------------

    def load_states(self) -> dict[str, StreamState]:
        if not self._table_exists(STATE_TABLE):
            return {}
        rows = self.conn.execute(f"SELECT stream, state FROM {STATE_TABLE}").fetchall()
        return {stream: StreamState.from_json(text, f"{self.path} table {STATE_TABLE}, stream {stream!r}") for stream, text in rows}

    def save_state(self, stream: str, state: StreamState | None) -> None:
        self.conn.execute("BEGIN TRANSACTION")
        try:
            self._write_state(stream, state)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def _write_state(self, stream: str, state: StreamState | None) -> None:
        self.conn.execute(f"DELETE FROM {STATE_TABLE} WHERE stream = ?", [stream])
        if state is not None:
            self.conn.execute(f"INSERT INTO {STATE_TABLE} VALUES (?, ?, now())", [stream, state.to_json()])

    def record_run(self, run: RunRecord) -> None:
        row = run.as_row()
        placeholders = ", ".join("?" for _ in row)
        self.conn.execute(f"INSERT INTO {RUNS_TABLE} VALUES ({placeholders})", list(row.values()))

    # -- reading ----------------------------------------------------------------------------------

    def _table_exists(self, table: str) -> bool:
        return bool(
            self.conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = 'main'",
                [table],
            ).fetchall()[0][0]
        )

    def distinct_values(self, table: str, column: str) -> list[Any] | None:
        if not self._table_exists(table):
            return None
        rows = self.conn.execute(f"SELECT DISTINCT {q(column)} FROM {q(table)} WHERE {q(column)} IS NOT NULL ORDER BY 1").fetchall()
        return [r[0] for r in rows]

    def count_since(self, table: str, column: str, since: datetime | None, equals: dict[str, str]) -> int:
        if not self._table_exists(table):
            return 0
        where, params = where_clause(column, since, equals)
        return self.conn.execute(f"SELECT count(*) FROM {q(table)}{where}", params).fetchall()[0][0]

    def cursor_bounds(self, table: str, column: str, equals: dict[str, str]) -> tuple[Any, Any]:
        if not self._table_exists(table):
            return None, None
        where, params = where_clause(None, None, equals)
        return self.conn.execute(f"SELECT min({q(column)}), max({q(column)}) FROM {q(table)}{where}", params).fetchall()[0]

    # -- writing ----------------------------------------------------------------------------------

    def begin(self, stream: StreamDefinition, replace: bool) -> "DuckDBStreamWriter":
        return DuckDBStreamWriter(self, stream, replace)

    def close(self) -> None:
        self.conn.close()


class DuckDBStreamWriter:
    """Stages a stream's pages in Parquet files beside the database (memory bounded by a batch;
    a crashed run's files are removed when the database is next opened). `commit` merges them
    into the target tables and stores state in ONE transaction: old or new, never half."""

    def __init__(self, destination: DuckDBDestination, stream: StreamDefinition, replace: bool):
        self.dest = destination
        self.conn = destination.conn
        self.stream = stream
        self.replace = replace
        self._was_empty: dict[str, bool] = {}
        for table in stream.tables:
            if not replace and destination._table_exists(table.name):
                self._check_columns(table)
                self._was_empty[table.name] = not self.conn.execute(f"SELECT 1 FROM {q(table.name)} LIMIT 1").fetchall()
            else:
                self._was_empty[table.name] = True
        self.stage = ParquetStage(destination.staging_dir / stream.name, stream)

    def _check_columns(self, table: TableSpec) -> None:
        have = [r[0] for r in self.conn.execute(f"DESCRIBE {q(table.name)}").fetchall()]
        check_columns(str(self.dest.path), table.name, have, self.stream, table.column_names)

    def write(self, tables: dict[str, pa.Table]) -> None:
        self.stage.write(tables)

    def distinct_keys(self, table: str) -> int:
        spec = next(t for t in self.stream.tables if t.name == table)
        keys = ", ".join(q(k) for k in spec.primary_key)
        sql = f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {self.stage.relation(table)})"
        return within_memory_limit(self.conn, self.stream.name, lambda: self.conn.execute(sql).fetchall()[0][0])

    def commit(self, state: StreamState, run: RunRecord) -> None:
        try:
            within_memory_limit(self.conn, self.stream.name, lambda: self._commit_once(state, run))
        finally:
            self.stage.discard()

    def _commit_once(self, state: StreamState, run: RunRecord) -> None:
        staged = {t.name: self.stage.relation(t.name) for t in self.stream.tables}
        parent = self.stream.tables[0] if self.stream.tables[0].nested_path is None else None
        self.conn.execute("BEGIN TRANSACTION")
        try:
            for table in self.stream.tables:
                self._create_target(table, staged[table.name])
                self._merge(table, staged, parent)
            self.dest._write_state(self.stream.name, state)
            self.dest.record_run(run)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def _create_target(self, table: TableSpec, staged: str) -> None:
        """The table, with the column types of the staged file (those of the stream's schema)."""
        if self.replace or not self.dest._table_exists(table.name):
            self.conn.execute(f"CREATE OR REPLACE TABLE {q(table.name)} AS SELECT * EXCLUDE ({SEQ}) FROM {staged} LIMIT 0")

    def _merge(self, table: TableSpec, staged: dict[str, str], parent: TableSpec | None) -> None:
        stage = staged[table.name]
        target = q(table.name)
        latest = latest_versions_sql(stage, table, self.conn)
        if not self._was_empty[table.name]:
            match = " AND ".join(f"{target}.{q(k)} = s.{q(k)}" for k in table.primary_key)
            self.conn.execute(f"DELETE FROM {target} USING {stage} s WHERE {match}")
            if table.parent_link and parent is not None:
                # children of a parent fetched again are replaced as a whole (items may be removed)
                link, parent_key = table.parent_link
                self.conn.execute(
                    f"DELETE FROM {target} USING {staged[parent.name]} p "
                    f"WHERE {target}.{q(link)} = p.{q(parent_key)}"
                )
        self.conn.execute(f"INSERT INTO {target} {latest}")

    def abort(self) -> None:
        self.stage.discard()
