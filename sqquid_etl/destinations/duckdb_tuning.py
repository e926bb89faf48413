"""How a DuckDB connection that merges staged pages uses memory and threads, from a `Tuning`
resolved by the caller (nothing here reads the environment), and the memory-limit retry."""

from __future__ import annotations

import logging
from typing import Any, Callable, TypeVar

from ..errors import ConfigError
from ..settings import DEFAULT_MEMORY_LIMIT, Tuning
from .duckdb_engine import duckdb

log = logging.getLogger(__name__)
T = TypeVar("T")

LIMIT_SETTING = "SQQUID_DUCKDB_MEMORY_LIMIT or config [tuning] duckdb_memory_limit"

# a file many accounts write at once (`accounts=True`): their queries and the rows committed but not
# yet checkpointed share the one database's limit (at 40 accounts and 40 MB a query ran out of it, when
# each account committed its parts; their parts committed together by one writer, `duckdb_group.py`,
# 100 accounts ran within 64 MB, peak RSS 620 -> 528 MB: docs/benchmarks.md, eighth session)
ACCOUNTS_MEMORY_LIMIT = "64MB"
CHECKPOINT_THRESHOLD = "4MB"  # of write-ahead log: then a checkpoint writes the rows it holds to the file
# a file of many accounts: each checkpoint compresses again the tables' last row groups, which every
# account's commits fill, so one every 4 MB cost a fifth more CPU an order (bench: 20 accounts' parts,
# docs/benchmarks.md "First loads"); 16 MB of log holds ~37 MB of rows, within its 64 MB limit
ACCOUNTS_CHECKPOINT_THRESHOLD = "16MB"
# a file of many accounts: its buffer blocks (the tables' segments, the blocks the group writer's INSERT
# builds and writes) taken from a pool of its memory limit's size, used again, not allocated and freed
# each time. At its limit DuckDB evicts a cached block for each new one; with blocks of the C heap each
# new one was fresh memory faulted in 4 KB at a time (and each eviction flushes the allocators:
# `malloc_trim` of the whole process). Touched as used, never given back (DuckDB's memory stays at its
# limit through a run anyway). None: blocks from the C heap (to compare: bench/accounts_inside.py
# BENCH_BLOCK_ALLOCATOR=0); docs/benchmarks.md, thirteenth session (group13)
ACCOUNTS_BLOCK_ALLOCATOR: str | None = ACCOUNTS_MEMORY_LIMIT
# the pool is set once this many accounts have the file open in the process (`accounts_run.MANY_ACCOUNTS`'s
# number): below it the database rarely reaches its limit, and the pool's touched blocks were RSS kept for
# nothing (one account through `--all-accounts`: peak RSS 156 -> 172 MB; docs/benchmarks.md, fourteenth session)
POOL_ACCOUNTS = 10

# merges that run out of the default limit are run again with these (never above what they need)
ESCALATED_MEMORY_LIMITS = ("256MB", "1GB")


def tune(conn: Any, tuning: Tuning, accounts: bool = False) -> None:
    """Settings for a connection that merges staged pages: memory bounded by `tuning.memory_limit`
    (default DEFAULT_MEMORY_LIMIT), spilling to disk beyond it, and `tuning.threads` threads
    (default 1: each holds its own buffers, and an extract's wall time is the API's rate limit,
    not the merge)."""
    conn.execute("SET preserve_insertion_order = false")
    conn.execute("SET allocator_flush_threshold = '8MB'")  # give freed memory back after each task
    # rows committed by small transactions (the parts of a first load, many accounts' commits to one
    # file) are held in memory until a checkpoint writes them: at DuckDB's 16 MB of log, ~37 MB of
    # them, the whole default memory limit, and a query of another account ran out of memory (a file of
    # many accounts at its own 64 MB limit: every 16 MB)
    shared = accounts and not tuning.memory_limit
    conn.execute(f"SET checkpoint_threshold = '{ACCOUNTS_CHECKPOINT_THRESHOLD if shared else CHECKPOINT_THRESHOLD}'")
    limit = (tuning.memory_limit or (ACCOUNTS_MEMORY_LIMIT if accounts else DEFAULT_MEMORY_LIMIT)).strip()
    try:
        conn.execute("SET memory_limit = '" + limit.replace("'", "''") + "'")
    except duckdb.Error as exc:
        raise ConfigError(f"DuckDB memory limit {limit!r} ({LIMIT_SETTING}): {exc}") from None
    _check_threads(tuning)
    conn.execute(f"SET threads = {tuning.threads}")


def pool_blocks(conn: Any, tuning: Tuning, accounts: int) -> bool:
    """A file of accounts, `accounts` of them writing it in the process: from `POOL_ACCOUNTS`, within its
    default limit, its blocks taken from a pool of that limit (`ACCOUNTS_BLOCK_ALLOCATOR`; a limit the user
    chose: not). Returns whether that was decided (set once a file: then never asked again)."""
    if accounts < POOL_ACCOUNTS:
        return False
    if tuning.memory_limit or not ACCOUNTS_BLOCK_ALLOCATOR:
        return True
    try:
        conn.execute(f"SET block_allocator_memory = '{ACCOUNTS_BLOCK_ALLOCATOR}'")
    except duckdb.Error:  # a DuckDB before the setting (1.3; pyproject admits 1.0): blocks from the C heap
        pass
    return True


def _check_threads(tuning: Tuning) -> None:
    if not isinstance(tuning.threads, int) or tuning.threads < 1:
        raise ConfigError(f"DuckDB threads {tuning.threads!r} (SQQUID_DUCKDB_THREADS or config [tuning] duckdb_threads): "
                          "must be a whole number, at least 1")


def check_tuning(tuning: Tuning) -> None:
    """The tuning is usable (a memory limit DuckDB understands, threads and rows per batch at
    least 1), or a ConfigError says which setting is not."""
    if not isinstance(tuning.flush_rows, int) or tuning.flush_rows < 1:
        raise ConfigError(f"rows per staged batch {tuning.flush_rows!r} (SQQUID_FLUSH_ROWS or config [tuning] flush_rows): "
                          "must be a whole number, at least 1")
    _check_threads(tuning)
    if tuning.memory_limit:  # only DuckDB knows which limits it understands (the default it does)
        with duckdb.connect() as conn:
            tune(conn, tuning)


def within_memory_limit(conn: Any, tuning: Tuning, stream: str, work: Callable[[], T]) -> T:
    """Run DuckDB work of a stream (a merge, which rolls itself back on failure). When it runs out
    of the default memory limit it is run again with a larger one (logged), so the low default
    costs no failure; the limit is then set back. A limit the user set is kept: running out of
    it is a ConfigError that says which setting to raise."""
    if tuning.memory_limit:
        return _or_config_error(work, stream, tuning.memory_limit)
    limits = (DEFAULT_MEMORY_LIMIT, *ESCALATED_MEMORY_LIMITS)
    before = None  # the limit in force, set back after (the default, or a file of many accounts' own)
    try:
        for smaller, larger in zip(limits, limits[1:]):
            try:
                return work()
            except duckdb.OutOfMemoryException:
                log.warning("stream %s: DuckDB ran out of %s while merging; merging again with %s", stream, smaller, larger)
                before = before or conn.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
                conn.execute(f"SET memory_limit = '{larger}'")
        return _or_config_error(work, stream, limits[-1])
    finally:
        if before is not None:
            try:
                conn.execute(f"SET memory_limit = '{before}'")
            except duckdb.OutOfMemoryException:  # what the database holds now does not fit: kept larger
                log.debug("DuckDB's memory limit stays raised: the database holds more than %s", before)


def _or_config_error(work: Callable[[], T], stream: str, limit: str) -> T:
    try:
        return work()
    except duckdb.OutOfMemoryException as exc:
        raise ConfigError(
            f"stream {stream!r}: DuckDB ran out of its memory limit ({limit}) while merging the staged pages "
            f"({str(exc).splitlines()[0]}); nothing of the stream was stored. Raise {LIMIT_SETTING}"
        ) from None
