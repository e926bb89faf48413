"""The sequential fetcher: one page at a time, planned by page index like the concurrent one
(`paginate`), fetched up to `depth` pages ahead in a thread while the consumer converts and
writes.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Iterator, TypeVar

from .decode import Page
from .listing import FetchStats, Listing, PageReader
from .threads import worker_name

T = TypeVar("T")


def sequential_pages(read_page: PageReader, listings: list[Listing], stats: FetchStats) -> Iterator[tuple[str | None, Page]]:
    """Every page of the listings, in order, as (partition, page): per listing, page by page."""
    for listing in listings:
        paginator = listing.paginator
        index = 0
        while True:
            stats.requests += 1
            page = read_page(listing.page_params(index))
            stats.pages += 1
            if index:
                stats.paged.add(listing.window)
            yield listing.partition, page
            if index == 0:
                paginator.pages_known(page)  # an offset list's step: the server's cap
            if paginator.is_last(index, page):
                break
            index += 1


def prefetch(pages: Iterator[T], depth: int) -> Iterator[T]:
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

    thread = threading.Thread(target=produce, name=worker_name("prefetch"), daemon=True)
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
