"""Pagination strategies: page/limit (v1 lists) and offset/limit (v2, inventory, buffers, locations).

One protocol, by page index (0-based), which both the concurrent and the sequential fetcher
follow: `params_for(i)` gives the request of page i without seeing the pages before it,
`is_last(i, page)` says whether page i ends the listing, and `pages_known(page)` (given the
first page, before any later one is planned) or `pages_from_count(n)` (from a /count answer)
say how many pages to expect, when that is known. A page is anything with a length (its
records) and the envelope's `total` and `limit` (None when absent): `decode.Page`.
"""

from __future__ import annotations

from typing import Any, Protocol

from .definitions import Paginator


class PageFacts(Protocol):
    """What a paginator reads of a page."""

    total: int | None
    limit: int | None

    def __len__(self) -> int: ...


class PaginationStrategy(Protocol):
    def params_for(self, index: int) -> dict[str, Any]: ...

    def is_last(self, index: int, page: PageFacts) -> bool: ...

    def pages_known(self, page: PageFacts) -> int | None: ...

    def pages_from_count(self, count: int) -> int: ...


class PageNumberPaginator:
    """`page` (1-based) and `limit`; the last page is the first one shorter than `limit`."""

    def __init__(self, limit: int):
        self.limit = limit

    def params_for(self, index: int) -> dict[str, Any]:
        return {"page": index + 1, "limit": self.limit}

    def is_last(self, index: int, page: PageFacts) -> bool:
        return len(page) < self.limit

    def pages_known(self, page: PageFacts) -> int | None:
        return None  # v1 lists have no total

    def pages_from_count(self, count: int) -> int:
        """Pages up to and including the first short one (possibly empty) for `count` records."""
        return max(0, count) // self.limit + 1


class OffsetPaginator:
    """`offset` and `limit`, with the envelope's `total` when the API gives it.

    The step is the page size the server really uses: the limit asked for, unless the first
    page shows that the server caps it lower (its envelope's `limit`, or a short first page
    that is not the last). Set by `pages_known` before any page after the first is planned."""

    def __init__(self, limit: int):
        self.limit = limit
        self.step: int | None = None

    def params_for(self, index: int) -> dict[str, Any]:
        return {"offset": index * (self.step or self.limit), "limit": self.limit}

    def is_last(self, index: int, page: PageFacts) -> bool:
        if not len(page):
            return True
        if page.total is not None:
            return index * (self.step or self.limit) + len(page) >= page.total
        return len(page) < self.limit

    def pages_known(self, page: PageFacts) -> int | None:
        step = self.limit
        if page.limit is not None and 0 < page.limit < step:
            step = page.limit
        if len(page) and len(page) < step and (page.total is None or len(page) < page.total):
            step = len(page)  # a short first page that is not the last: the server's cap
        self.step = step
        if page.total is None:
            return None
        return max(1, -(-page.total // step))

    def pages_from_count(self, count: int) -> int:
        return max(1, -(-count // (self.step or self.limit)))


def make_paginator(spec: Paginator) -> PaginationStrategy:
    if spec.type == "page_number":
        return PageNumberPaginator(spec.limit)
    if spec.type == "offset":
        return OffsetPaginator(spec.limit)
    raise ValueError(f"unknown paginator type {spec.type!r}")
