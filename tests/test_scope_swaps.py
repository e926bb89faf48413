"""Two old shipment items that swap scopes (one from A to B, one from B to A, close in time, nothing
else changed): every per-scope count stays the same, so the count scan of a default run cannot see
them (the cause of the moves `bench/freshness.py --orders 1000000` misses); `--verify-keys`, which
compares the keys themselves, does."""

from __future__ import annotations

from sqquid_etl import extract
from tests.expected import assert_tables_equal, expected_tables
from tests.support import make_client
from tests.test_freshness import _query, live_tables


def test_a_scope_swap_offsets_every_count_and_needs_the_key_check(make_sandbox, tmp_path):
    sandbox = make_sandbox(orders=3000, products=20)
    db = tmp_path / "f.duckdb"
    assert extract(["shipment_items"], duckdb=db, client=make_client(sandbox)).ok
    book = sandbox.store.book
    with sandbox.store.lock:
        keys = sorted(book.items.keys())[1000:3000]  # old items, behind the re-read window
        shipped = next(k for k in keys if book.scope(k) == 1)
        cancelled = next(k for k in keys if k > shipped and book.scope(k) == 2)
        book.set_scope(shipped, 2)
        book.set_scope(cancelled, 1)
        sandbox.store.touch("shipmentitems")
    result = extract(["shipment_items"], duckdb=db, client=make_client(sandbox))
    assert result.ok
    scopes = _query(db, "SELECT scope FROM shipment_items WHERE id IN (?, ?) ORDER BY id", [shipped + 1, cancelled + 1])
    assert scopes == [("shipped",), ("cancelled",)]  # unseen by counts: both still in their old scopes
    result = extract(["shipment_items"], duckdb=db, client=make_client(sandbox), verify_keys=True)
    assert result.ok
    assert_tables_equal(live_tables(db, ["shipment_items"]), expected_tables(sandbox.store), ["shipment_items"])


def test_the_key_check_reaches_an_item_older_than_every_record_of_the_scope_it_moved_to(make_sandbox, tmp_path):
    """No start date: a scope's ranges begin at the oldest stored record of the whole stream, not of
    that scope (the oldest item, moved into another scope, was marked gone and never read again)."""
    sandbox = make_sandbox(orders=3000, products=20)
    db = tmp_path / "f.duckdb"
    assert extract(["shipment_items"], duckdb=db, client=make_client(sandbox)).ok
    book = sandbox.store.book
    with sandbox.store.lock:
        keys = sorted(book.items.keys())
        oldest = keys[0]
        other = next(k for k in keys if book.scope(k) != book.scope(oldest))
        was = book.scope(oldest)
        book.set_scope(oldest, book.scope(other))
        book.set_scope(other, was)
        sandbox.store.touch("shipmentitems")
    result = extract(["shipment_items"], duckdb=db, client=make_client(sandbox), verify_keys=True)
    assert result.ok
    assert_tables_equal(live_tables(db, ["shipment_items"]), expected_tables(sandbox.store), ["shipment_items"])
