"""The sandbox's pages made fast (a page of generated records in one call, order lines
remembered, timestamps looked up) serve the same bytes as record by record."""

from __future__ import annotations

import hashlib
import random

from sqquid_etl.sandbox import timeutil, views
from sqquid_etl.sandbox.data import Store
from sqquid_etl.sandbox.order_records import LINES_KEPT


def pages_digest(store: Store, route: str = "/v1/orders", limit: int = 250, **params) -> str:
    """Orders: every page up to the first short one; other routes: pages 1-200."""
    h = hashlib.sha256()
    for page in range(1, 201):
        body = views.v1_list(store, route, {"limit": str(limit), "page": str(page), **params})
        h.update(body)
        if route == "/v1/orders" and body.count(b'"order_items"') < limit:
            break
    return h.hexdigest()[:16]


# Every page of these stores, hashed, as the sandbox served them before pages were made in one
# call (session 8's main, 915aeae): the bodies are the same byte for byte. A deliberate change
# of the generated data changes these; print the new ones with ``pages_digest``.
BEFORE = {
    (5, 3000, 50, 0): ("e04a18535487f20b", "03739005e9273a12", "f51e50639bea7e20", "a411fd65c81b4448"),
    (3, 700, 150, 256 << 20): ("972152d19c39dc0e", "43cbc2aafd0ec3e3", "2a7cefd7ce76b5c2", "e5b4e4f6d749ba88"),
    (7, 900, 0, 0): ("330573cc0f01e95a", "9bd5c1d8a510abab", "fa2cc903f171f7ce", "7fac51aa062b01f5"),
}


def test_pages_are_the_bytes_served_before():
    for (seed, orders, products, cache), expected in BEFORE.items():
        store = Store(seed=seed, orders=orders, products=products, cache_bytes=cache)
        got = [pages_digest(store), pages_digest(store, created_at_min="2025-03-01")]
        store.apply_changes({"edit_orders": 20, "delete_orders": 5}, 3)
        store.mutate({"add_orders": 7})
        got += [pages_digest(store), pages_digest(store, route="/v1/shipments", limit=100)]
        assert tuple(got) == expected, (seed, orders, products, cache)


def one_by_one(table, keys) -> bytes:
    return b",".join(table.json_bytes(k) for k in keys)


def test_a_page_made_in_one_call_equals_record_by_record():
    fast = Store(seed=11, orders=1200, products=40, cache_bytes=0)
    slow = Store(seed=11, orders=1200, products=40, cache_bytes=0)
    made = []
    table = fast.book.orders
    inner = table._make_page
    table._make_page = lambda keys: made.append(len(keys)) or inner(keys)
    for start in range(0, 1200, 250):
        keys = range(start, min(start + 250, 1200))
        assert table.page(keys) == one_by_one(slow.book.orders, keys)
    assert made == [250, 250, 250, 250, 200]  # every page in one call: nothing cached, nothing changed


def test_a_page_with_a_changed_added_or_cached_record_goes_record_by_record():
    store = Store(seed=12, orders=600, products=30, cache_bytes=0)
    reference = Store(seed=12, orders=600, products=30, cache_bytes=0)
    for s in (store, reference):
        s.apply_changes({"edit_orders": 30}, 1)
        s.mutate({"add_orders": 3})
    table = store.book.orders
    assert table.changed, "the edits changed generated orders"
    calls = []
    inner = table._make_page
    table._make_page = lambda keys: calls.append(list(keys)) or inner(keys)
    keys = table.keys()
    for start in range(0, len(keys), 100):
        page = keys[start:start + 100]
        assert table.page(page) == one_by_one(reference.book.orders, page)
    changed = set(table.changed)
    assert calls and all(changed.isdisjoint(c) and max(c) < table.base for c in calls)
    assert len(calls) < len(range(0, len(keys), 100))  # the pages with an edited or added order did not

    cached = Store(seed=12, orders=600, products=30, cache_bytes=1 << 20)
    cached.book.orders._make_page = lambda keys: calls.append("cached") or b""
    assert cached.book.orders.page(range(0, 250)) == one_by_one(reference.book.orders, range(0, 250))
    assert "cached" not in calls  # a cache with room keeps what it serves: record by record


def test_order_lines_remembered_give_the_same_orders_and_stay_bounded():
    store = Store(seed=13, orders=4000, products=3000, cache_bytes=0)
    book = store.book
    products = book.catalog.layout
    assert products.variant_count * 12 > LINES_KEPT  # more distinct lines than slots: some share one
    for i in range(0, 4000, 7):
        first = book.layout.first_item[i]
        args = (i + 1, timeutil.stamp(book.layout.created[i]), book._order_digest(i), first + 1,
                book.layout.first_item[i + 1] - first, products.variant, products.variant_count)
        assert book.maker.json(*args, book._lines) == book.maker.json(*args)
    kept = [entry for entry in book._lines if entry[0] >= 0]
    assert len(book._lines) == LINES_KEPT and len(kept) > LINES_KEPT // 2  # slots taken, others made again


def test_stamp_is_the_formatted_time():
    r = random.Random(4)
    for seconds in [0, -1, -86401, 86399, timeutil.START_EPOCH, timeutil.END_EPOCH, 4102444799] + \
            [r.randrange(-10**9, 4 * 10**9) for _ in range(20000)]:
        assert timeutil.stamp(seconds) == timeutil.fmt(seconds)
