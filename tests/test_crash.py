"""Kill the extract process (SIGKILL) mid-run; the next run leaves the destination exact."""

from __future__ import annotations

import os
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


@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_sigkill_mid_run_then_rerun_is_exact(make_sandbox, tmp_path, kind):
    sandbox = make_sandbox(orders=1500, products=300, latency=0.004)
    target = tmp_path / ("s.duckdb" if kind == "duckdb" else "lake")
    args = ["--duckdb", str(target)] if kind == "duckdb" else ["--parquet", str(target)]
    kills = 0
    for delay in (0.6, 1.0, 1.6):
        process = subprocess.Popen(_extract_cmd(sandbox, args), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(delay)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        sandbox.store.add_orders(25)  # the world moves on between runs
    assert kills >= 1, "the extract finished before it could be killed: make the sandbox slower"
    finished = subprocess.run(_extract_cmd(sandbox, args), env=_env(), capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    actual = duckdb_tables(target) if kind == "duckdb" else parquet_tables(target)
    assert_tables_equal(actual, expected_tables(sandbox.store))
    if kind == "parquet":
        leftovers = [p for p in (target / ".sqquid" / "staging").rglob("*") if p.is_file()]
        assert leftovers == []
        assert not list(target.glob(".*.tmp"))
