"""One DuckDB database a file within a process, shared by the destinations open on it.

Several destinations (one an account, each used by its own thread) may be open on one DuckDB
file at once. DuckDB lets one process hold a file for writing; within it, each destination has
its own connection (a cursor of the one database), so reads and the staging of pages go on in
parallel. Writes take the file's lock (`Shared.lock`): one commit at a time, one writer, and a
thread waits only while another commits. `generation` counts the commits, so a destination
knows when its cached catalog (`DuckDBDestination.columns`) may be stale.

The first destination to open the file (its users go from 0 to 1) prepares it: the crashed run's
staged pages are removed then, and never while another destination of the process stages.

The Parquet destinations bound to the accounts of one location share an in-memory database the
same way, keyed by its spill directory (`parquet_sql.py`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .duckdb_own import cursor

_LOCK = threading.Lock()  # guards _OPEN
_OPEN: dict[Path, "Shared"] = {}


@dataclass
class Shared:
    """A DuckDB file open in this process: its root connection, its write lock, its users."""

    path: Path
    conn: Any
    users: int = 0
    generation: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)
    writing: set = field(default_factory=set)  # the accounts a destination of this process writes
    group: Any = None  # the accounts' parts committed together (`duckdb_group.GroupWriter`), once one is
    pooled: bool = False  # its blocks taken from a pool (`duckdb_tuning.pool_blocks`), once many accounts write it


def group_writer(shared: Shared, tuning: Any) -> Any:
    """The file's group writer (`duckdb_group.py`), made when first asked (under the file's lock;
    once made, not: the group writer holds that lock through its transaction, ~1 s at 100 accounts,
    and an account handing it a part would wait that long for nothing)."""
    from .duckdb_group import GroupWriter

    if shared.group is not None:
        return shared.group
    with shared.lock:
        if shared.group is None:
            shared.group = GroupWriter(shared, tuning, new_cursor(shared))
        return shared.group


def new_cursor(shared: Shared) -> Any:
    """Another connection to the file's database, made under the process's lock as every
    destination's is: the root connection takes one call at a time, and refuses a second thread's
    meanwhile (DuckDB's ResourceInUseException: the group writer's, made by its thread while an
    account opened its destination, failed every account of a run)."""
    with _LOCK:
        return cursor(shared.conn)


def acquire(path: Path, connect: Callable[[], Any], first: Callable[[Any], None]) -> tuple[Shared, Any]:
    """The file's shared database (opened by `connect()`, then `first(conn)` when this process had
    it not open) and a new connection (cursor) to it for the caller."""
    key = path.resolve()
    with _LOCK:
        shared = _OPEN.get(key)
        if shared is None:
            conn = connect()
            try:
                first(conn)
            except BaseException:
                conn.close()
                raise
            shared = _OPEN[key] = Shared(key, conn)
        shared.users += 1
        try:
            return shared, cursor(shared.conn)
        except BaseException:
            _release(shared)
            raise


def release(shared: Shared, cursor: Any) -> None:
    """The caller's connection closed; the database too when it was the last user."""
    with _LOCK:
        try:
            cursor.close()
        finally:
            _release(shared)


def _release(shared: Shared) -> None:
    shared.users -= 1
    if shared.users <= 0:
        _OPEN.pop(shared.path, None)
        if shared.group is not None:
            shared.group.stop()
        shared.conn.close()


def opened(path: Path) -> Shared | None:
    """The file's shared database when this process has it open (read-only opens use it too)."""
    with _LOCK:
        return _OPEN.get(path.resolve())


def look(path: Path, connect_read_only: Callable[[], Any], work: Callable[[Any], Any]) -> Any:
    """`work(conn)` on a connection to the file: a cursor of its shared database when this
    process has it open, else a read-only connection, opened and closed while no destination of
    the process opens the file (DuckDB refuses a file open twice in two configurations)."""
    with _LOCK:
        shared = _OPEN.get(path.resolve())
        conn = cursor(shared.conn) if shared is not None else connect_read_only()
        try:
            return work(conn)
        finally:
            conn.close()
