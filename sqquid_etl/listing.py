"""Planning a stream's listings: one per partition value (window) and key batch, each with its
own paginator and what is known so far of its pages; and what fetching them cost (`FetchStats`).

Knows the definition's request facts (params, partition, cursor, keys) but nothing of
destinations or state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from .decode import Page
from .definitions import StreamDefinition
from .paginate import PaginationStrategy, make_paginator
from .state import format_param

PageReader = Callable[[dict[str, Any]], Page]  # the request params of a page -> the page
Counter = Callable[[dict[str, Any]], int]  # a listing's params -> its /count answer


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
    counts: dict = field(default_factory=dict)  # Window -> the /count answer used to plan its pages
    paged: set = field(default_factory=set)  # Windows a listing of which took more than one page


@dataclass(frozen=True)
class Window:
    """One range of a stream to list: a partition's records with cursor at or after `since` (None:
    from the beginning) and, when `until` is given, before it (the cursor's `max_param`); or, with
    `keys`, the records whose `relist` field holds one of them (orders by `ids`)."""

    partition: str | None
    since: datetime | None = None
    until: datetime | None = None
    keys: tuple | None = None


def as_windows(windows: "dict | list[Window]") -> list[Window]:
    """{partition: start} (a run's plain windows) or Windows, as Windows."""
    if isinstance(windows, dict):
        return [Window(partition, since) for partition, since in windows.items()]
    return list(windows)


@dataclass
class Listing:
    """One paginated listing: a partition value and key batch of the stream, with its plan."""

    params: dict[str, Any]
    partition: str | None
    paginator: PaginationStrategy
    window: Window | None = None
    counted: bool = True  # the stream's /count takes this listing's params (it can plan its pages)
    expected: int = 1  # pages planned so far (known to exist, or speculated)
    end: int | None = None  # index of the last page, once seen
    scheduled: int = 0  # pages 0..scheduled-1 have been requested
    hint: str | None = None  # None | "pending" | "done" | "failed" (a /count answer planned the pages)

    def page_params(self, index: int) -> dict[str, Any]:
        """The request of page `index` of this listing."""
        return {**self.params, **self.paginator.params_for(index)}


def plan_listings(
    stream: StreamDefinition,
    windows: "dict[str | None, datetime | None] | list[Window]",
    key_batches: list[str] | None,
) -> list[Listing]:
    """The stream's listings in the order their pages are yielded: per window, per key batch."""
    out = []
    for window in as_windows(windows):
        params = span_params(stream, window)
        for keys in key_batches if key_batches is not None else [None]:
            listing_params = dict(params)
            if keys is not None:
                listing_params[stream.keys_from.param] = keys  # type: ignore[union-attr]
            out.append(Listing(listing_params, window.partition, make_paginator(stream.paginator), window,
                               counted(stream, window)))
    return out


def span_params(stream: StreamDefinition, window: Window) -> dict[str, Any]:
    """The request parameters of a Window (its /count takes the same, where it takes them at all)."""
    params = window_params(stream, window.partition, window.since)
    if window.until is not None and stream.cursor and stream.cursor.max_param:
        params[stream.cursor.max_param] = format_param(window.until)
    if window.keys is not None and stream.relist:
        params[stream.relist.param] = ",".join(str(k) for k in window.keys)
    return params


def counted(stream: StreamDefinition, window: Window) -> bool:
    """Whether the stream's /count takes the Window's params (a key batch only where `relist.counted`)."""
    return stream.count is not None and (window.keys is None or bool(stream.relist and stream.relist.counted))


def window_params(stream: StreamDefinition, partition: str | None, begin: datetime | None) -> dict[str, Any]:
    """The request parameters of one window of a stream: fixed params, partition, cursor bound.
    A listing and its /count take the same ones."""
    params: dict[str, Any] = dict(stream.params)
    if partition is not None:
        params[stream.partition.param] = partition  # type: ignore[union-attr]
    if begin is not None and stream.cursor:
        params[stream.cursor.param] = format_param(begin)
    return params


def counts_plan_pages(stream: StreamDefinition) -> bool:
    """Whether a listing's /count can plan its pages: a page-number list (an offset list has its
    `total`) whose listing params are its window's, which its /count takes too (a listing of a
    key batch has the batch as well, which /count does not take)."""
    return stream.count is not None and stream.paginator.type == "page_number" and stream.keys_from is None
