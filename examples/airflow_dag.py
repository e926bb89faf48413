"""Airflow 3: a daily DAG with one task per Sqquid stream, on sqquid-etl's Python API.

    pip install sqquid-etl 'apache-airflow>=3'
    # the key in the worker's environment (or an Airflow connection/secret backend), never in the DAG file:
    export SQQUID_API_KEY=...
    export SQQUID_CONFIG=/opt/airflow/sqquid.toml      # optional: destination, start date, rate, ...
    cp examples/airflow_dag.py $AIRFLOW_HOME/dags/

Written for Airflow 3's task SDK (`airflow.sdk`: `dag`, `task`). Tasks follow the stream
definitions' `depends_on` (inventory after products). Each task is incremental (the state lives
in the destination) and retried by Airflow; a task fails only for a failed stream, a count
warning is logged. `extract(...)` resolves its settings as the CLI does: the environment
(SQQUID_API_KEY, SQQUID_BASE_URL), then the sqquid.toml named by SQQUID_CONFIG, then the
defaults; SQQUID_DUCKDB here chooses the DuckDB file. Streams write to one DuckDB file, which
takes one writer at a time, so the DAG runs one task (`max_active_tasks=1`) and one run
(`max_active_runs=1`) at a time; give other DAGs writing the same file the same pool of one slot
(`pool="sqquid_duckdb"`), or write one file per stream, or Parquet, to run them in parallel.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.sdk import dag, task

from sqquid_etl.definitions import load_definitions


def extract_stream(stream: str) -> dict:
    """Run one stream; return its summary (pushed to XCom)."""
    from sqquid_etl import extract

    with extract([stream], duckdb=os.environ.get("SQQUID_DUCKDB")) as result:
        s = result.stream(stream)
        if s.status == "failed":
            raise RuntimeError(f"stream {stream} failed: {s.message}")
        return {"stream": stream, "status": s.status, "rows": s.rows, "cursor": s.cursor,
                "count_check": s.count_check, "destination": result.destination}


@dag(
    dag_id="sqquid_extract",
    schedule="@daily",
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
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
