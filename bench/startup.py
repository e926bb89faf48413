"""Start-up counts: small runs are most runs (a schedule every few minutes).

    python bench/startup.py [--orders 40000] [--repeat 5]

Against one sandbox in its own process (pacing off), each measured command is a subprocess
whose CPU (user+sys) and peak RSS come from os.wait4, start-up (interpreter, imports) included:
1. the floor (requests + json.loads) reading the orders, and `sqquid-etl extract --streams orders`
   into a new DuckDB file: the ratio is the target of issue #11 (at most 1.5x);
2. a no-op incremental run of every stream (`sqquid-etl extract` on a destination that is up to
   date): its CPU (target: at most 0.4 s), with the definitions' re-read windows (issue #14: the
   trailing 14 days of orders, shipments and items, every product, re-read each run) and without
   them. The median of --repeat runs is printed.
Run as users run it (`python -m sqquid_etl.cli`, the `sqquid-etl` program: `cli.run`, which loads
pyarrow without numpy). The package's bytecode is compiled first (`compileall`, into its __pycache__), as an installed
package's is: with PYTHONDONTWRITEBYTECODE set, every run would otherwise compile it (~0.03 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import API_KEY, machine, sandbox_process  # noqa: E402

HERE = Path(__file__).resolve().parent
NO_REREAD = "orders=0,products=0,shipments=0,shipment_items=0"  # the streams whose definitions re-read a window


def measure(cmd: list, env: dict) -> tuple[float, float]:
    """CPU seconds and peak RSS (MB) of one command, reaped with os.wait4; fails loudly."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise SystemExit(f"{cmd} failed: {err.read().decode(errors='replace')[-800:]}")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=40_000)
    ap.add_argument("--products", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--python", default=sys.executable)
    a = ap.parse_args()
    cli = [a.python, "-m", "sqquid_etl.cli"]
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "SQQUID_API_KEY": API_KEY}
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} (CPU times are per process, but a loaded "
          "machine still inflates them: compare within one run)")
    subprocess.run([a.python, "-m", "compileall", "-q", str(HERE.parent / "sqquid_etl")], check=True,
                   stdout=subprocess.DEVNULL)
    work = Path(tempfile.mkdtemp(prefix="sqquid-startup-"))
    try:
        with sandbox_process(orders=a.orders, products=a.products, rate=0, python=a.python) as (url, _pid):
            env["SQQUID_BASE_URL"] = url
            floor, extract = [], []
            for i in range(a.repeat):
                floor.append(measure([a.python, HERE / "contenders" / "floor.py", url, "orders"], env)[0])
                db = work / f"orders-{i}.duckdb"
                extract.append(measure([*cli, "extract", "--streams", "orders", "--duckdb", db, "--rate", "0", "-q"], env)[0])
            f, e = statistics.median(floor), statistics.median(extract)
            print(f"{a.orders} orders, floor (requests + json.loads), CPU incl. start-up: {f:.2f} s (median of {a.repeat})")
            print(f"{a.orders} orders, sqquid-etl extract --streams orders -> new DuckDB: {e:.2f} s = {e / f:.2f}x the floor")
            db = work / "all.duckdb"
            measure([*cli, "extract", "--duckdb", db, "--rate", "0", "-q"], env)  # every stream, once
            for label, extra in (("default (re-read windows, count scan behind them)", []),
                                 ("without re-read windows (--reread ...=0)", ["--reread", NO_REREAD])):
                noop = [measure([*cli, "extract", "--duckdb", db, "--rate", "0", "-q", *extra], env) for _ in range(a.repeat)]
                cpu = statistics.median(c for c, _ in noop)
                rss = statistics.median(r for _, r in noop)
                print(f"no-op incremental run of every stream, {label}: CPU {cpu:.2f} s, peak RSS {rss:.0f} MB "
                      f"(median of {a.repeat})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"({time.monotonic() - started:.0f} s; load average now {os.getloadavg()[0]:.1f})")
