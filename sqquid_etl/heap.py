"""The C heap of the program's own process while it runs many accounts (glibc's; elsewhere nothing).

A hundred accounts' threads allocate and free pages, Arrow's buffers and Python's objects in
glibc's arenas all run long, and what they free stays in the arenas (fragments between blocks
still in use): at 100 accounts the free memory grew from ~40 MB at 20 s to 80-137 MB at 3 minutes.
Two things are done about it, both process-wide, so both only by `sqquid-etl extract
--account/--all-accounts` in its own process (`accounts_cli`):
- `large_blocks_mapped`: blocks of 128 KB and more (the pages' bodies, Arrow's large buffers)
  mapped and unmapped each time, never kept in the arenas once freed;
- `Trimmer`: every `TRIM_SECONDS` the arenas' free pages given back to the system
  (`malloc_trim(0)`: the whole pages inside free chunks; a few ms, holding each arena's lock in
  turn): no CPU seen, the peak of RSS 1-4 MB lower at 100 accounts x 60 s (docs/benchmarks.md,
  eleventh session; longer runs to be measured).
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any, Callable

TRIM_SECONDS = 5.0


def _libc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def large_blocks_mapped() -> None:
    """The C heap's large blocks (the pages' bodies, Arrow's buffers of 128 KB and more) mapped and
    unmapped each time (a fixed mmap threshold), never kept in glibc's arenas once freed, where a
    hundred accounts' threads left them: at 40 accounts the heap's free memory 184-191 -> 44-47 MB,
    peak RSS -17% (docs/benchmarks.md, eighth session). Elsewhere than glibc, nothing."""
    libc = _libc()
    try:
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD (fixed: no longer raised as blocks are freed)
    except AttributeError:
        pass


def malloc_trim() -> Callable[[int], Any] | None:
    """glibc's `malloc_trim`, or None elsewhere."""
    return getattr(_libc(), "malloc_trim", None)


class Trimmer:
    """While in its `with` block, a thread gives the C heap's free pages back every `seconds`."""

    def __init__(self, seconds: float = TRIM_SECONDS, trim: Callable[[int], Any] | None = None):
        self.seconds = seconds
        self.trim = trim if trim is not None else malloc_trim()
        self.trims = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqquid-heap-trim", daemon=True)

    def __enter__(self) -> "Trimmer":
        if self.trim is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            self.trim(0)
            self.trims += 1
