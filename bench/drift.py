"""Clean pages stay fast (issue #12 item 8): the `sqquid-etl extract` command against a clean
sandbox and against one where every page drifts (`sqquid-etl sandbox --drift`), pacing off.

    python bench/drift.py --orders 200000 --products 100000 --repeat 3

Two sandboxes in their own processes (prewarmed, throttling off), one clean and one with
`--drift` (every record and child record carries undocumented fields; a fraction of values come
in another representation that is coerced without loss; `--lossy F` adds a third sandbox with
`--drift --drift-lossy F`, whose lossy records are quarantined). Each round runs, against each
sandbox in turn, the floor (`contenders/floor.py`: requests + json.loads) and the extract into
DuckDB (`contenders/sqquid.py`); CPU (user+sys) and peak RSS from `os.wait4`. Rounds are
interleaved so that load on the machine falls on both sides alike; the figure of each is the
median over the rounds.

Targets: the extract's CPU on clean data within 10% of before (its ratio to the floor, compared
with the 1.45x of docs/benchmarks.md at 200k/100k; or, with `--baseline DIR`, the extract of an
earlier checkout run in the same rounds against the same sandboxes), and the every-page-drifts
run at most 2x the clean run. rows / coerced / quarantined come from the run's `_sqquid_runs`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import API_KEY, machine, sandbox_process, sandbox_stats  # noqa: E402
from overhead import run_wait4  # noqa: E402

HERE = Path(__file__).resolve().parent / "contenders"
STREAMS = "orders,products"


def page_bytes(url: str) -> dict:
    """Bytes of the first full page (250 records) of each list, as served."""
    req = urllib.request.Request(url + "/v1/login", data=json.dumps({"api_key": API_KEY}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req) as r:
        token = json.loads(r.read())["token"]
    sizes = {}
    for path in ("orders", "products"):
        req = urllib.request.Request(f"{url}/v1/{path}?page=1&limit=250", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req) as r:
            sizes[path] = len(r.read())
    return sizes


def run_figures(db: Path) -> dict:
    """Sums over the streams of the run's `_sqquid_runs` (one run per file)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT stream, status, rows, records_stored, values_coerced, records_quarantined, count_check "
            "FROM _sqquid_runs ORDER BY stream").fetchall()
    finally:
        con.close()
    return {
        "streams": {r[0]: {"status": r[1], "rows": r[2], "records_stored": r[3], "values_coerced": r[4],
                           "records_quarantined": r[5], "count_check": r[6]} for r in rows},
        "rows": sum(r[2] or 0 for r in rows), "records_stored": sum(r[3] or 0 for r in rows),
        "values_coerced": sum(r[4] or 0 for r in rows), "records_quarantined": sum(r[5] or 0 for r in rows),
    }


def one_round(py: str, url: str, pid: int, env: dict, baseline: str | None = None) -> dict:
    out = {}
    sandbox_stats(url, reset=True)
    out["floor"] = run_wait4([py, HERE / "floor.py", url, STREAMS], env, pid)
    out["floor"]["requests"] = sandbox_stats(url, reset=True)["requests"]
    out["sqquid"] = extract_once(py, url, pid, env)
    if baseline:  # the same extract by another checkout's connector (its sqquid_etl first on the path)
        sandbox_stats(url, reset=True)
        out["baseline"] = extract_once(py, url, pid, {**env, "PYTHONPATH": baseline})
    for name, res in out.items():
        if res["rc"] != 0:
            raise SystemExit(f"{name} failed (rc={res['rc']}): {res['stderr']}")
    return out


def extract_once(py: str, url: str, pid: int, env: dict) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="sqquid-drift-"))
    try:
        r = run_wait4([py, HERE / "sqquid.py", url, tmp / "s.duckdb", "duckdb", STREAMS], env, pid)
        r["requests"] = sandbox_stats(url)["requests"]
        if r["rc"] == 0:
            r["run"] = run_figures(tmp / "s.duckdb")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--products", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds; medians are reported")
    ap.add_argument("--lossy", type=float, default=0.0, help="also a sandbox with --drift --drift-lossy LOSSY")
    ap.add_argument("--before", type=float, default=1.45,
                    help="CPU vs the floor before (docs/benchmarks.md, third session, DuckDB at 200k/100k)")
    ap.add_argument("--python", default=sys.executable, help="interpreter of the contenders")
    ap.add_argument("--json", help="write every measurement to this file")
    ap.add_argument("--baseline", help="a checkout of the connector before (e.g. `git archive REV | tar -x -C DIR`): "
                                       "its extract runs too, interleaved, for the clean-run comparison")
    a = ap.parse_args()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE.parent.parent)
    modes = {"clean": {}, "drift": {"drift": True}}
    if a.lossy:
        modes[f"drift, lossy {a.lossy:g}"] = {"drift": True, "drift_lossy": a.lossy}
    print(f"machine: {machine()}")
    print(f"code: {_revision()}")
    print(f"{a.orders} orders + {a.products} products, {a.repeat} interleaved rounds, medians")
    results = {m: [] for m in modes}
    with ExitStack() as stack:
        sandboxes = {}
        for mode, kw in modes.items():
            t0 = time.monotonic()
            sandboxes[mode] = stack.enter_context(
                sandbox_process(orders=a.orders, products=a.products, rate=0, python=a.python, **kw))
            print(f"sandbox {mode}: up in {time.monotonic() - t0:.1f} s (prewarmed); first page bytes "
                  f"{page_bytes(sandboxes[mode][0])}", flush=True)
        for i in range(a.repeat):
            for mode, (url, pid) in sandboxes.items():
                r = one_round(a.python, url, pid, env, a.baseline)
                results[mode].append(r)
                f, s = r["floor"], r["sqquid"]
                print(f"round {i + 1} {mode:18s} floor cpu {f['cpu']:6.2f} s  extract cpu {s['cpu']:6.2f} s "
                      f"wall {s['wall']:6.2f} s  peak RSS {s['peak_rss_mb']:6.1f} MB  sandbox cpu "
                      f"{s['sandbox_cpu']:5.2f} s  requests {s['requests']}"
                      + (f"  baseline extract cpu {r['baseline']['cpu']:6.2f} s" if a.baseline else ""), flush=True)

    med = {}
    for mode, rounds in results.items():
        run = rounds[-1]["sqquid"]["run"]
        med[mode] = {
            "floor": statistics.median(r["floor"]["cpu"] for r in rounds),
            "cpu": statistics.median(r["sqquid"]["cpu"] for r in rounds),
            "wall": statistics.median(r["sqquid"]["wall"] for r in rounds),
            "rss": max(r["sqquid"]["peak_rss_mb"] for r in rounds),
            "run": run,
        }
        if a.baseline:
            med[mode]["baseline"] = statistics.median(r["baseline"]["cpu"] for r in rounds)
    print("\nmode                 extract CPU  floor CPU  vs floor  peak RSS   rows      stored    coerced   "
          "quarantined")
    for mode, m in med.items():
        run = m["run"]
        print(f"{mode:20s} {m['cpu']:8.2f} s {m['floor']:8.2f} s {m['cpu'] / m['floor']:8.2f}x {m['rss']:7.1f} MB "
              f"{run['rows']:9d} {run['records_stored']:9d} {run['values_coerced']:9d} {run['records_quarantined']:9d}")
    for mode, m in med.items():
        for stream, s in m["run"]["streams"].items():
            print(f"  {mode:18s} {stream:10s} {s}")
    clean = med["clean"]
    ratio_before = clean["cpu"] / clean["floor"]
    print(f"\nclean vs before: {ratio_before:.2f}x the floor now against {a.before:.2f}x before "
          f"({ratio_before / a.before - 1:+.1%}; target within +10%)")
    for mode, m in med.items():
        if a.baseline:
            print(f"{mode} vs the baseline's extract, same pages, interleaved: {m['cpu']:.2f} s / {m['baseline']:.2f} s "
                  f"= {m['cpu'] / m['baseline'] - 1:+.1%}" + (" (target for clean: within +10%)" if mode == "clean" else ""))
    for mode, m in med.items():
        if mode != "clean":
            print(f"{mode} vs clean: {m['cpu']:.2f} s / {clean['cpu']:.2f} s = {m['cpu'] / clean['cpu']:.2f}x "
                  f"(target <= 2x); floor on the same pages {m['floor'] / clean['floor']:.2f}x")
    if a.json:
        Path(a.json).write_text(json.dumps({"results": results, "medians": med}, indent=2, default=str))


def _revision() -> str:
    """The commit measured, and whether the connector's files differ from it (a shared tree)."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=HERE.parent.parent, capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--", "sqquid_etl")
    return git("rev-parse", "--short", "HEAD") + (f" + uncommitted: {' '.join(dirty.split()[1::2])}" if dirty else "")


if __name__ == "__main__":
    main()
