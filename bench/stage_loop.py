"""One account's thread after decoding, alone, in a loop: conversion, staging, parts.

    python bench/stage_loop.py [--orders 10000] [--rounds 5] [--steps convert stage] [--every 20]
    python bench/stage_loop.py --steps stage --profile          # cProfile of the step, by own time
    valgrind --tool=callgrind python bench/stage_loop.py --steps stage --rounds 1 --bodies FILE
    BENCH_ARROW_FILE_BATCHES=8 python bench/stage_loop.py --steps stage   # staged IPC files of 8 batches (before group14)

The orders pages' bodies are read once from a sandbox in its own process (throttling off; kept in
`--bodies FILE` when given, so that a run under callgrind needs no sandbox) and decoded as an
extract decodes them (`decode.PageDecoder`). Then, each round:
- `convert`: every page converted (`records.page_tables`), as an account's thread does;
- `stage`: the converted pages written to one account-scoped `DuckDBStreamWriter` of a fresh
  DuckDB file (`writer.write`: stamped with the account and staged), a part every --every pages
  handed to the file's group writer (`commit_part`, settled at once), then the last commit.
Prints the CPU (`time.thread_time` of this thread) of each step in ms a page, its least over the
rounds (`process`: the stage step's CPU of the whole process, the group writer's with it), and the page faults and context switches of the step a page (`getrusage`).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pickle
import pstats
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")  # as `sqquid-etl` runs (cli._use_system_allocator)
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sqquid_etl.no_pandas import refuse_numpy, refuse_pandas  # noqa: E402

refuse_numpy()
refuse_pandas()

from sqquid_etl import heap  # noqa: E402
from sqquid_etl.decode import PageDecoder  # noqa: E402
from sqquid_etl.definitions import load_definitions  # noqa: E402
from sqquid_etl.destinations import duckdb_group, open_destination  # noqa: E402
from sqquid_etl.records import page_tables  # noqa: E402
from sqquid_etl.runs import RunRecord  # noqa: E402
from sqquid_etl.settings import Tuning  # noqa: E402
from sqquid_etl.state import StreamState  # noqa: E402


def read_bodies(orders: int) -> list[bytes]:
    import requests
    from common import API_KEY, sandbox_process

    with sandbox_process(orders=orders, products=50, rate=0) as (url, _):
        s = requests.Session()
        s.headers["Authorization"] = "Bearer " + s.post(url + "/v1/login", json={"api_key": API_KEY}).json()["token"]
        bodies, page = [], 1
        while True:
            content = s.get(url + "/v1/orders", params={"page": page, "limit": 250}).content
            bodies.append(content)
            if len(json.loads(content)["Orders"]) < 250:
                return bodies
            page += 1


class Counted:
    """CPU of this thread, page faults and context switches of the process, over a block."""

    def __enter__(self):
        self.usage, self.cpu = resource.getrusage(resource.RUSAGE_SELF), time.thread_time()
        return self

    def __exit__(self, *exc):
        self.seconds = time.thread_time() - self.cpu
        after = resource.getrusage(resource.RUSAGE_SELF)
        self.faults = after.ru_minflt + after.ru_majflt - self.usage.ru_minflt - self.usage.ru_majflt
        self.switches = after.ru_nvcsw + after.ru_nivcsw - self.usage.ru_nvcsw - self.usage.ru_nivcsw


def convert(stream, pages) -> list:
    return [page_tables(stream, page) for page in pages]


def stage(stream, tables: list, every: int, path: Path, tuning: Tuning, spent: dict) -> None:
    first = open_destination(path, account="first", tuning=tuning)  # the file's tables made by another account's
    try:                                                                # part, as for 99 of 100 accounts in a run
        writer = first.begin(stream, replace=False)
        writer.write(tables[0])
        writer.commit(StreamState(), RunRecord(run_id="r", stream="orders", started_at="2024-01-01T00:00:00+00:00"))
    finally:
        first.close()
    destination = open_destination(path, account="a0", tuning=tuning)
    try:
        writer = destination.begin(stream, replace=False)
        run = RunRecord(run_id="r", stream="orders", started_at="2024-01-01T00:00:00+00:00")
        for number, page in enumerate(tables, 1):
            started = time.thread_time()
            writer.write(page)
            spent["stage"] += time.thread_time() - started
            if number % every == 0:
                started = time.thread_time()
                writer.commit_part(StreamState(), run)
                spent["parts"] += time.thread_time() - started
                if writer._grouped:
                    destination.group().settle(list(writer._grouped))
        writer.commit(StreamState(), run)
        rows = destination.conn.execute("SELECT count(*), count(DISTINCT id) FROM orders WHERE account = 'a0'").fetchall()[0]
        assert rows[0] == rows[1] == sum(t["orders"].num_rows for t in tables), rows
    finally:
        destination.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", nargs="+", default=["convert", "stage"], choices=["convert", "stage"])
    ap.add_argument("--every", type=int, default=20, help="pages a part (a run: every 10 s at 2 pages/s)")
    ap.add_argument("--flush-rows", type=int, default=1000, help="the staging batch (100 accounts' own: 1,000)")
    ap.add_argument("--bodies", type=Path, help="a file keeping the pages' bodies (read from a sandbox when absent)")
    ap.add_argument("--profile", action="store_true", help="cProfile the steps of the last round")
    ap.add_argument("--glibc-default", action="store_true", help="glibc's mmap threshold left as it is (the program "
                    "fixes it for many accounts: heap.large_blocks_mapped)")
    a = ap.parse_args()
    if os.environ.get("BENCH_ARROW_FILE_BATCHES"):  # batches a staged IPC file (before the fourteenth session: 8)
        from sqquid_etl.destinations import staging_arrow

        staging_arrow.ARROW_FILE_BATCHES = int(os.environ["BENCH_ARROW_FILE_BATCHES"])
    if not a.glibc_default:
        heap.large_blocks_mapped()
    if a.bodies and a.bodies.exists():
        bodies = pickle.loads(a.bodies.read_bytes())
    else:
        bodies = read_bodies(a.orders)
        if a.bodies:
            a.bodies.write_bytes(pickle.dumps(bodies))
    stream = load_definitions()["orders"]
    decoder = PageDecoder(stream)
    pages = [decoder.decode(body) for body in bodies]
    tuning = Tuning(flush_rows=a.flush_rows, flush_rows_chosen=True)  # (as accounts_run.accounts_tuning gives 100 accounts)
    duckdb_group.GROUP_SECONDS = 3600.0  # (settled by the loop itself)
    work = Path(tempfile.mkdtemp(prefix="sqquid-stage-loop-"))
    print(f"{len(pages)} pages; load {os.getloadavg()[0]:.1f}")
    best: dict[str, float] = {}
    tables = convert(stream, pages)
    profile = cProfile.Profile() if a.profile else None
    try:
        for round_ in range(a.rounds):
            last = profile is not None and round_ == a.rounds - 1
            line = []
            if "convert" in a.steps:
                with Counted() as c:
                    if last:
                        profile.enable()
                    tables = convert(stream, pages)
                    if last:
                        profile.disable()
                per = 1000 * c.seconds / len(pages)
                best["convert"] = min(best.get("convert", per), per)
                line.append(f"convert {per:.3f} ms ({c.faults / len(pages):.0f} faults, {c.switches / len(pages):.1f} switches)")
            if "stage" in a.steps:
                spent = {"stage": 0.0, "parts": 0.0}
                process = time.process_time()
                with Counted() as c:
                    if last:
                        profile.enable()
                    stage(stream, tables, a.every, work / f"{round_}.duckdb", tuning, spent)
                    if last:
                        profile.disable()
                spent["process"] = time.process_time() - process  # (every thread: the group writer's INSERT and files removed)
                for step in ("stage", "parts", "process"):
                    per = 1000 * spent[step] / len(pages)
                    best[step] = min(best.get(step, per), per)
                    line.append(f"{step} {per:.3f} ms")
                line.append(f"(stage+parts+last: {c.faults / len(pages):.0f} faults, {c.switches / len(pages):.1f} switches a page)")
            print(f"round {round_}: " + ", ".join(line) + f"; load {os.getloadavg()[0]:.1f}")
        print("least, ms a page: " + ", ".join(f"{k} {v:.3f}" for k, v in best.items()))
        if profile is not None:
            pstats.Stats(profile).sort_stats("tottime").print_stats(30)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
