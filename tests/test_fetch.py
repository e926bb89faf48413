"""Concurrent page fetching: order, completeness, error propagation, bounded speculation.

Against the sandbox (free port, no throttling) and against a scripted fake client whose
answers can be held back to force pages to complete out of order. Nothing sleeps.
"""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest

from sqquid_etl.definitions import Paginator, load_definitions
from sqquid_etl.errors import ApiError
from sqquid_etl.fetch import FetchStats, fetch_pages
from sqquid_etl.fetch_concurrent import ConcurrentFetch
from sqquid_etl.retry import RetryBudget
from sqquid_etl.sandbox import FaultConfig
from tests.support import make_client

DEFS = load_definitions()


def with_limit(name: str, limit: int, **changes):
    stream = DEFS[name]
    return dataclasses.replace(stream, paginator=Paginator(stream.paginator.type, limit), **changes)


def rows(page) -> list[dict]:
    """A page's records (read by Arrow from the body, or decoded into dicts)."""
    return page.records if page.records is not None else page.array.to_pylist()


def ids(pages) -> list[int]:
    return [r["id"] for _, p in pages for r in rows(p)]


class FakeClient:
    """Stands in for SqquidClient where fetching uses it: bodies as bytes, a retry budget."""

    pool_size = 4

    def retry_budget(self, endpoint):
        return RetryBudget(endpoint, 3, 3, lambda *args: None)

    def get_body(self, path, params, budget=None):
        return json.dumps(self.answer(params)).encode()


# -- against the sandbox --------------------------------------------------------------------------

@pytest.mark.parametrize("limit", [40, 50, 60, 250])  # 300 orders; the sandbox caps limit at 250
def test_page_number_pages_in_order_complete_without_waste(sandbox, limit):
    stream = with_limit("orders", limit)
    stats = FetchStats()
    with make_client(sandbox) as client:
        pages = list(fetch_pages(stream, client, {None: None}, None, concurrency=4, stats=stats))
    expected = [o["id"] for o in sandbox.store.orders]
    assert ids(pages) == expected  # in order, nothing missing, nothing twice
    assert len(pages) == len(expected) // limit + 1  # up to and including the first short page
    assert all(len(p) == limit for _, p in pages[:-1]) and len(pages[-1][1]) < limit
    assert stats.pages == len(pages)
    # planned by /count: no page past the end was requested
    assert stats.wasted == 0
    assert stats.count_hints == (1 if len(pages) > 1 else 0)
    assert sandbox.stats.by_route["GET /v1/orders"] == len(pages) == stats.requests


def test_speculative_over_fetch_stops_at_the_first_short_page(sandbox):
    stream = with_limit("orders", 20, count=None)  # no /count: speculate
    stats = FetchStats()
    with make_client(sandbox) as client:
        pages = list(fetch_pages(stream, client, {None: None}, None, concurrency=4, stats=stats))
    assert ids(pages) == [o["id"] for o in sandbox.store.orders]
    assert len(pages) == 16  # 15 full pages of 20, then an empty one
    assert stats.count_hints == 0
    assert stats.wasted <= ConcurrentFetch.SPECULATE_MAX
    served = sandbox.stats.by_route["GET /v1/orders"]
    assert stats.requests == stats.pages + stats.wasted
    assert stats.pages <= served <= stats.requests  # the last speculative ones may still be on the way


class ScriptedPageClient(FakeClient):
    """A page-number list of `n` records; page `hold_page` answers only once `wait_for` pages
    were requested (so pages past the end are in flight when the end is seen)."""

    def __init__(self, n: int, hold_page: int, wait_for: set[int]):
        self.n, self.hold_page, self.wait_for = n, hold_page, wait_for
        self.requested: list[int] = []
        self.cond = threading.Condition()

    def answer(self, params):
        page, limit = params["page"], params["limit"]
        with self.cond:
            self.requested.append(page)
            self.cond.notify_all()
            if page == self.hold_page:
                assert self.cond.wait_for(lambda: self.wait_for <= set(self.requested), timeout=10)
        start = (page - 1) * limit
        return {"Orders": [{"id": i} for i in range(start, min(self.n, start + limit))]}


def test_speculative_pages_past_the_end_are_discarded_and_counted():
    stream = with_limit("orders", 10, count=None)
    # page 3 (short, the real end) answers only after page 4 (empty) was requested
    client = ScriptedPageClient(25, hold_page=3, wait_for={4})
    stats = FetchStats()
    pages = list(fetch_pages(stream, client, {None: None}, None, concurrency=4, stats=stats))
    assert ids(pages) == list(range(25))
    assert len(pages) == 3
    assert 1 <= stats.wasted <= 2 and stats.requests == 3 + stats.wasted
    # after page 2 came back full, pages 3-5 were speculated; the empty page 4 stopped the rest
    assert sorted(client.requested) == list(range(1, stats.requests + 1))


def test_partitions_match_a_sequential_fetch(sandbox):
    stream = with_limit("shipment_items", 30)
    windows = {scope: None for scope in stream.partition.values}
    with make_client(sandbox) as client:
        sequential = [(partition, [r["id"] for r in rows(p)])
                      for partition, p in fetch_pages(stream, client, windows, None, concurrency=1)]
        concurrent = [(partition, [r["id"] for r in rows(p)])
                      for partition, p in fetch_pages(stream, client, windows, None, concurrency=5, prefetch=1)]
    assert concurrent == sequential
    assert sum(len(i) for _, i in concurrent) == len(sandbox.store.shipment_items)


def test_offset_lists_fetch_the_remaining_offsets_from_total(sandbox):
    stream = with_limit("buffers", 7)
    stats = FetchStats()
    with make_client(sandbox) as client:
        pages = list(fetch_pages(stream, client, {None: None}, None, concurrency=4, stats=stats))
    assert ids(pages) == [b["id"] for b in sandbox.store.buffers]
    assert len(pages) == -(-len(sandbox.store.buffers) // 7)
    assert stats.wasted == 0 and stats.requests == len(pages)


def test_key_batches_keep_their_order(sandbox):
    stream = DEFS["inventory"]
    skus = sorted({sku for sku, _, _ in sandbox.store.inventory})
    batches = [",".join(skus[i:i + 25]) for i in range(0, len(skus), 25)]
    with make_client(sandbox) as client:
        pages = list(fetch_pages(stream, client, {None: None}, batches, concurrency=4))
    assert [r["sku"] for _, p in pages for r in rows(p)] == skus
    assert len(pages) == len(batches)


def test_error_in_a_page_reaches_the_consumer_after_the_pages_before_it(make_sandbox):
    sandbox = make_sandbox(faults=FaultConfig(error_every=5, error_status=400))
    stream = with_limit("orders", 20)
    seen = []
    with make_client(sandbox) as client:
        with pytest.raises(ApiError, match="HTTP 400"):
            for page in fetch_pages(stream, client, {None: None}, None, concurrency=4):
                seen.append(page)
    assert ids(seen) == [o["id"] for o in sandbox.store.orders][: 20 * len(seen)]


def test_relogin_under_concurrency(sandbox):
    stream = with_limit("orders", 20)
    with make_client(sandbox) as client:
        pages = fetch_pages(stream, client, {None: None}, None, concurrency=4)
        got = [next(pages), next(pages)]
        sandbox.expire_tokens()
        got.extend(pages)
    assert ids(got) == [o["id"] for o in sandbox.store.orders]
    assert sandbox.stats.logins <= 1 + 4  # once at the start, then at most once per thread


def test_a_list_body_cut_short_is_asked_again(make_sandbox):
    sandbox = make_sandbox(faults=FaultConfig(truncate_every=3))
    with make_client(sandbox) as client:
        pages = list(fetch_pages(with_limit("orders", 50), client, {None: None}, None, concurrency=1))
        assert client.stats.retries >= 1
    assert ids(pages) == [o["id"] for o in sandbox.store.orders]


def test_bodies_cut_short_and_failed_requests_spend_one_retry_budget(make_sandbox):
    # every 2nd request answers 500, every 3rd a body cut short: the second page's attempts are
    # 500, cut short, 500, and the failures of both kinds count against the same max_tries
    sandbox = make_sandbox(faults=FaultConfig(error_every=2, truncate_every=3))
    with make_client(sandbox, max_tries=3) as client:
        with pytest.raises(ApiError, match=r"GET /v1/orders failed after 3 tries: HTTP 500"):
            list(fetch_pages(with_limit("orders", 50), client, {None: None}, None, concurrency=1, prefetch=0))
        assert client.stats.retries == 2
    assert sandbox.stats.faults_by_kind == {"error": 2, "truncate": 1}


# -- against a scripted client -------------------------------------------------------------------

class ScriptedClient(FakeClient):
    """Serves an offset list of `n` records `limit` at a time; `hold` pages wait for a release."""

    def __init__(self, n: int, server_limit: int = 1000, fail: dict | None = None, hold: dict | None = None):
        self.n, self.server_limit = n, server_limit
        self.fail = fail or {}
        self.hold = hold or {}  # offset -> Event to wait for
        self.served: list[int] = []
        self.lock = threading.Lock()

    def answer(self, params):
        offset, limit = params["offset"], min(params["limit"], self.server_limit)
        with self.lock:
            self.served.append(offset)
        if offset in self.hold:
            assert self.hold[offset].wait(timeout=10)
        if offset in self.fail:
            raise self.fail[offset]
        records = [{"id": i} for i in range(offset, min(self.n, offset + limit))]
        return {"total": self.n, "limit": limit, "offset": offset, "results": records}


def offset_stream(limit: int):
    return with_limit("buffers", limit)


def test_pages_completing_out_of_order_are_yielded_in_order():
    later_done = threading.Event()
    client = ScriptedClient(100, hold={10: later_done})
    stream = offset_stream(10)
    pages = fetch_pages(stream, client, {None: None}, None, concurrency=4)
    first = next(pages)
    assert ids([first]) == list(range(10))

    # release offset 10 only once offsets 20 and 30 were served (they complete first)
    def release():
        while True:
            with client.lock:
                if {20, 30} <= set(client.served):
                    break
        later_done.set()

    threading.Thread(target=release, daemon=True).start()
    rest = list(pages)
    assert ids(rest) == list(range(10, 100))
    assert sorted(client.served) == list(range(0, 100, 10))  # each page once


def test_server_capping_the_limit_is_followed():
    client = ScriptedClient(95, server_limit=10)
    pages = list(fetch_pages(offset_stream(50), client, {None: None}, None, concurrency=3))
    assert ids(pages) == list(range(95))
    assert sorted(client.served) == list(range(0, 95, 10))


def test_an_error_beyond_nothing_needed_is_ignored_and_a_needed_one_is_raised():
    boom = ApiError("GET /v1/buffers failed: HTTP 400", status=400, endpoint="GET /v1/buffers")
    client = ScriptedClient(50, fail={30: boom})
    seen = []
    with pytest.raises(ApiError) as err:
        for page in fetch_pages(offset_stream(10), client, {None: None}, None, concurrency=4):
            seen.append(page)
    assert err.value is boom
    assert ids(seen) == list(range(30))


def test_closing_early_stops_requesting():
    client = ScriptedClient(10_000)
    pages = fetch_pages(offset_stream(10), client, {None: None}, None, concurrency=4, prefetch=2)
    next(pages)
    next(pages)
    pages.close()
    with client.lock:
        served = len(client.served)
    assert served <= 2 + 4 + 2 + 1  # taken + the window (requests in flight + prefetched), never all 1000


def test_a_stream_with_fixed_params_plans_its_pages_from_count_too(sandbox):
    """Fixed request params go to a listing's /count as well (`window_params`), so such a stream
    plans its pages from /count like any other instead of speculating past the end."""
    stream = with_limit("orders", 40, params={"unused_filter": "x"})
    stats = FetchStats()
    with make_client(sandbox) as client:
        pages = list(fetch_pages(stream, client, {None: None}, None, concurrency=4, stats=stats))
    assert ids(pages) == [o["id"] for o in sandbox.store.orders]
    assert stats.count_hints == 1 and stats.wasted == 0


@pytest.mark.parametrize("rate, answer, expected", [
    (2.0, None, 5),   # nothing answered yet: sized for 2 s, as before
    (2.0, 0.3, 3),    # 2 requests/s at 0.3 s: 0.6 in flight on average, 3 at most
    (2.0, 0.01, 2),   # loopback: never fewer than 2
    (2.0, 2.5, 5),    # slow answers: at most through 2 s
    (20.0, 0.3, 8),   # the connection pool bounds it
    (None, 0.3, 1),   # pacing off: one at a time
])
def test_requests_in_flight_follow_the_pace_and_the_answer_time(rate, answer, expected):
    from sqquid_etl.client import ClientStats
    from sqquid_etl.fetch import default_concurrency
    from sqquid_etl.pacing import LeakyBucketPacer

    class Client:
        pacer = LeakyBucketPacer(rate=rate, burst=40)
        pool_size = 8
        stats = ClientStats(answer_seconds=answer)

    assert default_concurrency(Client()) == expected


@pytest.mark.parametrize("rate, answer, expected", [
    (2.0, 0.3, 2),    # one of many accounts at 0.3 s: no spare beyond the 1.2 the pace needs
    (2.0, None, 4),   # nothing answered yet: through 2 s
    (2.0, 0.75, 3),   # slower answers: more in flight still
    (2.0, 0.01, 2),   # never fewer than 2
])
def test_a_client_without_a_spare_request_in_flight(rate, answer, expected):
    from sqquid_etl.client import ClientStats
    from sqquid_etl.fetch import default_concurrency
    from sqquid_etl.pacing import LeakyBucketPacer

    class Client:
        pacer = LeakyBucketPacer(rate=rate, burst=40)
        pool_size = 8
        spare_in_flight = 0
        stats = ClientStats(answer_seconds=answer)

    assert default_concurrency(Client()) == expected


def test_one_of_many_accounts_is_sized_by_its_fastest_answer():
    """At the start of a run of many accounts, every account logs in and counts at once: the
    answers' average holds the process's own queue (0.6 s), the fastest the API's time (0.3 s).
    Sized by the average, a run keeps 3 in flight; by the fastest, 2. A lone client keeps the
    average."""
    from sqquid_etl.client import ClientStats
    from sqquid_etl.fetch import default_concurrency
    from sqquid_etl.pacing import LeakyBucketPacer

    class Client:
        pacer = LeakyBucketPacer(rate=2.0, burst=40)
        pool_size = 8
        spare_in_flight = 0
        one_of_many = True
        stats = ClientStats(answer_seconds=0.6, fastest_answer_seconds=0.3)

    assert default_concurrency(Client()) == 2
    Client.one_of_many = False
    assert default_concurrency(Client()) == 3  # (the average, without a spare)
    Client.spare_in_flight = 1
    assert default_concurrency(Client()) == 4


def test_the_client_keeps_its_fastest_answer():
    from sqquid_etl.client import SqquidClient
    from sqquid_etl.credentials import Credentials

    client = SqquidClient(Credentials(api_key="k"), "http://127.0.0.1:9")
    for seconds in (0.9, 0.3, 0.5):
        client._answered(seconds)
    assert client.stats.fastest_answer_seconds == 0.3
    assert 0.3 < client.stats.answer_seconds < 0.9
