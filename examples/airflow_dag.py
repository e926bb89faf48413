"""Airflow: a daily DAG with one task per Sqquid stream, on sqquid-etl's Python API.

    pip install sqquid-etl apache-airflow
    # the key goes in an Airflow Variable or the worker's environment, never in the DAG file:
    export SQQUID_API_KEY=...
    cp examples/airflow_dag.py $AIRFLOW_HOME/dags/

Tasks follow the stream definitions' `depends_on` (inventory after products). Each task is
incremental (the state lives in the DuckDB file) and retried by Airflow on failure; a task only
fails for a failed stream, a count warning is logged. Streams write to one DuckDB file, so the
DAG runs one task at a time (`max_active_tasks=1`); use one file per stream, or Parquet, to run
them in parallel. Settings come from `SQQUID_CONFIG` (a sqquid.toml) when set.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.decorators import dag, task

from sqquid_etl.definitions import load_definitions

DUCKDB_PATH = os.environ.get("SQQUID_DUCKDB", "/opt/airflow/data/sqquid.duckdb")


def extract_stream(stream: str) -> dict:
    """Run one stream; return its summary (pushed to XCom)."""
    from sqquid_etl import extract

    result = extract([stream], duckdb=DUCKDB_PATH, base_url=os.environ.get("SQQUID_BASE_URL"),
                     api_key=os.environ.get("SQQUID_API_KEY"))
    s = result.stream(stream)
    if s.status == "failed":
        raise RuntimeError(f"stream {stream} failed: {s.message}")
    return {"stream": stream, "status": s.status, "rows": s.rows, "cursor": s.cursor, "count_check": s.count_check}


@dag(
    dag_id="sqquid_extract",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["sqquid", "elt"],
)
def sqquid_extract():
    tasks = {}
    for definition in load_definitions().values():  # dependency order
        tasks[definition.name] = task(task_id=f"extract_{definition.name}")(extract_stream)(definition.name)
        for upstream in definition.depends_on:
            tasks[upstream] >> tasks[definition.name]


sqquid_extract()
