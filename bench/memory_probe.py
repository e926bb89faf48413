"""Where a process's memory is at its peak of RSS, sampled from inside it (issue #15).

    python bench/memory_probe.py OUT.json -m sqquid_etl.cli extract --all-accounts ...

runs the module as `python -m` would, with a thread that samples every 0.5 s: RSS and, at each new
peak, what it is made of: `/proc/self/smaps_rollup` (anonymous, file-backed), the C heap
(`mallinfo2`: in use in glibc's arenas, free in them, mapped blocks), Arrow's bytes allocated and
DuckDB's (`duckdb_memory()`), once the program itself has loaded them (the probe imports neither,
so the program sets Arrow's allocator as it does alone), Python's objects (`sys.getallocatedblocks`)
and the threads. At exit the peak and an RSS timeline (most every 5 s) go to OUT.json.
`bench/accounts.py --probe` runs the client so; `bench/accounts_inside.py` uses `Probe` in-process.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import runpy
import sys
import threading
import time


class MallInfo(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]


def heap() -> dict:
    """The C heap (glibc's mallinfo2, every arena): MB in use, free in the arenas, in mapped blocks."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return {}
    return {"C heap in use MB": info.uordblks / 2**20, "C heap free MB": info.fordblks / 2**20,
            "C heap mapped blocks MB": info.hblkhd / 2**20, "C heap arenas MB": info.arena / 2**20}


def smaps() -> dict:
    out = {}
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in ("Rss", "Anonymous", "Shared_Clean", "Private_Clean"):
                    out[f"{name} MB"] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    return out


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


def duckdb_mb() -> float | None:
    shared = sys.modules.get("sqquid_etl.destinations.duckdb_shared")
    if shared is None or not hasattr(shared, "new_cursor"):  # (before it: a cursor of the root could fail an account)
        return None
    total = 0.0
    for one in list(shared._OPEN.values()):
        try:  # (a connection of the root made under the process's lock, as the program's own)
            cursor = shared.new_cursor(one)
            total += cursor.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchall()[0][0] / 2**20
            cursor.close()
        except Exception:  # noqa: BLE001 - closing meanwhile
            pass
    return total


def thread_kinds() -> str:
    """The threads by name, numbers left out (`sqquid-account-acct1/fetch-2` -> `sqquid-account-acct/fetch-`)."""
    import collections
    import re

    kinds = collections.Counter(re.sub(r"\d+", "", t.name) for t in threading.enumerate())
    return " ".join(f"{name}:{n}" for name, n in kinds.most_common(8))


def python_top(limit: int = 12) -> list[str]:
    """Where Python's traced memory is (`tracemalloc` started): the largest files, MB."""
    import tracemalloc

    if not tracemalloc.is_tracing():
        return []
    stats = tracemalloc.take_snapshot().statistics("filename")
    total = sum(s.size for s in stats)
    return [f"traced {total / 2**20:.0f} MB"] + [f"{s.traceback[0].filename.split('site-packages/')[-1]} "
                                                 f"{s.size / 2**20:.1f}" for s in stats[:limit]]


class Probe:
    """Samples every `every` s; `peak` holds the breakdown at the highest RSS seen."""

    def __init__(self, every: float = 0.5):
        self.peak: dict = {"RSS MB": 0.0}
        self.timeline: dict[int, float] = {}
        self.parts: dict[int, str] = {}  # every 20 s: RSS / C heap in use / free / mapped / Arrow MB
        self.began = time.monotonic()
        self.extra = lambda: {}  # more figures at a peak (the in-process bench: pages held)
        self._stop = threading.Event()
        self._every = every
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-probe")

    def start(self) -> "Probe":
        self.began = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.sample()

    def sample(self) -> None:
        rss = rss_mb()
        second = int(time.monotonic() - self.began) // 5 * 5
        if second not in self.timeline and second % 20 == 0:  # what the RSS is made of, every 20 s
            self.parts[second] = _parts(rss)
        self.timeline[second] = max(self.timeline.get(second, 0.0), rss)
        if rss <= self.peak["RSS MB"]:
            return
        peak = {"RSS MB": rss, "at s": time.monotonic() - self.began, **smaps(), **heap()}
        pa = sys.modules.get("pyarrow")
        if pa is not None and hasattr(pa, "total_allocated_bytes"):
            peak["Arrow MB"] = pa.total_allocated_bytes() / 2**20
        duck = duckdb_mb()
        if duck is not None:
            peak["DuckDB MB"] = duck
        peak["Python blocks"] = sys.getallocatedblocks()
        peak["threads"] = threading.active_count()
        peak["thread kinds"] = thread_kinds()
        peak.update(self.extra())
        self.peak = peak

    def summary(self) -> dict:
        return {"peak": self.peak, "timeline": [v for _, v in sorted(self.timeline.items())],
                "parts": " ".join(f"{s}s:{v}" for s, v in sorted(self.parts.items()))}


def _parts(rss: float) -> str:
    """RSS/in use/free/mapped/Arrow, MB (the C heap's three from mallinfo2)."""
    h = heap()
    pa = sys.modules.get("pyarrow")
    arrow = pa.total_allocated_bytes() / 2**20 if pa is not None and hasattr(pa, "total_allocated_bytes") else 0.0
    return "/".join(f"{v:.0f}" for v in (rss, h.get("C heap in use MB", 0), h.get("C heap free MB", 0),
                                          h.get("C heap mapped blocks MB", 0), arrow))


def describe(peak: dict) -> str:
    return ", ".join(f"{k} {v:.0f}" if isinstance(v, float) else f"{k} {v}" for k, v in peak.items())


def main() -> None:
    out, flag, module, *args = sys.argv[1:]
    assert flag == "-m", "usage: memory_probe.py OUT.json -m MODULE ARGS..."
    probe = Probe().start()

    def write() -> None:
        probe.stop()
        with open(out, "w") as f:
            json.dump(probe.summary(), f)
    atexit.register(write)
    sys.argv = [module, *args]
    sys.path[0] = os.getcwd()  # as `python -m` puts the current directory first
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
