"""Fetching a stream's pages: per partition, per key batch, page by page, with several requests
in flight ahead of the consumer so that neither the API's latency nor local work (converting
and writing pages) eats into the request budget; pages are still yielded in order.

Knows the definition's request facts (path, envelope, paginator, partition, keys) but nothing
of destinations or state.
"""

from __future__ import annotations

import functools
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterator

from .client import SqquidClient
from .definitions import StreamDefinition
from .errors import SchemaError
from .paginate import ENVELOPE_FIELDS, PaginationStrategy, make_paginator
from .records import ArrowPage, page_records
from .state import format_param

log = logging.getLogger(__name__)


@dataclass
class Page:
    records: list[dict] | ArrowPage  # decoded by Python, or read by Arrow (`PageConverter.decode`)
    partition: str | None


@dataclass
class FetchStats:
    """What a `fetch_pages` run requested: pages yielded, list requests sent (wasted ones are
    speculative pages past the end, discarded, or still in flight when the consumer finished),
    and /count requests made to plan pages. Once the pages are consumed,
    requests == pages + wasted."""

    pages: int = 0
    requests: int = 0
    wasted: int = 0
    count_hints: int = 0
    counts: dict = field(default_factory=dict)  # partition -> the /count answer used to plan its pages


def fetch_pages(
    stream: StreamDefinition,
    client: SqquidClient,
    windows: dict[str | None, datetime | None],
    key_batches: list[str] | None,
    prefetch: int = 2,
    *,
    concurrency: int | None = None,
    stats: FetchStats | None = None,
    decode: Callable[..., Any] | None = None,
) -> Iterator[Page]:
    """Every page of the stream, in order.

    Up to `concurrency` requests (default: `default_concurrency`) are in flight at
    once, and at most `concurrency + prefetch` pages are held (in flight or fetched, not yet
    taken), so memory is bounded. The client's pacer keeps them within the request budget.
    Pages whose existence is known (an offset list's `total`, a page-number list's /count) are
    fetched concurrently; beyond that, page-number lists speculate a few pages ahead and
    discard those past the first short page. `concurrency=1` fetches one page at a time,
    `prefetch` pages ahead in a thread. `decode(body, meta)` decodes a list response in the
    fetch threads (`PageConverter.decode`: straight into Arrow); by default, JSON into dicts.
    """
    stats = stats if stats is not None else FetchStats()
    workers = concurrency if concurrency is not None else default_concurrency(client)
    listings = _listings(stream, windows, key_batches)
    get_page = _page_getter(stream, client, decode)
    if workers <= 1:
        return _prefetch(_sequential_pages(get_page, listings, stats), prefetch)
    return _ConcurrentFetch(stream, client, get_page, listings, workers, workers + max(0, prefetch), stats).pages()


PageGetter = Callable[[dict[str, Any]], "tuple[list[dict] | ArrowPage, Any]"]


def _page_getter(stream: StreamDefinition, client: SqquidClient, decode: Callable[..., Any] | None) -> PageGetter:
    """GET one page of the stream: its records and what the paginator reads of the envelope."""

    decode_page = None if decode is None else functools.partial(decode, meta=ENVELOPE_FIELDS)

    def get_page(params: dict[str, Any]) -> tuple[list[dict] | ArrowPage, Any]:
        body = client.get(stream.path, params, decode=decode_page)
        if isinstance(body, ArrowPage):
            return body, body.meta
        return page_records(stream, body), body

    return get_page


def default_concurrency(client: SqquidClient) -> int:
    """Requests in flight: enough to keep the pacer's rate through about 2 s of latency (5 at
    2 requests/s). With pacing off, one at a time (plus the prefetch thread): the client's own
    CPU is then the limit, and more threads only contend for it (measured: 1.8x the CPU for
    the same pages at 8 in flight on loopback, docs/benchmarks.md)."""
    rate = getattr(getattr(client, "pacer", None), "rate", None)
    pool = getattr(client, "pool_size", 8)
    if rate is None:
        return 1
    return max(2, min(pool, math.ceil(rate * 2) + 1))


@dataclass
class _Listing:
    """One paginated listing: a partition value and key batch of the stream, with its plan."""

    params: dict[str, Any]
    partition: str | None
    paginator: PaginationStrategy
    expected: int = 1  # pages planned so far (known to exist, or speculated)
    end: int | None = None  # index of the last page, once seen
    scheduled: int = 0  # pages 0..scheduled-1 have been requested
    hint: str | None = None  # None | "pending" | "done" (a /count answer planned the pages)


def _listings(
    stream: StreamDefinition,
    windows: dict[str | None, datetime | None],
    key_batches: list[str] | None,
) -> list[_Listing]:
    out = []
    for partition, begin in windows.items():
        params = window_params(stream, partition, begin)
        for keys in key_batches if key_batches is not None else [None]:
            listing_params = dict(params)
            if keys is not None:
                listing_params[stream.keys_from.param] = keys  # type: ignore[union-attr]
            out.append(_Listing(listing_params, partition, make_paginator(stream.paginator)))
    return out


def _sequential_pages(get_page: PageGetter, listings: list[_Listing], stats: FetchStats) -> Iterator[Page]:
    """Every page of the stream: per listing, page by page."""
    for listing in listings:
        paginator = listing.paginator
        page_params = paginator.first_params()
        while True:
            stats.requests += 1
            records, body = get_page({**listing.params, **page_params})
            stats.pages += 1
            yield Page(records, listing.partition)
            if not paginator.advance(records, body):
                break
            page_params = paginator.next_params()


class _Slot:
    __slots__ = ("started", "cancelled", "done", "records", "error")

    def __init__(self) -> None:
        self.started = False
        self.cancelled = False
        self.done = False
        self.records: list[dict] | ArrowPage | None = None
        self.error: BaseException | None = None


class _Workers:
    """A few daemon threads taking jobs in order (daemon: a request still retrying after the
    consumer has gone must not hold up the interpreter's exit)."""

    def __init__(self, count: int):
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.threads = [threading.Thread(target=self._run, name=f"sqquid-fetch-{i}", daemon=True) for i in range(count)]
        for thread in self.threads:
            thread.start()

    def submit(self, job: Any, *args: Any) -> None:
        self.jobs.put((job, args))

    def _run(self) -> None:
        while True:
            item = self.jobs.get()
            if item is None:
                return
            job, args = item
            job(*args)

    def shutdown(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)


class _ConcurrentFetch:
    """Requests pages of every listing ahead of the consumer, yields them in order.

    All plan state is guarded by one condition; workers update the plan as soon as a page
    arrives (so the next requests go out while the consumer is still writing), the consumer
    takes pages strictly in (listing, page) order. Slots held (requested, not yet taken)
    never exceed `window`, except for the one page the consumer needs next.
    """

    SPECULATE_MAX = 8  # page-number lists without a known end: at most this many pages ahead

    def __init__(self, stream: StreamDefinition, client: SqquidClient, get_page: PageGetter,
                 listings: list[_Listing], workers: int, window: int, stats: FetchStats):
        self.stream = stream
        self.client = client
        self.get_page = get_page
        self.listings = listings
        self.window = max(1, window)
        self.stats = stats
        self.workers = workers
        self.cond = threading.Condition()
        self.slots: dict[tuple[int, int], _Slot] = {}
        self.held = 0
        self.cur = 0  # the listing the consumer is in
        self.closed = False
        # a listing's params are its window's (`window_params`), which its /count takes too; a
        # listing of a key batch has the batch as well, which /count does not take
        self.use_count = stream.count is not None and stream.paginator.type == "page_number" and stream.keys_from is None
        self.pool: _Workers | None = None

    # -- consumer -------------------------------------------------------------------------------
    def pages(self) -> Iterator[Page]:
        self.pool = _Workers(self.workers)
        page = 0
        try:
            while True:
                with self.cond:
                    while True:
                        if self.cur >= len(self.listings):
                            return
                        listing = self.listings[self.cur]
                        if listing.end is not None and page > listing.end:
                            self.cur += 1
                            page = 0
                            continue
                        break
                    key = (self.cur, page)
                    if key not in self.slots:
                        self._fill()
                        if key not in self.slots:  # the page needed next is always requested
                            self._submit(self.cur, page)
                    slot = self.slots[key]
                    while not slot.done:
                        self.cond.wait()
                    del self.slots[key]
                    self.held -= 1
                    if slot.error is not None:
                        raise slot.error
                    records = slot.records
                    partition = listing.partition
                    self._fill()
                self.stats.pages += 1
                page += 1
                yield Page(records, partition)  # type: ignore[arg-type]
        finally:
            self._close()

    def _close(self) -> None:
        with self.cond:
            self.closed = True
            for slot in self.slots.values():
                slot.cancelled = True
                if slot.started and not slot.done:
                    self.stats.wasted += 1  # in flight when the consumer finished or gave up
            self.slots.clear()
        if self.pool is not None:
            self.pool.shutdown()

    # -- planning (caller holds self.cond) ------------------------------------------------------
    def _fill(self) -> None:
        """Request planned pages, earliest listing first, while the window has room. A listing
        whose end is unknown still lets the next listing's first page (always needed) go out."""
        if self.closed:
            return
        index = self.cur
        while self.held < self.window and index < len(self.listings):
            listing = self.listings[index]
            limit = listing.expected if listing.end is None else min(listing.expected, listing.end + 1)
            while listing.scheduled < limit and self.held < self.window:
                self._submit(index, listing.scheduled)
            index += 1

    def _submit(self, index: int, page: int) -> None:
        listing = self.listings[index]
        slot = _Slot()
        self.slots[(index, page)] = slot
        self.held += 1
        listing.scheduled = max(listing.scheduled, page + 1)
        params = {**listing.params, **listing.paginator.params_for(page)}
        assert self.pool is not None
        self.pool.submit(self._fetch, index, page, params, slot)

    # -- workers --------------------------------------------------------------------------------
    def _fetch(self, index: int, page: int, params: dict[str, Any], slot: _Slot) -> None:
        with self.cond:
            if self.closed or slot.cancelled:
                return
            slot.started = True
            self.stats.requests += 1
        records: list[dict] | ArrowPage | None = None
        body: Any = None
        error: BaseException | None = None
        try:
            records, body = self.get_page(params)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer in page order
            error = exc
        with self.cond:
            if self.closed:
                return
            listing = self.listings[index]
            if self.slots.get((index, page)) is not slot:
                self.cond.notify_all()
                return
            if listing.end is not None and page > listing.end:
                self._discard(index, page, wasted=True)
            else:
                slot.records, slot.error, slot.done = records, error, True
                if error is None:
                    self._plan(index, page, records, body)  # type: ignore[arg-type]
            self._fill()
            self.cond.notify_all()

    def _plan(self, index: int, page: int, records: list[dict], body: Any) -> None:
        listing = self.listings[index]
        paginator = listing.paginator
        if page == 0:
            known = paginator.pages_known(records, body)
            if known is not None:
                listing.expected = max(listing.expected, known)
                listing.hint = "done"
        if paginator.is_last(page, records, body):
            self._end(index, page)
            return
        listing.expected = max(listing.expected, page + 2)  # a full page: the next one is needed
        if page == 0 and listing.hint is None and self.use_count:
            listing.hint = "pending"
            self.stats.count_hints += 1
            assert self.pool is not None
            self.pool.submit(self._count, index)
        elif listing.hint is None or listing.hint == "failed":
            # no known end: speculate, doubling the pages ahead as full pages keep coming
            ahead = min(self.SPECULATE_MAX, page + 1)
            listing.expected = max(listing.expected, page + 2 + ahead)

    def _end(self, index: int, page: int) -> None:
        listing = self.listings[index]
        listing.end = page
        for key in [k for k in self.slots if k[0] == index and k[1] > page]:
            slot = self.slots[key]
            if slot.done:
                self._discard(*key, wasted=True)
            elif not slot.started:
                slot.cancelled = True
                self._discard(*key, wasted=False)
            # else: in flight; discarded (and counted wasted) when it comes back

    def _discard(self, index: int, page: int, wasted: bool) -> None:
        if self.slots.pop((index, page), None) is not None:
            self.held -= 1
            if wasted:
                self.stats.wasted += 1

    def _count(self, index: int) -> None:
        listing = self.listings[index]
        try:
            # the listing's params are the count's: fixed params, partition and cursor (see `use_count`)
            value: int | None = ask_count(self.stream, self.client, listing.params)
        except Exception as exc:  # noqa: BLE001 - a plan hint only; the listing goes on without it
            log.debug("stream %s: count to plan pages failed (%s); speculating instead", self.stream.name, exc)
            value = None
        with self.cond:
            if self.closed:
                return
            if value is None:
                listing.hint = "failed"
            else:
                listing.hint = "done"
                listing.expected = max(listing.expected, listing.paginator.pages_from_count(value))
                self.stats.counts[listing.partition] = value
            self._fill()
            self.cond.notify_all()


def window_params(stream: StreamDefinition, partition: str | None, begin: datetime | None) -> dict[str, Any]:
    """The request parameters of one window of a stream: fixed params, partition, cursor bound.
    A listing and its /count take the same ones."""
    params: dict[str, Any] = dict(stream.params)
    if partition is not None:
        params[stream.partition.param] = partition  # type: ignore[union-attr]
    if begin is not None and stream.cursor:
        params[stream.cursor.param] = format_param(begin)
    return params


def count_records(stream: StreamDefinition, client: SqquidClient, begin: datetime | None, partition: str | None) -> int:
    return ask_count(stream, client, window_params(stream, partition, begin))


def ask_count(stream: StreamDefinition, client: SqquidClient, params: dict[str, Any]) -> int:
    """GET the stream's /count with these parameters; a body without a number is a SchemaError."""
    body = client.get(stream.count.path, params)  # type: ignore[union-attr]
    value = body.get(stream.count.envelope) if isinstance(body, dict) else None  # type: ignore[union-attr]
    if not isinstance(value, int) or isinstance(value, bool):
        raise SchemaError(f"stream {stream.name!r}: GET {stream.count.path} did not answer a count under {stream.count.envelope!r}")  # type: ignore[union-attr]
    return value


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
