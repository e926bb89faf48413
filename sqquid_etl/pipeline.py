"""The Python API of an extraction: `extract(...)` -> ExtractResult. The CLI is a thin layer on it.

The flow of one stream is one direction: plan its windows from the state, run them through the
engine (stage, count check, commit with state), ask reconciliation which windows the API still
has more records in, run those too, and record the stream's one run row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable

from .client import SqquidClient
from .definitions import StreamDefinition, load_definitions, select_streams
from .destinations import Destination, check_destination, open_destination
from .engine import ProgressCallback, RunOptions, StreamResult, StreamRun, new_run_id, plan_windows, run_windows
from .errors import ConfigError, SqquidError
from .evolve import CONTRACTS, dropped_fields
from .reconcile import describe_gaps, describe_surpluses, find_gaps
from .settings import DEFAULT_BURST, DEFAULT_LOOKBACK, DEFAULT_RATE, Tuning
from .state import StreamState, parse_duration, parse_timestamp

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
        for result in self.streams:
            if result.stream == name:
                return result
        raise KeyError(f"no stream {name!r} in this run (it ran: {', '.join(s.stream for s in self.streams) or 'none'})")


def _iceberg(location: str | None) -> dict:
    """The Iceberg destination as the destination factories take it (none: {})."""
    return {"iceberg": location} if location else {}


def extract(
    streams: Iterable[str] | None = None,
    *,
    duckdb: str | Path | None = None,
    parquet: str | Path | None = None,
    iceberg: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    start_date: str | datetime | None = None,
    lookback: str = DEFAULT_LOOKBACK,
    full_refresh: bool | Iterable[str] = False,
    strict: bool = False,
    rate: float | None = DEFAULT_RATE,
    burst: int = DEFAULT_BURST,
    client: SqquidClient | None = None,
    progress: ProgressCallback | None = None,
    stop_on_failure: bool = False,
    reconcile: bool = True,
    catalog: str | Path | dict | None = None,
    stream_done: Callable[[StreamResult], None] | None = None,
    tuning: Tuning | None = None,
    schema_contract: str | None = None,
    destination: Destination | None = None,
) -> ExtractResult:
    """Extract the selected streams (all by default) into DuckDB (default `sqquid.duckdb`) or a
    Parquet directory or URL, or Iceberg tables (`iceberg`: WAREHOUSE[?catalog=URL&namespace=NAME]). Options are validated before anything is requested or written.
    `catalog` (a Singer catalog file or dict) selects the streams and fields; `stream_done` is
    called with each stream's result as it finishes. `tuning` (how destinations use memory)
    defaults to the environment's SQQUID_DUCKDB_MEMORY_LIMIT, SQQUID_DUCKDB_THREADS, SQQUID_FLUSH_ROWS.
    `schema_contract` (evolve | freeze | discard) says what becomes of the fields no definition
    names: by default each stream's `schema_contract`, else evolve (new nullable columns).
    `destination`: an opened one instead of duckdb/parquet/iceberg (`emit.EmittingDestination`)."""
    selected, options = _plan(streams, catalog, start_date, lookback, full_refresh, strict, schema_contract)
    _check_pacing(rate, burst)
    tuning = Tuning.from_env() if tuning is None else tuning
    if destination is None:
        check_destination(duckdb, parquet, tuning=tuning, **_iceberg(iceberg))
    own_client = client is None
    if client is None:
        client = SqquidClient.from_env(base_url, api_key, username, password, rate=rate, burst=burst)
    destination = _open(client, own_client, lambda: destination or open_destination(duckdb, parquet, tuning=tuning, **_iceberg(iceberg)))
    result = ExtractResult(run_id=new_run_id(), destination=destination.location)
    try:
        for definition in selected:
            stream_result = _extract_stream(
                StreamRun(definition, client, destination, options, result.run_id, progress), reconcile
            )
            result.streams.append(stream_result)
            if stream_done:
                stream_done(stream_result)
            if stream_result.status == "failed" and (stop_on_failure or stream_result.exit_code in (2, 3)):
                break
        destination.after_load()  # DuckDB: the order_lines / available_to_sell views
    finally:
        destination.close()
        if own_client:
            client.close()
    return result


def _check_pacing(rate: float | None, burst: int) -> None:
    if rate is not None and not rate > 0:
        raise ConfigError(f"--rate {rate}: must be a positive number of requests per second (0 turns pacing off)")
    if burst < 1:
        raise ConfigError(f"--burst {burst}: must be at least 1")


def _open(client: SqquidClient, own_client: bool, open_: Callable[[], Destination]) -> Destination:
    """Log in, then open the destination: bad credentials fail before the destination is touched."""
    try:
        client.ensure_token()
        return open_()
    except BaseException:
        if own_client:
            client.close()
        raise


def _plan(streams, catalog, start_date, lookback, full_refresh, strict,
          schema_contract=None) -> tuple[list[StreamDefinition], RunOptions]:
    """The streams to run, in dependency order, and the run's options; a bad one is a ConfigError."""
    if schema_contract is not None and schema_contract not in CONTRACTS:
        raise ConfigError(f"--schema-contract {schema_contract!r}: expected one of {', '.join(CONTRACTS)}")
    definitions = full = load_definitions()
    if catalog is not None:
        from .catalog import apply_catalog

        definitions = apply_catalog(catalog, definitions)
    selected = select_streams(definitions, list(streams) if streams else None)
    deselected = {d.name: dropped_fields(full[d.name], d) for d in selected if d.name in full}
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
        schema_contract=schema_contract,
        deselected={name: fields for name, fields in deselected.items() if fields},
    )
    return selected, options


def _extract_stream(run: StreamRun, reconcile: bool) -> StreamResult:
    """Plan, run and (optionally) reconcile one stream; a SqquidError fails the stream only."""
    stream, destination = run.stream, run.destination
    try:
        old_state = StreamState() if run.refresh else destination.load_states().get(stream.name, StreamState())
        windows = plan_windows(stream, old_state, run.options)
        check = run_windows(run, windows, old_state, replace=run.refresh)
        if reconcile:
            known = {} if check is None else {
                p: n for p, n in check.api_counts.items() if windows.get(p) == run.options.start_date
            }
            _reconcile(run, known)
    except SqquidError as exc:
        log.error("stream %s failed: %s", stream.name, exc)
        run.result.status, run.result.exit_code, run.result.message = "failed", exc.exit_code, str(exc)
    run.tally()
    return run.result


def _reconcile(run: StreamRun, known_counts: dict) -> None:
    """Ask reconciliation which windows the API has more records in than the destination; run
    those (merged, cursors never backwards); say so in the stream's result and its run row."""
    stream, destination, result = run.stream, run.destination, run.result
    start = run.options.start_date
    gaps, surpluses = find_gaps(stream, run.client, destination, start, known_counts, run.quarantined)
    if gaps:
        state = destination.load_states().get(stream.name, StreamState())
        run_windows(run, {g.partition: g.since for g in gaps}, state, replace=False, count=False)
        result.repaired = sum(g.missing for g in gaps)
        result.add_message(describe_gaps(gaps))
        remaining, _ = find_gaps(stream, run.client, destination, start, quarantined=run.quarantined)
        if remaining:
            result.add_message(f"still {sum(g.missing for g in remaining)} missing after the repair")
            result.status = "warning"
    if surpluses:
        result.add_message(describe_surpluses(surpluses))
        result.status = "warning"
    if not (gaps or surpluses):
        return
    if run.options.strict and result.status == "warning":
        result.status, result.exit_code = "failed", 1
        result.message = f"{result.message} (--strict)"
    destination.record_run(run.run_record())  # the run's one row for the stream, now final
