"""A list page as fetched, not yet decoded: decoded by the thread that converts it.

One of many accounts in a process (`fetch.fetch_pages(undecoded=True)`, `read.read_tables`): a page
decoded by the fetch thread that received it was converted and staged later by its account's
thread, cold, after ~100 other accounts' pages had gone through the same two cores; decoded right
before its conversion, in the same thread and CPU slot, its Arrow arrays are still in the cache
when converted (docs/benchmarks.md, eleventh session). The fetcher plans a listing's next requests
from a decoded page (its records, `total`, `limit`): the page, once decoded, is handed to `planned`.

Their bodies are read into buffers used again (`body_buffers.BodyBuffers`, one for the process's
accounts): a body goes back to them once its page is converted (`PageBody.converted`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .decode import Page

if TYPE_CHECKING:
    from .body_buffers import BodyBuffers


class PageBody:
    """The body of one list page and how to decode it (`decode`: body -> Page; it asks the page
    again itself where the body is not JSON). `page()` decodes it once and tells `planned`."""

    __slots__ = ("body", "_decode", "planned", "_page", "buffers")

    def __init__(self, body: bytes, decode: Callable[[bytes], Page], buffers: "BodyBuffers | None" = None):
        self.body = body
        self._decode: Callable[[bytes], Page] | None = decode  # None once decoded
        self.planned: Callable[[Page], None] | None = None  # set by the fetcher that yields it
        self._page: Page | None = None
        self.buffers = buffers  # where the body goes back once its page is converted (`converted`)

    @property
    def decoded(self) -> bool:
        return self._decode is None

    def page(self) -> Page:
        """The page, decoded (the first call decodes; raises what decoding raises)."""
        if self._decode is not None:
            self._page = self._decode(self.body)
            self._decode = None
            self.body = b""  # the page holds it now
            if self.planned is not None:
                self.planned(self._page)
        if self._page is None:
            raise RuntimeError("a page asked for after its conversion (PageBody.converted)")
        return self._page

    def converted(self) -> None:
        """Its page was converted: the body goes back to `buffers` (when nothing else holds it)."""
        page, self._page = self._page, None
        body = page.body if page is not None else self.body
        self.body = b""
        del page  # (the page's last reference, unless someone kept it: then the body stays theirs)
        if self.buffers is not None:
            self.buffers.give_back(body, held_by_caller=1)


def decoded(page: "Page | PageBody") -> Page:
    """A page, decoded if it was fetched undecoded."""
    return page.page() if isinstance(page, PageBody) else page
