"""The DuckDB writer: a stream's pages staged beside the database, merged by one commit with the
stream's state and run record. A destination bound to an account (`account_scope.py`) writes
the account-scoped form of the stream: its pages stamped with the account, every table's
primary key beginning with it, and what the commit replaces, deletes or marks limited to it."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

import pyarrow as pa

from ..definitions import StreamDefinition, TableSpec
from ..runs import REJECTED_COLUMNS, REJECTED_TABLE, RunRecord
from ..state import StreamState
from .account_scope import ACCOUNT, scoped_definition
from .buffer import SEQ
from .duckdb_evolve import add_columns, documented_columns, with_extras_sql
from .duckdb_freshness import (DELETED_AT, HASH, META_COLUMNS, Changes, Gone, add_meta_columns, count_changes,
                               hash_sql, mark_gone, run_counts, tracked)
from .duckdb_group import commit_last, plain_part
from .duckdb_history import record_history
from .duckdb_merge import merge_changed
from .duckdb_tuning import within_memory_limit
from .merge_sql import keys_repeat, latest_versions_sql, quote_identifier as q
from .part_keys import PartKeys
from .staging_arrow import new_stage

if TYPE_CHECKING:
    from .duckdb import DuckDBDestination


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
        self.account = destination.account
        self.stream = stream if self.account is None else scoped_definition(stream)
        self._scope_columns = () if self.account is None else (ACCOUNT,)  # a child row shares with its parent beside the link
        self.replace = replace
        self.tracks_changes = tracked(stream)  # `_sqquid_hash`, `_sqquid_deleted_at`, counts in the run row
        self.hard_delete = False  # records proven gone are removed instead of marked (`prove_gone`)
        self._gone: list[Gone] = []
        self._was_empty: dict[str, bool] = {}
        self._distinct: dict[str, int] = {}  # table -> distinct keys staged, when counted
        self._latest_sql: dict[tuple, str] = {}  # (table, extras) -> SQL of its staged rows, one a key (`_latest`)
        self._unique_keys: dict[str, bool] = {}  # table -> no key of its staged rows came twice (`_latest`)
        self._changes = Changes()  # the records new / changed / unchanged of the commit under way
        existing = destination.columns()
        shared = self.account is not None  # a table of every account: never replaced as a whole
        for table in self.stream.tables:
            if (shared or not replace) and table.name in existing:
                have = [c for c in existing[table.name] if c not in META_COLUMNS]
                documented_columns(self.conn, destination.location, table.name, have, self.stream, table.column_names)
            if not replace and table.name in existing:
                where, params = destination._where()
                self._was_empty[table.name] = not self.conn.execute(
                    f"SELECT 1 FROM {q(table.name)}{where} LIMIT 1", params).fetchall()
            else:
                self._was_empty[table.name] = True
        # a first load (every table empty for the destination's account, nothing replaced, no history
        # kept) may be committed in parts as the run goes (`commit_part`): what is stored is only ever
        # rows received by this run, so a crash between parts leaves whole rows and the old state
        self.commits_in_parts = (not replace and self.tracks_changes and not self.stream.history
                                 and self.stream.tables[0].nested_path is None and all(self._was_empty.values()))
        self.parts = 0  # parts committed so far (`commit_part`)
        self._stored_new = 0  # keys of the stream's own table the parts stored (each new then)
        self._part_keys = PartKeys(self.stream.tables[0], None if self.account is None else ACCOUNT)  # their range
        self._staged_keys: tuple | None = None  # the range of the keys staged for the commit under way
        self._staged_at = destination.staging_dir / (stream.name if self.account is None else f"{stream.name}@{self.account}")
        self._grouped: list = []  # parts handed to the file's group writer (`duckdb_group.py`), not yet settled
        self.stage = new_stage(self._staged_at, self.stream, destination.tuning.flush_rows, self.account, self.conn)

    def write(self, tables: dict[str, pa.Table]) -> None:
        self._distinct.clear()
        self._latest_sql.clear()
        self._unique_keys.clear()
        self.stage.write(tables)  # (bound to an account: the stage stamps it on each batch)

    def write_rejected(self, rows: pa.Table) -> None:
        self.stage.write({REJECTED_TABLE: rows})

    def prove_gone(self, column: str, since: datetime | None, equals: dict[str, str], hard: bool = False,
                   until: datetime | None = None, key: tuple | None = None) -> None:
        """The run listed this range of the stream's own table completely: the commit marks the
        stored records in it that were not staged as deleted (`duckdb_freshness.mark_gone`), or
        removes them (`hard`)."""
        self._gone.append(Gone(column, since, dict(equals) if self.account is None else {**equals, ACCOUNT: self.account},
                               until, key))
        self.hard_delete = self.hard_delete or hard

    def distinct_keys(self, table: str) -> int:
        self._settle()
        if table not in self._distinct:
            self._distinct[table] = self._count_distinct(next(t for t in self.stream.tables if t.name == table))
        return self._distinct[table]

    def _count_distinct(self, spec: TableSpec) -> int:
        """Distinct keys the run received: those staged, and after parts were committed (a first
        load: each key stored by a part was new then, `_stored_new`), those stored too."""
        keys = ", ".join(q(k) for k in spec.primary_key)
        if self.parts and spec.name == self.stream.tables[0].name:
            if not self.stage.rows(spec.name) or not self.dest.table_exists(spec.name):
                return self._stored_new
            staged = self.stage.relation(spec.name)
            if self._part_keys.apart(self._part_keys.staged(self.conn, staged)):  # none of them stored by a part
                sql = f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {staged})"
                return self._stored_new + within_memory_limit(self.conn, self.dest.tuning, self.stream.name,
                                                              lambda: self.conn.execute(sql).fetchall()[0][0])
            match = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in spec.primary_key)
            mine, params = self._mine("t")
            sql = (f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {self.stage.relation(spec.name)}) s "
                   f"WHERE NOT EXISTS (SELECT 1 FROM {q(spec.name)} t WHERE {match}{mine})")
            return self._stored_new + within_memory_limit(self.conn, self.dest.tuning, self.stream.name,
                                                          lambda: self.conn.execute(sql, params).fetchall()[0][0])
        if self.parts:
            raise ValueError(f"distinct keys of table {spec.name!r}: counted for the stream's own table only after parts")
        if not self.stage.rows(spec.name):
            return 0
        self.stage.finish()  # (as reading the staged rows would) the keys of a one-batch table counted when written
        if self.stage.unique(spec.name):
            return self.stage.rows(spec.name)
        sql = f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {self.stage.relation(spec.name)})"
        return within_memory_limit(self.conn, self.dest.tuning, self.stream.name, lambda: self.conn.execute(sql).fetchall()[0][0])

    def commit(self, state: StreamState, run: RunRecord) -> None:
        try:
            self._settle()  # (the parts before it stored: a part that failed fails the run before its state moves)
            if self.account is None or not self.parts or not commit_last(self, state, run):
                self._commit(state, run)
        finally:
            self.stage.discard()

    def commit_part(self, state: StreamState, run: RunRecord, wait: bool = True) -> bool:
        """Store the pages staged so far with `state` (the caller's: never past the rows stored) and
        the run row, in one transaction, as `commit` does but proving nothing gone; the next pages
        are staged anew. Only where `commits_in_parts` (a first load). Returns whether a part was
        committed: not when nothing is staged, nor (`wait=False`) while another destination of the
        file commits (the pages wait for the next part, and the file's one writer is not queued on)."""
        if not self.commits_in_parts:
            raise RuntimeError("commit_part: this writer commits its stream in one piece")
        if not any(self.stage.rows(t.name) for t in self.stream.tables) and not self.stage.rows(REJECTED_TABLE):
            return False
        failed = next((p.error for p in self._grouped if p.done.is_set() and p.error is not None), None)
        if failed is not None:  # a part the group writer could not store fails the run (as its own commit would)
            raise failed
        self._grouped = [p for p in self._grouped if not p.done.is_set()]
        part = plain_part(self, state.to_json(), run) if self.account is not None else None
        if part is not None:  # appended by the file's group writer with other accounts' parts
            self._changes = Changes(new=self.stage.rows(self.stream.tables[0].name))
            self._changes.add_to(run)
            self.dest.group().submit(part)
            self._grouped.append(part)
            self.dest._runs_written.add((run.run_id, run.stream))  # (its row replaced by the next write)
            self._next_part(f"{self._staged_at.name}.{self.parts + 1}")
            return True
        self._settle()  # (the parts before it stored, as its merge expects)
        if not wait and self.dest.writer_busy():
            return False
        try:
            self._commit(state, run)
        finally:
            self.stage.discard()
        self._part_keys.add(self._staged_keys)
        self._next_part(self._staged_at.name)
        return True

    def _next_part(self, directory: str) -> None:
        """A part was committed (or handed over): the next pages are staged anew (in `directory`)."""
        self.parts += 1
        self._stored_new += self._changes.new  # first stored by this part: counted once
        self._distinct.clear()
        self._latest_sql.clear()
        self._unique_keys.clear()
        self.stage = new_stage(self._staged_at.with_name(directory), self.stream, self.dest.tuning.flush_rows, self.account, self.conn)

    def _settle(self) -> None:
        """The parts handed to the group writer committed (raising the error of one that failed)."""
        if self._grouped:
            parts, self._grouped = self._grouped, []
            self.dest.group().settle(parts)

    def _commit(self, state: StreamState, run: RunRecord) -> None:
        """The staged files written first (no lock), then, holding the file's lock, the queries that
        prepare the merge (the keys a part repeats, the records new or changed) and the one
        transaction. The queries are not run beside another destination's commit: DuckDB skips
        the checkpoint of a commit while another transaction is open, and then holds the rows
        committed in memory until the limit (many accounts: one ran out of memory)."""
        name = self.stream.name
        self.stage.finish()
        with self.dest.shared.lock:  # (registered on the connection once the lock is held: it may serve a read meanwhile)
            for table in self.stream.tables:
                if self.stage.rows(table.name):
                    self.stage.relation(table.name)
            self._changes = within_memory_limit(self.conn, self.dest.tuning, name, self._prepare)
            counted = run_counts(run)  # before this commit's (a merge run again adds them once)
            within_memory_limit(self.conn, self.dest.tuning, name, lambda: self._transaction(state, run, counted))

    def _transaction(self, state: StreamState, run: RunRecord, counted: dict[str, int]) -> None:
        try:
            self.dest.transaction(lambda: self._store(state, run, counted))
        except BaseException:  # the staged files registered by the transaction rolled back: again when asked
            self.stage.forget()
            raise

    def _prepare(self) -> Changes:
        parent = self.stream.tables[0] if self.stream.tables[0].nested_path is None else None
        first = self.stream.tables[0].name
        self._staged_keys = (self._part_keys.staged(self.conn, self.stage.relation(first))
                             if self.commits_in_parts and self.stage.rows(first) else None)
        if self.parts and all(self._was_empty.values()) and self._repeats():
            self._was_empty = dict.fromkeys(self._was_empty, False)  # merged by key from now on
        for table in self.stream.tables:
            if self.stage.rows(table.name):
                self._latest(table)  # the staged files written, the keys repeated within them found
        return self._count_changes(parent)

    def _store(self, state: StreamState, run: RunRecord, counted: dict[str, int]) -> None:
        """The merge of every table, the state and the run record (within one transaction)."""
        parent = self.stream.tables[0] if self.stream.tables[0].nested_path is None else None
        changes = self._changes  # counted before the transaction (`_prepare`)
        if self.stream.history:
            for table in self.stream.tables:
                record_history(self.conn, self.dest.columns(), table, self._latest(table), run, self.account)
        for table in self.stream.tables:
            self._create_target(table)
            if self.tracks_changes:
                self.dest.columns()[table.name].extend(add_meta_columns(self.conn, table.name, self.dest.columns()[table.name]))
            types = self.stage.extra_types.get(table.name)
            extras = self._evolve(table, types, run.run_id) if types and self.stage.rows(table.name) else {}
            self._merge(table, parent, extras)
        if self.stage.rows(REJECTED_TABLE):
            self._store_rejected()
        # nothing stored before this commit (a first load; after parts too): nothing to mark gone
        if self.tracks_changes and self._gone and not self.parts and (self.replace or not self._was_empty[self.stream.tables[0].name]):
            staged = self.stage.relation(self.stream.tables[0].name)
            changes.deleted = mark_gone(self.conn, self.stream, staged, self._gone, datetime.now(timezone.utc),
                                        self.hard_delete, set(self.dest.columns()), self._scope_columns)
        changes.add_to(run, counted)
        self.dest.write_state(self.stream.name, state)
        self.dest.write_run(run)

    def _repeats(self) -> bool:
        """Whether a key staged now was stored by a part committed before (a record listed twice:
        it changed, or the pages shifted, while the run went on)."""
        table = self.stream.tables[0]
        if not self.stage.rows(table.name) or not self.dest.table_exists(table.name):
            return False
        if self._part_keys.apart(self._staged_keys):  # (no probe of the stored table: every account's rows)
            return False
        match = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in table.primary_key)
        mine, params = self._mine("t")
        return bool(self.conn.execute(f"SELECT 1 FROM {self.stage.relation(table.name)} s WHERE EXISTS "
                                      f"(SELECT 1 FROM {q(table.name)} t WHERE {match}{mine}) LIMIT 1", params).fetchall())

    def _mine(self, target: str) -> tuple[str, list]:
        """SQL ` AND <target>.account = ?` and its parameter (nothing for a single-account destination)."""
        clauses, params = self.dest.scope(target)
        return "".join(f" AND {c}" for c in clauses), params

    def _store_rejected(self) -> None:
        columns, params = ", ".join(q(c) for c in REJECTED_COLUMNS), [] if self.account is None else [self.account]
        self.conn.execute(f"INSERT INTO {REJECTED_TABLE} ({f'{ACCOUNT}, ' if params else ''}{columns}) "
                          f"SELECT {'?, ' if params else ''}{columns} FROM {self.stage.relation(REJECTED_TABLE)}", params)

    def _latest(self, table: TableSpec, extras: dict[str, str] | None = None) -> str:
        """SQL of the staged rows of a table, one per key (the last version of a key that came twice);
        with `extras`, their undocumented values as those columns (`duckdb_evolve.with_extras_sql`).
        Which keys came twice is asked once a commit and table (with or without `extras`)."""
        key = (table.name, tuple(extras or ()))
        if key not in self._latest_sql:
            staged = self.stage.relation(table.name)
            if table.name not in self._unique_keys:
                self._unique_keys[table.name] = (  # known when staged, or counted for the count check, or asked
                    self.stage.unique(table.name)
                    or (not self.parts and self._distinct.get(table.name) == self.stage.rows(table.name))
                    or not keys_repeat(staged, table, self.conn))
            if extras:
                staged = with_extras_sql(staged, extras)
            self._latest_sql[key] = latest_versions_sql(staged, table, self.conn, self._unique_keys[table.name],
                                                        tuple(extras or ()))
        return self._latest_sql[key]

    def _count_changes(self, parent: TableSpec | None) -> Changes:
        """New / changed / unchanged records of the stream's own table (before the merge)."""
        if not self.tracks_changes or parent is None or not self.stage.rows(parent.name):
            return Changes()
        exists = self.dest.table_exists(parent.name) and HASH in self.dest.columns()[parent.name]
        if not self.replace and self._was_empty[parent.name]:
            exists = False  # no row of it yet (or only this run's, each key once): every record is new, no join
            if self.stage.unique(parent.name):
                return Changes(new=self.stage.rows(parent.name))
        return count_changes(self.conn, parent, self._latest(parent), exists, self.dest.scope("t"))

    def _evolve(self, table: TableSpec, types: dict[str, str], run_id: str) -> dict[str, str]:
        """The table's undocumented fields added as columns (before its rows are merged with their
        values); returns each column's type."""
        types = add_columns(self.conn, table, types, self.stream.name, run_id)
        known = self.dest.columns()[table.name]
        known.extend(c for c in types if c not in known)
        return types

    def _create_target(self, table: TableSpec) -> None:
        """The table, with the column types of the staged file (those of the stream's schema); a
        multi-account table replaced for an account loses only that account's rows."""
        keep = self._marked(table)  # rows marked gone upstream outlive a full refresh (they stay marked)
        if self.account is not None and self.dest.table_exists(table.name):
            if self.replace:
                self.conn.execute(f"DELETE FROM {q(table.name)} WHERE {ACCOUNT} = ?{keep and ' AND NOT ' + keep}",
                                  [self.account])
            return
        if self.replace or not self.dest.table_exists(table.name):
            if keep:
                self.conn.execute(f"CREATE OR REPLACE TEMP TABLE _sqquid_kept AS SELECT * FROM {q(table.name)} WHERE {keep}")
            staged = self.stage.relation(table.name)
            meta = f", NULL::VARCHAR AS {HASH}, NULL::TIMESTAMPTZ AS {DELETED_AT}" if self.tracks_changes else ""
            staged_only = ", ".join(q(c) for c in (SEQ, *self.stage.extras.columns(table.name)))  # (undocumented: `_evolve`)
            self.conn.execute(f"CREATE OR REPLACE TABLE {q(table.name)} AS SELECT * EXCLUDE ({staged_only}){meta} FROM {staged} LIMIT 0")
            self.dest.created(table.name, table.column_names + (list(META_COLUMNS) if self.tracks_changes else []))
            if keep:
                columns = ", ".join(q(c) for c in self.dest.columns()[table.name])
                self.conn.execute(f"INSERT INTO {q(table.name)} ({columns}) SELECT {columns} FROM _sqquid_kept")
                self.conn.execute("DROP TABLE _sqquid_kept")

    def _marked(self, table: TableSpec) -> str:
        """SQL on a stored row of `table`: marked gone upstream and not staged again, when a replace
        keeps such rows (the table tracks changes and has the stream's columns); "" otherwise."""
        have = self.dest.columns().get(table.name, [])
        if not (self.replace and self.tracks_changes and DELETED_AT in have and set(table.column_names) <= set(have)):
            return ""
        match = " AND ".join(f"s.{q(k)} = {q(table.name)}.{q(k)}" for k in table.primary_key)
        staged = f" AND NOT EXISTS (SELECT 1 FROM {self.stage.relation(table.name)} s WHERE {match})" \
            if self.stage.rows(table.name) else ""
        return f"({q(DELETED_AT)} IS NOT NULL{staged})"

    def _merge(self, table: TableSpec, parent: TableSpec | None, extras: dict[str, str]) -> None:
        target = q(table.name)
        rows = self.stage.rows(table.name)
        if self.tracks_changes and not self._was_empty[table.name]:
            self._merge_changed(table, parent, extras)
            return
        if not self._was_empty[table.name]:
            if rows:
                stage = self.stage.relation(table.name)
                match = " AND ".join(f"{target}.{q(k)} = s.{q(k)}" for k in table.primary_key)
                mine, params = self._mine(target)  # the account's rows only: the scan skips the others' row groups
                self.conn.execute(f"DELETE FROM {target} USING {stage} s WHERE {match}{mine}", params)
            if table.parent_link and parent is not None and self.stage.rows(parent.name):
                # children of a parent fetched again are replaced as a whole; those it no longer has
                # (an item removed upstream) are marked `_sqquid_deleted_at` (--hard-delete: removed)
                link, parent_key = table.parent_link
                also = "".join(f" AND {target}.{q(c)} = p.{q(c)}" for c in self._scope_columns)
                mine, params = self._mine(target)
                dropped = f"{target}.{q(link)} = p.{q(parent_key)}{also}{mine}"
                if self.tracks_changes and not self.hard_delete:
                    self.conn.execute(f"UPDATE {target} SET {q(DELETED_AT)} = ? FROM {self.stage.relation(parent.name)} p "
                                      f"WHERE {target}.{q(DELETED_AT)} IS NULL AND {dropped}", [datetime.now(timezone.utc), *params])
                else:
                    self.conn.execute(f"DELETE FROM {target} USING {self.stage.relation(parent.name)} p WHERE {dropped}", params)
        if rows:
            # by name: the table may have evolved columns (and the undocumented fields of these rows)
            columns = ", ".join(q(c) for c in (*table.column_names, *extras))
            if self.tracks_changes and not self._was_empty[table.name]:
                self.conn.execute(f"INSERT INTO {target} ({columns}, {HASH}) SELECT {columns}, {hash_sql(table)} "
                                  f"FROM ({self._latest(table, extras)})")
            else:  # (a first load: the hash is left for a comparison to compute, count_changes)
                self.conn.execute(f"INSERT INTO {target} ({columns}) {self._latest(table, extras)}")

    def _merge_changed(self, table: TableSpec, parent: TableSpec | None, extras: dict[str, str]) -> None:
        """A table that holds rows and tracks changes: only the staged rows new or changed are
        written (`duckdb_merge.py`); children of the parents fetched again that were not are marked."""
        staged = (self.stage.relation(table.name), self._latest(table, extras)) if self.stage.rows(table.name) else None
        parents = None
        if table.parent_link and parent is not None and self.stage.rows(parent.name):
            link, parent_key = table.parent_link
            target = q(table.name)
            also = "".join(f" AND {target}.{q(c)} = p.{q(c)}" for c in self._scope_columns)
            parents = (self.stage.relation(parent.name), f"{target}.{q(link)} = p.{q(parent_key)}{also}")
        stored = self.dest.columns()[table.name]
        changes = self._changes  # of the stream's own table, counted before the transaction (`_prepare`)
        as_stored = (table is parent and not extras and changes.hashed == changes.new + changes.changed + changes.unchanged
                     and len(stored) == len(table.column_names) + len(META_COLUMNS))  # (no undocumented column)
        merge_changed(self.conn, table, stored, staged, extras, self._mine, parents, self.hard_delete,
                      datetime.now(timezone.utc), as_stored)

    def abort(self) -> None:
        try:
            if self._grouped:
                self.dest.group().withdraw(self._grouped)
        finally:
            self.stage.discard()
