"""Start-up counts (issue #11): what the `sqquid-etl` program leaves out of a small run."""

from __future__ import annotations

import os
import subprocess
import sys

import duckdb

from tests.support import API_KEY

PROGRAM = """
import sys
from sqquid_etl.cli import run
sys.argv = ["sqquid-etl", *sys.argv[1:]]
try:
    run()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("numpy loaded:", "numpy" in sys.modules, "pyarrow loaded:", "pyarrow" in sys.modules)
sys.exit(code)
"""


def test_the_program_extracts_without_loading_numpy(make_sandbox, tmp_path):
    """pyarrow goes without numpy in the program's own process (no_pandas.refuse_numpy), and the
    extract stores the same as with it; a process that only calls `main` keeps numpy."""
    sandbox = make_sandbox(orders=60, products=20)
    target = tmp_path / "s.duckdb"
    env = dict(os.environ, SQQUID_API_KEY=API_KEY)
    for _ in range(2):  # a first load, then an incremental run (merge, count scan)
        done = subprocess.run([sys.executable, "-c", PROGRAM, "extract", "--base-url", sandbox.url, "--duckdb", str(target),
                               "--rate", "0", "-q"], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "numpy loaded: False pyarrow loaded: True" in done.stdout
    with duckdb.connect(str(target), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchall()[0][0] == len(sandbox.store.orders)
        assert conn.execute("SELECT DISTINCT status FROM _sqquid_runs").fetchall() == [("ok",)]
