"""A list page as fetched, not yet decoded: decoded by the thread that converts it.

One of many accounts in a process (`fetch.fetch_pages(undecoded=True)`, `read.read_tables`): a page
decoded by the fetch thread that received it was converted and staged later by its account's
thread, cold, after ~100 other accounts' pages had gone through the same two cores; decoded right
before its conversion, in the same thread and CPU slot, its Arrow arrays are still in the cache
when converted (docs/benchmarks.md, eleventh session). The fetcher plans a listing's next requests
from a decoded page (its records, `total`, `limit`): the page, once decoded, is handed to `planned`.
"""

from __future__ import annotations

from typing import Callable

from .decode import Page


class PageBody:
    """The body of one list page and how to decode it (`decode`: body -> Page; it asks the page
    again itself where the body is not JSON). `page()` decodes it once and tells `planned`."""

    __slots__ = ("body", "_decode", "planned", "_page")

    def __init__(self, body: bytes, decode: Callable[[bytes], Page]):
        self.body = body
        self._decode = decode
        self.planned: Callable[[Page], None] | None = None  # set by the fetcher that yields it
        self._page: Page | None = None

    @property
    def decoded(self) -> bool:
        return self._page is not None

    def page(self) -> Page:
        """The page, decoded (the first call decodes; raises what decoding raises)."""
        if self._page is None:
            self._page = self._decode(self.body)
            self.body = b""  # the page holds it now
            if self.planned is not None:
                self.planned(self._page)
        return self._page


def decoded(page: "Page | PageBody") -> Page:
    """A page, decoded if it was fetched undecoded."""
    return page.page() if isinstance(page, PageBody) else page
