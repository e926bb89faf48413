"""Airflow 3, many accounts: a daily DAG with one mapped task per account of sqquid.toml.

    pip install sqquid-etl 'apache-airflow>=3'
    export SQQUID_CONFIG=/opt/airflow/sqquid.toml        # its [accounts.NAME] tables (or accounts_file)
    export ACME_SQQUID_KEY=... GLOBEX_USER=... ...      # in the workers' environment, never in the DAG file
    export SQQUID_DUCKDB='/data/sqquid/{account}.duckdb' # optional (default warehouse/{account}.duckdb)
    # or: export SQQUID_PARQUET=/data/sqquid/parquet     # one Parquet directory for all, account=NAME/ partitions
    airflow pools set sqquid_accounts 8 "Sqquid accounts extracted at once"
    cp examples/airflow_accounts_dag.py $AIRFLOW_HOME/dags/

`list_accounts` reads the account names from the config when the run starts (a new account is
picked up by the next run, without a DAG change), and `extract_account.expand(account=...)` maps
one task instance per account (dynamic task mapping), named by its account in the UI. Each runs
`extract(accounts=[account])`: the account's own key, rate, start date and state, every stream,
incremental. A failed account fails its own task instance, retried alone (`retries`); the others
go on.

**Concurrency.** The mapped tasks take a slot of the `sqquid_accounts` pool each: the pool's size
is how many accounts run at once. Each account writes its own DuckDB file (`{account}` in
SQQUID_DUCKDB), so they run in parallel. To write every account into ONE DuckDB file instead, give
the pool 1 slot: a DuckDB file takes one writer, whichever process. ONE Parquet directory
(SQQUID_PARQUET) needs no such limit: each account commits its own `account=NAME/` partitions. One task running
`sqquid-etl extract --all-accounts` does that in one process, every account at once, and is
cheaper when per-account retries and task instances are not needed (README, "Many accounts").

Tested with `dag.test()` against two sandboxes where Airflow is installed
(`tests/test_examples_accounts.py`, `tests/airflow_accounts_run.py`).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.sdk import dag, get_current_context, task

POOL = "sqquid_accounts"  # accounts at once: `airflow pools set sqquid_accounts 8 "..."`


@task
def list_accounts() -> list[str]:
    """The accounts of the config ($SQQUID_CONFIG, else ./sqquid.toml), in its order."""
    from sqquid_etl.accounts import account_names

    names = account_names()
    if not names:
        raise RuntimeError("the config file has no accounts ([accounts.NAME] tables, or accounts_file)")
    return names


def destination(account: str) -> dict:
    """SQQUID_PARQUET (one directory for all accounts), else SQQUID_DUCKDB with `{account}` replaced."""
    if os.environ.get("SQQUID_PARQUET"):
        return {"parquet": os.environ["SQQUID_PARQUET"]}
    path = os.environ.get("SQQUID_DUCKDB", "warehouse/{account}.duckdb").replace("{account}", account)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return {"duckdb": path}


@task(pool=POOL, retries=2, retry_delay=timedelta(minutes=5), map_index_template="{{ sqquid_account }}")
def extract_account(account: str) -> dict:
    """Every stream of one account into its destination; its summary (pushed to XCom)."""
    from sqquid_etl import extract

    get_current_context()["sqquid_account"] = account  # the mapped task instance's name in the UI
    with extract(accounts=[account], **destination(account)) as result:
        done = result.account(account)
        if done.status == "failed":
            raise RuntimeError(f"account {account} failed: {done.message}")
        return {"account": account, "status": done.status, "destination": result.destination,
                "streams": {s.stream: {"status": s.status, "rows": s.rows, "cursor": s.cursor,
                                       "count_check": s.count_check} for s in done.streams}}


@dag(
    dag_id="sqquid_accounts",
    schedule="@daily",
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,  # one run at a time: an account's file is written by one task at a time
    tags=["sqquid", "elt", "accounts"],
)
def sqquid_accounts():
    extract_account.expand(account=list_accounts())


sqquid_accounts()
