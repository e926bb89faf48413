"""The CPU a run of many accounts shares: at most a few threads work on pages at once.

A hundred accounts in one process run a few hundred threads (each account's runner and fetch
workers). When the CPU is short, every thread with Python to run waits for the interpreter's
lock, and CPython wakes each waiter every switch interval (5 ms) to ask for it again: with ~200
waiters that is tens of thousands of futex calls a second, a quarter or more of the process's
CPU spent handing the lock around (docs/benchmarks.md, ninth and tenth sessions). A thread that
waits here instead sleeps on a lock of its own until a slot is handed to it: it costs nothing
while it waits, and the interpreter's lock is wanted by only the few threads holding a slot.

The page work gated (`held()`): decoding a body (fetch.page_reader), converting a page
(read.read_tables), staging it (engine). Nothing gated waits for anything but the CPU (no
destination lock, no socket), so a slot is always given back soon. A thread already holding a
slot does not take another (nested sections run in the one slot). Slots are handed out in the
order they were asked for, so an account's page never waits behind a busier account's next ones;
the work of a page already fetched (its conversion and staging, by its account's thread: `first`)
before the decoding of pages just come, so that a page is converted and staged soon after it was
decoded, while it is still in the cache, and pages decoded do not pile up in memory waiting.

`UNGATED` (the default of a client) does nothing: one account, or a few, run as before.
"""

from __future__ import annotations

import collections
import os
import threading
from contextlib import contextmanager
from typing import Iterator


class CpuGate:
    """At most `slots` threads inside `held()` at once, first come first served; those that ask
    `held(first=True)` before those that do not."""

    consumers_first = True  # False: one queue for all (to compare: bench/accounts_inside.py BENCH_GATE_FIFO)

    def __init__(self, slots: int | None = None):
        self.slots = max(1, slots if slots is not None else (os.cpu_count() or 1))
        self._lock = threading.Lock()
        self._free = self.slots
        self._waiting: collections.deque[threading.Lock] = collections.deque()
        self._first: collections.deque[threading.Lock] = collections.deque()  # `held(first=True)`
        self._inside = threading.local()
        self.waits = 0  # times a thread found no slot free and waited (for benchmarks and tests)

    @contextmanager
    def held(self, first: bool = False) -> Iterator[None]:
        """A slot for the block. `first`: served before the threads that asked without it."""
        if getattr(self._inside, "held", False):
            yield
            return
        self._acquire(first and self.consumers_first)
        self._inside.held = True
        try:
            yield
        finally:
            self._inside.held = False
            self._release()

    @contextmanager
    def released(self) -> Iterator[None]:
        """The slot this thread holds given back for the block (it waits for something else than
        the CPU: a request asked again), taken again after it, before the pages just come."""
        if not getattr(self._inside, "held", False):
            yield
            return
        self._inside.held = False
        self._release()
        try:
            yield
        finally:
            self._acquire(self.consumers_first)
            self._inside.held = True

    def _acquire(self, first: bool) -> None:
        with self._lock:
            if self._free and not self._waiting and not self._first:
                self._free -= 1
                return
            handed = threading.Lock()
            handed.acquire()
            (self._first if first else self._waiting).append(handed)
            self.waits += 1
        handed.acquire()  # released by `_release`: the slot is this thread's

    def _release(self) -> None:
        with self._lock:
            if self._first or self._waiting:  # the slot goes straight to the first waiter
                (self._first or self._waiting).popleft().release()
            else:
                self._free += 1


class _Ungated:
    """No gate: every thread works at once (one account, or a few)."""

    slots = None
    waits = 0

    @contextmanager
    def held(self, first: bool = False) -> Iterator[None]:
        yield

    @contextmanager
    def released(self) -> Iterator[None]:
        yield


UNGATED = _Ungated()
