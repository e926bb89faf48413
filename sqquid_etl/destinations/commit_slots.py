"""How many commits of destinations bound to accounts run at once in one process.

A run of many accounts into Parquet commits each account's stream at its end (and a first load
in parts as it goes, `parquet_parts.py`), and the accounts end together: each commit reads its
staged pages and writes a generation with the DuckDB the accounts share, which holds memory
meanwhile. A hundred at once held 1.4 GB, for no gain in time: the commits want CPU, and the
machine has a few cores. So a commit of an account's destination waits for one of
`COMMITS_AT_ONCE` slots (a part, one of `PARTS_AT_ONCE` and a commit slot, only when they are
free at once); a single-account destination never waits.
"""

from __future__ import annotations

import contextlib
import threading
from typing import ContextManager

COMMITS_AT_ONCE = 4
_SLOTS = threading.BoundedSemaphore(COMMITS_AT_ONCE)
# parts committed as the runs go (`parquet_parts.py`), at once in a process: each holds DuckDB's memory
# for its rows while every account still fetches (parts raised the RSS while fetching ~40-50 MB at 100
# accounts x 60 s, docs/benchmarks.md eleventh session): one at a time, whatever the commit slots
PARTS_AT_ONCE = 1
_PARTS = threading.BoundedSemaphore(PARTS_AT_ONCE)


def commit_slot(account: str | None) -> ContextManager:
    """A slot for a commit of `account`'s destination (None: a single-account one, no slot)."""
    return _SLOTS if account is not None else contextlib.nullcontext()


def take_slot(account: str | None, wait: bool = True) -> bool:
    """Take a slot for `account`'s commit (None: none needed): whether it was taken (`wait`
    False: only when one is free now). Given back by `release_slot`."""
    return account is None or _SLOTS.acquire(blocking=wait)


def release_slot(account: str | None) -> None:
    if account is not None:
        _SLOTS.release()


def take_part_slot(account: str | None, wait: bool = True) -> bool:
    """Take a slot for a part of `account`'s commit: one of `PARTS_AT_ONCE`, then a commit slot
    (`take_slot`); whether both were taken (`wait` False: only when both are free now). Given
    back by `release_part_slot`."""
    if account is None:
        return True
    if not _PARTS.acquire(blocking=wait):
        return False
    if take_slot(account, wait):
        return True
    _PARTS.release()
    return False


def release_part_slot(account: str | None) -> None:
    if account is not None:
        release_slot(account)
        _PARTS.release()
