"""Reliability soak: many rounds of extraction under random faults, SIGKILLs, late arrivals and
updates; after every round each table must equal the sandbox's data. Prints the figures that
docs/reliability.md reports.

    .venv/bin/python bench/soak_reliability.py --rounds 20 --seed 1
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqquid_etl.sandbox import FaultConfig, Sandbox, SandboxConfig  # noqa: E402
from tests.expected import duckdb_tables, expected_tables, parquet_tables  # noqa: E402


def random_faults(rng: random.Random) -> FaultConfig:
    return FaultConfig(
        error_every=rng.choice([0, 0, 3, 5, 7, 11]),
        error_status=rng.choice([500, 502, 503, 504]),
        drop_every=rng.choice([0, 0, 4, 9]),
        truncate_every=rng.choice([0, 0, 5, 13]),
        storm_429=rng.choice([0, 0, 0, 10]),
        storm_retry_after=0,
        mutate_every=rng.choice([0, 0, 3]),
        mutate={"add_orders": 2, "update_products": 1},
    )


def losses(actual: dict, expected: dict) -> tuple[int, int]:
    missing = extra = 0
    for table, rows in expected.items():
        got = actual[table]
        missing += len(set(rows) - set(got))
        extra += len(got) - len(set(got)) + len(set(got) - set(rows))
    return missing, extra


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--products", type=int, default=600)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="sqquid-soak-"))
    env = dict(os.environ, SQQUID_API_KEY="sandbox-api-key")
    figures = {"rounds": 0, "runs": 0, "kills": 0, "faults_injected": 0, "late_arrivals": 0, "missing": 0, "extra": 0}
    started = time.monotonic()
    config = SandboxConfig(seed=args.seed, orders=args.orders, products=args.products, rate=None, latency=0.001)
    with Sandbox(config) as sandbox:
        targets = {"duckdb": ["--duckdb", str(work / "soak.duckdb")], "parquet": ["--parquet", str(work / "lake")]}
        for round_no in range(1, args.rounds + 1):
            faults = random_faults(rng)
            sandbox.set_faults(faults)
            for kind, target in targets.items():
                cmd = [sys.executable, "-m", "sqquid_etl.cli", "extract", "--base-url", sandbox.url, "--rate", "100000", *target]
                if rng.random() < 0.7:  # killed at a random request, then a clean re-run
                    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    goal = sandbox.stats.requests + rng.randint(1, 60)
                    while sandbox.stats.requests < goal and process.poll() is None:
                        time.sleep(0.002)
                    if process.poll() is None:
                        process.send_signal(signal.SIGKILL)
                        figures["kills"] += 1
                    process.wait()
                    figures["runs"] += 1
                done = subprocess.run(cmd, env=env, capture_output=True, text=True)
                figures["runs"] += 1
                if done.returncode != 0:
                    print(f"round {round_no} {kind}: extract failed:\n{done.stderr[-2000:]}")
                    return 1
            sandbox.set_faults(FaultConfig())
            if faults.mutate_every:
                # records changed while pages were read are caught by the next run (docs/reliability.md)
                for kind, target in targets.items():
                    cmd = [sys.executable, "-m", "sqquid_etl.cli", "extract", "--base-url", sandbox.url, "--rate", "100000", *target]
                    subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                    figures["runs"] += 1
            actual_runs = {"duckdb": duckdb_tables(work / "soak.duckdb"), "parquet": parquet_tables(work / "lake")}
            expected = expected_tables(sandbox.store)
            for kind, actual in actual_runs.items():
                missing, extra = losses(actual, expected)
                figures["missing"] += missing
                figures["extra"] += extra
                if missing or extra:
                    print(f"round {round_no} {kind}: {missing} missing, {extra} extra rows")
            # the world moves on: new orders, late imports behind the cursor, product updates
            sandbox.store.add_orders(rng.randint(5, 40))
            late = rng.randint(0, 5)
            if late:
                when = rng.choice(sandbox.store.orders)["created_at"]
                sandbox.store.add_orders(late, created_at=when)
                figures["late_arrivals"] += late
            sandbox.store.update_products(rng.randint(1, 20))
            figures["rounds"] += 1
        figures["faults_injected"] = sandbox.stats.faults_injected
    shutil.rmtree(work, ignore_errors=True)
    figures["seconds"] = round(time.monotonic() - started, 1)
    for name, value in figures.items():
        print(f"{name:>16}: {value}")
    return 0 if figures["missing"] == figures["extra"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
