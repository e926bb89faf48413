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


def free_by_size() -> str:
    """Where the C heap's free memory is, by the size of its free chunks (glibc's `malloc_info`,
    every arena's): MB free in chunks of < 1 KB, 1-4 KB, 4-64 KB, 64 KB-1 MB, >= 1 MB, and in the
    fast bins; "" elsewhere than glibc."""
    import re
    import tempfile

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.fdopen.restype = ctypes.c_void_p
        libc.fdopen.argtypes = [ctypes.c_int, ctypes.c_char_p]
        libc.fclose.argtypes = [ctypes.c_void_p]
        libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    except (OSError, AttributeError):
        return ""
    with tempfile.TemporaryFile() as f:
        stream = libc.fdopen(os.dup(f.fileno()), b"w")
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        f.seek(0)
        xml = f.read().decode()
    bounds = (1024, 4096, 65536, 2**20, float("inf"))
    sums = [0] * len(bounds)
    for arena in re.findall(r"<heap nr=.*?</heap>", xml, re.S):  # (the total at the end repeats them)
        for low, total in re.findall(r'<(?:size|unsorted) from="(\d+)" to="\d+" total="(\d+)"', arena):
            sums[next(i for i, b in enumerate(bounds) if int(low) < b)] += int(total)
    fast = sum(int(t) for t in re.findall(r'<total type="fast" count="\d+" size="(\d+)"/>', xml)[:-1])
    arenas = len(re.findall(r"<heap nr=", xml))
    return (f"{arenas} arenas; free MB by chunk size <1K/1-4K/4-64K/64K-1M/>=1M: "
            + "/".join(f"{v / 2**20:.0f}" for v in sums) + f"; fast bins {fast / 2**20:.0f}")


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


ARENA_ALIGN = 64 * 2**20  # glibc's heaps of its other arenas: mapped at addresses aligned to their 64 MB


def mappings() -> dict:
    """Resident MB of the process's mappings by kind (/proc/self/smaps): the main arena (`[heap]`),
    glibc's other arenas (anonymous, starting 64 MB-aligned), threads' stacks (anonymous 8 MB, the
    default stack of a thread), other anonymous mappings (glibc's mapped blocks, Python's object
    arenas, Arrow's and DuckDB's large buffers), files (the libraries' code)."""
    kinds = {"main arena": 0, "other arenas": 0, "stacks": 0, "stack count": 0, "other anonymous": 0, "files": 0}
    stack_kb = _stack_kb()
    try:
        with open("/proc/self/smaps") as f:
            kind = None
            for line in f:
                first = line.split(None, 5)
                if "-" in first[0] and len(first) >= 5 and not first[0].endswith(":"):
                    start, end = (int(x, 16) for x in first[0].split("-"))
                    path = first[5].strip() if len(first) > 5 else ""
                    size_kb = (end - start) // 1024
                    kind = ("main arena" if path == "[heap]" else "files" if path.startswith("/") else None if path
                            else "stacks" if size_kb == stack_kb else "other arenas" if start % ARENA_ALIGN == 0
                            else "other anonymous")
                    if kind == "stacks":
                        kinds["stack count"] += 1
                elif first[0] == "Rss:" and kind is not None:
                    kinds[kind] += int(first[1])

    except OSError:
        return {}
    out = {f"{k} {'' if k == 'stack count' else 'MB'}".strip(): (v if k == "stack count" else v / 1024)
           for k, v in kinds.items()}
    return out


def python_arenas() -> str:
    """Python's object allocator (`sys._debugmallocstats`, written to the C stderr: caught): its
    arenas of 1 MB in use and the bytes in its blocks."""
    import re
    import tempfile

    with tempfile.TemporaryFile() as f:
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(f.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read().decode(errors="replace")
    arenas = re.search(r"# arenas allocated current\s*=\s*([\d,]+)", text)
    used = re.search(r"# bytes in allocated blocks\s*=\s*([\d,]+)", text)
    size = re.search(r"(\d+) arenas \* (\d+) bytes/arena", text)
    if not (arenas and used):
        return ""
    arena_bytes = int(size.group(2)) if size else 2**20
    return (f"{int(arenas.group(1).replace(',', ''))} arenas of {arena_bytes // 1024} KB, "
            f"{int(used.group(1).replace(',', '')) / 2**20:.0f} MB in blocks")


def _stack_kb() -> int:
    """The size of a thread's stack mapping (threading.stack_size, or the default: ulimit -s)."""
    import resource
    import threading

    chosen = threading.stack_size()
    if chosen:
        return chosen // 1024
    soft = resource.getrlimit(resource.RLIMIT_STACK)[0]
    return (soft if soft > 0 else 8 * 2**20) // 1024


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
        peak = {"RSS MB": rss, "at s": time.monotonic() - self.began, **smaps(), **heap(), **mappings()}
        pa = sys.modules.get("pyarrow")
        if pa is not None and hasattr(pa, "total_allocated_bytes"):
            peak["Arrow MB"] = pa.total_allocated_bytes() / 2**20
        duck = duckdb_mb()
        if duck is not None:
            peak["DuckDB MB"] = duck
        peak["Python blocks"] = sys.getallocatedblocks()
        peak["threads"] = threading.active_count()
        peak["thread kinds"] = thread_kinds()
        peak["free"] = free_by_size()
        peak["Python"] = python_arenas()
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
