"""Fetching a stream's pages: per partition, per key batch, page by page, with pages fetched
ahead of the consumer so the request budget is not spent waiting on local work.

Knows the definition's request facts (path, envelope, paginator, partition, keys) but nothing
of destinations or state.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator
from urllib.parse import quote

from .client import SqquidClient
from .definitions import StreamDefinition
from .destinations.base import Destination
from .errors import ConfigError, SchemaError
from .paginate import make_paginator
from .state import format_param

log = logging.getLogger(__name__)


@dataclass
class Page:
    records: list[dict]
    partition: str | None


def fetch_pages(
    stream: StreamDefinition,
    client: SqquidClient,
    windows: dict[str | None, datetime | None],
    key_batches: list[str] | None,
    prefetch: int = 2,
) -> Iterator[Page]:
    """Every page of the stream, in order, fetched up to `prefetch` pages ahead."""
    return _prefetch(_sequential_pages(stream, client, windows, key_batches), prefetch)


def _sequential_pages(
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


def count_records(stream: StreamDefinition, client: SqquidClient, begin: datetime | None, partition: str | None) -> int:
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


def key_batches_for(stream: StreamDefinition, destination: Destination, base_url: str) -> list[str] | None:
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
