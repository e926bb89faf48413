"""DuckDB destination: one table per stream table, merged by primary key; data, state and run
record of a stream committed in one transaction."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import duckdb
import pyarrow as pa

from ..definitions import StreamDefinition, TableSpec
from ..errors import StateError
from ..runs import REJECTED_COLUMNS, REJECTED_TABLE, RUN_COLUMNS, RunRecord
from ..settings import Tuning
from ..state import StreamState
from .buffer import SEQ
from .duckdb_tuning import check_tuning, tune, within_memory_limit
from .duckdb_evolve import add_columns, documented_columns, update_sql
from .duckdb_own import RUNS_TABLE, STATE_COLUMNS, STATE_TABLE, check_ours, check_staging, connect, first_line, prepare
from .duckdb_freshness import (DELETED_AT, HASH, META_COLUMNS, Changes, Gone, add_meta_columns, count_changes,
                               hash_sql, mark_gone, tracked)
from .duckdb_history import record_history
from .files import check_can_write
from .merge_sql import latest_versions_sql, quote_identifier as q, where_clause
from .staging import ParquetStage, extra_name


class DuckDBDestination:
    @staticmethod
    def check(location: str | os.PathLike, tuning: Tuning) -> None:
        """Refuse a file that cannot be created or written, before anything is requested."""
        check_tuning(tuning)
        check_can_write(location, "--duckdb", what="a DuckDB file")

    @staticmethod
    def missing(location: str | os.PathLike) -> str | None:
        """Why there is no extract to open here (None: there may be one)."""
        path = Path(location)
        if not path.is_file():
            return f"--duckdb {path}: no such DuckDB file (nothing extracted there yet)"
        return None  # whether it is an extract's is told when it is opened (`check_ours`)

    def __init__(self, path: str | os.PathLike, tuning: Tuning | None = None, *, read_only: bool = False):
        """Open (creating it when new) and lock the database; `read_only`: only to look at it
        (nothing created, changed or cleaned: `state show`)."""
        self.path = Path(path)
        self.tuning = tuning or Tuning()
        self._columns: dict[str, list[str]] | None = None  # table or view -> its columns (`columns`)
        self.staging_dir = self.path.with_name(self.path.name + ".staging")
        if read_only:
            self.conn = connect(self.path, read_only=True)
            try:
                check_ours(self.conn, self.path, looking=True)
            except BaseException:
                self.conn.close()
                raise
            return
        self.check(self.path, self.tuning)
        check_staging(self.staging_dir)
        existed = self.path.exists()
        self.conn = connect(self.path)
        try:
            if existed:
                check_ours(self.conn, self.path)
            tune(self.conn, self.tuning)  # spill to disk rather than grow with the extract
            prepare(self.conn, self.path)
        except BaseException:
            self.conn.close()
            raise
        shutil.rmtree(self.staging_dir, ignore_errors=True)  # a crashed run's pages (we hold the lock)

    @property
    def location(self) -> str:
        return str(self.path)

    def transaction(self, work: Callable[[], object]) -> None:
        """Run `work()` in one transaction: all of it is stored, or none."""
        self.conn.execute("BEGIN TRANSACTION")
        try:
            work()
            self.conn.execute("COMMIT")
        except BaseException:
            self._columns = None  # tables the work created are gone again
            self.conn.execute("ROLLBACK")
            raise

    # -- state ------------------------------------------------------------------------------------

    def load_states(self) -> dict[str, StreamState]:
        texts: dict[str, list] = {}
        for stream, text in self._state_rows("SELECT stream, state FROM {} ORDER BY 1", []):
            texts.setdefault(stream, []).append(text)
        return {stream: self._state(stream, found) for stream, found in texts.items()}

    def load_state(self, stream: str) -> StreamState | None:
        rows = self._state_rows("SELECT stream, state FROM {} WHERE stream = ?", [stream])
        return self._state(stream, [text for _, text in rows]) if rows else None

    def _state_rows(self, sql: str, params: list) -> list[tuple]:
        """Rows of the state table; a StateError when it cannot be read as one (a column missing,
        another type) or a row names no stream."""
        try:
            rows = self.conn.execute(sql.format(STATE_TABLE), params).fetchall()
        except duckdb.CatalogException:
            if STATE_TABLE not in self.columns():
                return []  # an extract without it (made before it existed, or it was dropped): no state
            raise StateError(f"{self.path} table {STATE_TABLE} cannot be read: corrupt state; "
                             "'sqquid-etl state reset' (every stream) re-creates it") from None
        except duckdb.Error as exc:
            raise StateError(f"{self.path} table {STATE_TABLE} cannot be read ({first_line(exc)}): corrupt state; "
                             "'sqquid-etl state reset' (every stream) re-creates it") from None
        if any(not isinstance(name, str) for name, _ in rows):
            raise StateError(f"{self.path} table {STATE_TABLE}: a row names no stream: corrupt state; "
                             "'sqquid-etl state reset' (every stream) re-creates it")
        return rows

    def _state(self, stream: str, texts: list) -> StreamState:
        where = f"{self.path} table {STATE_TABLE}, stream {stream!r}"
        if len(texts) > 1:
            raise StateError(f"{where}: corrupt state ({len(texts)} rows, one expected); fix it with "
                             "'sqquid-etl state set' or 'state reset'")
        return StreamState.from_json(texts[0], where)

    def save_state(self, stream: str, state: StreamState | None) -> None:
        self.transaction(lambda: self.write_state(stream, state))

    def write_state(self, stream: str, state: StreamState | None) -> None:
        """save_state within the caller's transaction (a writer's commit)."""
        try:
            self.conn.execute(f"DELETE FROM {STATE_TABLE} WHERE stream = ?", [stream])
            if state is not None:
                self.conn.execute(f"INSERT INTO {STATE_TABLE} (stream, state, updated_at) VALUES (?, ?, now())",
                                  [stream, state.to_json()])
        except duckdb.Error as exc:
            raise StateError(f"{self.path} table {STATE_TABLE} cannot be written ({first_line(exc)}); "
                             "'sqquid-etl state reset' (every stream) re-creates it") from None

    def state_streams(self) -> list[str]:
        try:
            return [r[0] for r in self.conn.execute(f"SELECT DISTINCT stream FROM {STATE_TABLE} ORDER BY 1").fetchall()
                    if isinstance(r[0], str)]
        except duckdb.Error:
            return []

    def clear_states(self) -> None:
        self.transaction(lambda: self.conn.execute(f"CREATE OR REPLACE TABLE {STATE_TABLE} {STATE_COLUMNS}"))

    def record_run(self, run: RunRecord) -> None:
        """The run's one row for the stream: a later record of the same run replaces it."""
        row = run.as_row()
        placeholders = ", ".join("?" for _ in row)
        names = ", ".join(q(c) for c in RUN_COLUMNS)
        try:
            self.conn.execute(f"DELETE FROM {RUNS_TABLE} WHERE run_id = ? AND stream = ?", [run.run_id, run.stream])
            self.conn.execute(f"INSERT INTO {RUNS_TABLE} ({names}) VALUES ({placeholders})", list(row.values()))
        except duckdb.Error as exc:
            raise StateError(f"{self.path} table {RUNS_TABLE} cannot be written ({first_line(exc)})") from None

    # -- reading ----------------------------------------------------------------------------------

    def table_exists(self, table: str) -> bool:
        return table in self.columns()

    def columns(self) -> dict[str, list[str]]:
        """Every table and view of the database with its columns, read in one query and kept
        (this process holds the file's lock: only this destination changes them, and it says
        so with `created` or by dropping what it knows)."""
        if self._columns is None:
            rows = self.conn.execute(  # sorted here: a sort in DuckDB needs more than a small memory limit
                "SELECT table_name, column_index, column_name FROM duckdb_columns() WHERE schema_name = 'main' "
                "AND database_name = current_database()"
            ).fetchall()
            self._columns = {}
            for table, _, column in sorted(rows):
                self._columns.setdefault(table, []).append(column)
        return self._columns

    def created(self, table: str, columns: list[str]) -> None:
        """A table was (re)created with these columns in the current transaction."""
        self.columns()[table] = list(columns)

    def distinct_values(self, table: str, column: str) -> list[Any] | None:
        if not self.table_exists(table):
            return None
        live = f" AND {DELETED_AT} IS NULL" if self._soft_deletes(table) else ""
        rows = self.conn.execute(f"SELECT DISTINCT {q(column)} FROM {q(table)} WHERE {q(column)} IS NOT NULL{live} ORDER BY 1").fetchall()
        return [r[0] for r in rows]

    def count_since(self, table: str, column: str, since: datetime | None, equals: dict[str, str]) -> int:
        if not self.table_exists(table):
            return 0
        where, params = where_clause(column, since, equals, live=self._soft_deletes(table))
        return self.conn.execute(f"SELECT count(*) FROM {q(table)}{where}", params).fetchall()[0][0]

    def cursor_bounds(self, table: str, column: str, equals: dict[str, str]) -> tuple[Any, Any]:
        if not self.table_exists(table):
            return None, None
        where, params = where_clause(None, None, equals, live=self._soft_deletes(table))
        return self.conn.execute(f"SELECT min({q(column)}), max({q(column)}) FROM {q(table)}{where}", params).fetchall()[0]

    def _soft_deletes(self, table: str) -> bool:
        """Whether the table marks records gone upstream (they are not counted or listed)."""
        return DELETED_AT in self.columns().get(table, ())

    # -- writing ----------------------------------------------------------------------------------

    def begin(self, stream: StreamDefinition, replace: bool) -> "DuckDBStreamWriter":
        return DuckDBStreamWriter(self, stream, replace)

    def after_load(self) -> list[str]:
        from ..sql_views import create_views

        self._columns = None
        return create_views(self.conn)

    def close(self) -> None:
        self.conn.close()
        try:
            self.staging_dir.rmdir()  # each stream's pages went with its commit: no empty directory left
        except OSError:
            pass  # absent, or holding what another run of this file stages (it removes its own)


class DuckDBStreamWriter:
    """Stages a stream's pages in Parquet files beside the database (memory bounded by a batch;
    a crashed run's files are removed when the database is next opened). `commit` merges them
    into the target tables and stores state and the run record in ONE transaction: old or new,
    never half. A table that received no row costs no file and no query (a run with nothing new
    commits the state and the run row only). Undocumented fields become new columns
    (`duckdb_evolve.py`), added by the same commit."""

    evolves = True  # keeps the undocumented fields of a page (`PageTables.extras`) as new columns

    def __init__(self, destination: DuckDBDestination, stream: StreamDefinition, replace: bool):
        self.dest = destination
        self.conn = destination.conn
        self.stream = stream
        self.replace = replace
        self.tracks_changes = tracked(stream)  # `_sqquid_hash`, `_sqquid_deleted_at`, counts in the run row
        self.hard_delete = False  # records proven gone are removed instead of marked (`prove_gone`)
        self._gone: list[Gone] = []
        self._was_empty: dict[str, bool] = {}
        self._distinct: dict[str, int] = {}  # table -> distinct keys staged, when counted
        existing = destination.columns()
        for table in stream.tables:
            if not replace and table.name in existing:
                have = [c for c in existing[table.name] if c not in META_COLUMNS]
                documented_columns(self.conn, destination.location, table.name, have, stream, table.column_names)
                self._was_empty[table.name] = not self.conn.execute(f"SELECT 1 FROM {q(table.name)} LIMIT 1").fetchall()
            else:
                self._was_empty[table.name] = True
        self.stage = ParquetStage(destination.staging_dir / stream.name, stream, destination.tuning.flush_rows)

    def write(self, tables: dict[str, pa.Table]) -> None:
        self._distinct.clear()
        self.stage.write(tables)

    def write_rejected(self, rows: pa.Table) -> None:
        self.stage.write({REJECTED_TABLE: rows})

    def prove_gone(self, column: str, since: datetime | None, equals: dict[str, str], hard: bool = False) -> None:
        """The run listed this range of the stream's own table completely: the commit marks the
        stored records in it that were not staged as deleted (`duckdb_freshness.mark_gone`), or
        removes them (`hard`)."""
        self._gone.append(Gone(column, since, dict(equals)))
        self.hard_delete = self.hard_delete or hard

    def distinct_keys(self, table: str) -> int:
        if table not in self._distinct:
            self._distinct[table] = self._count_distinct(next(t for t in self.stream.tables if t.name == table))
        return self._distinct[table]

    def _count_distinct(self, spec: TableSpec) -> int:
        if not self.stage.rows(spec.name):
            return 0
        keys = ", ".join(q(k) for k in spec.primary_key)
        sql = f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {self.stage.relation(spec.name)})"
        return within_memory_limit(self.conn, self.dest.tuning, self.stream.name, lambda: self.conn.execute(sql).fetchall()[0][0])

    def commit(self, state: StreamState, run: RunRecord) -> None:
        try:
            within_memory_limit(
                self.conn, self.dest.tuning, self.stream.name, lambda: self.dest.transaction(lambda: self._store(state, run))
            )
        finally:
            self.stage.discard()

    def _store(self, state: StreamState, run: RunRecord) -> None:
        """The merge of every table, the state and the run record (within one transaction)."""
        parent = self.stream.tables[0] if self.stream.tables[0].nested_path is None else None
        changes = self._count_changes(parent)
        if self.stream.history:
            for table in self.stream.tables:
                record_history(self.conn, self.dest.columns(), table, self._latest(table), run)
        for table in self.stream.tables:
            self._create_target(table)
            if self.tracks_changes:
                self.dest.columns()[table.name].extend(add_meta_columns(self.conn, table.name, self.dest.columns()[table.name]))
            self._merge(table, parent)
            types = self.stage.extra_types.get(table.name)
            if types and self.stage.rows(table.name):
                self._evolve(table, types, run.run_id)
        if self.stage.rows(REJECTED_TABLE):
            columns = ", ".join(q(c) for c in REJECTED_COLUMNS)
            self.conn.execute(f"INSERT INTO {REJECTED_TABLE} ({columns}) SELECT {columns} FROM {self.stage.relation(REJECTED_TABLE)}")
        if self.tracks_changes and self._gone:
            staged = self.stage.relation(self.stream.tables[0].name)
            changes.deleted = mark_gone(self.conn, self.stream, staged, self._gone, datetime.now(timezone.utc),
                                        self.hard_delete, set(self.dest.columns()))
        for name in ("new", "changed", "unchanged", "deleted"):
            setattr(run, f"records_{name}", getattr(run, f"records_{name}") + getattr(changes, name))
        self.dest.write_state(self.stream.name, state)
        self.dest.record_run(run)

    def _latest(self, table: TableSpec) -> str:
        """SQL of the staged rows of a table, one per key (the last version of a key that came twice)."""
        return latest_versions_sql(self.stage.relation(table.name), table, self.conn, self._distinct.get(table.name) == self.stage.rows(table.name) or None)

    def _count_changes(self, parent: TableSpec | None) -> Changes:
        """New / changed / unchanged records of the stream's own table (before the merge)."""
        if not self.tracks_changes or parent is None or not self.stage.rows(parent.name):
            return Changes()
        exists = self.dest.table_exists(parent.name) and HASH in self.dest.columns()[parent.name]
        return count_changes(self.conn, parent, self._latest(parent), exists)

    def _evolve(self, table: TableSpec, types: dict[str, str], run_id: str) -> None:
        """The table's undocumented fields as columns, holding the values of the rows merged."""
        types = add_columns(self.conn, table, types, self.stream.name, run_id)
        known = self.dest.columns()[table.name]
        known.extend(c for c in types if c not in known)
        staged, extras = self.stage.relation(table.name), self.stage.relation(extra_name(table.name))
        self.conn.execute(update_sql(table, staged, extras, types))

    def _create_target(self, table: TableSpec) -> None:
        """The table, with the column types of the staged file (those of the stream's schema)."""
        if self.replace or not self.dest.table_exists(table.name):
            staged = self.stage.relation(table.name)
            meta = f", NULL::VARCHAR AS {HASH}, NULL::TIMESTAMPTZ AS {DELETED_AT}" if self.tracks_changes else ""
            self.conn.execute(f"CREATE OR REPLACE TABLE {q(table.name)} AS SELECT * EXCLUDE ({SEQ}){meta} FROM {staged} LIMIT 0")
            self.dest.created(table.name, table.column_names + (list(META_COLUMNS) if self.tracks_changes else []))

    def _merge(self, table: TableSpec, parent: TableSpec | None) -> None:
        target = q(table.name)
        rows = self.stage.rows(table.name)
        if not self._was_empty[table.name]:
            if rows:
                stage = self.stage.relation(table.name)
                match = " AND ".join(f"{target}.{q(k)} = s.{q(k)}" for k in table.primary_key)
                self.conn.execute(f"DELETE FROM {target} USING {stage} s WHERE {match}")
            if table.parent_link and parent is not None and self.stage.rows(parent.name):
                # children of a parent fetched again are replaced as a whole (items may be removed)
                link, parent_key = table.parent_link
                self.conn.execute(
                    f"DELETE FROM {target} USING {self.stage.relation(parent.name)} p "
                    f"WHERE {target}.{q(link)} = p.{q(parent_key)}"
                )
        if rows:
            columns = ", ".join(q(c) for c in table.column_names)  # by name: the table may have evolved columns
            if self.tracks_changes and not self._was_empty[table.name]:
                self.conn.execute(f"INSERT INTO {target} ({columns}, {HASH}) SELECT {columns}, {hash_sql(table)} "
                                  f"FROM ({self._latest(table)})")
            elif self.tracks_changes:  # a first load: the hash is left for a comparison to compute (count_changes)
                self.conn.execute(f"INSERT INTO {target} ({columns}) {self._latest(table)}")
            else:
                self.conn.execute(f"INSERT INTO {target} ({columns}) {self._latest(table)}")

    def abort(self) -> None:
        self.stage.discard()
