"""Start-up counts (issue #11): what the `sqquid-etl` program leaves out of a small run."""

from __future__ import annotations

import os
import subprocess
import sys

import duckdb
import pytest

from sqquid_etl import extract
from sqquid_etl.credentials import Credentials
from sqquid_etl.destinations.duckdb_engine import duckdb as engine
from sqquid_etl.errors import SqquidError
from sqquid_etl.pipeline import extract as pipeline_extract
from tests.support import API_KEY, make_client

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
print("numpy loaded:", "numpy" in sys.modules, "pyarrow loaded:", "pyarrow" in sys.modules,
      "duckdb's relations loaded:", "duckdb" in sys.modules, "pyarrow.compute loaded:", "pyarrow.compute" in sys.modules)
sys.exit(code)
"""


def test_the_program_extracts_without_loading_numpy(make_sandbox, tmp_path):
    """pyarrow goes without numpy in the program's own process (no_pandas.refuse_numpy), and the
    extract stores the same as with it; a process that only calls `main` keeps numpy. DuckDB's
    engine is loaded without the package's Python layer of relations (duckdb_engine.py), and pyarrow
    without pyarrow.compute's wrappers (arrow_compute.py)."""
    sandbox = make_sandbox(orders=60, products=20)
    target = tmp_path / "s.duckdb"
    env = dict(os.environ, SQQUID_API_KEY=API_KEY)
    for _ in range(2):  # a first load, then an incremental run (merge, count scan)
        done = subprocess.run([sys.executable, "-c", PROGRAM, "extract", "--base-url", sandbox.url, "--duckdb", str(target),
                               "--rate", "0", "-q"], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "numpy loaded: False pyarrow loaded: True" in done.stdout
        relations = engine.__name__ == "duckdb"  # (a DuckDB without the extension apart: imported whole)
        assert f"duckdb's relations loaded: {relations}" in done.stdout
        assert "pyarrow.compute loaded: False" in done.stdout
    with duckdb.connect(str(target), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchall()[0][0] == len(sandbox.store.orders)
        assert conn.execute("SELECT DISTINCT status FROM _sqquid_runs").fetchall() == [("ok",)]


def test_an_existing_file_is_opened_once_and_checked_before_anything_is_requested(make_sandbox, tmp_path, monkeypatch):
    """An extract's DuckDB file is opened once a run (its open checks its form, before the login),
    not looked at and then opened; a file of the other form is refused before any request; bad
    credentials leave an existing file as it was."""
    sandbox = make_sandbox(orders=30, products=10)
    db = tmp_path / "o.duckdb"
    assert extract(["orders"], duckdb=db, client=make_client(sandbox)).ok
    opens = []
    connect = engine.connect
    monkeypatch.setattr(engine, "connect", lambda *a, **k: opens.append(a) or connect(*a, **k))
    assert extract(["orders"], duckdb=db, client=make_client(sandbox)).ok
    monkeypatch.setattr(engine, "connect", connect)
    assert opens == [()]  # one database, the file attached to it (duckdb_own.connect); no read-only look
    sandbox.stats.reset()
    with pytest.raises(SqquidError, match="upgrade --account"):
        pipeline_extract(["orders"], duckdb=db, client=make_client(sandbox), account="acme")
    assert sandbox.stats.requests == 0
    before = duckdb.connect(str(db), read_only=True).execute("SELECT * FROM _sqquid_state ORDER BY ALL").fetchall()
    with pytest.raises(SqquidError):
        extract(["orders"], duckdb=db, client=make_client(sandbox, credentials=Credentials(api_key="wrong")))
    assert duckdb.connect(str(db), read_only=True).execute("SELECT * FROM _sqquid_state ORDER BY ALL").fetchall() == before


def test_the_conversion_loads_msgspec_only_for_a_page_that_needs_its_records():
    """msgspec (and the typed rows made with it) is imported by the first page whose records
    are needed (`page_rows.py`, `decode._fast_decoder`), not by the modules of an extract."""
    code = ("import sys, sqquid_etl.cli, sqquid_etl.pipeline, sqquid_etl.records, sqquid_etl.page_rows; "
            "print('msgspec' in sys.modules, 'sqquid_etl.typed_rows' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]
