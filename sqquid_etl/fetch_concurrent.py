"""The concurrent fetcher: requests the pages of every listing ahead of the consumer, planned
by page index (`paginate`), several in flight at once, and yields them in order.

A page is planned from (the next requests of its listing: `_plan`) once decoded: as it arrives
when the fetch thread decodes it, or when its consumer does (a `PageBody`, `page_body.py`).
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from typing import Any, Iterator

from .decode import Page
from .listing import Counter, FetchStats, Listing, PageReader
from .page_body import PageBody
from .threads import worker_name

log = logging.getLogger(__name__)


class _Slot:
    __slots__ = ("started", "cancelled", "done", "page", "error")

    def __init__(self) -> None:
        self.started = False
        self.cancelled = False
        self.done = False
        self.page: Page | PageBody | None = None
        self.error: BaseException | None = None


class _Workers:
    """A few daemon threads taking jobs in order (daemon: a request still retrying after the
    consumer has gone must not hold up the interpreter's exit)."""

    def __init__(self, count: int):
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.threads = [threading.Thread(target=self._run, name=worker_name(f"fetch-{i}"), daemon=True) for i in range(count)]
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


class ConcurrentFetch:
    """Requests pages of every listing ahead of the consumer, yields them in order, as
    (partition, page).

    All plan state is guarded by one condition; workers update the plan as soon as a page
    arrives (so the next requests go out while the consumer is still writing), the consumer
    takes pages strictly in (listing, page) order. Slots held (requested, not yet taken)
    never exceed `window`, except for the one page the consumer needs next.
    """

    SPECULATE_MAX = 8  # page-number lists without a known end: at most this many pages ahead

    def __init__(self, read_page: PageReader, count: Counter | None, listings: list[Listing],
                 workers: int, window: int, stats: FetchStats, name: str = ""):
        self.read_page = read_page
        self.count = count  # None: /count does not plan these listings' pages (`counts_plan_pages`)
        self.name = name
        self.listings = listings
        self.window = max(1, window)
        self.stats = stats
        self.workers = workers
        self.cond = threading.Condition()
        self.slots: dict[tuple[int, int], _Slot] = {}
        self.held = 0
        self.cur = 0  # the listing the consumer is in
        self.closed = False
        self.pool: _Workers | None = None

    # -- consumer -------------------------------------------------------------------------------
    def pages(self) -> Iterator[tuple[str | None, Page | PageBody]]:
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
                    page_read = slot.page
                    partition = listing.partition
                    self._fill()
                if isinstance(page_read, PageBody):  # planned from once its consumer decodes it
                    page_read.planned = functools.partial(self._decoded, self.cur, page)
                self.stats.pages += 1
                if page:
                    self.stats.paged.add(self.listings[self.cur].window)
                page += 1
                yield partition, page_read  # type: ignore[misc]
                if isinstance(page_read, PageBody) and not page_read.decoded:
                    page_read.page()  # (a consumer that did not: the listing's plan needs it)
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
        params = listing.page_params(page)
        assert self.pool is not None
        self.pool.submit(self._fetch, index, page, params, slot)

    # -- workers --------------------------------------------------------------------------------
    def _decoded(self, index: int, page: int, read: Page) -> None:
        """A page its consumer decoded (`PageBody`): the listing planned from it."""
        with self.cond:
            if self.closed:
                return
            self._plan(index, page, read)
            self._fill()
            self.cond.notify_all()

    def _fetch(self, index: int, page: int, params: dict[str, Any], slot: _Slot) -> None:
        with self.cond:
            if self.closed or slot.cancelled:
                return
            slot.started = True
            self.stats.requests += 1
        read: Page | PageBody | None = None
        error: BaseException | None = None
        try:
            read = self.read_page(params)
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
                slot.page, slot.error, slot.done = read, error, True
                if isinstance(read, Page):
                    self._plan(index, page, read)
            self._fill()
            self.cond.notify_all()

    def _plan(self, index: int, page: int, read: Page) -> None:
        listing = self.listings[index]
        paginator = listing.paginator
        if page == 0:
            known = paginator.pages_known(read)
            if known is not None:
                listing.expected = max(listing.expected, known)
                listing.hint = "done"
        if paginator.is_last(page, read):
            self._end(index, page)
            return
        listing.expected = max(listing.expected, page + 2)  # a full page: the next one is needed
        if page == 0 and listing.hint is None and self.count is not None and listing.counted:
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
        assert self.count is not None
        try:
            # the listing's params are the count's: fixed params, partition and cursor (`counts_plan_pages`)
            value: int | None = self.count(listing.params)
        except Exception as exc:  # noqa: BLE001 - a plan hint only; the listing goes on without it
            log.debug("stream %s: count to plan pages failed (%s); speculating instead", self.name, exc)
            value = None
        with self.cond:
            if self.closed:
                return
            if value is None:
                listing.hint = "failed"
            else:
                listing.hint = "done"
                listing.expected = max(listing.expected, listing.paginator.pages_from_count(value))
                self.stats.counts[listing.window] = value
            self._fill()
            self.cond.notify_all()
