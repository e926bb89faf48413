"""Pagination strategies: page/limit (v1 lists) and offset/limit (v2, inventory, buffers, locations).

Each is a small object with one protocol (after dlt's paginators): `first_params()` gives the
parameters of the first request, `advance(records, body)` looks at a page and says whether
there is another, `next_params()` the parameters of that next request.

For concurrent fetching (`fetch.py`) each also plans pages by index: `params_for(i)` gives the
request of page i (0-based) without seeing the pages before it, `is_last(i, records, body)`
says whether page i ends the listing, and `pages_known(records, body)` (from the first page) or
`pages_from_count(n)` (from a /count answer) say how many pages to expect, when that is known.
"""

from __future__ import annotations

from typing import Any, Protocol

from .definitions import Paginator


# the envelope's fields (besides the records) that paginators read
ENVELOPE_FIELDS = ("total", "limit")


class PaginationStrategy(Protocol):
    def first_params(self) -> dict[str, Any]: ...

    def advance(self, records: list, body: Any) -> bool: ...

    def next_params(self) -> dict[str, Any]: ...

    def params_for(self, index: int) -> dict[str, Any]: ...

    def is_last(self, index: int, records: list, body: Any) -> bool: ...

    def pages_known(self, records: list, body: Any) -> int | None: ...

    def pages_from_count(self, count: int) -> int: ...


class PageNumberPaginator:
    """`page` (1-based) and `limit`; the last page is the first one shorter than `limit`."""

    def __init__(self, limit: int):
        self.limit = limit
        self.page = 1

    def first_params(self) -> dict[str, Any]:
        self.page = 1
        return {"page": 1, "limit": self.limit}

    def advance(self, records: list, body: Any) -> bool:
        if len(records) < self.limit:
            return False
        self.page += 1
        return True

    def next_params(self) -> dict[str, Any]:
        return {"page": self.page, "limit": self.limit}

    # -- planning by index --------------------------------------------------------------------
    def params_for(self, index: int) -> dict[str, Any]:
        return {"page": index + 1, "limit": self.limit}

    def is_last(self, index: int, records: list, body: Any) -> bool:
        return len(records) < self.limit

    def pages_known(self, records: list, body: Any) -> int | None:
        return None  # v1 lists have no total

    def pages_from_count(self, count: int) -> int:
        """Pages up to and including the first short one (possibly empty) for `count` records."""
        return max(0, count) // self.limit + 1


class OffsetPaginator:
    """`offset` and `limit`, with the envelope's `total` when the API gives it."""

    def __init__(self, limit: int):
        self.limit = limit
        self.offset = 0
        self.step: int | None = None

    def first_params(self) -> dict[str, Any]:
        self.offset = 0
        return {"offset": 0, "limit": self.limit}

    def advance(self, records: list, body: Any) -> bool:
        if not records:
            return False
        self.offset += len(records)
        total = body.get("total") if isinstance(body, dict) else None
        if isinstance(total, int) and not isinstance(total, bool):
            return self.offset < total
        return len(records) >= self.limit

    def next_params(self) -> dict[str, Any]:
        return {"offset": self.offset, "limit": self.limit}

    # -- planning by index --------------------------------------------------------------------
    # The step is the page size the server really uses: the limit asked for, unless the first
    # page shows that the server caps it lower (its envelope's `limit`, or a short first page
    # that is not the last). Set by `pages_known` before any page after the first is planned.

    def params_for(self, index: int) -> dict[str, Any]:
        return {"offset": index * (self.step or self.limit), "limit": self.limit}

    def is_last(self, index: int, records: list, body: Any) -> bool:
        if not records:
            return True
        end = index * (self.step or self.limit) + len(records)
        total = _total(body)
        if total is not None:
            return end >= total
        return len(records) < self.limit

    def pages_known(self, records: list, body: Any) -> int | None:
        total = _total(body)
        step = self.limit
        served = body.get("limit") if isinstance(body, dict) else None
        if isinstance(served, int) and not isinstance(served, bool) and 0 < served < step:
            step = served
        if records and len(records) < step and (total is None or len(records) < total):
            step = len(records)  # a short first page that is not the last: the server's cap
        self.step = step
        if total is None:
            return None
        return max(1, -(-total // step))

    def pages_from_count(self, count: int) -> int:
        return max(1, -(-count // (self.step or self.limit)))


def _total(body: Any) -> int | None:
    total = body.get("total") if isinstance(body, dict) else None
    if isinstance(total, int) and not isinstance(total, bool):
        return total
    return None


def make_paginator(spec: Paginator) -> PaginationStrategy:
    if spec.type == "page_number":
        return PageNumberPaginator(spec.limit)
    if spec.type == "offset":
        return OffsetPaginator(spec.limit)
    raise ValueError(f"unknown paginator type {spec.type!r}")
