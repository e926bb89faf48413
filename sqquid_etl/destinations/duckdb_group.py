"""One writer for a DuckDB file of many accounts: the parts of their first loads committed together.

Each account's first load commits its pages every few seconds as a part (`commit_parts.py`). In a
file of many accounts that was a transaction a part, one at a time on the file's one writer: at
100 accounts ten a second, each ~100 ms of CPU, whatever its rows (the statements of a commit, its
log written, a checkpoint compressing again the last row groups every account appends to). Here a
part that is plain (`plain_part`: its tables exist, each key once and apart from those the run's
parts stored, nothing undocumented or quarantined) is handed to the file's `GroupWriter` instead,
and the account stages its next pages at once. The group writer (a thread of the file) commits
every part waiting, of every account, every `GROUP_SECONDS` (sooner when an account asks for
its own, `settle`): one transaction, one INSERT a table over the staged files of all of them, the
run rows of all of them; each account's state is the one its parts store (its run's old one,
never past the rows stored). The last commit of such a first load, when plain too, is a part of
its own carrying the run's new state and last run row (`commit_last`): committed at once, with
the parts waiting beside it, and waited for; the account's parts before it are settled first, so
a part of it that failed fails the run and the new state is never stored without its rows.

All or nothing for every account, and apart: when the group's transaction fails, it is rolled
back and each part is committed in a transaction of its own, so a part that cannot be stored
fails its own account (its run raises that error at its next part or commit) and no other.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runs import REJECTED_TABLE, RUN_COLUMNS, RunRecord
from ..settings import Tuning
from ..state import StreamState
from .account_scope import ACCOUNT
from .duckdb_freshness import META_COLUMNS, Changes
from .duckdb_own import RUNS_TABLE, STATE_TABLE
from .duckdb_tuning import within_memory_limit
from .merge_sql import quote_identifier as q
from .staging_arrow import read_sql, staged_files, unregister

log = logging.getLogger(__name__)

# a part waits at most this long for the others: at 100 accounts ~50 parts a commit (~250,000 orders,
# 775,000 items: more than DuckDB's row group of 122,880 rows, which it may write to the file directly
# rather than through its log); the group writer's CPU a page -18% against 2 s (docs/benchmarks.md, tenth session)
GROUP_SECONDS = 5.0


@dataclass
class Part:
    """An account's part handed to the group: its staged files, its stream's state and run row."""

    account: str
    stream: str
    files: dict[str, tuple[Any, tuple[str, ...]]]  # table -> (its staged files, the columns to insert)
    state: str  # the state the part stores (JSON)
    run: RunRecord
    directory: Path  # the staged files' directory, removed once the part is done
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    taken: bool = False  # the group writer took it (it can no longer be withdrawn)
    at: float = field(default_factory=time.monotonic)  # when it was handed over


def plain_part(writer: Any, state: str, run: RunRecord) -> Part | None:
    """The part `writer` (a `DuckDBStreamWriter` bound to an account, after its first part) has
    staged, as a `Part`, when the group can store it by appending its rows (and the writer's
    bookkeeping of it: its keys' range, the records new); None when it must commit it itself."""
    stage, stream, stored = writer.stage, writer.stream, writer.dest.columns()
    if stage.rows(REJECTED_TABLE) or any(stage.extra_types.get(t.name) for t in stream.tables):
        return None
    if any(t.name not in stored or not {*t.column_names, *META_COLUMNS} <= set(stored[t.name]) for t in stream.tables):
        return None  # (the first part of the file creates the tables, with the columns of the run's definition)
    stage.finish()
    ranges = {t.name: stage.key_range(t.name) for t in stream.tables if stage.rows(t.name)}
    if any(r is None or not r[0] for r in ranges.values()):
        return None  # a key twice (or not known in Arrow): merged by the writer's own commit
    first = stream.tables[0].name
    staged_keys = ranges[first][1:] if first in ranges else None
    if staged_keys is not None and not writer._part_keys.apart(staged_keys):
        return None
    files = {name: (staged_files(stage, name), tuple(next(t for t in stream.tables if t.name == name).column_names))
             for name in ranges}
    writer._part_keys.add(staged_keys)
    return Part(writer.account, stream.name, files, state, run, stage.directory)


def commit_last(writer: Any, state: StreamState, run: RunRecord) -> bool:
    """The last commit of a first load committed in parts (`writer` bound to an account, its parts
    before it stored): when what it staged since is plain (`plain_part`), handed to the group
    writer as a part carrying the new state and the run's last row, and waited for (committed with
    the parts of other accounts waiting: one transaction for all; a first load after parts marks
    nothing gone). Returns False when the writer must commit it itself (by key)."""
    part = plain_part(writer, state.to_json(), run)
    if part is None:
        return False
    changes = Changes(new=writer.stage.rows(writer.stream.tables[0].name))  # keys once, apart from the parts': new
    changes.add_to(run)  # (before it is handed over: the group writes the run row as it is then)
    writer._changes = changes
    group = writer.dest.group()
    group.submit(part)
    group.settle([part])  # raises the error of a part that could not be stored (the state did not move)
    writer.dest._runs_written.add((run.run_id, run.stream))
    return True


class GroupWriter:
    """The parts waiting for the file's group commit, and the thread that commits them."""

    def __init__(self, shared: Any, tuning: Tuning, conn: Any, seconds: float | None = None):
        """`conn`: the thread's connection to the file (`duckdb_shared.new_cursor`, made by the
        caller under the process's lock: the root connection takes one call at a time)."""
        self.shared, self.tuning = shared, tuning
        self._conn = conn
        self.seconds = GROUP_SECONDS if seconds is None else seconds
        self._cond = threading.Condition()
        self._pending: list[Part] = []
        self._hurry = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._failed: BaseException | None = None  # what ended the thread (never, but then no part waits)

    def submit(self, part: Part) -> None:
        with self._cond:
            if self._failed is not None:
                part.error = self._failed
                part.done.set()
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sqquid-group-writer", daemon=True)
                self._thread.start()
            self._pending.append(part)
            self._cond.notify_all()

    def settle(self, parts: list[Part]) -> None:
        """Wait until these parts are committed (now, with those waiting beside them); raise the
        error of the first that could not be."""
        with self._cond:
            if any(not p.taken for p in parts):
                self._hurry = True
                self._cond.notify_all()
        for part in parts:
            part.done.wait()
        failed = next((p.error for p in parts if p.error is not None), None)
        if failed is not None:
            raise failed

    def withdraw(self, parts: list[Part]) -> None:
        """The parts of a run that failed: those not taken yet are dropped (their files removed),
        the others committed or failed as they go."""
        with self._cond:
            for part in parts:
                if not part.taken and part in self._pending:
                    self._pending.remove(part)
                    shutil.rmtree(part.directory, ignore_errors=True)
                    part.done.set()
        for part in parts:
            part.done.wait()

    def stop(self) -> None:
        """The file's last destination closed: the thread ends (every part was settled before)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        elif thread is None:
            self._conn.close()

    def _run(self) -> None:
        taken: list[Part] = []
        try:
            conn = self._conn  # (in the file's database: duckdb_own.connect attaches it)
            try:
                while (taken := self._take() or []):
                    self._commit(conn, taken)
            finally:
                conn.close()
        except BaseException as exc:  # the thread ends: no part waits for it (theirs fail, as the next ones)
            with self._cond:
                self._failed = exc
                parts, self._pending = [*taken, *self._pending], []
            for part in parts:
                if not part.done.is_set():
                    part.error = exc
                    part.done.set()

    def _take(self) -> list[Part] | None:
        """The parts to commit now (waiting until the oldest has waited `seconds`, or an account
        asks); None: stop."""
        with self._cond:
            while True:
                oldest = min((p.at for p in self._pending), default=None)
                if oldest is not None and (self._hurry or self._stopping or time.monotonic() - oldest >= self.seconds):
                    parts, self._pending, self._hurry = self._pending, [], False
                    for part in parts:
                        part.taken = True
                    return parts
                if self._stopping and not self._pending:
                    return None
                self._cond.wait(None if oldest is None else max(0.0, self.seconds - (time.monotonic() - oldest)))

    def _commit(self, conn: Any, parts: list[Part]) -> None:
        try:
            try:
                self._transaction(conn, parts)
            except Exception as exc:  # noqa: BLE001 - each part alone: only the one that fails fails
                if len(parts) == 1:
                    parts[0].error = exc
                else:
                    log.debug("the group commit of %d parts failed (%s): each committed alone", len(parts), exc)
                    for part in parts:
                        try:
                            self._transaction(conn, [part])
                        except Exception as alone:  # noqa: BLE001 - delivered to the part's own account
                            part.error = alone
        finally:
            for part in parts:
                shutil.rmtree(part.directory, ignore_errors=True)
                part.done.set()

    def _transaction(self, conn: Any, parts: list[Part]) -> None:
        """The rows of every part (one INSERT a table and column list), their states and run rows,
        in one transaction under the file's lock."""
        by_table: dict[tuple[str, tuple[str, ...]], list] = {}
        for part in parts:
            for table, (staged, columns) in part.files.items():
                by_table.setdefault((table, columns), []).append(staged)
        last = list({(p.account, p.stream): p for p in parts}.values())  # an account's last part: its state, run row

        def work() -> None:
            conn.execute("BEGIN TRANSACTION")
            try:
                for (table, columns), staged in by_table.items():
                    names = ", ".join(q(c) for c in columns)
                    conn.execute(f"INSERT INTO {q(table)} ({names}) SELECT {names} FROM {read_sql(conn, staged)}")
                _write_states(conn, last)
                _write_runs(conn, last)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        with self.shared.lock:
            try:
                within_memory_limit(conn, self.tuning, "(the parts of many accounts)", work)
            finally:
                unregister(conn)


def _write_states(conn: Any, parts: list[Part]) -> None:
    """Each part's stream state, replacing the account's row of the stream (two statements for all)."""
    keys = ", ".join("(?, ?)" for _ in parts)
    conn.execute(f"DELETE FROM {STATE_TABLE} USING (VALUES {keys}) v(account, stream) WHERE "
                 f"{STATE_TABLE}.{ACCOUNT} = v.account AND {STATE_TABLE}.stream = v.stream",
                 [v for p in parts for v in (p.account, p.stream)])
    rows = ", ".join("(?, ?, ?, now())" for _ in parts)
    conn.execute(f"INSERT INTO {STATE_TABLE} ({ACCOUNT}, stream, state, updated_at) VALUES {rows}",
                 [v for p in parts for v in (p.account, p.stream, p.state)])


def _write_runs(conn: Any, parts: list[Part]) -> None:
    """Each part's run row, replacing the one its account's previous part wrote."""
    keys = ", ".join("(?, ?, ?)" for _ in parts)
    conn.execute(f"DELETE FROM {RUNS_TABLE} USING (VALUES {keys}) v(account, run_id, stream) WHERE "
                 f"{RUNS_TABLE}.{ACCOUNT} = v.account AND {RUNS_TABLE}.run_id = v.run_id AND {RUNS_TABLE}.stream = v.stream",
                 [v for p in parts for v in (p.account, p.run.run_id, p.run.stream)])
    names = ", ".join(q(c) for c in (ACCOUNT, *RUN_COLUMNS))
    row = "(" + ", ".join("?" for _ in range(len(RUN_COLUMNS) + 1)) + ")"
    conn.execute(f"INSERT INTO {RUNS_TABLE} ({names}) VALUES {', '.join(row for _ in parts)}",
                 [v for p in parts for v in (p.account, *p.run.as_row().values())])
