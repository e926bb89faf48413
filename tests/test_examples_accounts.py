"""The orchestrator examples for many accounts (issue #15, item 5): the Dagster partitions (one a
account) are materialised against two sandboxes, one per account; the Airflow DAG's mapping over
the accounts is checked by loading it, and run with `dag.test()` where Airflow is installed
(`tests/airflow_accounts_run.py`)."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from sqquid_etl.definitions import load_definitions

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
NO_DAGSTER = "dagster is not installed (it is in the test extra: pip install -e '.[test]')"
KEYS = {"acme": "sandbox-key-acme", "globex": "sandbox-key-globex"}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def two_accounts(make_sandbox, tmp_path, monkeypatch):
    """Two accounts, each its own sandbox (own key, data of another size), in a sqquid.toml that
    $SQQUID_CONFIG names; returns the sandboxes by account."""
    sandboxes = {"acme": make_sandbox(seed=11, orders=40, products=15, api_keys=(KEYS["acme"],)),
                 "globex": make_sandbox(seed=12, orders=70, products=25, api_keys=(KEYS["globex"],))}
    config = tmp_path / "sqquid.toml"
    tables = "".join(f'\n[accounts.{name}]\nbase_url = "{sb.url}"\napi_key_env = "{name.upper()}_SQQUID_KEY"\n'
                     for name, sb in sandboxes.items())
    config.write_text("[api]\nrate = 0\n" + tables, encoding="utf-8")
    for name, key in KEYS.items():
        monkeypatch.setenv(f"{name.upper()}_SQQUID_KEY", key)
    monkeypatch.setenv("SQQUID_CONFIG", str(config))
    return sandboxes


def _events(result, kind: str) -> list:
    return [e for e in result.all_events if e.event_type_value == kind]


def test_dagster_partitions_are_the_accounts_and_two_materialise_against_the_sandbox(two_accounts, tmp_path,
                                                                                     monkeypatch):
    dagster = pytest.importorskip("dagster", reason=NO_DAGSTER)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    example = _load("dagster_accounts")
    assert example.ACCOUNTS.get_partition_keys() == ["acme", "globex"]  # the config's accounts, in its order
    selected = [a for a in example.sqquid_assets if a.key.path[-1] in ("orders", "locations")]
    resource = example.SqquidAccountsResource(duckdb_path=str(tmp_path / "wh" / "{account}.duckdb"))
    instance = dagster.DagsterInstance.ephemeral()
    for account, sandbox in two_accounts.items():
        result = dagster.materialize(selected, partition_key=account, resources={"sqquid": resource},
                                     instance=instance)
        assert result.success
        materialised = {e.asset_key.path[-1]: e for e in _events(result, "ASSET_MATERIALIZATION")}
        assert set(materialised) == {"orders", "locations"}
        orders = materialised["orders"].step_materialization_data.materialization
        assert orders.partition == account
        assert orders.metadata["account"].value == account
        assert orders.metadata["rows_orders"].value == len(sandbox.store.orders)
        checks = [e.event_specific_data for e in _events(result, "ASSET_CHECK_EVALUATION")]
        assert [(c.asset_key.path[-1], c.check_name, c.passed) for c in checks] == [("orders", "count_check", True)]
        assert checks[0].metadata["account"].value == account
        assert checks[0].metadata["expected"].value == len(sandbox.store.orders)
        assert checks[0].target_materialization_data.storage_id  # the check is about this partition's materialisation
        with duckdb.connect(str(tmp_path / "wh" / f"{account}.duckdb"), read_only=True) as conn:
            assert conn.execute("SELECT DISTINCT account FROM orders").fetchall() == [(account,)]
            assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == len(sandbox.store.orders)
    assert len(two_accounts["acme"].store.orders) != len(two_accounts["globex"].store.orders)
    materialised = instance.get_materialized_partitions(dagster.AssetKey(["sqquid", "orders"]))
    assert materialised == {"acme", "globex"}


def test_dagster_a_failing_account_fails_its_partition_alone(two_accounts, tmp_path, monkeypatch):
    dagster = pytest.importorskip("dagster", reason=NO_DAGSTER)
    monkeypatch.setenv("GLOBEX_SQQUID_KEY", "not-globex-key")  # refused at login
    example = _load("dagster_accounts")
    assert all(a.op.retry_policy == example.RETRY for a in example.sqquid_assets)
    d = load_definitions()["orders"]  # the asset as the example builds it, retried at once instead of after 30 s
    orders = [example.stream_asset(d.name, d.description, d.depends_on, True, dagster.RetryPolicy(max_retries=1))]
    resource = example.SqquidAccountsResource(duckdb_path=str(tmp_path / "{account}.duckdb"))
    instance = dagster.DagsterInstance.ephemeral()
    bad = dagster.materialize(orders, partition_key="globex", resources={"sqquid": resource}, instance=instance,
                              raise_on_error=False)
    assert not bad.success
    assert len(_events(bad, "STEP_RESTARTED")) == 1  # retried (its own partition only), then failed
    failure = _events(bad, "STEP_FAILURE")[0].event_specific_data.error.to_string()
    assert "account globex, stream orders failed: login refused (401)" in failure and "not-globex-key" not in failure
    good = dagster.materialize(orders, partition_key="acme", resources={"sqquid": resource}, instance=instance)
    assert good.success
    assert instance.get_materialized_partitions(dagster.AssetKey(["sqquid", "orders"])) == {"acme"}


def test_dagster_definitions_concurrency_checks_and_schedule(two_accounts, monkeypatch):
    dagster = pytest.importorskip("dagster", reason=NO_DAGSTER)
    example = _load("dagster_accounts")
    counted = {name for name, d in load_definitions().items() if d.count is not None}
    for a in example.sqquid_assets:
        assert a.partitions_def == example.ACCOUNTS
        assert a.op.pool == "sqquid_accounts"  # accounts at once, across runs
        assert a.op.tags[example.DESTINATION_TAG] == "duckdb"  # one writer a file within a run
        assert {c.name for c in a.check_specs} == ({"count_check"} if a.key.path[-1] in counted else set())
    inventory = next(a for a in example.sqquid_assets if a.key.path[-1] == "inventory")
    assert {k.path[-1] for k in inventory.asset_deps[inventory.key]} == {"products"}
    executor = example.defs.resolve_job_def("sqquid_accounts_extract").executor_def
    assert executor.name == "multiprocess"
    schedule = example.defs.resolve_schedule_def("sqquid_accounts_daily")
    assert schedule.cron_schedule == "0 2 * * *"
    with dagster.DagsterInstance.ephemeral() as instance:
        context = dagster.build_schedule_context(instance=instance, repository_def=example.defs.get_repository_def())
        requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == ["acme", "globex"]  # a run per account


def test_dagster_cli_materialises_a_partition_with_the_multiprocess_executor(two_accounts, tmp_path):
    """The definitions as `dagster` loads them: the accounts from $SQQUID_CONFIG, the file per
    account from $SQQUID_DUCKDB, processes, the key never in the log."""
    pytest.importorskip("dagster", reason=NO_DAGSTER)
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "SQQUID_DUCKDB": str(tmp_path / "wh" / "{account}.duckdb")}
    done = subprocess.run([str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-f",
                           str(EXAMPLES / "dagster_accounts.py"), "--select", "sqquid/orders,sqquid/locations",
                           "--partition", "globex"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert "Multiprocess executor" in log and "RUN_SUCCESS" in log
    assert not any(key in log for key in KEYS.values())
    with duckdb.connect(str(tmp_path / "wh" / "globex.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == len(two_accounts["globex"].store.orders)
        runs = conn.execute("SELECT stream, started_at, finished_at FROM _sqquid_runs ORDER BY started_at").fetchall()
    assert sorted(r[0] for r in runs) == ["locations", "orders"]
    assert runs[1][1] >= runs[0][2]  # one writer a file: the second stream began after the first ended
    assert not (tmp_path / "wh" / "acme.duckdb").exists()  # only the partition asked for


AIRFLOW_PYTHON = ROOT / ".venv-airflow" / "bin" / "python"
AIRFLOW_VENV = ("python3 -m venv .venv-airflow && .venv-airflow/bin/pip install -q 'apache-airflow==3.3.2' -e . "
                "(the README's test command builds it)")


def test_airflow_dag_maps_a_task_per_account_with_a_pool_and_retries():
    source = (EXAMPLES / "airflow_accounts_dag.py").read_text(encoding="utf-8")
    tree = ast.parse(source)  # a syntax error fails here, with or without Airflow
    imports = [n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.module.startswith("airflow")]
    assert imports == ["airflow.sdk"]  # Airflow 3's task SDK
    calls = {ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert "extract_account.expand(account=list_accounts())" in calls  # dynamic task mapping over the accounts
    task = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "extract_account")
    options = {k.arg: ast.unparse(k.value) for k in task.decorator_list[0].keywords}
    assert options["pool"] == "POOL" and options["retries"] == "2"
    assert 'POOL = "sqquid_accounts"' in source
    assert "extract(accounts=[account]" in source


def test_airflow_dag_test_runs_every_account_against_the_sandbox(two_accounts, tmp_path):
    """`dag.test()` with real Airflow, in the side venv that has it (Airflow's pins and ours live
    apart): the accounts listed from the config, a mapped task instance per account named by it,
    in the pool, with its retries; each account's rows in its own file."""
    if not AIRFLOW_PYTHON.exists():
        pytest.skip(f"Airflow is not installed beside the tests: {AIRFLOW_VENV}")
    dags = tmp_path / "dags"
    dags.mkdir()
    dag_file = dags / "airflow_accounts_dag.py"
    dag_file.write_text((EXAMPLES / "airflow_accounts_dag.py").read_text(encoding="utf-8"), encoding="utf-8")
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "SQQUID_DUCKDB": str(tmp_path / "wh" / "{account}.duckdb"),
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([str(AIRFLOW_PYTHON), str(ROOT / "tests" / "airflow_accounts_run.py"), str(dag_file)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert not any(key in log for key in KEYS.values())
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["state"] in ("success", "DagRunState.SUCCESS")
    mapped = [t for t in report["instances"] if t["task_id"] == "extract_account"]
    assert [(t["map_index"], t["name"]) for t in mapped] == [(0, "acme"), (1, "globex")]
    assert all(t["pool"] == "sqquid_accounts" and t["max_tries"] == 2 and t["state"].endswith("success")
               for t in mapped)
    for account, sandbox in two_accounts.items():
        with duckdb.connect(str(tmp_path / "wh" / f"{account}.duckdb"), read_only=True) as conn:
            assert conn.execute("SELECT DISTINCT account FROM orders").fetchall() == [(account,)]
            assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == len(sandbox.store.orders)
            assert conn.execute("SELECT count(*) FROM products").fetchone()[0] == len(sandbox.store.products)


def test_dagster_two_partitions_at_once_into_one_parquet_directory(two_accounts, tmp_path):
    """Fan out into ONE destination: two `dagster asset materialize` processes at once, one a
    partition, both writing the Parquet directory of $SQQUID_PARQUET (each account commits its
    own account=NAME/ partitions, so no limit of one is needed)."""
    pytest.importorskip("dagster", reason=NO_DAGSTER)
    parquet = tmp_path / "parquet"
    command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-f",
               str(EXAMPLES / "dagster_accounts.py"), "--select", "sqquid/orders", "--partition"]
    running = []
    for account in two_accounts:  # a Dagster home each (two fresh sqlite instances would race); one destination
        (tmp_path / account).mkdir()
        env = {**os.environ, "DAGSTER_HOME": str(tmp_path / account), "SQQUID_PARQUET": str(parquet)}
        running.append(subprocess.Popen([*command, account], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True))
    logs = [p.communicate(timeout=300)[0] for p in running]
    assert [p.returncode for p in running] == [0, 0], "\n".join(log[-2000:] for log in logs)
    with duckdb.connect() as conn:
        counts = dict(conn.execute(f"SELECT account, count(*) FROM read_parquet('{parquet}/orders/*/*.parquet', "
                                   "hive_partitioning = true) GROUP BY 1").fetchall())
    assert counts == {name: len(sb.store.orders) for name, sb in two_accounts.items()}
    assert not list(tmp_path.glob("warehouse/*.duckdb"))  # Parquet instead of the DuckDB files
