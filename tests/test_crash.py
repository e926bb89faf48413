"""Kill the extract process (SIGKILL) mid-run; the next run leaves the destination exact."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.expected import assert_tables_equal, duckdb_tables, expected_tables, parquet_tables
from tests.support import API_KEY


def _extract_cmd(sandbox, target_args):
    return [sys.executable, "-m", "sqquid_etl.cli", "extract", "--base-url", sandbox.url, "--rate", "100000", *target_args]


def _env():
    env = dict(os.environ, SQQUID_API_KEY=API_KEY)
    env.pop("SQQUID_USERNAME", None)
    return env


KILL_POINTS = 6  # per destination; each at a random request of the run (seeded)


def _kill_after_requests(process, sandbox, requests: int) -> bool:
    """SIGKILL the process once the sandbox has served `requests` more requests; False if it ended first."""
    target = sandbox.stats.requests + requests
    deadline = time.monotonic() + 30
    while sandbox.stats.requests < target and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    if process.poll() is not None:
        return False
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True


@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_sigkill_mid_run_then_rerun_is_exact(make_sandbox, tmp_path, kind):
    sandbox = make_sandbox(orders=1500, products=300, latency=0.002)
    target = tmp_path / ("s.duckdb" if kind == "duckdb" else "lake")
    args = ["--duckdb", str(target)] if kind == "duckdb" else ["--parquet", str(target)]
    rng = random.Random(f"kill-{kind}")
    kills = 0
    for _ in range(KILL_POINTS):
        process = subprocess.Popen(_extract_cmd(sandbox, args), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kills += _kill_after_requests(process, sandbox, rng.randint(1, 30))
        sandbox.store.add_orders(25)  # the world moves on between runs
    assert kills >= KILL_POINTS // 2, "the extract finished before it could be killed: make the sandbox slower"
    finished = subprocess.run(_extract_cmd(sandbox, args), env=_env(), capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    actual = duckdb_tables(target) if kind == "duckdb" else parquet_tables(target)
    assert_tables_equal(actual, expected_tables(sandbox.store))
    staging = target / ".sqquid" / "staging" if kind == "parquet" else target.with_name(target.name + ".staging")
    assert [p for p in staging.rglob("*") if p.is_file()] == []  # no staged pages left behind
    assert not list(tmp_path.rglob("*.tmp"))


def test_sigkill_during_partial_load_then_rerun_resends_only_unacknowledged(make_sandbox, tmp_path):
    sandbox = make_sandbox(orders=10, products=10, latency=0.03)
    rows = [{"sku": f"CRASH-{i:05d}", "qty_on_hand": i % 97} for i in range(6000)]
    source = tmp_path / "inventory.csv"
    source.write_text("sku,qty_on_hand\n" + "".join(f"{r['sku']},{r['qty_on_hand']}\n" for r in rows))
    cmd = [sys.executable, "-m", "sqquid_etl.cli", "load-inventory", str(source), "--mode", "partial",
           "--batch-size", "200", "--base-url", sandbox.url, "--rate", "0"]
    batches = 6000 // 200
    process = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    route = "PATCH /v1/inventory/partial"
    deadline = time.monotonic() + 20
    while sandbox.stats.by_route[route] < batches // 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    sent_first = sandbox.stats.by_route[route]
    assert 0 < sent_first < batches, "the load was not killed mid-way"
    rerun = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    total = sandbox.stats.by_route[route]
    assert total <= batches + 1  # at most the one batch in flight at the kill is sent again
    assert "skipped" in rerun.stdout
    for r in rows:
        assert sandbox.store.inventory[(r["sku"], "default", "default")]["qty_on_hand"] == r["qty_on_hand"]
