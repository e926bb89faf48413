"""Dagster: one software-defined asset per Sqquid stream, on sqquid-etl's Python API.

    pip install 'sqquid-etl[dagster]'      # dagster + dagster-webserver (for `dagster dev`)
    export SQQUID_API_KEY=...              # read through Dagster's EnvVar: never in code, config or run logs
    export SQQUID_DUCKDB=warehouse/sqquid.duckdb    # optional: the destination (else sqquid.toml's, else sqquid.duckdb)
    dagster dev -f examples/dagster_assets.py
    dagster job execute -f examples/dagster_assets.py -j sqquid_extract     # or from the command line

Each asset runs `sqquid_etl.extract([stream])` (incremental: the state lives in the destination,
so a re-materialisation fetches only what is new). Asset dependencies follow the stream
definitions' `depends_on` (inventory is listed by the skus of products); each materialisation
records rows, pages, requests, cursor, count check and the destination as metadata.

**One writer per DuckDB file.** Dagster's default executor runs assets in parallel processes,
and a DuckDB file takes one writer at a time. So the definitions keep the multiprocess executor
but allow one `sqquid/destination` asset at a time (`tag_concurrency_limits` below): the assets
queue behind each other instead of failing on the lock. Across runs (two jobs started at once),
use a Dagster concurrency pool of 1 on the same assets (`pool="sqquid"` on @asset with `dagster
instance concurrency set sqquid 1`). Writing one file per stream, or Parquet, lets them run in
parallel.

Test it against the sandbox: `tests/test_examples.py` runs the job with this executor.
"""

import os  # no `from __future__ import annotations`: Dagster reads the annotations at definition time
from typing import Optional

from dagster import (
    AssetExecutionContext, AssetKey, AssetSelection, ConfigurableResource, Definitions, EnvVar, MaterializeResult,
    RetryPolicy, asset, define_asset_job, multiprocess_executor,
)

from sqquid_etl import extract
from sqquid_etl.definitions import load_definitions

DESTINATION_TAG = "sqquid/destination"


class SqquidResource(ConfigurableResource):
    """Where to read from and write to. Left at None, a setting is read as `sqquid-etl extract`
    reads it: the environment (SQQUID_BASE_URL, ...), then sqquid.toml ($SQQUID_CONFIG), then
    the defaults. `api_key` is given as `EnvVar("SQQUID_API_KEY")` below, so Dagster reads it
    from the environment at run time and never shows it."""

    api_key: Optional[str] = None
    base_url: Optional[str] = None
    duckdb_path: Optional[str] = None
    rate: Optional[float] = None  # requests/s; 0: no pacing (the sandbox without throttling)
    start_date: Optional[str] = None

    def extract(self, stream: str):
        return extract([stream], duckdb=self.duckdb_path, base_url=self.base_url, api_key=self.api_key,
                       rate=self.rate, start_date=self.start_date)


def stream_asset(name: str, description: str, depends_on: tuple):
    @asset(
        name=name,
        key_prefix=["sqquid"],
        group_name="sqquid",
        description=description,
        deps=[AssetKey(["sqquid", d]) for d in depends_on],
        kinds={"duckdb"},
        op_tags={DESTINATION_TAG: "duckdb"},  # one writer at a time: see tag_concurrency_limits below
        retry_policy=RetryPolicy(max_retries=2, delay=30),
    )
    def _asset(context: AssetExecutionContext, sqquid: SqquidResource) -> MaterializeResult:
        with sqquid.extract(name) as result:
            s = result.stream(name)
            if s.status == "failed":
                raise RuntimeError(f"stream {name} failed: {s.message}")
            if s.status == "warning":
                context.log.warning(f"stream {name}: {s.message}")
            return MaterializeResult(metadata={
                "rows": sum(s.rows.values()),
                **{f"rows_{table}": n for table, n in s.rows.items()},
                "pages": s.pages,
                "requests": s.requests,
                "cursor": s.cursor or "",
                "count_check": s.count_check,
                "destination": result.destination,
                "run_id": result.run_id,
            })

    return _asset


sqquid_assets = [stream_asset(d.name, d.description, d.depends_on) for d in load_definitions().values()]

sqquid_job = define_asset_job("sqquid_extract", selection=AssetSelection.groups("sqquid"))

defs = Definitions(
    assets=sqquid_assets,
    jobs=[sqquid_job],
    resources={"sqquid": SqquidResource(
        api_key=EnvVar("SQQUID_API_KEY"),
        duckdb_path=os.environ.get("SQQUID_DUCKDB"),  # None: sqquid.toml's destination, else sqquid.duckdb
    )},
    # Dagster's default executor (processes), one sqquid asset at a time: one writer per DuckDB file
    executor=multiprocess_executor.configured(
        {"tag_concurrency_limits": [{"key": DESTINATION_TAG, "limit": 1}]}
    ),
)
