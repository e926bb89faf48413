"""Engine overhead, pacing off: the same orders (+ items) and products (+ variants) extracted by
each contender, one after the other, from one sandbox in its own process (throttling off).

    /tmp/benchvenv/bin/python bench/overhead.py --orders 200000 --products 100000

Each contender runs as a subprocess; its CPU time (user+sys) and peak RSS come from
`os.wait4` (the child's own rusage), wall time from the parent. The sandbox's CPU time over
the same interval is read from /proc. Contenders: bench/contenders/*.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, proc_cpu_seconds, sandbox_process, sandbox_stats  # noqa: E402

HERE = Path(__file__).resolve().parent / "contenders"

CONTENDERS = {
    "floor (requests + json.loads)": lambda py, url, out: [py, HERE / "floor.py", url],
    "sqquid-etl fetch + Arrow, no destination": lambda py, url, out: [py, HERE / "sqquid_fetch_arrow.py", url],
    "sqquid-etl -> DuckDB": lambda py, url, out: [py, HERE / "sqquid.py", url, out / "s.duckdb", "duckdb"],
    "sqquid-etl -> Parquet": lambda py, url, out: [py, HERE / "sqquid.py", url, out / "pq", "parquet"],
    "hand-written (requests + pandas + DuckDB)": lambda py, url, out: [py, HERE / "handwritten.py", url, out / "h.duckdb"],
    "dlt rest_api -> DuckDB": lambda py, url, out: [py, HERE / "dlt_rest_api.py", url, out / "d.duckdb", out / "dlt"],
    "singer-sdk tap -> JSONL": lambda py, url, out: [py, HERE / "singer_tap.py", url, out / "tap.jsonl"],
    "singer-sdk tap | target-duckdb": lambda py, url, out: [py, HERE / "singer_to_duckdb.py", url, out / "t.duckdb",
                                                             TARGET_DUCKDB],
}
# target-duckdb in its own venv (bench/requirements-target.txt); override with SQQUID_BENCH_TARGET_DUCKDB
TARGET_DUCKDB = os.environ.get("SQQUID_BENCH_TARGET_DUCKDB", "/tmp/targetvenv/bin/target-duckdb")


def run_wait4(cmd: list, env: dict, sandbox_pid: int) -> dict:
    """Run, reap with os.wait4 (exact rusage of this child), return measurements."""
    sandbox_before = proc_cpu_seconds(sandbox_pid)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return {
        "rc": proc.returncode, "wall": round(wall, 2), "cpu": round(usage.ru_utime + usage.ru_stime, 2),
        "user": round(usage.ru_utime, 2), "sys": round(usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "sandbox_cpu": round(proc_cpu_seconds(sandbox_pid) - sandbox_before, 2),
        "stdout": stdout[-1000:], "stderr": stderr[-1500:],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=200_000)
    ap.add_argument("--products", type=int, default=100_000)
    ap.add_argument("--only", action="append", help="run only contenders whose name contains this")
    ap.add_argument("--python", default=sys.executable, help="interpreter of the contenders")
    ap.add_argument("--json", help="write the results to this file")
    a = ap.parse_args()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE.parent.parent)
    results = {}
    print(f"machine: {machine()}")
    t_gen = time.monotonic()
    with sandbox_process(orders=a.orders, products=a.products, rate=0, python=a.python) as (url, pid):
        print(f"sandbox: {a.orders} orders, {a.products} products, up in {time.monotonic() - t_gen:.1f} s "
              f"(prewarmed), RSS {_rss_mb(pid):.0f} MB")
        for name, make in CONTENDERS.items():
            if a.only and not any(o.lower() in name.lower() for o in a.only):
                continue
            tmp = Path(tempfile.mkdtemp(prefix="sqquid-bench-"))
            try:
                sandbox_stats(url, reset=True)
                r = run_wait4(make(a.python, url, tmp), env, pid)
                r["requests"] = sandbox_stats(url)["requests"]
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            pipeline = _pipeline_figures(r["stdout"])
            if pipeline:  # two processes at once: their peaks add up (os.wait4 of the parent gives the larger)
                r["peak_rss_mb"] = pipeline["peak_rss_mb_sum"]
                r["parts"] = pipeline["parts"]
            results[name] = r
            status = "ok" if r["rc"] == 0 else f"FAILED rc={r['rc']}: {r['stderr'][-600:]}"
            print(f"{name:45s} cpu {r['cpu']:7.2f} s  wall {r['wall']:7.2f} s  peak RSS {r['peak_rss_mb']:7.1f} MB  "
                  f"sandbox cpu {r['sandbox_cpu']:6.2f} s  requests {r['requests']}  {status}", flush=True)
    floor = results.get("floor (requests + json.loads)")
    ours = results.get("sqquid-etl -> DuckDB")
    if floor and ours:
        print("\nratios (CPU time):")
        for name, r in results.items():
            print(f"  {name:45s} {r['cpu'] / floor['cpu']:6.2f}x floor  {r['cpu'] / ours['cpu']:6.2f}x sqquid-etl->DuckDB")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))


def _pipeline_figures(stdout: str) -> dict | None:
    for line in stdout.splitlines():
        if line.startswith("{") and "peak_rss_mb_sum" in line:
            return json.loads(line)
    return None


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


if __name__ == "__main__":
    main()
