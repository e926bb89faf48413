"""Parquet destination: `DIR/<table>/*.parquet`, merged by primary key, switched atomically
(the directory's layout: `parquet_layout.py`).

A commit builds a new generation of each table (unchanged files hard-linked, files holding a
replaced key rewritten without it, the new rows in one file), then swaps the table's symlink in
one rename, then writes the state. A reader, or a crash, sees either the old or the new
generation of a table; state never covers data that was not switched in.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from ..definitions import StreamDefinition, TableSpec
from ..errors import ConfigError
from ..runs import REJECTED_COLUMNS, REJECTED_TABLE, RUN_COLUMNS, RUN_INTEGERS, RunRecord
from ..settings import Tuning
from ..state import StreamState
from .account_scope import ACCOUNT, check_account, scoped_definition, stamp, stamp_page
from . import parquet_parts, parquet_sql
from .commit_slots import commit_slot
from .duckdb_tuning import check_tuning, within_memory_limit
from .files import check_can_write, fsync_path, link_or_copy
from .merge_sql import check_columns, counts_at, latest_versions_sql, quote_identifier as _q, sql_path, where_clause
from .parquet_layout import META_DIR, STATE_FILE, ParquetLayout, release
from .duckdb_freshness import DELETED_AT, Changes, Gone, tracked
from .parquet_carry import carry_over
from .parquet_evolve import carried_columns, file_columns, new_rows_sql, plan_columns, recorded, write_history
from .parquet_freshness import count_changes, keep_marked, meta_columns, newly_marked, split_meta, with_meta
from .parquet_gone import find_gone, gone_condition
from .parquet_history import build_history
from .protocol import bounds_each, counts_each
from .state_file import JsonStateFile

# files of runs by an older version lack the columns added since: read them by name
# (`read_parquet(..., union_by_name = true)`), the missing ones null
_RUNS_SCHEMA = pa.schema([(name, pa.int64() if name in RUN_INTEGERS else pa.string()) for name in RUN_COLUMNS])

# rows per row group of the files written: DuckDB holds a row group in memory while writing it,
# and its default (122,880 rows) does not fit a small memory limit
ROW_GROUP_ROWS = 16_384


def run_table(run: RunRecord) -> pa.Table:
    """A run record as a one-row table of `_sqquid_runs`."""
    # read from a JSON line: `pa.Table.from_pylist` would make pyarrow import pandas (~50 MB)
    return pa_json.read_json(
        pa.BufferReader(json.dumps(run.as_row()).encode()),
        parse_options=pa_json.ParseOptions(explicit_schema=_RUNS_SCHEMA, unexpected_field_behavior="error"),
    ).select(_RUNS_SCHEMA.names)


class ParquetDestination:
    account: str | None = None  # bound to an account of a multi-account directory (`__init__`)

    @staticmethod
    def check(location: str | os.PathLike, tuning: Tuning) -> None:
        """Refuse a directory that cannot be created or written, before anything is requested."""
        check_tuning(tuning)
        check_can_write(location, "--parquet")

    @staticmethod
    def missing(location: str | os.PathLike) -> str | None:
        """Why there is no extract to open here (None: there is one)."""
        path = Path(location)
        if not path.is_dir():
            return f"--parquet {path}: no such directory (nothing extracted there yet)"
        if not ((path / META_DIR).is_dir() or (path / STATE_FILE).exists()):
            return f"--parquet {path}: not a directory sqquid-etl made (no {META_DIR}/ nor {STATE_FILE}); nothing was changed"
        return None

    def __init__(self, directory: str | os.PathLike, tuning: Tuning | None = None, *, read_only: bool = False,
                 account: str | None = None):
        """Open (creating it when new) and lock the directory; `account`: bound to that account
        of a multi-account directory (its partition of each table, `parquet_layout.py`)."""
        check_account(account)
        self.root = Path(directory)
        self.account = account
        self.layout = ParquetLayout(self.root, account)
        self.tuning = tuning or Tuning()
        self._locks: list = []
        if read_only:  # read_only: to look at it (`state show`): nothing created, locked or cleaned
            self.layout.check_form()
        else:
            self.layout.create()
            self._locks = self.layout.lock()
        self._states = JsonStateFile(self.layout.state_file)
        self._shared, self.sql = parquet_sql.connect(self.layout.spill, self.tuning, account)  # (accounts: one database shared)
        if not read_only:
            self.layout.clean_leftovers()

    @property
    def location(self) -> str:
        return str(self.root)

    # -- state ------------------------------------------------------------------------------------

    def load_states(self) -> dict[str, StreamState]:
        return self._states.load()

    def load_state(self, stream: str) -> StreamState | None:
        return self._states.load_one(stream)

    def save_state(self, stream: str, state: StreamState | None) -> None:
        self._states.save(stream, state)

    def state_streams(self) -> list[str]:
        return self._states.streams()

    def clear_states(self) -> None:
        self._states.clear()

    def record_run(self, run: RunRecord) -> None:
        target = self.layout.runs / f"{run.run_id}-{run.stream}.parquet"
        tmp = target.with_name(f".{target.name}.tmp")
        pq.write_table(run_table(run) if self.account is None else stamp(run_table(run), self.account), tmp)
        os.replace(tmp, target)

    # -- reading ----------------------------------------------------------------------------------

    def _scan(self, table: str, column: str | None, since: datetime | None, equals: dict[str, str],
              until: datetime | None = None) -> tuple[str, list] | None:
        """SQL `FROM ... WHERE ...` over the table's live rows (not marked gone upstream) with
        `since <= column < until` and `equals`, and its parameters; None: no such table."""
        current = self.layout.current_generation(table)
        if current is None:
            return None
        files = sorted(current.glob("*.parquet"))
        live = bool(files) and DELETED_AT in file_columns(self.sql, files[0])
        where, params = where_clause(column, since, equals, live=live, until=until)
        return f"FROM read_parquet({sql_path(current / '*.parquet')}){where or ' WHERE true'}", params

    def _rows(self, table: str, query: str, params: list) -> list[tuple]:
        """A read of a table (run again with more memory if its filter needs it, as a merge is)."""
        return within_memory_limit(self.sql, self.tuning, table, lambda: self.sql.execute(query, params).fetchall())

    def distinct_values(self, table: str, column: str) -> list[Any] | None:
        scan = self._scan(table, None, None, {})
        if scan is None:
            return None
        return [r[0] for r in self._rows(table, f"SELECT DISTINCT {_q(column)} {scan[0]} AND {_q(column)} IS NOT NULL ORDER BY 1", scan[1])]

    def count_since(self, table: str, column: str, since: datetime | None, equals: dict[str, str]) -> int:
        return self.counts_since(table, column, [since], equals)[0]

    def counts_since(self, table: str, column: str, times: list[datetime | None], equals: dict[str, str]) -> list[int]:
        scan = self._scan(table, column, None, equals)
        if scan is None:
            return [0] * len(times)
        counts, bounds = counts_at(column, times)
        return list(self._rows(table, f"SELECT {counts} {scan[0]}", [*bounds, *scan[1]])[0])

    cursor_bounds_each, counts_since_each = bounds_each, counts_each  # one query a partition

    def cursor_bounds(self, table: str, column: str, equals: dict[str, str]) -> tuple[Any, Any]:
        scan = self._scan(table, None, None, equals)
        if scan is None:
            return None, None
        return self._rows(table, f"SELECT min({_q(column)}), max({_q(column)}) {scan[0]}", scan[1])[0]

    def values_between(self, table: str, column: str, cursor: str, since: datetime, until: datetime,
                       equals: dict[str, str]) -> list[Any]:
        """The distinct values of `column` over the live rows with `since <= cursor < until` and `equals`."""
        scan = self._scan(table, cursor, since, equals, until=until)
        if scan is None:
            return []
        return [r[0] for r in self._rows(table, f"SELECT DISTINCT {_q(column)} {scan[0]} ORDER BY 1", scan[1])]

    # -- writing ----------------------------------------------------------------------------------

    def begin(self, stream: StreamDefinition, replace: bool) -> "ParquetStreamWriter":
        return ParquetStreamWriter(self, stream, replace)

    def after_load(self) -> list[str]:
        return []  # the views are defined by the reader: sql_views.attach_parquet

    def close(self) -> None:
        parquet_sql.release(self._shared, self.sql)
        release(self._locks)


class ParquetStreamWriter(parquet_parts.InParts):
    evolves = True  # undocumented fields become columns of the new generation (`parquet_evolve.py`)
    parts_allowed = True  # a first load bound to an account commits in parts (`parquet_parts.py`)

    def __init__(self, destination: ParquetDestination, stream: StreamDefinition, replace: bool):
        self.dest = destination
        self.layout = destination.layout
        self.sql = destination.sql
        self.account = destination.account
        self.stream = stream if self.account is None else scoped_definition(stream)
        self.replace = replace
        self.tracks_changes = tracked(stream)  # `_sqquid_hash`, `_sqquid_deleted_at`, counts (`parquet_freshness.py`)
        self.hard_delete = False  # records proven gone are removed instead of marked (`prove_gone`)
        # each table's current generation, its files and their columns, read once (this process
        # holds the directory's lock: only this writer's commit changes them); replaced: none
        self._read_current()
        if not replace:
            for table in self.stream.tables:
                self._check_columns(table)
        self._parts = parquet_parts.Parts(self, self.parts_allowed)
        self._new_stage()
        self._gone: list[Gone] = []  # ranges listed completely (`prove_gone`)
        self._gone_count = 0  # records of them stored and not received: dropped (`parquet_gone.py`)
        self._part_new = 0  # records of the stream's own table new in the commit under way

    def _read_current(self) -> None:
        """Each table's current generation, its files and their columns (read when the writer
        begins, and again after each part it committed)."""
        current = {t.name: self.layout.current_generation(t.name) for t in self.stream.tables}  # refuses what is not ours
        self._before = {name: sorted(gen.glob("*.parquet")) if gen else [] for name, gen in current.items()}
        self._current = {} if self.replace else current
        self._old_files = {name: [] if self.replace else files for name, files in self._before.items()}
        self._have, self._has_meta = {}, {}  # documented and undocumented columns; whether the files carry the meta ones
        for name, files in self._old_files.items():
            self._have[name], self._has_meta[name] = split_meta(file_columns(self.sql, files[0]) if files else {})
        self._recorded: set | None = None  # the schema history, read when first needed
        self._changes: list = []  # (table, column, type) added or widened by the commit

    def _history(self) -> set:
        """(table, column, type) recorded in the schema history (read once)."""
        if self._recorded is None:
            self._recorded = recorded(self.sql, self.layout.root)
        return self._recorded

    def _check_columns(self, table: TableSpec) -> None:
        if self._old_files[table.name]:
            have, want = list(self._have[table.name]), table.column_names
            if have[:len(want)] == want and len(have) > len(want):  # and columns added for undocumented fields
                evolved = {(t, c) for t, c, _ in self._history()}
                have = have[:len(want)] + [c for c in have[len(want):] if (table.name, c) not in evolved]
            check_columns(str(self.layout.root), table.name, have, self.stream, want)

    def write(self, tables: dict[str, pa.Table]) -> None:
        self._latest_sql.clear()
        self.stage.write(tables if self.account is None else stamp_page(tables, self.account))

    def write_rejected(self, rows: pa.Table) -> None:
        self.stage.write({REJECTED_TABLE: rows})

    def prove_gone(self, column: str, since: datetime | None, equals: dict[str, str], hard: bool = False,
                   until: datetime | None = None, key: tuple | None = None) -> None:
        """The run listed this range completely: its stored records not received are marked
        `_sqquid_deleted_at` by the commit, with their child rows (`hard`: removed; `parquet_gone.py`)."""
        self._gone.append(Gone(column, since, dict(equals), until, key))
        self.hard_delete = self.hard_delete or hard

    def _staged(self, table: TableSpec) -> str:
        return self.stage.relation(table.name)

    def distinct_keys(self, table: str) -> int:
        if self._parts.count:
            return parquet_parts.distinct_keys(self, table)
        if not self.stage.rows(table):
            return 0
        spec = next(t for t in self.stream.tables if t.name == table)
        keys = ", ".join(_q(k) for k in spec.primary_key)
        sql = f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {self._staged(spec)})"
        return within_memory_limit(self.sql, self.dest.tuning, self.stream.name, lambda: self.sql.execute(sql).fetchall()[0][0])

    def commit(self, state: StreamState, run: RunRecord) -> None:
        with commit_slot(self.account):  # (many accounts: a few commits at once, `commit_slots.py`)
            self._commit(state, run)

    def _commit(self, state: StreamState, run: RunRecord) -> None:
        try:
            for name, generation in self._build(run):
                self.layout.switch(name, generation)
            self._store_rejected(run.run_id)
            known = self._history() if self._changes else set()
            write_history(self.layout.root, self.stream.name, run.run_id, [c for c in self._changes if c not in known])
            self.dest.save_state(self.stream.name, state)  # last: state never covers data not switched in
            self.dest.record_run(run)
        finally:
            self.abort()
        self.layout.clean_leftovers()

    def _build(self, run: RunRecord) -> list[tuple[str, Path]]:
        """The commit's changes counted into the run row, and the next generation of each table
        it changes (and of their history): (table, generation), to be made current."""
        parent = self.stream.tables[0]
        at = datetime.now(timezone.utc).isoformat()  # when the records proven gone now were seen gone
        self._parts.look(self)  # (parts: whether their files may be linked unread)

        def build() -> tuple[Changes, list[tuple[str, Path]]]:
            if self._gone and not self._parts.count:  # (parts: a first load, nothing stored before the run)
                self._gone_count = find_gone(self.sql, self.stream, self._old_files[parent.name], self._staged(parent),
                                             self._gone, self._has_meta[parent.name])
            counted = self.tracks_changes and parent.nested_path is None and self.stage.rows(parent.name)
            stored = [] if self._parts.links_stored(False) else self._before[parent.name]  # (apart: each record new)
            changes = count_changes(self.sql, parent, self._latest(parent), stored) if counted else Changes()
            if not self._changes_tables():
                return changes, []
            built = [(t.name, self._build_generation(t, parent if parent.nested_path is None else None, run.run_id, at))
                     for t in self.stream.tables]
            return changes, built + [build_history(self.sql, self.layout, t, self._latest(t), run,
                                                   f"{run.run_id}-{uuid.uuid4().hex[:8]}", ROW_GROUP_ROWS)
                                     for t in self.stream.tables if self.stream.history]

        # a generation built before running out of memory is left to clean_leftovers
        changes, built = within_memory_limit(self.sql, self.dest.tuning, self.stream.name, build)
        changes.deleted = self._gone_count
        self._part_new = changes.new
        changes.add_to(run)
        return built

    def _latest(self, table: TableSpec) -> str:
        """SQL of a table's staged rows, one a key (whether a key came twice asked once a commit)."""
        if table.name not in self._latest_sql:
            self._latest_sql[table.name] = latest_versions_sql(self._staged(table), table, self.sql,
                                                               True if self._staged_unique(table) else None)
        return self._latest_sql[table.name]

    def _store_rejected(self, run_id: str) -> None:
        """The records quarantined, in one new file of `_sqquid_rejected/` (written aside, renamed
        in, before the state: state never covers records neither stored nor quarantined)."""
        if not self.stage.rows(REJECTED_TABLE):
            return
        self.layout.rejected.mkdir(exist_ok=True)
        target = self.layout.rejected / f"{run_id}-{self.stream.name}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = target.with_name(f".{target.name}.tmp")
        columns = ", ".join(_q(c) for c in REJECTED_COLUMNS)
        if self.account is not None:  # the name is checked (`check_account`): a safe literal
            columns = f"'{self.account}' AS {ACCOUNT}, {columns}"
        self.sql.execute(f"COPY (SELECT {columns} FROM {self.stage.relation(REJECTED_TABLE)}) TO {sql_path(tmp)} (FORMAT parquet)")
        fsync_path(tmp)
        os.replace(tmp, target)
        fsync_path(self.layout.rejected)

    def _changes_tables(self) -> bool:
        """Whether the commit changes a table: one is replaced, received rows, or does not exist
        yet (it is made, empty); else only the state and the run record are stored."""
        return self.replace or bool(self._gone_count) or any(
            self.stage.rows(t.name) or self._current[t.name] is None for t in self.stream.tables
        )

    def _build_generation(self, table: TableSpec, parent: TableSpec | None, run_id: str, at: str) -> Path:
        commit_id = f"{run_id}-{uuid.uuid4().hex[:8]}"  # unique even when a run commits a stream twice
        generation = self.layout.new_generation(table.name, commit_id)
        old_files, have, has_meta = self._old_files[table.name], self._have[table.name], self._has_meta[table.name]
        staged = self.stage.extra_types.get(table.name, {}) if self.stage.rows(table.name) else {}
        final, changed = plan_columns(table, have, staged)
        self._changes += [(table.name, c, kind) for c, kind in changed]
        if final:
            new = new_rows_sql(table, self._staged(table), final, staged)
        else:
            new = self._latest(table)
        if self.tracks_changes:  # the hash of a first load's rows (its parts' too) is left for a comparison to compute
            new = with_meta(new, table, hashed=bool(old_files) and not self._parts.count)
        self.sql.execute(f"CREATE OR REPLACE TEMP VIEW _new AS {new}")
        reshape = bool(changed) or (self.tracks_changes and bool(old_files) and not has_meta)  # every file rewritten
        if self._parts.links_stored(reshape):  # a part's keys apart from those stored: none of their rows replaced
            for old in old_files:
                link_or_copy(old, generation / old.name)
        elif old_files:
            drop, mark = self._conditions(table, parent)
            columns = carried_columns(table, final, have)  # an old row in the new generation's shape
            if self.tracks_changes:
                columns += ", " + meta_columns(has_meta, mark, at)
            for old in old_files:
                carry_over(self.sql, old, generation, drop, newly_marked(has_meta, mark), columns, reshape, ROW_GROUP_ROWS)
        if self.replace and self.tracks_changes:  # rows marked gone upstream outlive a full refresh (still marked)
            keep_marked(self.sql, table, self._before[table.name], final, generation / f"kept-{commit_id}.parquet", ROW_GROUP_ROWS)
        new_rows = self.sql.execute("SELECT count(*) FROM _new").fetchall()[0][0]
        if new_rows or not any(generation.iterdir()):
            target = generation / f"part-{commit_id}.parquet"
            self.sql.execute(f"COPY (SELECT * FROM _new) TO {sql_path(target)} (FORMAT parquet, ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
        return generation

    def _conditions(self, table: TableSpec, parent: TableSpec | None) -> tuple[str, str | None]:
        """SQL on an old row `o`: (dropped: its key is staged again; marked: the API no longer has
        it, a record proven gone or a child row its parent fetched again no longer has). A stream
        that keeps no `_sqquid_deleted_at`, or `--hard-delete`: the latter are dropped too."""
        same = " AND ".join(f"o.{_q(k)} IS NOT DISTINCT FROM n.{_q(k)}" for k in table.primary_key)
        replaced, removed = f"EXISTS (SELECT 1 FROM _new n WHERE {same})", []
        if table.parent_link and parent is not None:
            link, parent_key = table.parent_link
            self.sql.execute(f"CREATE OR REPLACE TEMP TABLE _parents AS SELECT DISTINCT {_q(parent_key)} AS k FROM {self._staged(parent)}")
            removed.append(f"o.{_q(link)} IN (SELECT k FROM _parents)")
        gone = gone_condition(self.stream, table) if self._gone_count else None
        removed += [gone] if gone else []
        if not removed:
            return replaced, None
        if self.tracks_changes and not self.hard_delete:
            return replaced, f"coalesce({' OR '.join(removed)}, false)"
        return f"coalesce({' OR '.join([replaced, *removed])}, false)", None

    def abort(self) -> None:
        self.stage.discard()
