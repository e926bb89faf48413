"""Committing a run's pages as it goes: every few seconds the pages staged so far are stored
(data + state + run row, one transaction, `writer.commit_part`) while the bucket paces the next
ones, so that the commit after the last page is small and the commits of many accounts to one
DuckDB file spread over their runs instead of queueing at the end.

Only a writer that says it can (`commits_in_parts`: a first load, where what is stored is only
ever rows this run received) is committed in parts. The state a part stores is the run's old
one: the cursors move with the run's last commit, after the count check, as they always did; a
crash between parts leaves whole rows merged by key and the old cursors, and the next run reads
from them again.
"""

from __future__ import annotations

import time
from typing import Callable

from .runs import CHANGE_COLUMNS
from .state import StreamState

COMMIT_SECONDS = 10.0  # a part at most every this many seconds (`RunOptions.commit_seconds`; inf: never)


class PartCommits:
    """When a run commits the pages staged so far, and that commit."""

    def __init__(self, run, writer, old_state: StreamState, seconds: float | None,
                 clock: Callable[[], float] = time.monotonic):
        self.run, self.writer, self.old_state = run, writer, old_state
        self.seconds = COMMIT_SECONDS if seconds is None else seconds
        self.enabled = self.seconds != float("inf") and bool(getattr(writer, "commits_in_parts", False))
        self.clock = clock
        self.last = clock()

    def page_staged(self) -> None:
        """A page was staged: a part is committed when the last one is `seconds` old and no other
        destination of the file is committing (else it is tried again after the next page)."""
        if self.enabled and self.clock() - self.last >= self.seconds and self.commit(wait=False):
            self.last = self.clock()

    def commit(self, wait: bool = True) -> bool:
        run = self.run
        record = run.run_record("running")  # replaced by the run's last commit (or its failure)
        if not self.writer.commit_part(self.old_state, record, wait=wait):
            return False
        for name in CHANGE_COLUMNS:  # the writer counted this part's records into the run row
            setattr(run.result, name, getattr(record, name))
        return True
