"""Run a stream definition: requests -> pages -> records -> Arrow -> destination -> state.

The engine knows no stream by name; everything particular to a stream is in its definition.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from .client import SqquidClient
from .definitions import StreamDefinition
from .destinations.base import Destination
from .errors import ConfigError, SqquidError
from .fetch import FetchStats, count_records
from .keys import batch_keys
from .runs import RunRecord
from .read import read_tables
from .records import column_max
from .state import NO_PARTITION, StreamState, format_timestamp, later, window_start

log = logging.getLogger(__name__)


@dataclass
class StreamResult:
    stream: str
    status: str = "ok"  # ok | warning | failed
    rows: dict[str, int] = field(default_factory=dict)
    pages: int = 0
    requests: int = 0
    seconds: float = 0.0
    window_start: str | None = None
    cursor: str | None = None
    count_expected: int | None = None
    count_received: int | None = None
    message: str | None = None
    exit_code: int = 0
    repaired: int = 0  # records found missing behind the cursor and re-fetched
    windows: dict = field(default_factory=dict)  # partition -> where this run's window started (ISO)
    api_counts: dict = field(default_factory=dict)  # partition -> the API's count for that window

    @property
    def count_check(self) -> str:
        if self.count_expected is None:
            return "n/a"
        return "ok" if self.count_expected == self.count_received else "mismatch"


@dataclass
class RunOptions:
    start_date: datetime | None = None
    lookback: timedelta = timedelta(seconds=1)
    full_refresh: frozenset[str] = frozenset()
    strict: bool = False
    prefetch_pages: int = 2


ProgressCallback = Callable[[str, int, int], None]  # stream, pages, records


def run_stream(
    stream: StreamDefinition,
    client: SqquidClient,
    destination: Destination,
    options: RunOptions,
    run_id: str,
    progress: ProgressCallback | None = None,
    windows_override: dict[str | None, datetime] | None = None,
) -> StreamResult:
    """Extract one stream into the destination; state advances only in the commit that stores the data.

    `windows_override` re-fetches only the given partitions from the given times (a repair found
    by reconciliation); the data is merged and the bookmarks never move backwards."""
    started = time.monotonic()
    requests_before = client.stats.requests
    result = StreamResult(stream=stream.name)
    run = RunRecord(run_id=run_id, stream=stream.name, started_at=_now())
    refresh = stream.name in options.full_refresh and windows_override is None
    replace = stream.sync == "full_refresh" or refresh
    old_state = StreamState() if refresh else destination.load_states().get(stream.name, StreamState())
    key_batches = list_key_batches(stream, destination, client.base_url)
    writer = destination.begin(stream, replace=replace)
    try:
        windows: dict[str | None, datetime | None] = {}
        maxima: dict[str | None, datetime | None] = {}
        if windows_override is not None:
            windows.update(windows_override)
        else:
            for partition in stream.partition.values if stream.partition else [None]:
                key = partition or NO_PARTITION
                windows[partition] = (
                    window_start(old_state.cursors.get(key), options.lookback, options.start_date) if stream.cursor else None
                )
        result.windows = {p: format_timestamp(w) if w else None for p, w in windows.items()}
        fetch_stats = FetchStats()
        pages = read_tables(stream, client, windows, key_batches, prefetch=options.prefetch_pages, stats=fetch_stats)
        for partition, tables in pages:
            writer.write(tables)
            result.pages += 1
            for name, table in tables.items():
                result.rows[name] = result.rows.get(name, 0) + table.num_rows
            if stream.cursor:
                page_max = column_max(tables[stream.tables[0].name][stream.cursor.field])
                current = maxima.get(partition)
                if page_max is not None and (current is None or page_max > current):
                    maxima[partition] = page_max
            if progress:
                progress(stream.name, result.pages, result.rows.get(stream.tables[0].name, 0))

        if stream.count:
            received = writer.distinct_keys(stream.tables[0].name)
            expected = _expected_count(stream, client, windows, fetch_stats, received, result)
            result.count_expected, result.count_received = expected, received
            if expected != received:
                message = (
                    f"count check: /count says {expected} records for this window, {received} received"
                )
                if options.strict:
                    raise SqquidError(f"stream {stream.name!r}: {message} (--strict)")
                result.status, result.message = "warning", message
                log.warning("stream %s: %s", stream.name, message)

        new_state = StreamState(
            cursors=dict(old_state.cursors),
            last_run_at=_now(),
            last_run_id=run_id,
            rows_last_run=sum(result.rows.values()),
        )
        for partition, maximum in maxima.items():
            key = partition or NO_PARTITION
            new_state.cursors[key] = later(new_state.cursors.get(key), maximum) or ""
        first_window = next((w for w in windows.values() if w is not None), None)
        result.window_start = format_timestamp(first_window) if first_window else None
        result.cursor = max(new_state.cursors.values(), default=None)
        result.requests = client.stats.requests - requests_before
        _fill_run(run, result, result.status)
        writer.commit(new_state, run)
    except BaseException as exc:
        writer.abort()
        result.status = "failed"
        result.message = str(exc) if isinstance(exc, SqquidError) else f"{type(exc).__name__}: {exc}"
        result.requests = client.stats.requests - requests_before
        result.seconds = time.monotonic() - started
        _fill_run(run, result, "failed")
        try:
            destination.record_run(run)
        except Exception:  # noqa: BLE001 - recording a failure must not hide it
            log.debug("could not record the failed run", exc_info=True)
        raise
    result.seconds = time.monotonic() - started
    return result


def list_key_batches(stream: StreamDefinition, destination: Destination, base_url: str) -> list[str] | None:
    """For a stream that lists by key (inventory by sku): the batches of keys, read from the tables
    the definition names; None for other streams."""
    spec = stream.keys_from
    if spec is None:
        return None
    values: set[str] = set()
    for table, column in spec.sources:
        found = destination.distinct_values(table, column)
        if found is None:
            raise ConfigError(
                f"stream {stream.name!r} lists by {spec.param} taken from table {table!r}, which has not been "
                f"extracted yet: run it together with {', '.join(stream.depends_on) or table!r} first"
            )
        values.update(str(v) for v in found)
    keys = batch_keys(spec, stream.path, values, base_url)
    if keys.unlistable:
        log.warning("stream %s: %d keys cannot be listed: %s", stream.name, len(keys.unlistable),
                    [f"{k!r} {why}" for k, why in list(keys.unlistable.items())[:5]])
    return keys.batches


def _expected_count(
    stream: StreamDefinition,
    client: SqquidClient,
    windows: dict[str | None, datetime | None],
    fetch_stats: FetchStats,
    received: int,
    result: StreamResult,
) -> int:
    """The API's count for the window. The counts the fetch asked to plan its pages (before the
    listing was read) are used where there are some; when they disagree with what was received,
    the count is asked again now, and a number received between the two (records added while
    paging) counts as agreeing."""
    counts = {p: fetch_stats.counts.get(p) for p in windows}
    for p, value in counts.items():
        if value is None:
            counts[p] = count_records(stream, client, windows[p], p)
    if sum(counts.values()) == received:  # type: ignore[arg-type]
        result.api_counts = counts  # type: ignore[assignment]
        return received
    now = {p: count_records(stream, client, windows[p], p) for p in windows}
    result.api_counts = now
    if sum(counts.values()) <= received <= sum(now.values()):  # type: ignore[arg-type]
        return received
    return sum(now.values())


def _fill_run(run: RunRecord, result: StreamResult, status: str) -> None:
    run.finished_at = _now()
    run.status = status
    run.rows = sum(result.rows.values())
    run.pages = result.pages
    run.requests = result.requests
    run.window_start = result.window_start
    run.cursor = result.cursor
    run.count_expected = result.count_expected
    run.count_received = result.count_received
    run.count_check = result.count_check
    run.message = result.message


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
