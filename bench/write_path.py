"""The write path of a DuckDB file of many accounts, alone, in a loop: staging, parts, the group writer.

    python bench/write_path.py [--accounts 50] [--orders 10000] [--every 20] [--rounds 3] [--variants base]

The orders pages are read once from a sandbox in its own process (throttling off) and kept as
Arrow. Then, for each round and each variant in turn (interleaved, so both see the same load), a new
multi-account file is written as a run of many accounts writes it: one `DuckDBStreamWriter` an
account, round-robin a page each (`writer.write`: the page stamped with the account and staged),
each account's pages handed as a part every --every pages (`commit_part`: to the file's group
writer), the group committed when every account has handed its part (one transaction for all, as
every `GROUP_SECONDS` in a run), and each account's last pages by its last commit. Prints the CPU
of each step in ms a page (`time.thread_time` of the thread doing it: the group writer's is its
own thread) and of the process, and checks that every account's rows are stored once.

A variant is a name given to `--variants`; `VARIANTS` says what each sets before its rounds (module
attributes of the write path, so that a change can be compared with the code as it is, in one
process): `base` sets nothing.
"""

from __future__ import annotations

import argparse
import collections
import os
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

refuse_numpy()  # as the program runs: a step that would import them fails here
refuse_pandas()
from common import thread_timed  # noqa: E402
from first_load_parts import check_each_row_once, read_pages  # noqa: E402

from sqquid_etl.definitions import load_definitions  # noqa: E402
from sqquid_etl.destinations import duckdb_group, duckdb_writer, open_destination  # noqa: E402
from sqquid_etl.runs import RunRecord  # noqa: E402
from sqquid_etl.settings import Tuning  # noqa: E402
from sqquid_etl.state import StreamState  # noqa: E402

SPENT: collections.Counter = collections.Counter()


def _set(module: str, name: str, value) -> None:
    import importlib

    setattr(importlib.import_module(module), name, value)


# variant -> [(module, attribute, value)] set before its rounds (each variant's values set back after)
VARIANTS: dict[str, list[tuple[str, str, object]]] = {
    "base": [],
    "parquet": [("sqquid_etl.destinations.staging_arrow", "ARROW_STAGING", False)],  # staged in Parquet (buffered)
}


def write(pages: list[dict], accounts: int, every: int, path: Path, tuning: Tuning) -> tuple[float, int]:
    stream = load_definitions()["orders"]
    destinations = [open_destination(path, account=f"a{k}", tuning=tuning) for k in range(accounts)]
    try:
        writers = [d.begin(stream, replace=False) for d in destinations]
        runs = [RunRecord(run_id="r", stream="orders", started_at="2024-01-01T00:00:00+00:00") for _ in writers]
        before = resource.getrusage(resource.RUSAGE_SELF)
        for number, page in enumerate(pages, 1):
            for writer in writers:
                writer.write(page)
            if number % every == 0:
                for writer, run in zip(writers, runs):
                    writer.commit_part(StreamState(), run)
                parts = [p for w in writers for p in w._grouped]
                if parts:  # the group commits them all at once (in a run: every GROUP_SECONDS)
                    destinations[0].group().settle(parts)
        for writer, run in zip(writers, runs):
            writer.commit(StreamState(), run)
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        for d in destinations:
            d.close()
    check_each_row_once(path, pages, accounts)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, path.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=50)
    ap.add_argument("--orders", type=int, default=10_000, help="an account's (the same pages for each)")
    ap.add_argument("--every", type=int, default=20, help="pages a part")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variants", nargs="+", default=["base"], choices=sorted(VARIANTS))
    ap.add_argument("--flush-rows", type=int, default=1000, help="the staging batch (100 accounts' own: 1,000)")
    a = ap.parse_args()
    tuning = Tuning(flush_rows=a.flush_rows, flush_rows_chosen=True)  # (as accounts_run.accounts_tuning gives 100 accounts)
    thread_timed(duckdb_writer.DuckDBStreamWriter, "write", "staging (writer.write)", SPENT)
    thread_timed(duckdb_writer.DuckDBStreamWriter, "commit_part", "parts (commit_part)", SPENT)
    thread_timed(duckdb_writer.DuckDBStreamWriter, "commit", "the last commit", SPENT)
    thread_timed(duckdb_group.GroupWriter, "_commit", "group writer (its thread)", SPENT)
    duckdb_group.GROUP_SECONDS = 3600.0  # (the bench settles the group itself)
    work = Path(tempfile.mkdtemp(prefix="sqquid-write-path-"))
    try:
        pages = read_pages(a.orders, work)
        count = len(pages) * a.accounts
        print(f"command: python bench/write_path.py --accounts {a.accounts} --orders {a.orders} --every {a.every} "
              f"--rounds {a.rounds} --variants {' '.join(a.variants)}; {count} pages a run; load {os.getloadavg()[0]:.1f}")
        totals: dict[str, list[float]] = collections.defaultdict(list)
        for round_ in range(a.rounds):
            for variant in a.variants:
                saved = []
                for module, name, value in VARIANTS[variant]:
                    import importlib

                    saved.append((module, name, getattr(importlib.import_module(module), name)))
                    _set(module, name, value)
                SPENT.clear()
                try:
                    cpu, size = write(pages, a.accounts, a.every, work / f"{round_}-{variant}.duckdb", tuning)
                finally:
                    for module, name, value in saved:
                        _set(module, name, value)
                steps = "; ".join(f"{k} {1000 * v / count:.3f}" for k, v in sorted(SPENT.items()))
                totals[variant].append(1000 * cpu / count)
                print(f"round {round_} {variant:10s}: process {1000 * cpu / count:.3f} ms a page ({steps}); "
                      f"file {size / 2**20:.0f} MB; load {os.getloadavg()[0]:.1f}")
        for variant, values in totals.items():
            print(f"{variant:10s}: process ms a page, each round: {' '.join(f'{v:.3f}' for v in values)}; "
                  f"least {min(values):.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
