"""Many accounts (issue #15) seen from inside the client: where its CPU and memory go.

    python bench/accounts_inside.py --accounts 20 --seconds 30 --latency 0.3
    python bench/accounts_inside.py --accounts 4 --seconds 30 --stages

The sandbox as in bench/accounts.py (its own process, N accounts each throttled at --rate/--burst
with --latency, sized to last --seconds at the ceiling); the client runs in THIS process
(`accounts_run.run_accounts`, one DuckDB file, the `orders` stream), set up as the `sqquid-etl`
program sets up its own (Arrow on the system allocator, no numpy), so that it can be looked at:
- the CPU of each kind of thread (`/proc/self/task/*/stat`, sampled every 0.5 s): an account's
  thread (`runner`: conversion, staging, commits) and its fetch workers (`fetch`: requests and
  decoding), user and system time;
- with `--stages`, the CPU (`time.thread_time`) of each step of a page, in ms a page: the request,
  decoding, conversion, staging, the commits (a little slower for the wrapping);
- memory at the peak of RSS (sampled every 0.5 s): Arrow's bytes allocated, DuckDB's
  (`duckdb_memory()`), the C heap's (`mallinfo2`: in use, free), the pages fetched and not yet
  taken by their account, the threads.
`--workers K` runs K fetch workers an account instead of `fetch.default_concurrency`'s.
Environment variables (SQQUID_FLUSH_ROWS, ...) apply as to an extract; BENCH_GATE=N gives the CPU
gate of many accounts N slots (0: no gate; accounts_run.CPU_SLOTS), BENCH_GATE_FIFO=1 serves its slots in one
queue; BENCH_GLIBC_DEFAULT=1 leaves glibc's mmap threshold as it is (the program fixes it for many accounts,
`heap.py`); BENCH_TRIM=S: the C heap's free pages given back every S s (default as the program: 5; 0: never,
`heap.Trimmer`). BENCH_NO_KEY_CHUNKS=1: the staged tables keep no chunks of their key column (the
pages' Arrow memory they hold). BENCH_TRACEMALLOC=1: Python's memory by file (tracemalloc) near the peak (slow: small runs). BENCH_GROUP_SECONDS=S: a part
waits at most S s for the others' (duckdb_group.GROUP_SECONDS). BENCH_CONSUMER_DECODES=0|1: one of many
accounts' pages decoded by the fetch threads (0) or by the account's thread (1, the default: read.CONSUMER_DECODES);
BENCH_HTTP_CLIENT=1: answers read by http.client's response class instead of http_wire (as before the eleventh session).
BENCH_BODY_BUFFERS=0: the pages' bodies read as new bytes each, not into buffers used again (as before the twelfth
session, accounts_run.BODY_BUFFERS).
BENCH_BLOCKING_SOCKETS=0: sockets with CPython's timeouts (a poll before each read), not blocking with the
kernel's (as before the fourteenth session, http_wire.KERNEL_TIMEOUTS).
BENCH_BLOCK_ALLOCATOR=0: the DuckDB file's blocks from the C heap, not a pool of its memory limit
(as before the thirteenth session, duckdb_tuning.ACCOUNTS_BLOCK_ALLOCATOR).
BENCH_ARROW_FILE_BATCHES=N: N batches a staged Arrow IPC file (before the fourteenth session: 8,
staging_arrow.ARROW_FILE_BATCHES).
BENCH_STAGE=parquet: the accounts' pages staged in Parquet files, as before the eleventh session
(staging_arrow.ARROW_STAGING).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import resource
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path

os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", os.environ.get("BENCH_POOL", "system").partition(":")[0])  # as `sqquid-etl` runs (cli._use_system_allocator)
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sqquid_etl.no_pandas import refuse_numpy, refuse_pandas  # noqa: E402

refuse_numpy()
refuse_pandas()

import pyarrow as pa  # noqa: E402
from accounts import load_average, start_sandbox, stop, write_config  # noqa: E402
from common import machine, sandbox_stats, thread_timed  # noqa: E402
from memory_probe import _parts, describe, duckdb_mb, free_by_size, heap, mappings, python_arenas, python_top, smaps, thread_kinds  # noqa: E402

if os.environ.get("BENCH_POOL", "system") == "system":
    pa.set_memory_pool(pa.system_memory_pool())
else:  # BENCH_POOL=jemalloc:DECAY_MS or mimalloc: another Arrow pool, to compare
    kind, _, decay = os.environ["BENCH_POOL"].partition(":")
    pa.set_memory_pool(getattr(pa, f"{kind}_memory_pool")())
    if decay:
        pa.jemalloc_set_decay_ms(int(decay))
PAGE = 250


class Watch:
    """Samples every 0.5 s: each thread's CPU (by kind) and the memory at the peak of RSS."""

    def __init__(self):
        self.names: dict[int, str] = {}
        self.cpu: dict[int, tuple[float, float]] = {}
        self.switches: dict[int, tuple[int, int]] | None = None  # --switches: each thread's (voluntary, not)
        self.gates: list = []  # --switches: the run's cpu_gate.CpuGate
        self.peak: dict = {"rss": 0.0}
        self.fetches: weakref.WeakSet = weakref.WeakSet()
        self.buffers: list = []  # the run's body_buffers.BodyBuffers
        self.stages: weakref.WeakSet = weakref.WeakSet()  # every ParquetStage: its batches buffered
        self.began = time.monotonic()
        self.timeline: dict[int, float] = {}  # RSS MB at most, every 5 s from the start
        self.parts: dict[int, str] = {}  # every 20 s: RSS / C heap in use / free / mapped / Arrow MB
        self.traced_at, self.python = 0.0, []  # BENCH_TRACEMALLOC=1: Python's memory by file near the peak
        self._stop = threading.Event()
        self._tick = os.sysconf("SC_CLK_TCK")
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-watch")

    def start(self) -> dict:
        self.began = time.monotonic()
        self.sample()
        self._thread.start()
        return dict(self.cpu)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    def sample(self) -> None:
        for thread in threading.enumerate():
            if thread.native_id:
                self.names[thread.native_id] = thread.name
        for tid in os.listdir("/proc/self/task"):
            try:
                fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            self.cpu[int(tid)] = (int(fields[11]) / self._tick, int(fields[12]) / self._tick)
            if self.switches is not None:
                try:
                    status = open(f"/proc/self/task/{tid}/status").read().split("ctxt_switches:")
                    self.switches[int(tid)] = (int(status[1].split()[0]), int(status[2].split()[0]))
                except (OSError, IndexError, ValueError):
                    pass
        rss = _rss_mb()
        second = int(time.monotonic() - self.began) // 5 * 5
        if second not in self.timeline and second % 20 == 0:
            self.parts[second] = _parts(rss)
        self.timeline[second] = max(self.timeline.get(second, 0.0), rss)
        if rss > self.peak["rss"]:
            pages, page_mb = self._pages_held()
            self.peak = {"rss": rss, "at s": time.monotonic() - self.began, "RSS MB": rss, **smaps(), **heap(), **mappings(),
                         "Arrow MB": pa.total_allocated_bytes() / 2**20, "DuckDB MB": _duckdb_mb(),
                         "Python blocks": sys.getallocatedblocks(),
                         "pages fetched not taken": pages, "their MB": page_mb, "staged in Arrow MB": self._staged_mb(), "threads": threading.active_count(),
                         "thread kinds": thread_kinds(), "free": free_by_size(), "Python": python_arenas()}
            if os.environ.get("BENCH_TRACEMALLOC") and rss > self.traced_at + 10:  # (costly: at most every 10 MB)
                self.traced_at, self.python = rss, python_top()

    def _staged_mb(self) -> float:
        size = 0
        for stage in list(self.stages):
            for pages in list(stage._buffer._pages.values()):
                size += sum(page.nbytes for page in list(pages))
        return size / 2**20

    def _pages_held(self) -> tuple[int, float]:
        count, size = 0, 0
        for fetch in list(self.fetches):
            for slot in list(fetch.slots.values()):
                page = slot.page
                if slot.done and page is not None:
                    count += 1
                    array = getattr(page, "array", None)  # (a PageBody: not decoded yet)
                    size += len(page.body) + (array.nbytes if array is not None else 0)
        return count, size / 2**20

    def kind(self, tid: int) -> str:
        name = self.names.get(tid)
        if name is None:  # a thread not started by Python (DuckDB's, Arrow's): its own name when it has one
            try:
                return "native:" + open(f"/proc/self/task/{tid}/comm").read().strip()
            except OSError:
                return "native"
        return ("runner" if "/" not in name else name.split("/")[-1].rstrip("0123456789-")) \
            if name.startswith("sqquid-account-") else name if name in ("native", "MainThread", "bench-watch") \
            else name.rstrip("0123456789-")

    def switches_by_kind(self, before: dict) -> dict[str, tuple[int, int, int]]:
        """--switches: the context switches of each kind of thread (voluntary, not, threads)."""
        kinds: dict = collections.defaultdict(lambda: [0, 0, 0])
        for tid, (voluntary, other) in (self.switches or {}).items():
            voluntary0, other0 = before.get(tid, (0, 0))
            kind = kinds[self.kind(tid)]
            kind[0] += voluntary - voluntary0
            kind[1] += other - other0
            kind[2] += 1
        return {k: tuple(v) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1][0])}

    def by_kind(self, before: dict) -> dict[str, tuple[float, float]]:
        kinds: dict = collections.defaultdict(lambda: [0.0, 0.0])
        for tid, (user, system) in self.cpu.items():
            user0, system0 = before.get(tid, (0.0, 0.0))
            kind = self.kind(tid)
            kinds[kind][0] += user - user0
            kinds[kind][1] += system - system0
        return {k: (round(u, 1), round(s, 1)) for k, (u, s) in kinds.items()}


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


def _duckdb_mb() -> float:
    from sqquid_etl.destinations import duckdb_shared  # noqa: F401 - (duckdb_mb reads it from sys.modules)

    return duckdb_mb() or 0.0


STAGES = collections.Counter()
WAITS = collections.Counter()  # --switches: waits counted (an account's thread for its page)
GC = {"started": 0.0}


def gc_timed(phase: str, info: dict) -> None:
    """The CPU of the interpreter's garbage collections, by generation (STAGES)."""
    if phase == "start":
        GC["started"] = time.thread_time()
    else:
        STAGES[f"gc: generation {info['generation']} collections"] += time.thread_time() - GC["started"]


def timed(owner, name: str, label: str) -> None:
    """Wrap `owner.name` so that its thread CPU is added to STAGES[label]."""
    thread_timed(owner, name, label, STAGES)


def wrap_stages() -> None:
    from sqquid_etl import commit_parts, decode, pacing, read, transport
    from sqquid_etl.destinations import duckdb_writer

    timed(transport.Transport, "send", "fetch: the request (HTTP)")
    timed(pacing.LeakyBucketPacer, "acquire", "fetch: the pacer")
    timed(decode.PageDecoder, "decode", "fetch: decoding (Arrow's JSON reader)")
    timed(read, "page_tables", "runner: conversion (page_tables)")
    timed(duckdb_writer.DuckDBStreamWriter, "write", "runner: staging (writer.write)")
    timed(commit_parts.PartCommits, "commit", "runner: parts (commit_part)")
    timed(duckdb_writer.DuckDBStreamWriter, "commit", "runner: the last commit")
    try:
        from sqquid_etl.destinations import duckdb_group
    except ImportError:  # (before the group writer)
        return
    timed(duckdb_group.GroupWriter, "_commit", "group writer: every account's parts (its thread)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--latency", type=float, default=0.3)
    ap.add_argument("--rate", type=float, default=2.0)
    ap.add_argument("--burst", type=int, default=40)
    ap.add_argument("--stages", action="store_true", help="CPU of each step of a page (wraps them)")
    ap.add_argument("--workers", type=int, help="fetch workers an account (default: fetch.default_concurrency)")
    ap.add_argument("--switches", action="store_true",
                    help="context switches by kind of thread (/proc/self/task/*/status, read every 0.5 s)")
    a = ap.parse_args()
    print(f"command: python bench/accounts_inside.py --accounts {a.accounts} --seconds {a.seconds:g} "
          f"--latency {a.latency:g}{' --stages' if a.stages else ''}{f' --workers {a.workers}' if a.workers else ''}"
          f"{' --switches' if a.switches else ''}")
    print(f"machine: {machine()}; SQQUID_FLUSH_ROWS={os.environ.get('SQQUID_FLUSH_ROWS', '(default)')}")
    from sqquid_etl import fetch, fetch_concurrent
    from sqquid_etl.accounts import load_accounts, resolve_credentials
    if not os.environ.get("BENCH_GLIBC_DEFAULT"):  # as `sqquid-etl extract --all-accounts` (accounts_cli)
        from sqquid_etl.heap import large_blocks_mapped

        large_blocks_mapped()
    from sqquid_etl.accounts_run import plan_jobs, run_accounts
    if os.environ.get("BENCH_GATE"):  # the CPU gate's slots (0: none; default: the cores), accounts_run.CPU_SLOTS
        from sqquid_etl import accounts_run

        accounts_run.CPU_SLOTS = int(os.environ["BENCH_GATE"])
    if os.environ.get("BENCH_GATE_FIFO"):  # one queue for the gate's slots (not the pages' consumers first)
        from sqquid_etl import cpu_gate

        cpu_gate.CpuGate.consumers_first = False
    if os.environ.get("BENCH_GROUP_SECONDS"):  # how long a part waits for the others (duckdb_group, an experiment)
        from sqquid_etl.destinations import duckdb_group

        duckdb_group.GROUP_SECONDS = float(os.environ["BENCH_GROUP_SECONDS"])
    if os.environ.get("BENCH_CONSUMER_DECODES"):  # 1 / 0: pages decoded by their account's thread or not (read.CONSUMER_DECODES)
        from sqquid_etl import read

        read.CONSUMER_DECODES = os.environ["BENCH_CONSUMER_DECODES"] == "1"
    if os.environ.get("BENCH_HTTP_CLIENT"):  # 1: answers read by http.client, not http_wire (transport._wire)
        from sqquid_etl import transport

        transport._wire = lambda conn: None
    if os.environ.get("BENCH_BODY_BUFFERS") == "0":  # bodies read as bytes, not into buffers used again (body_buffers.py)
        from sqquid_etl import accounts_run

        accounts_run.BODY_BUFFERS = False
    from sqquid_etl import body_buffers

    made_buffers = body_buffers.BodyBuffers.__init__

    def noted_buffers(self, *args, **kwargs):
        made_buffers(self, *args, **kwargs)
        watch.buffers.append(self)
    body_buffers.BodyBuffers.__init__ = noted_buffers
    if os.environ.get("BENCH_STACK_KB"):  # threads' stacks of this size (an experiment; default: ulimit -s)
        threading.stack_size(int(os.environ["BENCH_STACK_KB"]) * 1024)
    if os.environ.get("BENCH_STAGE") == "parquet":  # a file of many accounts staged in Parquet, as before stage11
        from sqquid_etl.destinations import staging_arrow

        staging_arrow.ARROW_STAGING = False
    if os.environ.get("BENCH_BLOCKING_SOCKETS") == "0":  # sockets with CPython's timeouts (http_wire.KERNEL_TIMEOUTS)
        from sqquid_etl import http_wire

        http_wire.KERNEL_TIMEOUTS = False
    if os.environ.get("BENCH_BLOCK_ALLOCATOR") == "0":  # DuckDB's blocks from the C heap (duckdb_tuning.ACCOUNTS_BLOCK_ALLOCATOR)
        from sqquid_etl.destinations import duckdb_tuning

        duckdb_tuning.ACCOUNTS_BLOCK_ALLOCATOR = None
    if os.environ.get("BENCH_ARROW_FILE_BATCHES"):  # batches a staged IPC file (before the fourteenth session: 8)
        from sqquid_etl.destinations import staging_arrow

        staging_arrow.ARROW_FILE_BATCHES = int(os.environ["BENCH_ARROW_FILE_BATCHES"])
    if os.environ.get("BENCH_SWITCH"):  # the interpreter's switch interval, seconds (an experiment)
        sys.setswitchinterval(float(os.environ["BENCH_SWITCH"]))

    if os.environ.get("BENCH_TRACEMALLOC"):  # where Python's memory is at the peak (slow: small runs)
        import tracemalloc

        tracemalloc.start(1)
    if a.stages:
        wrap_stages()
        import gc

        gc.callbacks.append(gc_timed)
    if a.workers:
        fetch.default_concurrency = lambda client: a.workers
    watch = Watch()
    if a.switches:
        watch.switches = {}
    made = fetch_concurrent.ConcurrentFetch.__init__

    def remembered(self, *args, **kwargs):
        made(self, *args, **kwargs)
        watch.fetches.add(self)
        if a.switches:  # the waits of an account's thread for its next page (and those woken for another)
            wait = self.cond.wait

            def counted(timeout=None):
                WAITS["an account's thread waited for its next page"] += 1
                return wait(timeout)
            self.cond.wait = counted
    fetch_concurrent.ConcurrentFetch.__init__ = remembered
    if a.switches:  # the CPU gate's waits
        from sqquid_etl import cpu_gate

        gate_made = cpu_gate.CpuGate.__init__

        def gate_remembered(self, *args, **kwargs):
            gate_made(self, *args, **kwargs)
            watch.gates.append(self)
        cpu_gate.CpuGate.__init__ = gate_remembered
    from sqquid_etl.destinations import staging

    stage_class = getattr(staging, "Stage", None) or staging.ParquetStage  # (before stage11: ParquetStage alone)
    staged = stage_class.__init__
    no_keys = bool(os.environ.get("BENCH_NO_KEY_CHUNKS"))  # the stages keep no key chunks (an experiment)

    def kept(self, directory, stream, flush_rows, key_column=None):
        staged(self, directory, stream, flush_rows, None if no_keys else key_column)
        watch.stages.add(self)
    stage_class.__init__ = kept

    pages = int(a.burst + a.rate * a.seconds)
    proc, url, keys, _ = start_sandbox(a.accounts, pages * PAGE - PAGE // 2, 50, rate=a.rate, burst=a.burst,
                                       latency=a.latency, spread=0.0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config, env = write_config(Path(tmp), url, keys, a.rate, a.burst)
            os.environ.update({k: v for k, v in env.items() if k.startswith("BENCH_KEY_")})
            accounts = list(load_accounts(config).values())
            jobs = plan_jobs(accounts, resolve_credentials(accounts), streams=["orders"])
            sandbox_stats(url, reset=True)
            load_before, before = load_average(), watch.start()
            watch.switches_before = dict(watch.switches or {})
            usage_before, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
            from sqquid_etl.heap import Trimmer  # as `sqquid-etl extract --all-accounts` (accounts_cli)

            seconds = float(os.environ.get("BENCH_TRIM", "5"))  # BENCH_TRIM=S: every S s; 0: never
            with Trimmer(seconds) if seconds else contextlib.nullcontext():
                done = run_accounts(jobs, {"duckdb": str(Path(tmp) / "accounts.duckdb")}, {})
            wall = time.monotonic() - started
            watch.stop()
            usage = resource.getrusage(resource.RUSAGE_SELF)
            stats = sandbox_stats(url)
    finally:
        stop(proc)
    report(a, done, wall, usage_before, usage, watch, before, stats, (load_before, load_average()))


def report(a, done, wall, usage_before, usage, watch: Watch, before: dict, stats: dict, load: tuple) -> None:
    records = sum(sum(s.rows.get("orders", 0) for s in acc.streams) for acc in done.accounts)
    ceiling = (a.burst + a.rate * wall) * PAGE / wall
    user, system = usage.ru_utime - usage_before.ru_utime, usage.ru_stime - usage_before.ru_stime
    page_count = max(1, stats["by_route"].get("GET /v1/orders", 0))
    print(f"client (in this process): {len(done.accounts)} accounts, failed {done.failed}; wall {wall:.1f} s; "
          f"{records} records; {100 * records / wall / (a.accounts * ceiling):.1f}% of {a.accounts} x the ceiling; "
          f"429s {stats['throttled']}")
    print(f"  CPU user {user:.1f} s + system {system:.1f} s = {1e6 * (user + system) / max(1, records):.1f} us a record, "
          f"{1000 * (user + system) / page_count:.2f} ms a page; peak RSS {usage.ru_maxrss / 1024:.0f} MB")
    print(f"  a page: {(usage.ru_minflt - usage_before.ru_minflt) / page_count:.0f} page faults, "
          f"{(usage.ru_nvcsw - usage_before.ru_nvcsw) / page_count:.0f} + "
          f"{(usage.ru_nivcsw - usage_before.ru_nivcsw) / page_count:.0f} context switches (voluntary + not)")
    print(f"  CPU by thread (user s, system s): {watch.by_kind(before)}")
    if watch.switches is not None:
        kinds = watch.switches_by_kind(watch.switches_before)
        print("  context switches a page by thread (voluntary, not; threads): " + ", ".join(
            f"{k} {v / page_count:.1f}+{n / page_count:.1f} ({t})" for k, (v, n, t) in kinds.items()))
        waits = {**WAITS, **{"the CPU gate's waits": sum(g.waits for g in watch.gates)}}
        print("  waits a page: " + ", ".join(f"{k} {v / page_count:.2f}" for k, v in waits.items()))
    for buffers in watch.buffers:
        print(f"  body buffers: made {buffers.made}, used again {buffers.reused}, given back {buffers.returned}, "
              f"held when given back {buffers.refused}")
    for label in sorted(STAGES):
        print(f"  {label:42s} {1000 * STAGES[label] / page_count:6.2f} ms a page")
    print("  RSS MB at most, every 5 s: " + " ".join(f"{v:.0f}" for _, v in sorted(watch.timeline.items())))
    print("  every 20 s, RSS/C heap in use/free/mapped/Arrow MB: " + " ".join(f"{s}s:{v}" for s, v in sorted(watch.parts.items())))
    print("  at the peak of RSS: " + describe({k: v for k, v in watch.peak.items() if k != "rss"}))
    if watch.python:
        print("  Python's memory (tracemalloc) near the peak, by file: " + "; ".join(watch.python))
    print(f"  load average (1 min): {load[0]:.2f} before, {load[1]:.2f} after")


if __name__ == "__main__":
    main()
