"""The Python API: `extract(...)` resolves its settings as the CLI does and returns a result that
hands back the data.

Settings: an argument given > environment variable (SQQUID_BASE_URL, SQQUID_API_KEY,
SQQUID_USERNAME, SQQUID_PASSWORD, SQQUID_CONFIG) > the config file (`config=`, else
$SQQUID_CONFIG, else ./sqquid.toml when present) > the defaults of `settings.py`. An argument
left at None is "not given", exactly like an option left out on the command line: `rate=0` turns
pacing off (as `--rate 0`), `rate=None` means the file's rate, else 2 requests/s.

The result (`ExtractResult`) carries each stream's figures (`result.streams`, `result.summary()`)
and reads the tables it wrote: `result.table("orders")` (a DuckDB relation), `.arrow(...)`,
`.df(...)`, `.sql("SELECT ...")`, on a connection the result opens once and closes with
`result.close()` (or `with extract(...) as result:`). See "Python API" in the README for the
pattern that keeps a connection of your own from breaking the next run.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping

from .errors import ConfigError, StateError
from .pipeline import ExtractResult as _PipelineResult
from .settings import DEFAULT_BURST, DEFAULT_LOOKBACK, DEFAULT_RATE, Tuning

__all__ = ["ExtractResult", "UnknownStreamError", "UnknownTableError", "extract", "resolve_settings"]

_ENV = {"base_url": "SQQUID_BASE_URL", "api_key": "SQQUID_API_KEY", "username": "SQQUID_USERNAME",
        "password": "SQQUID_PASSWORD"}


class UnknownStreamError(ConfigError, KeyError):
    """`result.stream(name)` for a stream the run did not run (also a KeyError)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownTableError(ConfigError, KeyError):
    """`result.table(name)` for a table the destination does not have (also a KeyError)."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class ExtractResult(_PipelineResult):
    """What `extract(...)` did, stream by stream, and the data it wrote.

    `streams`: one `StreamResult` per stream (status, rows per table, pages, requests, seconds,
    window, cursor, the /count check, records stored / coerced / quarantined)."""

    kind: str = "duckdb"  # duckdb | parquet | iceberg
    _conn: Any = field(default=None, init=False, repr=False, compare=False)

    def stream(self, name: str):
        for result in self.streams:
            if result.stream == name:
                return result
        ran = ", ".join(s.stream for s in self.streams) or "none"
        raise UnknownStreamError(f"no stream {name!r} in this run (it ran: {ran})")

    def summary(self) -> dict:
        """The run as plain data: what `sqquid-etl extract --log-format json` prints."""
        return {"run_id": self.run_id, "destination": self.destination, "ok": self.ok,
                "streams": [dict(asdict(s), count_check=s.count_check) for s in self.streams]}

    # -- the data ---------------------------------------------------------------------------------

    def connection(self):
        """The DuckDB connection the result reads with (opened on first use, kept until `close`).
        DuckDB file: opened with DuckDB's default configuration, the one an extract uses, so it
        shares the database with the next `extract()` in this process instead of blocking it.
        Parquet directory: an in-memory database with a view per table and the SQL views."""
        if self._conn is None:
            import duckdb

            if self.kind == "iceberg":
                raise ConfigError(f"{self.destination}: the result reads DuckDB and Parquet destinations; read Iceberg "
                                  "tables with pyiceberg (catalog.load_table(...).scan().to_arrow()) or a query engine")
            if self.kind == "parquet":
                from .sql_views import attach_parquet

                if "://" in self.destination:
                    raise ConfigError(f"{self.destination}: the result reads a local Parquet directory; read object "
                                      "storage with DuckDB's httpfs extension or pyarrow.dataset")

                self._conn = duckdb.connect()
                attach_parquet(self._conn, self.destination)
            else:
                self._conn = duckdb.connect(self.destination)
        return self._conn

    def tables(self) -> list[str]:
        """The tables and views the destination holds (the `_sqquid_*` bookkeeping included)."""
        rows = self.connection().execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1").fetchall()
        return [r[0] for r in rows]

    def table(self, name: str):
        """A table or view (`orders`, `order_lines`, `available_to_sell`, ...) as a DuckDB relation."""
        if name not in self.tables():
            raise UnknownTableError(f"no table {name!r} in {self.destination} (it has: {', '.join(self.tables())})")
        return self.connection().table(name)

    def sql(self, query: str, params: list | None = None):
        """A DuckDB relation of any SELECT over the destination's tables and views."""
        return self.connection().sql(query, params=params)

    def arrow(self, name: str):
        """A table as a pyarrow.Table (in memory, independent of the connection)."""
        return self.table(name).to_arrow_table()

    def df(self, name: str):
        """A table as a pandas DataFrame (in memory, independent of the connection)."""
        return self.table(name).df()

    def close(self) -> None:
        """Close the result's connection (relations taken from it stop working; Arrow tables
        and DataFrames already fetched do not). Idempotent."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "ExtractResult":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class Resolved:
    """extract(...)'s arguments after the config chain: what the pipeline is given."""

    streams: list[str] | None
    duckdb: str | None
    parquet: str | None
    iceberg: str | None
    base_url: str | None
    api_key: str | None
    username: str | None
    password: str | None
    start_date: Any
    lookback: str
    full_refresh: bool | list[str]
    strict: bool
    rate: float | None  # None: no pacing
    burst: int
    catalog: Any
    schema_contract: str | None
    tuning: Tuning
    reread: dict
    hard_delete: bool
    verify_keys: bool = False

    def pipeline_kwargs(self) -> dict:
        values = dict(vars(self))
        values.pop("streams")
        return values


def resolve_settings(config: str | os.PathLike | None = None, *, env: Mapping[str, str] | None = None,
                     per_account: bool = False, **given: Any) -> Resolved:
    """The CLI's resolution: each argument given (not None) > its environment variable > the
    config file > the default. `given` takes extract(...)'s names. `per_account`: the
    credentials are each account's (`accounts.py`), not resolved here."""
    from .cli_common import credentials_from
    from .config import find_config, load_config

    env = os.environ if env is None else env
    settings = load_config(find_config(config or env.get("SQQUID_CONFIG") or None))
    value = {k: v for k, v in given.items() if v is not None}
    for name, variable in _ENV.items():
        if name not in value and env.get(variable):
            value[name] = env[variable]
    api_key, username, password = (None, None, None) if per_account else credentials_from(
        settings, value.get("api_key"), value.get("username"), value.get("password"))
    if not (value.get("duckdb") or value.get("parquet") or value.get("iceberg")):
        value["duckdb"], value["parquet"] = settings.get("duckdb"), settings.get("parquet")
    streams = value.get("streams", settings.get("streams"))
    rate = value.get("rate", settings.get("rate", DEFAULT_RATE))
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate >= 0 or rate == float("inf"):
        raise ConfigError(f"rate {rate!r}: must be a number of requests per second, at least 0 (0: no pacing)")
    return Resolved(
        streams=[streams] if isinstance(streams, str) else list(streams) if streams else None,
        duckdb=_path(value.get("duckdb")), parquet=_path(value.get("parquet")), iceberg=value.get("iceberg"),
        base_url=value.get("base_url", settings.get("base_url")),
        api_key=api_key, username=username, password=password,
        start_date=value.get("start_date", settings.get("start_date")),
        lookback=value.get("lookback", settings.get("lookback", DEFAULT_LOOKBACK)),
        full_refresh=value.get("full_refresh", settings.get("full_refresh", False)),
        strict=bool(value.get("strict", settings.get("strict", False))),
        rate=float(rate) or None,
        burst=value.get("burst", settings.get("burst", DEFAULT_BURST)),
        catalog=value.get("catalog", settings.get("catalog")),
        schema_contract=value.get("schema_contract", settings.get("schema_contract")),
        tuning=value.get("tuning") or settings.tuning(env),
        reread={**settings.get("reread", {}), **_reread(value.get("reread"))},
        hard_delete=bool(value.get("hard_delete", settings.get("hard_delete", False))),
        verify_keys=bool(value.get("verify_keys", False)),
    )


def _reread(value: Any) -> dict:
    from .freshness import split_reread

    return split_reread(value) if isinstance(value, str) else dict(value or {})


def _path(value: Any) -> str | None:
    return None if value is None else str(value)


def _refresh(full_refresh: Any) -> bool | list[str] | None:
    """`full_refresh` as the resolution takes it: None (not given), True/False, or stream names."""
    if isinstance(full_refresh, str):
        return [s.strip() for s in full_refresh.split(",") if s.strip()]
    return full_refresh if full_refresh is None or isinstance(full_refresh, bool) else list(full_refresh)


def extract(
    streams: Iterable[str] | str | None = None,
    *,
    config: str | os.PathLike | None = None,
    duckdb: str | os.PathLike | None = None,
    parquet: str | os.PathLike | None = None,
    iceberg: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    start_date: str | datetime | None = None,
    lookback: str | None = None,
    full_refresh: bool | Iterable[str] | None = None,
    strict: bool | None = None,
    rate: float | None = None, burst: int | None = None,
    catalog: str | os.PathLike | dict | None = None,
    schema_contract: str | None = None,
    tuning: Tuning | None = None,
    client=None,
    progress: Callable[[str, int, int], None] | None = None,
    stream_done: Callable | None = None,
    stop_on_failure: bool = False, reconcile: bool = True,
    reread: str | dict | None = None, hard_delete: bool | None = None, verify_keys: bool | None = None,
    accounts: Iterable[str] | str | bool | None = None,
) -> ExtractResult:
    """Extract the selected streams (all by default) into DuckDB (default `sqquid.duckdb`), a
    Parquet directory or URL, or Iceberg tables (`iceberg`: WAREHOUSE[?catalog=URL&namespace=NAME]),
    and return what was done with a way to read what was stored (DuckDB and Parquet).

    Every argument means what the `sqquid-etl extract` option of the same name means, and one
    left at None is read, like an option left out, from the environment, then the config file
    (`config`, else $SQQUID_CONFIG, else ./sqquid.toml), then the defaults. `client`: a
    `SqquidClient` to use instead of one built from base_url and the credentials. Every error is a
    `SqquidError` (ConfigError, AuthError, ApiError, SchemaError, StateError); a stream that
    fails does not raise: its `status` is "failed" (`result.ok`, `result.exit_code`). `accounts`:
    these accounts of the config file (True: all) at once, `accounts_api.extract_accounts`."""
    from .pipeline import extract as run_extract

    resolved = resolve_settings(
        config, streams=streams, duckdb=duckdb, parquet=parquet, iceberg=iceberg, base_url=base_url, api_key=api_key,
        username=username, password=password, start_date=start_date, lookback=lookback,
        full_refresh=_refresh(full_refresh), strict=strict, rate=rate, burst=burst, catalog=catalog,
        schema_contract=schema_contract, tuning=tuning, reread=reread, hard_delete=hard_delete, verify_keys=verify_keys,
        per_account=accounts not in (None, False))
    if accounts not in (None, False):
        from .accounts_api import extract_accounts

        return extract_accounts(accounts, resolved, config, streams=streams, start_date=start_date, rate=rate,
                                burst=burst, client=client, progress=progress, stream_done=stream_done,
                                stop_on_failure=stop_on_failure, reconcile=reconcile)
    try:
        done = run_extract(resolved.streams, client=client, progress=progress, stream_done=stream_done,
                           stop_on_failure=stop_on_failure, reconcile=reconcile, **resolved.pipeline_kwargs())
    except ConfigError as exc:
        if "different configuration" in str(exc):
            raise StateError(_HELD_MESSAGE.format(path=resolved.duckdb or "sqquid.duckdb")) from None
        raise
    return ExtractResult(run_id=done.run_id, destination=done.destination, streams=done.streams,
                         kind="iceberg" if resolved.iceberg else "parquet" if resolved.parquet else "duckdb")


_HELD_MESSAGE = (
    "{path} is open in this process with another configuration (a duckdb.connect(..., read_only=True) "
    "still open?): close that connection before extract(), or read through the result "
    "(result.table/sql/df/arrow) or duckdb.connect(path) without read_only, which share the database"
)

