"""Pagination strategies: page/limit (v1 lists) and offset/limit (v2, inventory, buffers, locations).

Each is a small object with one protocol (after dlt's paginators): `first_params()` gives the
parameters of the first request, `advance(records, body)` looks at a page and says whether
there is another, `next_params()` the parameters of that next request.
"""

from __future__ import annotations

from typing import Any, Protocol

from .definitions import Paginator


class PaginationStrategy(Protocol):
    def first_params(self) -> dict[str, Any]: ...

    def advance(self, records: list, body: Any) -> bool: ...

    def next_params(self) -> dict[str, Any]: ...


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


class OffsetPaginator:
    """`offset` and `limit`, with the envelope's `total` when the API gives it."""

    def __init__(self, limit: int):
        self.limit = limit
        self.offset = 0

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


def make_paginator(spec: Paginator) -> PaginationStrategy:
    if spec.type == "page_number":
        return PageNumberPaginator(spec.limit)
    if spec.type == "offset":
        return OffsetPaginator(spec.limit)
    raise ValueError(f"unknown paginator type {spec.type!r}")
