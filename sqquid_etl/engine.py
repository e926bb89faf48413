"""Run a stream definition: requests -> pages -> records -> Arrow -> destination -> state.

The engine knows no stream by name; everything particular to a stream is in its definition.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator
from urllib.parse import quote

import pyarrow.compute as pc

from .client import SqquidClient
from .definitions import StreamDefinition
from .destinations.base import Destination, RunRecord
from .errors import ConfigError, SchemaError, SqquidError
from .paginate import make_paginator
from .records import page_to_tables
from .state import NO_PARTITION, StreamState, format_param, format_timestamp, later, window_start

log = logging.getLogger(__name__)


@dataclass
class Page:
    records: list[dict]
    partition: str | None


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
) -> StreamResult:
    """Extract one stream into the destination; state advances only in the commit that stores the data."""
    started = time.monotonic()
    requests_before = client.stats.requests
    result = StreamResult(stream=stream.name)
    run = RunRecord(run_id=run_id, stream=stream.name, started_at=_now())
    replace = stream.sync == "full_refresh" or stream.name in options.full_refresh
    old_state = StreamState() if stream.name in options.full_refresh else destination.load_states().get(stream.name, StreamState())
    key_batches = _key_batches(stream, destination, client.base_url)
    writer = destination.begin(stream, replace=replace)
    try:
        partitions = list(stream.partition.values) if stream.partition else [None]
        windows: dict[str | None, datetime | None] = {}
        maxima: dict[str | None, datetime | None] = {}
        for partition in partitions:
            key = partition or NO_PARTITION
            windows[partition] = (
                window_start(old_state.cursors.get(key), options.lookback, options.start_date) if stream.cursor else None
            )
        source = _pages(stream, client, windows, key_batches)
        for page in _prefetch(source, options.prefetch_pages):
            tables = page_to_tables(stream, page.records, page.partition)
            writer.write(tables)
            result.pages += 1
            for name, table in tables.items():
                result.rows[name] = result.rows.get(name, 0) + table.num_rows
            if stream.cursor:
                page_max = pc.max(tables[stream.tables[0].name][stream.cursor.field]).as_py()
                current = maxima.get(page.partition)
                if page_max is not None and (current is None or page_max > current):
                    maxima[page.partition] = page_max
            if progress:
                progress(stream.name, result.pages, result.rows.get(stream.tables[0].name, 0))

        if stream.count:
            expected = sum(_count(stream, client, windows[p], p) for p in partitions)
            received = writer.distinct_keys(stream.tables[0].name)
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
        _fill_run(run, result, "ok" if result.status == "ok" else result.status)
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


def _pages(
    stream: StreamDefinition,
    client: SqquidClient,
    windows: dict[str | None, datetime | None],
    key_batches: list[str] | None,
) -> Iterator[Page]:
    """Every page of the stream: per partition, per key batch, page by page."""
    for partition, begin in windows.items():
        params: dict[str, Any] = dict(stream.params)
        if partition is not None:
            params[stream.partition.param] = partition  # type: ignore[union-attr]
        if begin is not None and stream.cursor:
            params[stream.cursor.param] = format_param(begin)
        for keys in key_batches if key_batches is not None else [None]:
            if keys is not None:
                params[stream.keys_from.param] = keys  # type: ignore[union-attr]
            paginator = make_paginator(stream.paginator)
            page_params = paginator.first_params()
            while True:
                body = client.get(stream.path, {**params, **page_params})
                records = _records(stream, body)
                yield Page(records, partition)
                if not paginator.advance(records, body):
                    break
                page_params = paginator.next_params()


def _records(stream: StreamDefinition, body: Any) -> list[dict]:
    if stream.envelope is None:
        records = body
    elif isinstance(body, dict) and stream.envelope in body:
        records = body[stream.envelope]
    else:
        found = list(body)[:5] if isinstance(body, dict) else type(body).__name__
        raise SchemaError(f"stream {stream.name!r}: GET {stream.path} answered without the {stream.envelope!r} envelope (got {found})")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise SchemaError(f"stream {stream.name!r}: GET {stream.path} envelope {stream.envelope!r} is not a list of records")
    return records


def _count(stream: StreamDefinition, client: SqquidClient, begin: datetime | None, partition: str | None) -> int:
    params: dict[str, Any] = {}
    if partition is not None:
        params[stream.partition.param] = partition  # type: ignore[union-attr]
    if begin is not None and stream.cursor:
        params[stream.cursor.param] = format_param(begin)
    body = client.get(stream.count.path, params)  # type: ignore[union-attr]
    value = body.get(stream.count.envelope) if isinstance(body, dict) else None  # type: ignore[union-attr]
    if not isinstance(value, int) or isinstance(value, bool):
        raise SchemaError(f"stream {stream.name!r}: GET {stream.count.path} did not answer a count under {stream.count.envelope!r}")  # type: ignore[union-attr]
    return value


def _key_batches(stream: StreamDefinition, destination: Destination, base_url: str) -> list[str] | None:
    """For streams that list by key (inventory by sku): comma-joined keys, each batch small
    enough that the whole URL stays under the definition's max_url_length."""
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
    skipped = sorted(v for v in values if "," in v)
    if skipped:
        log.warning("stream %s: %d keys contain a comma and cannot be listed: %s", stream.name, len(skipped), skipped[:5])
    overhead = len(base_url) + len(stream.path) + 80 + len(spec.param)
    budget = spec.max_url_length - overhead
    batches: list[str] = []
    current: list[str] = []
    size = 0
    for value in sorted(values - set(skipped)):
        cost = len(quote(value, safe="")) + 3  # the comma, encoded as %2C
        if cost > budget:
            raise ConfigError(f"stream {stream.name!r}: key {value!r} alone is longer than the URL limit")
        if current and size + cost > budget:
            batches.append(",".join(current))
            current, size = [], 0
        current.append(value)
        size += cost
    if current:
        batches.append(",".join(current))
    return batches


def _prefetch(pages: Iterator[Page], depth: int) -> Iterator[Page]:
    """Fetch up to `depth` pages ahead in a thread while the caller converts and writes, so the
    request budget is not spent waiting on local work. Memory stays bounded by `depth` pages."""
    if depth <= 0:
        yield from pages
        return
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for page in pages:
                while not stop.is_set():
                    try:
                        buffer.put(page, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            buffer.put(exc)

    thread = threading.Thread(target=produce, name="sqquid-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        deadline = time.monotonic() + 5.0
        while thread.is_alive() and time.monotonic() < deadline:
            try:
                buffer.get_nowait()
            except queue.Empty:
                pass
            thread.join(timeout=0.05)


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
