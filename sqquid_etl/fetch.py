"""Fetching a stream's pages: per partition, per key batch, page by page, with several requests
in flight ahead of the consumer so that neither the API's latency nor local work (converting
and writing pages) eats into the request budget; pages are still yielded in order, decoded.

The parts: `listing` plans the listings, `fetch_concurrent` and `fetch_sequential` fetch
them, `decode` turns each body into a page (in the fetch threads; for one of many accounts in its
consumer's thread, `page_body`). Knows the definition's request facts but nothing of destinations
or state.
"""

from __future__ import annotations

import functools
import math
from datetime import datetime
from typing import Any, Callable, Iterator

from .client import SqquidClient
from .cpu_gate import UNGATED
from .decode import BodyNotJSON, Page, PageDecoder
from .definitions import StreamDefinition
from .errors import SchemaError
from .fetch_concurrent import ConcurrentFetch
from .fetch_sequential import prefetch as fetch_ahead
from .fetch_sequential import sequential_pages
from .listing import FetchStats, PageReader, Window, counts_plan_pages, plan_listings, span_params, window_params
from .page_body import PageBody

__all__ = ["FetchStats", "Page", "ask_count", "count_records", "count_window", "default_concurrency", "fetch_pages",
           "page_reader"]


def fetch_pages(
    stream: StreamDefinition,
    client: SqquidClient,
    windows: "dict[str | None, datetime | None] | list[Window]",
    key_batches: list[str] | None,
    prefetch: int = 2,
    *,
    concurrency: int | None = None,
    stats: FetchStats | None = None,
    undecoded: bool = False,
) -> Iterator[tuple[str | None, Page | PageBody]]:
    """Every page of the stream, in order, as (partition, page), decoded in the fetch threads
    by one `PageDecoder` (straight into Arrow when it can). `undecoded`: pages fetched several at
    once come as `PageBody`s, which the consumer decodes (`PageBody.page()`, in order: the next
    requests are planned from them), in its own thread (`page_body.py`).

    Up to `concurrency` requests (default: `default_concurrency`) are in flight at
    once, and at most `concurrency + 1` pages are held (in flight or fetched, not yet taken;
    `prefetch=0`: `concurrency`), so memory is bounded. The client's pacer keeps them within the request budget.
    Pages whose existence is known (an offset list's `total`, a page-number list's /count) are
    fetched concurrently; beyond that, page-number lists speculate a few pages ahead and
    discard those past the first short page. `concurrency=1` fetches one page at a time,
    `prefetch` pages ahead in a thread.
    """
    stats = stats if stats is not None else FetchStats()
    workers = concurrency if concurrency is not None else default_concurrency(client)
    listings = plan_listings(stream, windows, key_batches)
    decoder = PageDecoder(stream)
    read_page = page_reader(stream, client, decoder)
    if workers <= 1:
        return fetch_ahead(sequential_pages(read_page, listings, stats), prefetch)
    if undecoded:
        read_page = body_reader(stream, client, decoder)  # type: ignore[assignment]
    count = functools.partial(ask_count, stream, client) if counts_plan_pages(stream) else None
    # the window: the requests in flight and one page fetched ahead of the consumer (it converts a
    # page in milliseconds; a page waits for it only when the CPU is short, and more would hold memory);
    # one of many accounts (no spare, `default_concurrency`): none ahead, its CPU shared with the others
    ahead = min(getattr(client, "spare_in_flight", 1), 1, max(0, prefetch))
    fetch = ConcurrentFetch(read_page, count, listings, workers, workers + ahead, stats, stream.name)
    return fetch.pages()


def one_of_many(client: SqquidClient) -> bool:
    """Whether the client is one of many accounts in a process (`SqquidClient.one_of_many`, set by
    `accounts_run`): sized by its fastest answer, its pages decoded by its consumer."""
    return bool(getattr(client, "one_of_many", False))


def page_reader(stream: StreamDefinition, client: SqquidClient, decoder: PageDecoder) -> PageReader:
    """GET one page of the stream and decode it. A body that is not JSON (cut short) is asked
    again like any transient failure, within the same retry budget as the request's others."""
    endpoint = f"GET {stream.path}"
    gate = getattr(client, "cpu_gate", UNGATED)

    def read_page(params: dict[str, Any]) -> Page:
        budget = client.retry_budget(endpoint)
        while True:
            body = client.get_body(stream.path, params, budget=budget)
            try:
                with gate.held():
                    return decoder.decode(body)
            except BodyNotJSON as exc:
                budget.failed(str(exc))

    return read_page


def body_reader(stream: StreamDefinition, client: SqquidClient, decoder: PageDecoder) -> "Callable[[dict[str, Any]], PageBody]":
    """GET one page of the stream, its body to be decoded by the consumer (`PageBody`). A body that
    is not JSON is asked again when decoded, within the request's retry budget, the consumer's
    slot of the CPU gate given back meanwhile. A body read into one of the transport's
    `body_buffers` goes back to them once its page is converted (`PageBody.converted`)."""
    endpoint = f"GET {stream.path}"
    gate = getattr(client, "cpu_gate", UNGATED)
    buffers = getattr(getattr(client, "transport", None), "body_buffers", None)

    def read_body(params: dict[str, Any]) -> PageBody:
        budget = client.retry_budget(endpoint)

        def decode(body: bytes) -> Page:
            while True:
                try:
                    return decoder.decode(body)
                except BodyNotJSON as exc:
                    with gate.released():
                        budget.failed(str(exc))
                        body = client.get_body(stream.path, params, budget=budget)

        return PageBody(client.get_body(stream.path, params, budget=budget), decode, buffers)

    return read_body


def default_concurrency(client: SqquidClient) -> int:
    """Requests in flight: enough to keep the pacer's rate through twice the API's answer time
    as measured so far (the login's, the count's), at most through 2 s, and one spare (5 at 2
    requests/s, also when nothing was answered yet): at 2 requests/s and 0.3 s, 3 in flight, where
    one would do on average. More only hold pages and threads. A client of one of many accounts
    in a process has no spare (`SqquidClient.spare_in_flight`, accounts_run): 2 in flight at
    0.3 s; at 100 accounts 100 threads and ~150 pages held fewer, -10% of the CPU a page
    (docs/benchmarks.md, ninth session). With pacing off, one at a time (plus the prefetch
    thread): the client's own CPU is then the limit, and more threads only contend for it
    (measured: 1.8x the CPU for the same pages at 8 in flight on loopback, docs/benchmarks.md).
    One of many accounts is sized by its fastest answer so far, not the average: at the start of
    a run of many accounts every account logs in and counts at once, and those answers' time is
    mostly the process's own queue for the CPU; sized by it, whole runs kept 3 in flight instead
    of 2 (100 threads and up to 100 pages more: docs/benchmarks.md, tenth session)."""
    rate = getattr(getattr(client, "pacer", None), "rate", None)
    pool = getattr(client, "pool_size", 8)
    if rate is None:
        return 1
    stats = getattr(client, "stats", None)
    spare = getattr(client, "spare_in_flight", 1)
    answer = getattr(stats, "answer_seconds", None)
    if one_of_many(client) and getattr(stats, "fastest_answer_seconds", None) is not None:
        answer = stats.fastest_answer_seconds
    seconds = 2.0 if answer is None else min(2.0, 2 * max(0.0, answer))
    return max(2, min(pool, math.ceil(rate * seconds) + spare))


def count_records(stream: StreamDefinition, client: SqquidClient, begin: datetime | None, partition: str | None) -> int:
    return ask_count(stream, client, window_params(stream, partition, begin))


def count_window(stream: StreamDefinition, client: SqquidClient, window: Window) -> int:
    return ask_count(stream, client, span_params(stream, window))


def ask_count(stream: StreamDefinition, client: SqquidClient, params: dict[str, Any]) -> int:
    """GET the stream's /count with these parameters; a body without a number is a SchemaError."""
    body = client.get(stream.count.path, params)  # type: ignore[union-attr]
    value = body.get(stream.count.envelope) if isinstance(body, dict) else None  # type: ignore[union-attr]
    if not isinstance(value, int) or isinstance(value, bool):
        raise SchemaError(f"stream {stream.name!r}: GET {stream.count.path} did not answer a count under {stream.count.envelope!r}")  # type: ignore[union-attr]
    return value
