"""How many commits of destinations bound to accounts run at once in one process.

A run of many accounts into Parquet commits each account's stream once, at its end, and the
accounts end together: each commit reads its staged pages and writes a generation with a DuckDB
of its own, which holds up to its memory limit meanwhile. A hundred at once held 1.4 GB, for no
gain in time: the commits want CPU, and the machine has a few cores. So a commit of an account's
destination waits for one of `COMMITS_AT_ONCE` slots; a single-account destination never waits.
"""

from __future__ import annotations

import contextlib
import threading
from typing import ContextManager

COMMITS_AT_ONCE = 4
_SLOTS = threading.BoundedSemaphore(COMMITS_AT_ONCE)


def commit_slot(account: str | None) -> ContextManager:
    """A slot for a commit of `account`'s destination (None: a single-account one, no slot)."""
    return _SLOTS if account is not None else contextlib.nullcontext()
