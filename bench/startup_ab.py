"""Start-up A/B on a shared machine: the no-op run of two checkouts, interleaved.

    python bench/startup_ab.py --baseline DIR [--baseline-python PY] [--rounds 9] [--orders 40000]

CPU figures taken while other work loads the machine are inflated, but two commands run turn
about inflate alike: their ratio holds. Against one sandbox (pacing off), every stream is
extracted once into a DuckDB file, then run once more (so the file is as a scheduled run
leaves it); each round copies that file twice and runs the no-op incremental extract of this
checkout and of DIR (a checkout of another commit, e.g. `git worktree add DIR main`) on a
copy each, the order alternating, with the defaults (re-read windows, count scan) and without
re-read windows. With --first-load, each round also extracts --orders orders into a new
file with each. Prints the medians of CPU (user+sys, os.wait4) and peak RSS, and the load
average. The package's bytecode is compiled first in both checkouts.
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
from common import API_KEY, sandbox_process  # noqa: E402
from startup import NO_REREAD, measure  # noqa: E402

HERE = Path(__file__).resolve().parent


def side_env(root: Path, url: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(root), "SQQUID_API_KEY": API_KEY, "SQQUID_BASE_URL": url}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", type=Path, required=True, help="the other checkout's root")
    ap.add_argument("--baseline-python", default=sys.executable)  # (PYTHONPATH names the checkout: a venv of either works)
    ap.add_argument("--orders", type=int, default=40_000)
    ap.add_argument("--products", type=int, default=2_000)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--first-load", action="store_true", help="also extract --orders orders into a new file")
    ap.add_argument("--no-noop", action="store_true", help="only the first load (with --first-load)")
    a = ap.parse_args()
    sides = {"baseline": (a.baseline_python, a.baseline.resolve()), "this": (sys.executable, HERE.parent)}
    for py, root in sides.values():
        subprocess.run([py, "-m", "compileall", "-q", str(root / "sqquid_etl")], check=True, stdout=subprocess.DEVNULL)
    work = Path(tempfile.mkdtemp(prefix="sqquid-startup-ab-"))
    os.chdir(work)  # `python -m` puts the working directory first on the path: neither checkout's
    loads = [os.getloadavg()[0]]
    cases = [] if a.no_noop else [("default", []), ("no re-read", ["--reread", NO_REREAD])]
    figures: dict = {}
    try:
        with sandbox_process(orders=a.orders, products=a.products, rate=0, python=sys.executable) as (url, _pid):
            py, root = sides["baseline"]
            base = work / "base.duckdb"
            for _ in range(2):  # the extract, then one incremental run: the file as a schedule leaves it
                measure([py, "-m", "sqquid_etl.cli", "extract", "--duckdb", base, "--rate", "0", "-q"], side_env(root, url))
            for r in range(a.rounds):
                order = list(sides) if r % 2 == 0 else list(reversed(sides))
                for label, extra in cases:
                    for name in order:
                        py, root = sides[name]
                        db = work / f"{name}-{r}.duckdb"
                        shutil.copyfile(base, db)
                        cmd = [py, "-m", "sqquid_etl.cli", "extract", "--duckdb", db, "--rate", "0", "-q", *extra]
                        figures.setdefault((label, name), []).append(measure(cmd, side_env(root, url)))
                        db.unlink()
                if a.first_load:
                    for name in order:
                        py, root = sides[name]
                        db = work / f"orders-{name}-{r}.duckdb"
                        cmd = [py, "-m", "sqquid_etl.cli", "extract", "--streams", "orders", "--duckdb", db, "--rate", "0", "-q"]
                        figures.setdefault(("40k orders", name), []).append(measure(cmd, side_env(root, url)))
                        db.unlink()
                loads.append(os.getloadavg()[0])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{a.rounds} rounds, load average {min(loads):.1f}-{max(loads):.1f}; baseline {a.baseline}")
    for label in dict.fromkeys(k[0] for k in figures):
        b = [statistics.median(x) for x in zip(*figures[(label, "baseline")])]
        t = [statistics.median(x) for x in zip(*figures[(label, "this")])]
        print(f"{label:>12}: baseline CPU {b[0]:.3f} s, {b[1]:.0f} MB | this CPU {t[0]:.3f} s, {t[1]:.0f} MB "
              f"| {100 * (t[0] / b[0] - 1):+.1f}% (medians)")


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"({time.monotonic() - started:.0f} s)")
