"""Peak RSS of an orders extract (orders + order_items) at several sizes, pacing off.

    python bench/memory.py --orders 10000 100000 1000000

For each size: a sandbox (own process, throttling off, 50 products) and the extract as a
subprocess (`bench/contenders/sqquid.py ... orders`: the `sqquid-etl extract` command) whose peak RSS comes from os.wait4.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, sandbox_process  # noqa: E402
from overhead import HERE, run_wait4  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--dest", choices=["duckdb", "parquet", "none"], nargs="+", default=["duckdb", "parquet", "none"],
                    help="none: fetch + Arrow conversion only (bench/contenders/sqquid_fetch_arrow.py)")
    a = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=str(HERE.parent.parent))
    print(f"machine: {machine()}")
    for n in a.orders:
        with sandbox_process(orders=n, products=50, rate=0) as (url, pid):
            for dest in a.dest:
                tmp = Path(tempfile.mkdtemp(prefix="sqquid-mem-"))
                try:
                    cmd = ([sys.executable, HERE / "sqquid_fetch_arrow.py", url, "orders"] if dest == "none" else
                           [sys.executable, HERE / "sqquid.py", url, tmp / "out", dest, "orders"])
                    r = run_wait4(cmd, env, pid)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
                status = "ok" if r["rc"] == 0 else f"FAILED: {r['stderr'][-500:]}"
                print(f"orders {n:>9,} -> {dest:8s} peak RSS {r['peak_rss_mb']:7.1f} MB  cpu {r['cpu']:7.2f} s  "
                      f"wall {r['wall']:7.2f} s  {status}", flush=True)


if __name__ == "__main__":
    main()
