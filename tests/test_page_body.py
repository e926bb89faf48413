"""Pages decoded by their consumer (page_body.py, `fetch_pages(undecoded=True)`): one of many
accounts decodes each page in its own thread, right before converting it; the fetcher plans the
next requests from each page once decoded. Pagination stays complete and exact."""

from __future__ import annotations

import threading

import pytest

from sqquid_etl.cpu_gate import CpuGate
from sqquid_etl.fetch import FetchStats, fetch_pages
from sqquid_etl.fetch_concurrent import ConcurrentFetch
from sqquid_etl.page_body import PageBody, decoded
from sqquid_etl.sandbox import FaultConfig
from tests.support import make_client
from tests.test_fetch import ScriptedClient, ScriptedPageClient, ids, offset_stream, with_limit


def consumed(pages) -> list:
    """What a consumer does: each page decoded as it comes, in order."""
    out = []
    for partition, page in pages:
        assert isinstance(page, PageBody)
        out.append((partition, decoded(page)))
    return out


@pytest.mark.parametrize("limit", [40, 250])
def test_page_number_pages_decoded_by_the_consumer_are_complete_without_waste(sandbox, limit):
    stream = with_limit("orders", limit)
    stats = FetchStats()
    with make_client(sandbox) as client:
        pages = consumed(fetch_pages(stream, client, {None: None}, None, concurrency=2, stats=stats, undecoded=True))
    expected = [o["id"] for o in sandbox.store.orders]
    assert ids(pages) == expected
    assert len(pages) == len(expected) // limit + 1
    assert stats.wasted == 0 and stats.requests == stats.pages == len(pages)
    assert stats.count_hints == (1 if len(pages) > 1 else 0)  # the count asked once page 0 was decoded
    assert sandbox.stats.by_route["GET /v1/orders"] == len(pages)


def test_offset_lists_and_partitions_decoded_by_the_consumer(sandbox):
    with make_client(sandbox) as client:
        buffers = consumed(fetch_pages(offset_stream(7), client, {None: None}, None, concurrency=3, undecoded=True))
        stream = with_limit("shipment_items", 30)
        windows = {scope: None for scope in stream.partition.values}
        before = [(part, ids([(part, p)])) for part, p in fetch_pages(stream, client, windows, None, concurrency=1)]
        after = [(part, ids([(part, p)])) for part, p in
                 consumed(fetch_pages(stream, client, windows, None, concurrency=3, undecoded=True))]
    assert ids(buffers) == [b["id"] for b in sandbox.store.buffers]
    assert after == before


def test_a_server_capping_the_limit_is_followed_when_the_consumer_decodes():
    client = ScriptedClient(95, server_limit=10)
    pages = consumed(fetch_pages(offset_stream(50), client, {None: None}, None, concurrency=3, undecoded=True))
    assert ids(pages) == list(range(95))
    assert sorted(client.served) == list(range(0, 95, 10))  # each offset once, by the server's step


def test_speculation_without_a_count_ends_at_the_first_short_page_decoded():
    stream = with_limit("orders", 10, count=None)
    client = ScriptedPageClient(25, hold_page=3, wait_for=set())
    stats = FetchStats()
    pages = consumed(fetch_pages(stream, client, {None: None}, None, concurrency=4, stats=stats, undecoded=True))
    assert ids(pages) == list(range(25))
    assert len(pages) == 3
    assert stats.requests == 3 + stats.wasted and stats.wasted <= ConcurrentFetch.SPECULATE_MAX


def test_a_consumer_that_does_not_decode_still_gets_every_page(sandbox):
    """The listing is planned from decoded pages: one the consumer did not decode is decoded
    before the next page is given (else the fetcher would never know where the listing ends)."""
    stream = with_limit("orders", 40)
    with make_client(sandbox) as client:
        bodies = list(fetch_pages(stream, client, {None: None}, None, concurrency=2, undecoded=True))
    assert all(body.decoded for _, body in bodies)
    assert ids([(p, body.page()) for p, body in bodies]) == [o["id"] for o in sandbox.store.orders]


def test_a_body_cut_short_is_asked_again_by_the_consumer_outside_its_cpu_slot(make_sandbox):
    sandbox = make_sandbox(faults=FaultConfig(truncate_every=3))
    gate = CpuGate(1)
    free_while_asked: list[int] = []
    with make_client(sandbox, cpu_gate=gate) as client:
        asked = client.get_body

        def get_body(*args, **kwargs):
            if threading.current_thread() is threading.main_thread():
                free_while_asked.append(gate._free)
            return asked(*args, **kwargs)
        client.get_body = get_body
        pages = []
        for partition, page in fetch_pages(with_limit("orders", 50), client, {None: None}, None, concurrency=2,
                                           undecoded=True):
            with gate.held(first=True):
                pages.append((partition, decoded(page)))
        assert client.stats.retries >= 1
    assert ids(pages) == [o["id"] for o in sandbox.store.orders]
    assert free_while_asked and all(free == 1 for free in free_while_asked)  # the slot given back meanwhile
    assert gate._free == 1


def test_one_of_many_accounts_decodes_its_pages_in_its_own_thread(sandbox, monkeypatch):
    """read_tables: a client of one of many accounts (`one_of_many`, set by accounts_run) decodes
    each page in the consumer's thread; a client alone lets the fetch threads decode them, whatever
    its spare requests in flight (the flag is said, not derived from them)."""
    from sqquid_etl import decode
    from sqquid_etl.read import read_tables

    threads: list[str] = []
    real = decode.PageDecoder.decode

    def noted(self, body):
        threads.append(threading.current_thread().name)
        return real(self, body)
    monkeypatch.setattr(decode.PageDecoder, "decode", noted)
    stream = with_limit("orders", 40)
    consumer = threading.current_thread().name
    for many, spare in ((True, 0), (False, 0), (False, 1)):
        threads.clear()
        with make_client(sandbox, rate=1000.0, burst=1000, spare_in_flight=spare, one_of_many=many) as client:
            rows = sum(len(t["orders"]) for _, t in read_tables(stream, client, {None: None}))
        assert rows == len(sandbox.store.orders)
        assert threads and all((name == consumer) == many for name in threads), (many, spare, threads)


def test_the_slot_released_for_a_block_is_taken_again_after_it():
    gate = CpuGate(1)
    other_inside = threading.Event()

    def other():
        with gate.held():
            other_inside.set()

    with gate.held():
        thread = threading.Thread(target=other)
        with gate.released():
            thread.start()
            assert other_inside.wait(5)  # the slot was free meanwhile
            thread.join(5)
        assert gate._free == 0 and gate._inside.held  # this thread's again
    assert gate._free == 1
    with gate.released():  # a thread holding no slot: nothing to give back
        assert gate._free == 1
