"""The DuckDB a Parquet destination reads its staged pages and files with, and merges by.

A single-account destination has an in-memory DuckDB of its own (as ever). The destinations bound to
the accounts of one directory in a process share one: each has a connection (a cursor) of it, its
own temporary views and transactions, the database's memory limit and threads shared by all. An
in-memory DuckDB costs ~4.4 MB of RSS before any query (a cursor of one: ~0.3 MB), so a hundred
accounts' destinations, a database each, held ~440 MB for nothing (docs/benchmarks.md, tenth
session). The shared database's limit is what the commits that may run at once had each
(`commit_slots.COMMITS_AT_ONCE` x the default's), unless one was set (then that one, for all).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..settings import DEFAULT_MEMORY_LIMIT, Tuning
from .commit_slots import COMMITS_AT_ONCE
from .duckdb_engine import duckdb
from .duckdb_shared import Shared, acquire, release as shared_release
from .duckdb_tuning import tune
from .merge_sql import sql_path


def shared_limit(tuning: Tuning) -> Tuning:
    """The tuning of a database the accounts' destinations share."""
    if tuning.memory_limit:
        return tuning
    megabytes = int(DEFAULT_MEMORY_LIMIT.removesuffix("MB")) * COMMITS_AT_ONCE
    return replace(tuning, memory_limit=f"{megabytes}MB")


def _database(spill: Path, tuning: Tuning) -> Any:
    conn = duckdb.connect()
    try:
        conn.execute(f"SET temp_directory = {sql_path(spill)}")
        tune(conn, tuning)
    except BaseException:
        conn.close()
        raise
    return conn


def connect(spill: Path, tuning: Tuning, account: str | None) -> tuple[Shared | None, Any]:
    """A connection for a destination of a location whose DuckDB spills into `spill`: a database of
    its own (`account` None: no Shared), or a cursor of the database the location's accounts share
    in this process (`duckdb_shared`, as the destinations of one DuckDB file share theirs; keyed by
    the spill directory)."""
    if account is None:
        return None, _database(spill, tuning)
    return acquire(spill, lambda: _database(spill, shared_limit(tuning)), lambda conn: None)


def release(shared: Shared | None, conn: Any) -> None:
    """The destination's connection closed; a shared database too when its last user went."""
    if shared is None:
        conn.close()
    else:
        shared_release(shared, conn)
