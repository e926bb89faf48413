"""The orchestrator examples: the Dagster assets are materialised against the sandbox; the
Airflow DAG is compiled (and loaded when Airflow is installed)."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from sqquid_etl.definitions import load_definitions
from tests.expected import assert_tables_equal, duckdb_tables, expected_tables
from tests.support import API_KEY

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dagster_assets_materialise_against_the_sandbox(make_sandbox, tmp_path, monkeypatch):
    dagster = pytest.importorskip("dagster", reason="dagster is not installed (it is in the test extra: pip install -e '.[test]')")
    sandbox = make_sandbox(orders=50, products=20)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    example = _load("dagster_assets")
    assert {a.key.path[-1] for a in example.sqquid_assets} == set(load_definitions())
    db = tmp_path / "dagster.duckdb"
    resource = example.SqquidResource(base_url=sandbox.url, api_key=API_KEY, duckdb_path=str(db), rate=0)
    result = dagster.materialize(example.sqquid_assets, resources={"sqquid": resource},
                                 instance=dagster.DagsterInstance.ephemeral())
    assert result.success
    materialised = {
        e.asset_key.path[-1]: e.step_materialization_data.materialization.metadata
        for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"
    }
    assert set(materialised) == set(load_definitions())
    assert materialised["orders"]["rows_orders"].value == len(sandbox.store.orders)
    assert materialised["orders"]["count_check"].value == "ok"
    assert materialised["orders"]["destination"].value == str(db)
    assert_tables_equal(duckdb_tables(db), expected_tables(sandbox.store))
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM available_to_sell").fetchone()[0] > 0


def test_dagster_job_with_the_default_multiprocess_executor(make_sandbox, tmp_path):
    """The definitions as `dagster` runs them: processes (Dagster's default executor), the key
    through EnvVar, the destination from SQQUID_DUCKDB, one writer at a time on the file."""
    pytest.importorskip("dagster", reason="dagster is not installed (it is in the test extra: pip install -e '.[test]')")
    sandbox = make_sandbox(orders=60, products=20)
    home, db = tmp_path / "dagster_home", tmp_path / "chosen" / "dest.duckdb"
    home.mkdir()
    db.parent.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "SQQUID_API_KEY": API_KEY, "SQQUID_BASE_URL": sandbox.url,
           "SQQUID_DUCKDB": str(db)}
    done = subprocess.run([str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-f",
                           str(EXAMPLES / "dagster_assets.py"), "--select", "sqquid/orders,sqquid/locations"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert "Multiprocess executor" in log and "RUN_SUCCESS" in log and API_KEY not in log
    with duckdb.connect(str(db), read_only=True) as conn:  # the destination asked for, nowhere else
        runs = conn.execute("SELECT stream, status, started_at, finished_at FROM _sqquid_runs ORDER BY started_at").fetchall()
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 60
    assert [r[0] for r in runs] in (["orders", "locations"], ["locations", "orders"]) and all(r[1] == "ok" for r in runs)
    assert runs[1][2] >= runs[0][3]  # one writer at a time: the second began after the first ended
    assert not (tmp_path / "sqquid.duckdb").exists()


def test_dagster_asset_dependencies_follow_the_definitions():
    pytest.importorskip("dagster", reason="dagster is not installed (it is in the test extra: pip install -e '.[test]')")
    example = _load("dagster_assets")
    inventory = next(a for a in example.sqquid_assets if a.key.path[-1] == "inventory")
    deps = {k.path[-1] for k in inventory.asset_deps[inventory.key]}
    assert deps == {"products"}


def test_airflow_dag_compiles_and_names_every_stream():
    source = (EXAMPLES / "airflow_dag.py").read_text(encoding="utf-8")
    tree = ast.parse(source)  # a syntax error fails here, with or without Airflow installed
    assert any(isinstance(n, ast.FunctionDef) and n.name == "extract_stream" for n in tree.body)
    sdk = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("airflow")]
    assert [n.module for n in sdk] == ["airflow.sdk"]  # Airflow 3's task SDK, not airflow.decorators
    try:
        import airflow  # noqa: F401
    except ImportError:
        pytest.skip("apache-airflow is not installed: the DAG was only compiled, not loaded")
    module = _load("airflow_dag")
    dag = module.sqquid_extract()
    assert {t.task_id for t in dag.tasks} == {f"extract_{n}" for n in load_definitions()}
    assert dag.get_task("extract_inventory").upstream_task_ids == {"extract_products"}
