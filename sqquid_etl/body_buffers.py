"""Buffers that large answers' bodies are read into and used again: the list pages of many
accounts in one process (`accounts_run` gives their clients' transports one `BodyBuffers`).

A body of ~280 KB read into a fresh block was mapped, faulted in page by page as the socket's data
was copied into it, and unmapped once freed (glibc's fixed 128 KB threshold, `heap.py`): ~70 page
faults a page of orders, a third of the run's, and an unmapping that interrupts the process's other
threads (docs/benchmarks.md, twelfth session). Read into a buffer used before, it costs neither.
`http_wire` reads a body into `take(length)`; the page's consumer gives it back once the page is
converted (`page_body.PageBody.converted`), and it is kept only when provably unused.
"""

from __future__ import annotations

import sys
import threading


class BodyBuffers:
    """Buffers that list pages' bodies are read into (`http_wire`), given back once the page is
    converted and used again for the next body, instead of a new block of memory each page.

    A buffer is a bytearray as long as its body (with some room to grow: bodies of one stream are
    of about one size), so that everything that reads a body reads it unchanged (Arrow's reader,
    msgspec, json). It is used again only when provably unused: no other reference to it
    (`sys.getrefcount`) and no export of its memory (a memoryview, an Arrow buffer, a msgspec.Raw:
    a bytearray exported cannot be resized). Else it is left to whoever holds it. At most `kept`
    buffers wait unused; bodies under `LEAST` bytes are read as bytes."""

    LEAST = 64 * 1024

    def __init__(self, kept: int = 32):
        self.kept = kept
        self._free: list[bytearray] = []
        self._lock = threading.Lock()
        self.made = self.reused = 0  # buffers made, used again
        self.returned = self.refused = 0  # buffers given back and kept, given back but held (not kept)

    def take(self, length: int) -> bytearray:
        """A buffer of `length` bytes (its content to be overwritten): the one given back last
        that has room for it, else a new one (and the last given back, too small, let go)."""
        with self._lock:
            fits = next((i for i in reversed(range(len(self._free))) if _room(self._free[i]) > length), None)
            buffer = self._free.pop(fits) if fits is not None else None
            if buffer is None and self._free:
                self._free.pop()  # (a short page's buffer: bodies of one stream are of about one size)
            if buffer is None:
                self.made += 1
            else:
                self.reused += 1
        if buffer is None:
            buffer = bytearray(length + length // 16 + 4096)
            del buffer[length:]  # (the room kept: a bytearray shrunk by less than half keeps its memory)
            return buffer
        if len(buffer) > length:
            del buffer[length:]
        elif len(buffer) < length:
            buffer += bytes(length - len(buffer))  # (within its room: no new block)
        return buffer

    def give_back(self, body: "bytes | bytearray", held_by_caller: int = 0) -> bool:
        """`body` kept for another answer when it is one of these buffers and nothing else holds it
        (`held_by_caller`: the references the caller still has itself). Returns whether it was kept."""
        if type(body) is not bytearray:
            return False
        if sys.getrefcount(body) > _UNSHARED + held_by_caller or not _resizable(body):
            with self._lock:
                self.refused += 1
            return False
        with self._lock:
            if len(self._free) < self.kept:
                self._free.append(body)
                self.returned += 1
                return True
        return False


def _room(buffer: bytearray) -> int:
    """The bytes a buffer holds without a new block (bytearray.__alloc__ where CPython has it)."""
    alloc = getattr(buffer, "__alloc__", None)
    return alloc() - 1 if alloc is not None else len(buffer)


def _resizable(buffer: bytearray) -> bool:
    """Whether no export of the buffer's memory exists (a memoryview, an Arrow buffer, a msgspec.Raw)."""
    try:
        buffer.append(0)
    except BufferError:
        return False
    del buffer[-1]
    return True


def _references(body: bytearray) -> int:
    return sys.getrefcount(body)


# the references `sys.getrefcount` counts inside `give_back` for a body passed by a caller that keeps none
_UNSHARED = _references(bytearray())
