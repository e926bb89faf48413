"""Dagster, many accounts: one asset per Sqquid stream, one partition per account of sqquid.toml.

    pip install 'sqquid-etl[dagster]'
    export SQQUID_CONFIG=/opt/sqquid/sqquid.toml           # its [accounts.NAME] tables (or accounts_file)
    export ACME_SQQUID_KEY=... GLOBEX_USER=... ...        # the variables the accounts name: never in code or logs
    export SQQUID_DUCKDB='warehouse/{account}.duckdb'      # optional (this is the default): a file per account
    # or: export SQQUID_PARQUET=warehouse/parquet           # one Parquet directory for all, account=NAME/ partitions
    dagster instance concurrency set sqquid_accounts 8     # at most 8 accounts at once (the pool below)
    dagster dev -f examples/dagster_accounts.py
    dagster asset materialize -f examples/dagster_accounts.py --select 'sqquid/*' --partition acme

**Partitions.** The partitions are the config's accounts (`sqquid_etl.accounts.account_names()`,
read when Dagster loads the definitions: add an account to the file, reload the code location).
Materialising partition `acme` of asset `sqquid/orders` runs
`extract(["orders"], accounts=["acme"])`: acme's own key, base URL, rate, start date and state,
incremental. A failed partition is retried alone (`RetryPolicy`) and shows in the UI under its
account; the others are not held up.

**Concurrency.** Each account writes its own DuckDB file (`{account}` in the path), so partitions
run in parallel: how many accounts at once is the limit of the `sqquid_accounts` pool (`dagster
instance concurrency set sqquid_accounts 8`, or `concurrency: pools: default_limit` in
dagster.yaml; a pool without a limit does not limit). Within a run (one account), the executor
keeps one sqquid asset at a time, since the account's file takes one writer: so a run holds one
slot of the pool at a time, and the pool's limit counts accounts. To write all accounts
into ONE DuckDB file instead (a path without `{account}`), set the pool's limit to 1: a DuckDB
file takes one writer, whichever process. ONE Parquet directory (SQQUID_PARQUET) needs no such
limit: each account commits its own `account=NAME/` partitions, so accounts write it at once. `sqquid-etl extract --all-accounts` does that in one
process, every account at once, and is cheaper when the per-account retries and views of an
orchestrator are not needed (README, "Many accounts").

**Checks.** Each stream the API counts (`/count`) has an asset check `count_check`, reported by
the materialisation itself: passed when the records stored for the window equal the API's count,
a WARN otherwise; the account and both figures are its metadata.

**Schedule.** `sqquid_accounts_daily` launches a run for every account (partition) at 02:00 UTC:
turn it on in the UI, or with `dagster schedule start`. (`build_schedule_from_partitioned_job(job,
cron_schedule=...)` does the same for static partitions, but needs the job's `partitions_def`,
which Dagster 1.13 deprecates.)

Tested against two sandboxes (`tests/test_examples_accounts.py`).
"""

import os  # no `from __future__ import annotations`: Dagster reads the annotations at definition time
from typing import Optional

from dagster import (
    AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, AssetKey, ConfigurableResource,
    Definitions, MaterializeResult, RetryPolicy, RunRequest, StaticPartitionsDefinition, asset, define_asset_job,
    multiprocess_executor, schedule,
)

from sqquid_etl import extract
from sqquid_etl.accounts import account_names
from sqquid_etl.definitions import load_definitions

POOL = "sqquid_accounts"  # accounts at once, across runs: `dagster instance concurrency set sqquid_accounts N`
DESTINATION_TAG = "sqquid/destination"  # one writer per file within a run: the executor below
ACCOUNTS = StaticPartitionsDefinition(account_names())  # $SQQUID_CONFIG, else ./sqquid.toml


class SqquidAccountsResource(ConfigurableResource):
    """Where the accounts are and where they go. `config`: the sqquid.toml holding the accounts
    (None: $SQQUID_CONFIG, else ./sqquid.toml). `duckdb_path`: the DuckDB file, `{account}`
    replaced by the account's name (a file per account: partitions in parallel). `parquet_path`:
    instead, one Parquet directory for every account (partitioned `account=NAME/`). `rate`: every
    account's requests/s instead of its own (0: no pacing, the sandbox without throttling)."""

    config: Optional[str] = None
    duckdb_path: str = "warehouse/{account}.duckdb"
    parquet_path: Optional[str] = None
    rate: Optional[float] = None

    def destination(self, account: str) -> dict:
        if self.parquet_path:
            return {"parquet": self.parquet_path}
        path = self.duckdb_path.replace("{account}", account)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return {"duckdb": path}

    def extract(self, stream: str, account: str):
        return extract([stream], accounts=[account], config=self.config, rate=self.rate, **self.destination(account))


def count_check(account: str, s) -> AssetCheckResult:
    """The /count check of one account's stream as a Dagster asset check result."""
    return AssetCheckResult(
        check_name="count_check",
        passed=s.count_check == "ok",
        severity=AssetCheckSeverity.WARN,
        description="the records stored for the run's window equal the API's /count",
        metadata={"account": account, "result": s.count_check,
                  "expected": s.count_expected, "received": s.count_received},
    )


RETRY = RetryPolicy(max_retries=2, delay=30)  # a failed partition (account) retried alone


def stream_asset(name: str, description: str, depends_on: tuple, counted: bool, retry_policy: RetryPolicy = RETRY):
    key = AssetKey(["sqquid", name])

    @asset(
        key=key,
        group_name="sqquid",
        description=description,
        partitions_def=ACCOUNTS,
        deps=[AssetKey(["sqquid", d]) for d in depends_on],  # the same account's partition
        check_specs=[AssetCheckSpec("count_check", asset=key, description="stored = the API's /count")] if counted else [],
        kinds={"duckdb"},
        pool=POOL,
        op_tags={DESTINATION_TAG: "duckdb"},
        retry_policy=retry_policy,
    )
    def _asset(context: AssetExecutionContext, sqquid: SqquidAccountsResource) -> MaterializeResult:
        account = context.partition_key
        with sqquid.extract(name, account) as result:
            done = result.account(account)
            s = next((s for s in done.streams if s.stream == name), None)
            if s is None or s.status == "failed":  # the account (login, config) or the stream failed
                raise RuntimeError(f"account {account}, stream {name} failed: {done.message}")
            if s.status == "warning":
                context.log.warning(f"account {account}, stream {name}: {s.message}")
            return MaterializeResult(
                metadata={
                    "account": account,
                    "rows": sum(s.rows.values()),
                    **{f"rows_{table}": n for table, n in s.rows.items()},
                    "pages": s.pages,
                    "requests": s.requests,
                    "cursor": s.cursor or "",
                    "count_check": s.count_check,
                    "destination": result.destination,
                    "run_id": done.run_id or "",
                },
                check_results=[count_check(account, s)] if counted else [],
            )

    return _asset


sqquid_assets = [stream_asset(d.name, d.description, d.depends_on, d.count is not None)
                 for d in load_definitions().values()]

sqquid_accounts_job = define_asset_job("sqquid_accounts_extract", selection=sqquid_assets)


@schedule(job=sqquid_accounts_job, cron_schedule="0 2 * * *", execution_timezone="UTC")
def sqquid_accounts_daily(context):
    """Every account, daily: a run per partition (run_key: one run per account and tick)."""
    for account in ACCOUNTS.get_partition_keys():
        yield RunRequest(partition_key=account, run_key=account)


defs = Definitions(
    assets=sqquid_assets,
    jobs=[sqquid_accounts_job],
    schedules=[sqquid_accounts_daily],
    resources={"sqquid": SqquidAccountsResource(
        config=os.environ.get("SQQUID_CONFIG"),
        duckdb_path=os.environ.get("SQQUID_DUCKDB", "warehouse/{account}.duckdb"),
        parquet_path=os.environ.get("SQQUID_PARQUET"),
    )},
    # processes, one sqquid asset at a time within a run (one account, one file, one writer)
    executor=multiprocess_executor.configured(
        {"tag_concurrency_limits": [{"key": DESTINATION_TAG, "limit": 1}]}
    ),
)
