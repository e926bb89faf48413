"""Bad input fuzzing: generated frames never reach the API as an invalid payload and never end in
a traceback; malformed API records are handled per the schema."""

from __future__ import annotations

import json
import threading

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqquid_etl.client import ClientStats
from sqquid_etl.decode import PageDecoder
from sqquid_etl.definitions import load_definitions
from sqquid_etl.errors import InputError, SchemaError
from sqquid_etl.records import page_tables, page_to_tables
from sqquid_etl.retry import RetryBudget
from sqquid_etl.reverse import load_inventory

INT32_MAX = 2**31 - 1


class RecordingClient:
    """Stands in for SqquidClient: records every payload; the API's own rules are asserted on it."""

    base_url = "http://127.0.0.1:1"

    def __init__(self):
        self.stats = ClientStats()
        self.payloads = []

    def patch(self, path, body):
        self.stats.requests += 1
        self.payloads.append((path, body))
        return "OK"

    def get(self, path, params=None):
        self.stats.requests += 1
        if path == "/v1/products":  # a full update reads the account's skus first: none here
            return {"Products": []}
        return {"total": 0, "offset": 0, "limit": 1000, "results": []}

    def get_body(self, path, params=None, budget=None):
        return json.dumps(self.get(path, params)).encode()

    def retry_budget(self, endpoint):
        return RetryBudget(endpoint, 1, 1, lambda *args: None)


def assert_valid_payload(payload):
    assert isinstance(payload, list) and payload
    seen = set()
    for entry in payload:
        assert isinstance(entry["sku"], str) and entry["sku"].strip() == entry["sku"] != ""
        assert entry["inventory"], entry
        for record in entry["inventory"]:
            qty = record["qty_on_hand"]
            assert type(qty) is int and -INT32_MAX <= qty <= INT32_MAX  # oversold stock is negative
            key = (entry["sku"], record["location_external_id"], record["bin"])
            assert all(isinstance(k, str) and k for k in key)
            assert key not in seen
            seen.add(key)


cell = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.integers(min_value=-5, max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(["", " ", "007", "3.0", "3.5", "1e3", "-1", "日本", "a/b c", "NaN", "None"]),
)
columns = st.lists(st.sampled_from(["sku", "qty_on_hand", "location_external_id", "bin", "extra"]), min_size=1, max_size=5, unique=True)


@st.composite
def frames(draw):
    names = draw(columns)
    rows = draw(st.integers(min_value=0, max_value=8))
    return pd.DataFrame({name: pd.Series([draw(cell) for _ in range(rows)], dtype=object) for name in names})


@st.composite
def mostly_valid_frames(draw):
    """Frames that are valid but for what hypothesis chooses to break, so both outcomes are reached."""
    rows = draw(st.integers(min_value=1, max_value=8))
    skus = draw(st.lists(st.sampled_from(["A", "007", "日本 1/2", "x y", "B-2"]), min_size=rows, max_size=rows))
    qty = draw(st.lists(st.one_of(st.integers(min_value=0, max_value=INT32_MAX), st.sampled_from(["3", "3.0", 7.0])), min_size=rows, max_size=rows))
    frame = {"sku": skus, "qty_on_hand": qty}
    if draw(st.booleans()):
        frame["location_external_id"] = draw(st.lists(st.sampled_from([None, "", "50", "default"]), min_size=rows, max_size=rows))
    if draw(st.booleans()):
        frame["bin"] = draw(st.lists(st.sampled_from([None, "front", "back"]), min_size=rows, max_size=rows))
    return pd.DataFrame(frame)


def load_and_check(frame, mode) -> str:
    """Load a frame; whatever it holds, nothing invalid reaches the API. Says which outcome."""
    client = RecordingClient()
    try:
        load_inventory(frame, mode=mode, client=client, confirm=True)
    except InputError as exc:
        assert client.payloads == []  # nothing sent from invalid input
        assert "row" in str(exc) or "column" in str(exc) or "empty" in str(exc)
        return "rejected"
    for path, body in client.payloads:
        assert path == "/v1/inventory/partial"  # a full update too: explicit partial updates by default
        assert_valid_payload(body)
    assert client.payloads
    return "sent"


def test_generated_frames_never_send_an_invalid_payload_and_reach_both_outcomes():
    outcomes = []  # this test's own: it depends on no other test, nor on their order

    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(frame=st.one_of(frames(), mostly_valid_frames()), mode=st.sampled_from(["partial", "full"]))
    def fuzz(frame, mode):
        outcomes.append(load_and_check(frame, mode))

    fuzz()
    # the generator reaches both branches, so the checks of each were exercised
    assert outcomes.count("rejected") > 0 and outcomes.count("sent") > 0


record_values = st.one_of(st.none(), st.integers(), st.text(max_size=6), st.floats(), st.booleans(), st.lists(st.integers(), max_size=2),
                          st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(record=st.dictionaries(st.sampled_from(["id", "external_id", "created_at", "total", "order_items", "unknown"]), record_values))
def test_malformed_api_records_are_stored_typed_or_rejected(record):
    stream = load_definitions()["orders"]
    tables = page_to_tables(stream, [record])
    assert tables.records == 1
    if tables.rejected:
        assert tables["orders"].num_rows == 0 and tables["order_items"].num_rows == 0
        assert json.loads(tables.rejected[0].record) == json.loads(json.dumps(record, sort_keys=True, default=str))
        return
    row = tables["orders"].to_pylist()[0]
    assert isinstance(row["id"], int)
    assert "unknown" not in row  # unknown fields are dropped (documented in docs/reliability.md)


def test_missing_keys_become_null_and_unknown_fields_are_dropped():
    stream = load_definitions()["orders"]
    tables = page_to_tables(stream, [{"id": 5, "created_at": "2024-01-01T00:00:00.000Z", "brand_new_field": {"x": 1}}])
    row = tables["orders"].to_pylist()[0]
    assert row["id"] == 5 and row["total"] is None and "brand_new_field" not in row
    assert tables["order_items"].num_rows == 0


item_values = st.one_of(st.none(), st.integers(), st.text(max_size=4), st.booleans(), st.floats())


def outcome(tables):
    """What a page's conversion gave: its tables' rows, the values coerced, the records rejected."""
    rejected = [(r.table, r.key, r.field, r.reason, r.record) for r in tables.rejected]
    return {k: t.to_pylist() for k, t in tables.items()}, tables.records, tables.coerced, rejected


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    records=st.lists(
        st.fixed_dictionaries(
            {"id": st.integers(min_value=1, max_value=10**6), "created_at": st.just("2024-01-01T00:00:00.000Z")},
            optional={
                "external_id": record_values,
                "total": st.one_of(st.just("1.50"), record_values),
                "order_items": st.one_of(
                    st.lists(st.dictionaries(st.sampled_from(["id", "sku", "qty", "store_id", "price"]), item_values), max_size=3),
                    record_values,
                ),
            },
        ),
        min_size=1,
        max_size=3,
    )
)
def test_pages_read_by_arrow_from_the_body_equal_pages_read_from_dicts(records):
    """The fetch threads read bodies straight into Arrow (`PageDecoder.decode`); whatever the
    body holds, the tables, values coerced and records rejected are those of the reading of dicts."""
    stream = load_definitions()["orders"]
    body = json.dumps({"Orders": records}).encode()
    expected = page_to_tables(stream, records)
    actual = page_tables(stream, PageDecoder(stream).decode(body))
    assert outcome(actual) == outcome(expected)


def test_text_fields_sent_as_numbers_are_learned_and_read_by_arrow():
    stream = load_definitions()["orders"]
    decoder = PageDecoder(stream)
    page = {"Orders": [{"id": 1, "created_at": "2024-01-01T00:00:00.000Z", "order_items": [{"id": 7, "store_id": 3}]}]}
    decoded = decoder.decode(json.dumps(page).encode())
    assert decoded.read_by_arrow  # learned from the page itself, which Arrow then read
    assert page_tables(stream, decoded)["order_items"].to_pylist()[0]["store_id"] == "3"
    page["Orders"][0]["order_items"][0]["store_id"] = 3.5  # not an integer: Arrow reads the body without it,
    decoded = decoder.decode(json.dumps(page).encode())  # and it is read from the page's dicts, as text
    assert decoded.read_by_arrow and decoded.plan.by_python == {("order_items", "store_id")}
    assert page_tables(stream, decoded)["order_items"].to_pylist()[0]["store_id"] == "3.5"


ORDER = {"id": 1, "created_at": "2024-01-01T00:00:00.000Z", "order_items": [{"id": 7, "store_id": "3"}]}


def orders_body(**fields) -> bytes:
    return json.dumps({"Orders": [{**ORDER, **fields}]}).encode()


def test_a_page_keeps_the_plan_it_was_read_with():
    stream = load_definitions()["orders"]
    decoder = PageDecoder(stream)
    first = decoder.decode(orders_body(receipt_id="r-1"))
    second = decoder.decode(orders_body(receipt_id=42))  # learned: receipt_id is sent as an integer
    assert first.read_by_arrow and second.read_by_arrow
    assert first.plan.python == frozenset() and second.plan.python == {(None, "receipt_id")}
    assert decoder.plan is second.plan  # the next pages are read with what was learned ...
    # ... and a page read before converts with its own plan, whenever the consumer gets to it
    assert page_tables(stream, first)["orders"].column("receipt_id").to_pylist() == ["r-1"]
    assert page_tables(stream, second)["orders"].column("receipt_id").to_pylist() == ["42"]
    third = decoder.decode(orders_body(receipt_id="r-3"))  # text again: read from dicts
    assert page_tables(stream, third)["orders"].column("receipt_id").to_pylist() == ["r-3"]


def test_what_fetch_threads_learn_at_once_is_all_kept():
    stream = load_definitions()["orders"]
    decoder = PageDecoder(stream)
    fields = ["receipt_id", "source", "shipping_phone", "billing_phone", "customer_id", "customer_email"]
    barrier = threading.Barrier(len(fields))

    def decode(field):
        barrier.wait()
        for _ in range(20):
            decoder.decode(orders_body(**{field: 5}))

    threads = [threading.Thread(target=decode, args=(field,)) for field in fields]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert decoder.plan.integers == {(None, field) for field in fields}  # no thread's learning was lost
