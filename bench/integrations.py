"""sqquid-etl where users are, against what they would use otherwise, on the same orders
(+ items) and products (+ variants) from one sandbox in its own process (throttling off):

- the dlt source (`sqquid_etl.dlt`) against dlt's own rest_api source, each loaded by dlt into DuckDB;
- the Singer tap (`tap-sqquid`) against a singer-sdk tap of the same endpoints, messages to a file;
- `sqquid-etl extract` into DuckDB, for reference.

    .venv/bin/python bench/integrations.py --orders 20000 --products 10000 [--only dlt] [--only tap]

The singer-sdk tap needs singer-sdk (bench/requirements.txt) in the interpreter (`--python`).

Each contender is a subprocess; CPU (user+sys) and peak RSS from `os.wait4`, wall time from the
parent, the sandbox's CPU over the same interval from /proc (see bench/overhead.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, sandbox_process, sandbox_stats  # noqa: E402
from overhead import run_wait4  # noqa: E402

HERE = Path(__file__).resolve().parent / "contenders"

CONTENDERS = {
    "dlt rest_api source -> DuckDB": lambda py, url, out: [py, HERE / "dlt_rest_api.py", url, out / "d.duckdb", out / "dlt"],
    "sqquid_etl.dlt source -> DuckDB": lambda py, url, out: [py, HERE / "sqquid_dlt_source.py", url, out / "s.duckdb", out / "dlt"],
    "tap-sqquid -> JSONL file": lambda py, url, out: [py, HERE / "tap_sqquid.py", url, out / "t.jsonl"],
    "singer-sdk tap -> JSONL file": lambda py, url, out: [py, HERE / "singer_tap.py", url, out / "s.jsonl"],
    "sqquid-etl extract -> DuckDB": lambda py, url, out: [py, HERE / "sqquid.py", url, out / "e.duckdb", "duckdb"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=20_000)
    ap.add_argument("--products", type=int, default=10_000)
    ap.add_argument("--python", default=sys.executable, help="interpreter of the contenders (with dlt installed)")
    ap.add_argument("--only", action="append", help="run only contenders whose name contains this")
    a = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(HERE.parent.parent)}
    print(f"machine: {machine()}")
    results = {}
    with sandbox_process(orders=a.orders, products=a.products, rate=0, python=a.python) as (url, pid):
        print(f"sandbox: {a.orders} orders, {a.products} products")
        for name, make in CONTENDERS.items():
            if a.only and not any(o.lower() in name.lower() for o in a.only):
                continue
            tmp = Path(tempfile.mkdtemp(prefix="sqquid-bench-"))
            try:
                sandbox_stats(url, reset=True)
                started = time.monotonic()
                r = run_wait4(make(a.python, url, tmp), env, pid)
                r["requests"] = sandbox_stats(url)["requests"]
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            results[name] = r
            status = "ok" if r["rc"] == 0 else f"FAILED rc={r['rc']}: {r['stderr'][-600:]}"
            print(f"{name:34s} cpu {r['cpu']:7.2f} s  wall {r['wall']:7.2f} s  peak RSS {r['peak_rss_mb']:7.1f} MB  "
                  f"sandbox cpu {r['sandbox_cpu']:6.2f} s  requests {r['requests']}  {status}"
                  f"  ({time.monotonic() - started:.0f} s)", flush=True)
    for theirs, ours in (("dlt rest_api source -> DuckDB", "sqquid_etl.dlt source -> DuckDB"),
                         ("singer-sdk tap -> JSONL file", "tap-sqquid -> JSONL file")):
        a_, b_ = results.get(theirs), results.get(ours)
        if a_ and b_ and a_["rc"] == 0 and b_["rc"] == 0:
            memory = a_["peak_rss_mb"] / b_["peak_rss_mb"]
            print(f"{ours}: {a_['cpu'] / b_['cpu']:.1f}x less CPU than {theirs}, "
                  + (f"{memory:.1f}x less peak memory" if memory >= 1 else f"{1 / memory:.1f}x more peak memory"))

if __name__ == "__main__":
    main()
