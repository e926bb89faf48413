"""DuckDB destination: one table per stream table, merged by primary key; data, state and run
record of a stream committed in one transaction."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ..definitions import StreamDefinition
from ..errors import StateError
from ..runs import RUN_COLUMNS, RunRecord
from ..settings import Tuning
from ..state import StreamState
from .account_scope import ACCOUNT, check_account, mixed_error
from .duckdb_engine import duckdb
from .duckdb_freshness import DELETED_AT
from .duckdb_own import (RUNS_TABLE, STATE_COLUMNS, STATE_TABLE, check_ours, check_staging, connect, first_line, prepare,
                         state_columns, tables)
from .duckdb_shared import Shared, acquire, group_writer, look, opened, release
from .duckdb_tuning import check_tuning, pool_blocks, tune
from .duckdb_writer import DuckDBStreamWriter
from .files import check_can_write
from .merge_sql import counts_at, counts_by, quote_identifier as q, where_clause
from .protocol import bounds_each, counts_each

__all__ = ["DuckDBDestination", "DuckDBStreamWriter"]


class DuckDBDestination:
    multi_account = True  # may be bound to an account (`account=`)
    kind_name = "DuckDB"

    @staticmethod
    def check(location: str | os.PathLike, tuning: Tuning) -> None:
        """Refuse a file that cannot be created or written, before anything is requested."""
        check_tuning(tuning)
        check_can_write(location, "--duckdb", what="a DuckDB file")

    @staticmethod
    def check_form(location: str | os.PathLike, account: str | None) -> None:
        """A ConfigError when an existing database is not of the form it would be opened in
        (single- or multi-account), before anything is requested; a file that cannot be looked
        at now (another process writes it) is left to the open to judge."""
        path = Path(location)
        if not path.is_file():
            return
        try:
            found, multi = look(path, lambda: duckdb.connect(str(path), read_only=True),
                                lambda conn: (tables(conn), ACCOUNT in state_columns(conn)))
        except duckdb.Error:
            return
        if (STATE_TABLE in found or RUNS_TABLE in found) and multi != (account is not None):
            raise mixed_error(str(path), account, multi)

    @staticmethod
    def opened_to_check(location: str | os.PathLike) -> bool:
        """An existing file is checked by its open (its form, `_check_layout`; whether it is an
        extract's, `check_ours`): opened once, where `check_form`'s look and the open were two."""
        return Path(location).is_file()

    @staticmethod
    def upgrade(location: str | os.PathLike, account: str) -> str:
        """Make a single-account database multi-account in place (`duckdb_upgrade.py`)."""
        from .duckdb_upgrade import upgrade_duckdb

        return upgrade_duckdb(location, account)

    @staticmethod
    def missing(location: str | os.PathLike) -> str | None:
        """Why there is no extract to open here (None: there may be one)."""
        path = Path(location)
        if not path.is_file():
            return f"--duckdb {path}: no such DuckDB file (nothing extracted there yet)"
        return None  # whether it is an extract's is told when it is opened (`check_ours`)

    def __init__(self, path: str | os.PathLike, tuning: Tuning | None = None, *, read_only: bool = False,
                 account: str | None = None):
        """Open (creating it when new) and lock the database; `read_only`: only to look at it
        (nothing created, changed or cleaned: `state show`). `account`: bound to that account of a
        multi-account database (`account_scope.py`); None: a single-account one."""
        check_account(account)
        self.path = Path(path)
        self.tuning = tuning or Tuning()
        self.account = account
        self._columns: dict[str, list[str]] | None = None  # table or view -> its columns (`columns`)
        self._seen = -1  # the file's commits (`Shared.generation`) when `_columns` was read
        self.staging_dir = self.path.with_name(self.path.name + ".staging")
        self.shared: Shared | None = None
        self._holding = False  # this destination writes its account (`_hold`)
        self._runs_written: set[tuple[str, str]] = set()  # (run id, stream) of the run rows written (`write_run`)
        if read_only and opened(self.path) is None:
            self.conn = connect(self.path, read_only=True)
            self._checked(lambda: (check_ours(self.conn, self.path, looking=True), self._check_layout(False)))
            return
        if not read_only:
            self.check(self.path, self.tuning)
            check_staging(self.staging_dir)
        self.shared, self.conn = acquire(self.path, lambda: connect(self.path), self._first)
        self._checked(lambda: self._check_layout(not read_only))
        if account is not None and not read_only:
            self._checked(self._hold)

    def _hold(self) -> None:
        """One destination of the process writes an account (as one process holds the file)."""
        with self.shared.lock:
            if self.account in self.shared.writing:
                raise StateError(f"{self.path}: account {self.account!r} is being written by another destination of "
                                 "this process (another extract of the account is running?); wait for it to finish")
            self.shared.writing.add(self.account)
            self._holding = True
            self.shared.pooled = self.shared.pooled or pool_blocks(self.conn, self.tuning, len(self.shared.writing))

    def _first(self, conn: Any) -> None:
        """The file opened by this process for the first time (no destination of it open)."""
        check_ours(conn, self.path)
        tune(conn, self.tuning, accounts=self.account is not None)  # spill to disk rather than grow with the extract
        shutil.rmtree(self.staging_dir, ignore_errors=True)  # a crashed run's pages (we hold the lock)

    def _checked(self, check: Callable[[], object]) -> None:
        try:
            check()
        except BaseException:
            self.close()
            raise

    def _check_layout(self, writing: bool) -> None:
        """Single- or multi-account as the destination is opened (never mixed); `writing`: its own
        tables made (a new database: those of the layout asked for)."""
        found = self.columns()  # the catalog in one query (its tables, their columns)
        if STATE_TABLE in found or RUNS_TABLE in found:
            multi = ACCOUNT in found.get(STATE_TABLE, ())
            if multi != (self.account is not None):
                raise mixed_error(str(self.path), self.account, multi)
        if writing:
            with self.shared.lock:
                if prepare(self.conn, self.path, self.account is not None, found):
                    self._columns = None  # read again when next asked

    @property
    def location(self) -> str:
        return str(self.path)

    def transaction(self, work: Callable[[], object]) -> None:
        """Run `work()` in one transaction: all of it is stored, or none. One at a time on the
        file (its lock): the transactions of other destinations of the file wait."""
        with self.shared.lock:
            self.columns()  # what other destinations of the file committed, before this one changes it
            self.conn.execute("BEGIN TRANSACTION")
            try:
                work()
                self.conn.execute("COMMIT")
            except BaseException:
                self._columns = None  # tables the work created are gone again
                self.conn.execute("ROLLBACK")
                raise
            finally:
                self.shared.generation += 1
                self._seen = self.shared.generation

    def group(self):
        """The file's group writer: the parts of many accounts committed together (`duckdb_group.py`)."""
        return group_writer(self.shared, self.tuning)

    def writer_busy(self) -> bool:
        """Whether another destination of the file is committing now (its lock is held)."""
        if not self.shared.lock.acquire(blocking=False):
            return True
        self.shared.lock.release()
        return False

    def scope(self, alias: str = "") -> tuple[list[str], list]:
        """SQL conditions (and their parameters) limiting a query to the destination's account."""
        if self.account is None:
            return [], []
        return [f"{alias + '.' if alias else ''}{ACCOUNT} = ?"], [self.account]

    def _where(self, *clauses: str, params: list | None = None) -> tuple[str, list]:
        scope, scoped = self.scope()
        found = [*clauses, *scope]
        return (" WHERE " + " AND ".join(found)) if found else "", [*(params or []), *scoped]

    # -- state ------------------------------------------------------------------------------------

    def load_states(self) -> dict[str, StreamState]:
        texts: dict[str, list] = {}
        where, params = self._where()
        for stream, text in self._state_rows("SELECT stream, state FROM {}" + where + " ORDER BY 1", params):
            texts.setdefault(stream, []).append(text)
        return {stream: self._state(stream, found) for stream, found in texts.items()}

    def load_state(self, stream: str) -> StreamState | None:
        where, params = self._where("stream = ?", params=[stream])
        rows = self._state_rows("SELECT stream, state FROM {}" + where, params)
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
        where = f"{self.path} table {STATE_TABLE}, {self._named()}stream {stream!r}"
        if len(texts) > 1:
            raise StateError(f"{where}: corrupt state ({len(texts)} rows, one expected); fix it with "
                             "'sqquid-etl state set' or 'state reset'")
        return StreamState.from_json(texts[0], where)

    def save_state(self, stream: str, state: StreamState | None) -> None:
        self.transaction(lambda: self.write_state(stream, state))

    def write_state(self, stream: str, state: StreamState | None) -> None:
        """save_state within the caller's transaction (a writer's commit)."""
        where, params = self._where("stream = ?", params=[stream])
        try:
            if state is not None and self.conn.execute(  # the stream's one row (most runs: one statement)
                    f"UPDATE {STATE_TABLE} SET state = ?, updated_at = now(){where}", [state.to_json(), *params]
            ).fetchall()[0][0] == 1:
                return
            self.conn.execute(f"DELETE FROM {STATE_TABLE}{where}", params)
            if state is not None:
                self.conn.execute(f"INSERT INTO {STATE_TABLE} (stream, state, updated_at{self._account_column()}) "
                                  f"VALUES (?, ?, now(){self._account_value()})", [stream, state.to_json(), *self.scope()[1]])
        except duckdb.Error as exc:
            raise StateError(f"{self.path} table {STATE_TABLE} cannot be written ({first_line(exc)}); "
                             "'sqquid-etl state reset' (every stream) re-creates it") from None

    def state_streams(self) -> list[str]:
        where, params = self._where()
        try:
            return [r[0] for r in self.conn.execute(f"SELECT DISTINCT stream FROM {STATE_TABLE}{where} ORDER BY 1",
                                                    params).fetchall() if isinstance(r[0], str)]
        except duckdb.Error:
            return []

    def clear_states(self) -> None:
        if self.account is None:
            self.transaction(lambda: self.conn.execute(f"CREATE OR REPLACE TABLE {STATE_TABLE} {STATE_COLUMNS}"))
        else:  # the other accounts' states are kept; a table that cannot be read is the upgrade's to repair
            self.transaction(lambda: self.conn.execute(f"DELETE FROM {STATE_TABLE} WHERE {ACCOUNT} = ?", [self.account]))

    def _named(self) -> str:
        return "" if self.account is None else f"account {self.account!r}, "

    def _account_column(self) -> str:
        return "" if self.account is None else f", {ACCOUNT}"

    def _account_value(self) -> str:
        return "" if self.account is None else ", ?"

    def record_run(self, run: RunRecord) -> None:
        """The run's one row for the stream: a later record of the same run replaces it."""
        self.transaction(lambda: self.write_run(run))

    def write_run(self, run: RunRecord) -> None:
        """record_run within the caller's transaction (a writer's commit)."""
        row = run.as_row()
        placeholders = ", ".join("?" for _ in row)
        names = ", ".join(q(c) for c in RUN_COLUMNS)
        where, params = self._where("run_id = ?", "stream = ?", params=[run.run_id, run.stream])
        try:
            if (run.run_id, run.stream) in self._runs_written:  # (a run's ids are its own: else there is none)
                self.conn.execute(f"DELETE FROM {RUNS_TABLE}{where}", params)
            self.conn.execute(f"INSERT INTO {RUNS_TABLE} ({names}{self._account_column()}) "
                              f"VALUES ({placeholders}{self._account_value()})", [*row.values(), *self.scope()[1]])
            self._runs_written.add((run.run_id, run.stream))
        except duckdb.Error as exc:
            raise StateError(f"{self.path} table {RUNS_TABLE} cannot be written ({first_line(exc)})") from None

    # -- reading ----------------------------------------------------------------------------------

    def table_exists(self, table: str) -> bool:
        return table in self.columns()

    def columns(self) -> dict[str, list[str]]:
        """Every table and view of the database with its columns, read in one query and kept
        (this process holds the file's lock: only this destination changes them, and it says
        so with `created` or by dropping what it knows; when another destination of the file
        committed since, they are read again)."""
        if self.shared is not None and self._seen != self.shared.generation:
            self._columns, self._seen = None, self.shared.generation
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
        live = [f"{DELETED_AT} IS NULL"] if self._soft_deletes(table) else []
        where, params = self._where(f"{q(column)} IS NOT NULL", *live)
        rows = self.conn.execute(f"SELECT DISTINCT {q(column)} FROM {q(table)}{where} ORDER BY 1", params).fetchall()
        return [r[0] for r in rows]

    def count_since(self, table: str, column: str, since: datetime | None, equals: dict[str, str]) -> int:
        return self.counts_since(table, column, [since], equals)[0]

    def counts_since(self, table: str, column: str, times: list[datetime | None], equals: dict[str, str]) -> list[int]:
        """count_since at each of `times`, in one scan of the table (one statement, not one a time)."""
        if not self.table_exists(table):
            return [0] * len(times)
        where, params = where_clause(None, None, self._scoped(equals), live=self._soft_deletes(table))
        counts, bounds = counts_at(column, times)
        return list(self.conn.execute(f"SELECT {counts} FROM {q(table)}{where}", [*bounds, *params]).fetchall()[0])

    def cursor_bounds(self, table: str, column: str, equals: dict[str, str]) -> tuple[Any, Any]:
        if not self.table_exists(table):
            return None, None
        where, params = where_clause(None, None, self._scoped(equals), live=self._soft_deletes(table))
        return self.conn.execute(f"SELECT min({q(column)}), max({q(column)}) FROM {q(table)}{where}", params).fetchall()[0]

    def cursor_bounds_each(self, table: str, column: str, by: str | None, values: list) -> list[tuple[Any, Any]]:
        if by is None or not self.table_exists(table):
            return bounds_each(self, table, column, by, values)
        where, params = where_clause(None, None, self._scoped({}), live=self._soft_deletes(table))
        rows = self.conn.execute(f"SELECT {q(by)}, min({q(column)}), max({q(column)}) FROM {q(table)}{where} GROUP BY 1",
                                 params).fetchall()
        found = {str(r[0]): (r[1], r[2]) for r in rows}  # (`by` holds text: a partition's value)
        return [found.get(str(v), (None, None)) for v in values]

    def counts_since_each(self, table: str, column: str, by: str | None, times: dict[Any, list[datetime | None]]
                          ) -> dict[Any, list[int]]:
        if by is None or not self.table_exists(table):
            return counts_each(self, table, column, by, times)
        where, params = where_clause(None, None, self._scoped({}), live=self._soft_deletes(table))
        points = sorted({t for at in times.values() for t in at if t is not None})
        select, bounds = counts_by(column, by, points)
        rows = self.conn.execute(f"{select} FROM {q(table)}{where} GROUP BY 1", [*bounds, *params]).fetchall()
        found = {str(r[0]): dict(zip([None, *points], r[1:])) for r in rows}
        return {v: [found.get(str(v), {}).get(t, 0) for t in at] for v, at in times.items()}

    def _scoped(self, equals: dict[str, str]) -> dict[str, str]:
        """`equals` with the destination's account (a condition of every query of a stored table)."""
        return equals if self.account is None else {**equals, ACCOUNT: self.account}

    def values_between(self, table: str, column: str, cursor: str, since: datetime, until: datetime,
                       equals: dict[str, str]) -> list[Any]:
        """The distinct values of `column` over the live rows with `since <= cursor < until` and `equals`."""
        if not self.table_exists(table):
            return []
        where, params = where_clause(cursor, since, self._scoped(equals), live=self._soft_deletes(table), until=until)
        return [r[0] for r in self.conn.execute(f"SELECT DISTINCT {q(column)} FROM {q(table)}{where} ORDER BY 1", params).fetchall()]

    def _soft_deletes(self, table: str) -> bool:
        """Whether the table marks records gone upstream (they are not counted or listed)."""
        return DELETED_AT in self.columns().get(table, ())

    # -- writing ----------------------------------------------------------------------------------

    def begin(self, stream: StreamDefinition, replace: bool) -> DuckDBStreamWriter:
        return DuckDBStreamWriter(self, stream, replace)

    def after_load(self) -> list[str]:
        from ..sql_views import create_views

        with self.shared.lock:  # not in a transaction: a view that cannot be made is skipped, not an error
            made = create_views(self.conn)
            self.shared.generation += 1
        return made

    def close(self) -> None:
        if self.shared is None:
            self.conn.close()
        elif self.conn is not None:
            cursor, self.conn = self.conn, None
            if self._holding:
                with self.shared.lock:
                    self.shared.writing.discard(self.account)
            release(self.shared, cursor)
        try:
            self.staging_dir.rmdir()  # each stream's pages went with its commit: no empty directory left
        except OSError:
            pass  # absent, or holding what another run of this file stages (it removes its own)


