"""The Python API of an extraction: `extract(...)` -> ExtractResult. The CLI is a thin layer on it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable

from .client import Credentials, SqquidClient
from .definitions import load_definitions, select_streams
from .destinations import check_destination, open_destination
from .engine import ProgressCallback, RunOptions, StreamResult, new_run_id, run_stream
from .reconcile import reconcile_stream
from .errors import ConfigError, SqquidError
from .state import parse_duration, parse_timestamp

log = logging.getLogger(__name__)


@dataclass
class ExtractResult:
    run_id: str
    destination: str
    streams: list[StreamResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.status != "failed" for s in self.streams)

    @property
    def exit_code(self) -> int:
        """0 when every stream succeeded, else the exit code of the first failure."""
        return next((s.exit_code or 1 for s in self.streams if s.status == "failed"), 0)

    def stream(self, name: str) -> StreamResult:
        return next(s for s in self.streams if s.stream == name)


def extract(
    streams: Iterable[str] | None = None,
    *,
    duckdb: str | Path | None = None,
    parquet: str | Path | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    start_date: str | datetime | None = None,
    lookback: str = "1s",
    full_refresh: bool | Iterable[str] = False,
    strict: bool = False,
    rate: float | None = 2.0,
    burst: int = 40,
    client: SqquidClient | None = None,
    progress: ProgressCallback | None = None,
    stop_on_failure: bool = False,
    reconcile: bool = True,
    catalog: str | Path | dict | None = None,
    stream_done: Callable[[StreamResult], None] | None = None,
) -> ExtractResult:
    """Extract the selected streams (all by default) into DuckDB (default `sqquid.duckdb`) or a
    Parquet directory. Options are validated before anything is requested or written.
    `catalog` (a Singer catalog file or dict) selects the streams and fields; `stream_done` is
    called with each stream's result as it finishes."""
    definitions = load_definitions()
    if catalog is not None:
        from .catalog import apply_catalog

        definitions = apply_catalog(catalog, definitions)
    selected = select_streams(definitions, list(streams) if streams else None)
    if isinstance(full_refresh, bool):
        refresh = frozenset(d.name for d in selected) if full_refresh else frozenset()
    else:
        refresh = frozenset(full_refresh)
        select_streams(definitions, list(refresh))  # unknown names are an error
    options = RunOptions(
        start_date=parse_timestamp(start_date, "--start-date") if start_date else None,
        lookback=parse_duration(lookback, "--lookback"),
        full_refresh=refresh,
        strict=strict,
    )
    if rate is not None and not rate > 0:
        raise ConfigError(f"--rate {rate}: must be a positive number of requests per second (0 turns pacing off)")
    if burst < 1:
        raise ConfigError(f"--burst {burst}: must be at least 1")
    check_destination(duckdb, parquet)
    own_client = client is None
    if client is None:
        client = SqquidClient(
            Credentials.from_env(api_key, username, password), base_url, rate=rate, burst=burst
        )
    try:
        client.ensure_token()  # bad credentials fail here, before the destination is touched
        destination = open_destination(duckdb, parquet)
    except BaseException:
        if own_client:
            client.close()
        raise
    result = ExtractResult(run_id=new_run_id(), destination=str(parquet or duckdb or "sqquid.duckdb"))
    try:
        for definition in selected:
            stream_result = StreamResult(stream=definition.name)
            try:
                stream_result = run_stream(definition, client, destination, options, result.run_id, progress)
                if reconcile:
                    reconcile_stream(definition, client, destination, options, result.run_id, stream_result)
            except SqquidError as exc:
                log.error("stream %s failed: %s", definition.name, exc)
                stream_result.status, stream_result.exit_code = "failed", exc.exit_code
                stream_result.message = str(exc)
            result.streams.append(stream_result)
            if stream_done:
                stream_done(stream_result)
            if stream_result.status == "failed" and (stop_on_failure or stream_result.exit_code in (2, 3)):
                break
        from .sql_views import install_views

        install_views(destination)  # DuckDB: the order_lines / available_to_sell views
    finally:
        destination.close()
        if own_client:
            client.close()
    return result
