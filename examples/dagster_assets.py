"""Dagster: one software-defined asset per Sqquid stream, on sqquid-etl's Python API.

    pip install sqquid-etl dagster dagster-webserver
    export SQQUID_API_KEY=...            # never in code or in the Dagster config
    dagster dev -f examples/dagster_assets.py

Each asset runs `sqquid_etl.extract([stream])` into one DuckDB file (incremental: the state
lives in the file, so a re-materialisation fetches only what is new). Asset dependencies follow
the stream definitions' `depends_on` (inventory is listed by the skus of products), and each
materialisation records its rows, pages, requests, cursor and count check as metadata.
After a run the DuckDB file also has the `order_lines` and `available_to_sell` views.

Test it against the sandbox: `tests/test_examples.py` materialises every asset.
"""

import os  # no `from __future__ import annotations`: Dagster reads the annotations at definition time

from dagster import AssetExecutionContext, AssetKey, ConfigurableResource, Definitions, MaterializeResult, asset

from sqquid_etl import extract
from sqquid_etl.definitions import load_definitions


class SqquidResource(ConfigurableResource):
    """Where to read from and write to. The API key is read from the environment variable named
    here (default SQQUID_API_KEY), so it never appears in Dagster's config or run logs."""

    base_url: str = "https://api.sqquid.com"
    api_key_env: str = "SQQUID_API_KEY"
    duckdb_path: str = "sqquid.duckdb"
    rate: float = 2.0  # requests/s the API allows; 0 = no pacing (the sandbox without throttling)
    start_date: str | None = None

    def extract(self, stream: str):
        return extract(
            [stream],
            duckdb=self.duckdb_path,
            base_url=self.base_url,
            api_key=os.environ.get(self.api_key_env),
            rate=self.rate,
            start_date=self.start_date,
        )


def stream_asset(name: str, description: str, depends_on: tuple[str, ...]):
    @asset(
        name=name,
        key_prefix=["sqquid"],
        group_name="sqquid",
        description=description,
        deps=[AssetKey(["sqquid", d]) for d in depends_on],
        compute_kind="duckdb",
    )
    def _asset(context: AssetExecutionContext, sqquid: SqquidResource) -> MaterializeResult:
        result = sqquid.extract(name)
        s = result.stream(name)
        if s.status == "failed":
            raise RuntimeError(f"stream {name} failed: {s.message}")
        if s.status == "warning":
            context.log.warning(f"stream {name}: {s.message}")
        return MaterializeResult(
            metadata={
                "rows": sum(s.rows.values()),
                **{f"rows_{table}": n for table, n in s.rows.items()},
                "pages": s.pages,
                "requests": s.requests,
                "cursor": s.cursor or "",
                "count_check": s.count_check,
                "run_id": result.run_id,
            }
        )

    return _asset


sqquid_assets = [stream_asset(d.name, d.description, d.depends_on) for d in load_definitions().values()]

defs = Definitions(
    assets=sqquid_assets,
    resources={"sqquid": SqquidResource(duckdb_path=os.environ.get("SQQUID_DUCKDB", "sqquid.duckdb"))},
)
