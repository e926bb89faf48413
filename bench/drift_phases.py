"""Where the drift run's CPU goes, against the clean run's (issue #12 item 8): thread CPU of each
phase of an extract (orders + products into DuckDB, in this process, pacing off) against a clean
sandbox and a `--drift` one (each in its own process), rounds interleaved.

    python bench/drift_phases.py --orders 40000 --products 20000 --repeat 3

Phases (thread CPU, `time.thread_time`, summed over the threads that ran them): `decode` (the
fetch threads: body -> Page, `PageDecoder.decode`), `convert` (the consumer: Page -> Arrow tables,
`records.page_tables`, with the page's dicts decoded when it needs them), `stage` (the staged
Parquet files, undocumented values included), `commit` (DuckDB: the merge with the undocumented
columns, the state, the run row; `commit.merge` and `commit.evolve` are parts of it). `total`:
the process's CPU over the extract; what the phases leave is HTTP, planning, logging.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import API_KEY, machine, sandbox_process, thread_timed  # noqa: E402

from sqquid_etl import decode, read  # noqa: E402
from sqquid_etl.cli import main as cli  # noqa: E402
from sqquid_etl.destinations import duckdb_writer, staging  # noqa: E402

SPENT: Counter = Counter()


def timed(owner, name: str, label: str) -> None:
    thread_timed(owner, name, label, SPENT)


def one_run(url: str) -> dict:
    SPENT.clear()
    tmp = Path(tempfile.mkdtemp(prefix="sqquid-drift-phases-"))
    start = time.process_time()
    try:
        cli(["extract", "--streams", "orders,products", "--duckdb", str(tmp / "s.duckdb"), "--base-url", url,
             "--api-key", API_KEY, "--rate", "0", "-q"], standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"total": time.process_time() - start, **SPENT}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=40_000)
    ap.add_argument("--products", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds; medians are reported")
    a = ap.parse_args()
    timed(read, "page_tables", "convert")
    timed(decode.PageDecoder, "decode", "decode")
    timed(staging.ParquetStage, "write", "stage")
    timed(duckdb_writer.DuckDBStreamWriter, "commit", "commit")
    timed(duckdb_writer.DuckDBStreamWriter, "_merge", "commit.merge")
    timed(duckdb_writer.DuckDBStreamWriter, "_evolve", "commit.evolve")
    print(f"machine: {machine()}")
    runs: dict[str, list[dict]] = {"clean": [], "drift": []}
    with sandbox_process(orders=a.orders, products=a.products) as (clean, _), \
            sandbox_process(orders=a.orders, products=a.products, drift=True) as (drift, _):
        for i in range(a.repeat):
            for mode, url in (("clean", clean), ("drift", drift)):
                runs[mode].append(one_run(url))
                print(f"round {i + 1} {mode}: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(runs[mode][-1].items())),
                      flush=True)
    phases = sorted({k for rs in runs.values() for r in rs for k in r})
    print("\nmedians (thread CPU s)   " + "  ".join(f"{p:>13s}" for p in phases))
    med = {mode: {p: statistics.median(r.get(p, 0.0) for r in rs) for p in phases} for mode, rs in runs.items()}
    for mode, m in med.items():
        print(f"{mode:24s} " + "  ".join(f"{m[p]:13.2f}" for p in phases))
    print(f"drift / clean, total: {med['drift']['total'] / med['clean']['total']:.2f}x")


if __name__ == "__main__":
    main()
