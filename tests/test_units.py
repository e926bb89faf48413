"""Unit tests of pure logic: pacing, pagination, state, definitions, records -> Arrow (coercion, quarantine)."""

import json

from datetime import timedelta, timezone, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from sqquid_etl.client import Credentials, SqquidClient, check_base_url
from sqquid_etl.decode import Page
from sqquid_etl.definitions import load_definitions, parse_definition, select_streams
from sqquid_etl.errors import ConfigError, SchemaError, StateError
from sqquid_etl.pacing import LeakyBucketPacer
from sqquid_etl.paginate import OffsetPaginator, PageNumberPaginator
from sqquid_etl.records import page_to_tables
from tests.support import FakeClock
from sqquid_etl.state import StreamState, format_param, parse_duration, parse_timestamp, window_start


def test_pacer_allows_burst_then_paces_at_rate():
    clock = FakeClock(0.0)
    pacer = LeakyBucketPacer(rate=2.0, burst=40, margin=2, clock=clock, sleep=clock.sleep)
    for _ in range(38):
        pacer.acquire()
    assert clock.now == 0.0  # the burst (minus margin) goes out at once
    for _ in range(20):
        pacer.acquire()
    assert clock.now == pytest.approx(10.0)  # then 2 per second


def test_pacer_penalize_after_429_delays_next_request():
    clock = FakeClock(0.0)
    pacer = LeakyBucketPacer(rate=2.0, burst=10, margin=0, clock=clock, sleep=clock.sleep)
    pacer.acquire()
    pacer.penalize(3.0)
    pacer.acquire()
    assert clock.now == pytest.approx(3.0, abs=0.01)


def test_pacer_disabled():
    clock = FakeClock(0.0)
    pacer = LeakyBucketPacer(rate=None, clock=clock, sleep=clock.sleep)
    for _ in range(1000):
        pacer.acquire()
    assert clock.now == 0


def facts(n: int, total: int | None = None, limit: int | None = None) -> Page:
    return Page(None, [{}] * n, None, b"", total, limit)


def test_page_number_paginator_stops_on_short_page():
    p = PageNumberPaginator(250)
    assert p.params_for(0) == {"page": 1, "limit": 250}
    assert p.params_for(1) == {"page": 2, "limit": 250}
    assert p.is_last(0, facts(250)) is False
    assert p.is_last(1, facts(10)) is True
    assert p.pages_known(facts(250)) is None
    assert p.pages_from_count(500) == 3  # two full pages, then an empty one


def test_offset_paginator_uses_total():
    p = OffsetPaginator(200)
    assert p.pages_known(facts(200, total=400)) == 2
    assert p.params_for(1) == {"offset": 200, "limit": 200}
    assert p.is_last(0, facts(200, total=400)) is False
    assert p.is_last(1, facts(200, total=400)) is True
    assert p.is_last(2, facts(0, total=999)) is True


def test_offset_paginator_follows_the_servers_cap():
    p = OffsetPaginator(200)
    assert p.pages_known(facts(50, total=120, limit=50)) == 3  # the envelope's limit is the step
    assert p.params_for(2) == {"offset": 100, "limit": 200}
    capped = OffsetPaginator(200)
    assert capped.pages_known(facts(30, total=100)) == 4  # a short first page that is not the last: a cap
    assert capped.params_for(3) == {"offset": 90, "limit": 200}
    assert capped.is_last(2, facts(30, total=100)) is False and capped.is_last(3, facts(10, total=100)) is True


def test_http_refused_for_remote_host_but_allowed_on_loopback():
    with pytest.raises(ConfigError, match="plain http is refused"):
        check_base_url("http://api.sqquid.com")
    assert check_base_url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"
    assert check_base_url("http://localhost:1") == "http://localhost:1"
    assert check_base_url("https://api.sqquid.com") == "https://api.sqquid.com"


def test_credentials_never_in_repr():
    creds = Credentials(api_key="super-secret-key-1")
    client = SqquidClient(creds, "https://api.sqquid.com")
    assert "super-secret-key-1" not in repr(creds)
    assert "super-secret-key-1" not in repr(client)
    creds2 = Credentials(username="me@x.com", password="hunter2-password")
    assert "hunter2-password" not in repr(creds2)


def test_credentials_missing_is_config_error():
    with pytest.raises(ConfigError, match="no credentials"):
        Credentials.from_env(env={})
    assert Credentials.from_env(env={"SQQUID_API_KEY": "k-env-1"}).api_key == "k-env-1"


def test_state_window_and_formats():
    start = parse_timestamp("2024-01-01", "x")
    assert window_start(None, timedelta(seconds=1), start) == start
    assert window_start(None, timedelta(seconds=1), None) is None
    w = window_start("2025-05-05T10:00:00.500000Z", timedelta(seconds=1), start)
    assert format_param(w) == "2025-05-05T09:59:59+00:00"
    assert window_start("2023-01-01T00:00:00Z", timedelta(days=1), start) == start
    assert parse_duration("15m") == timedelta(minutes=15)
    with pytest.raises(ConfigError, match="not a duration"):
        parse_duration("soon")
    with pytest.raises(ConfigError, match="not an ISO 8601"):
        parse_timestamp("yesterday", "--start-date")


def test_corrupt_state_is_an_error_not_a_reset():
    with pytest.raises(StateError, match="corrupt state"):
        StreamState.from_json("{not json", "state.json")
    with pytest.raises(StateError, match="corrupt state"):
        StreamState.from_json('{"cursors": {"_": "garbage"}}', "state.json")
    s = StreamState(cursors={"_": "2025-01-01T00:00:00.000000Z"})
    assert StreamState.from_json(s.to_json(), "x") == s


def test_definitions_load_in_dependency_order():
    defs = load_definitions()
    names = list(defs)
    assert set(names) == {"orders", "products", "shipments", "shipment_items", "inventory", "buffers", "locations"}
    assert names.index("products") < names.index("inventory")
    assert defs["orders"].table_names == ["orders", "order_items"]
    assert defs["shipments"].tables[1].primary_key == ("shipment_id", "order_item_id")
    with pytest.raises(ConfigError, match="unknown stream"):
        select_streams(defs, ["orders", "nope"])


def test_bad_definition_names_the_problem():
    with pytest.raises(ConfigError, match="paginator type"):
        parse_definition({"name": "x", "request": {"path": "/x"}, "paginator": {"type": "cursor", "limit": 1}, "table": "x",
                          "primary_key": ["id"], "fields": {"id": "integer"}})
    with pytest.raises(ConfigError, match="has type 'int'"):
        parse_definition({"name": "x", "request": {"path": "/x"}, "paginator": {"type": "offset", "limit": 1}, "table": "x",
                          "primary_key": ["id"], "fields": {"id": "int"}})


def test_page_to_tables_types_and_children():
    defs = load_definitions()
    records = [{
        "id": 1, "sku": "A 1/2", "name": "Café 日本", "price": "40.0000", "price_special": None, "weight": 1.5,
        "created_at": "2017-08-30T17:20:40.000Z", "updated_at": "2017-08-30T17:20:41.000Z",
        "Attributes": [{"label": "Brand", "value": "Acme"}], "Categories": ["Team"], "unknown_field": 1,
        "Child_Products": [{"id": 2, "sku": "c", "qty": 3, "price": "1.5000", "Attributes": [{"label": "Size", "value": 9}]}],
    }, {"id": 3, "sku": "B", "created_at": "2017-08-30T17:20:40.000Z", "updated_at": "2017-08-30T17:20:40.000Z", "Child_Products": []}]
    tables = page_to_tables(defs["products"], records)
    products, variants = tables["products"], tables["product_variants"]
    assert products.num_rows == 2 and variants.num_rows == 1
    assert products.schema.field("price").type == pa.decimal128(18, 4)
    assert products.column("price").to_pylist()[0] == Decimal("40.0000")
    assert products.column("weight").to_pylist()[0] == Decimal("1.5")
    assert products.column("created_at").to_pylist()[0] == datetime(2017, 8, 30, 17, 20, 40, tzinfo=timezone.utc)
    assert products.column("attributes").to_pylist()[0] == [{"label": "Brand", "value": "Acme"}]
    assert variants.column("parent_id").to_pylist() == [1]
    assert variants.column("attributes").to_pylist()[0] == [{"label": "Size", "value": "9"}]


def test_page_to_tables_partition_and_defaults():
    defs = load_definitions()
    inv = page_to_tables(defs["inventory"], [{"sku": "x", "inventory": [{"qty_on_hand": 4}, {"qty_on_hand": 1, "location_external_id": "50", "bin": "front"}]}])
    assert inv["inventory"].to_pylist() == [
        {"sku": "x", "location_external_id": "default", "bin": "default", "qty_on_hand": 4},
        {"sku": "x", "location_external_id": "50", "bin": "front", "qty_on_hand": 1},
    ]
    items = page_to_tables(defs["shipment_items"], [{"id": 9, "external_order_id": 50, "created_at": "2019-10-21T02:20:26.000Z"}], "shipped")
    row = items["shipment_items"].to_pylist()[0]
    assert row["scope"] == "shipped" and row["external_order_id"] == "50"


def test_a_value_that_cannot_be_stored_rejects_its_record_with_its_children_and_says_why():
    defs = load_definitions()
    good = {"id": 3, "created_at": "2017-01-01T00:00:00Z", "order_items": [{"id": 4, "qty": 1}]}
    bad = {"id": 1, "created_at": "2017-01-01T00:00:00Z", "order_items": [{"id": 2, "qty": "lots"}, {"id": 5, "qty": 1}]}
    tables = page_to_tables(defs["orders"], [bad, good])
    assert tables["orders"].column("id").to_pylist() == [3] and tables["order_items"].column("id").to_pylist() == [4]
    [rejected] = tables.rejected
    assert (rejected.table, rejected.key, rejected.field) == ("order_items", "1", "qty")
    assert rejected.reason == "'lots' is not a valid integer" and json.loads(rejected.record) == bad
    assert rejected.cursor == "2017-01-01T00:00:00.000000Z" and tables.records == 2
    cases = [
        ({"id": 1, "created_at": "not a date"}, "orders", "created_at", "'not a date' is not an ISO-8601 timestamp"),
        ({"id": None, "created_at": "2017-01-01T00:00:00Z"}, "orders", "id", "key column 'id' is null"),
        ({"id": "abc", "created_at": "2017-01-01T00:00:00Z"}, "orders", "id", "'abc' is not a valid integer"),
        ({"id": 1, "created_at": "2017-01-01T00:00:00Z", "order_items": [{"id": 2, "qty": 2.5}]}, "order_items", "qty",
         "2.5 is not an integer (a fraction would be lost)"),
        ({"id": 1, "created_at": "2017-01-01T00:00:00Z", "total": 24.12345}, "orders", "total",
         "24.12345 does not fit decimal128(18, 4) without loss (Rescaling Decimal value would cause data loss)"),
        ({"id": 1, "created_at": "2017-01-01T00:00:00Z", "order_items": "none"}, "order_items", "order_items",
         "text, expected a list of objects"),
        ({"id": True, "created_at": "2017-01-01T00:00:00.1234567Z"}, "orders", "id",
         "True is a boolean, not an integer; orders.created_at: '2017-01-01T00:00:00.1234567Z' is finer than a microsecond"),
    ]
    for record, table, field, reason in cases:
        [rejected] = page_to_tables(defs["orders"], [record]).rejected
        assert (rejected.table, rejected.field, rejected.reason) == (table, field, reason), record
    inventory = page_to_tables(defs["inventory"], [{"sku": "x", "inventory": [{"qty_on_hand": "4.5"}]}])
    assert inventory["inventory"].num_rows == 0 and inventory.rejected[0].key == "x"


@pytest.mark.parametrize("type_name, value, stored", [
    ("integer", "27", 27), ("integer", " 27 ", 27), ("integer", "+27", 27), ("integer", "27.0", 27), ("integer", "2.7e1", 27),
    ("integer", 27.0, 27), ("integer", "-9223372036854775808", -(2**63)),
    ("decimal", 24.99, "24.99"), ("decimal", 0.1, "0.1"), ("decimal", 3, "3"), ("decimal", " 24.99 ", "24.99"), ("decimal", "1E+2", "100"),
    ("number", "1.5", 1.5),
    ("boolean", "true", True), ("boolean", " FALSE", False), ("boolean", 1, True), ("boolean", 0, False),
    ("timestamp", "2024-01-02 03:04:05", "2024-01-02T03:04:05.000000Z"),
    ("timestamp", "2024-01-02T03:04:05", "2024-01-02T03:04:05.000000Z"),
    ("timestamp", "2024-01-02t03:04:05.5z", "2024-01-02T03:04:05.500000Z"),
    ("timestamp", "2024-01-02T03:04:05,25+02:00", "2024-01-02T01:04:05.250000Z"),
    ("timestamp", "2024-01-02T03:04:05-0130", "2024-01-02T04:34:05.000000Z"),
    ("timestamp", "2024-01-02T03+01", "2024-01-02T02:00:00.000000Z"),
    ("timestamp", "20240102T030405Z", "2024-01-02T03:04:05.000000Z"),
    ("timestamp", "2024-01-02", "2024-01-02T00:00:00.000000Z"),
    ("timestamp", "2024-W01-2", "2024-01-02T00:00:00.000000Z"),
    ("timestamp", "2024-01-02T03:04:05.123456000Z", "2024-01-02T03:04:05.123456Z"),
    ("string", 5, "5"), ("string", 2.5, "2.5"), ("string", True, "true"),
    ("string", ["https://t/1", "https://t/2"], '["https://t/1", "https://t/2"]'), ("string", {"b": 1, "a": "é"}, '{"a": "é", "b": 1}'),
    ("attributes", [{"label": "size", "value": 9}], [{"label": "size", "value": "9"}]),
])
def test_each_lossless_drift_is_coerced_exactly(type_name, value, stored):
    from sqquid_etl.coerce import coerce

    assert coerce(value, type_name) == stored


@pytest.mark.parametrize("type_name, value", [
    ("integer", "abc"), ("integer", "2.5"), ("integer", 2.5), ("integer", True), ("integer", "1_000"), ("integer", "9223372036854775808"),
    ("integer", float("nan")), ("integer", [1]), ("decimal", "$5"), ("decimal", "nan"), ("decimal", float("inf")), ("decimal", False),
    ("number", "x"), ("boolean", "yes"), ("boolean", 2), ("boolean", "1"), ("timestamp", "not a date"), ("timestamp", 1700000000),
    ("timestamp", "2024-13-01T00:00:00Z"), ("timestamp", "2024-01-01T00:00:00.0000001Z"), ("timestamp", "2024-01-01x00:00:00"),
    ("timestamp", "01/02/2024"), ("string_list", "a"), ("attributes", {"label": "a"}),
])
def test_each_lossy_drift_is_refused_with_a_reason(type_name, value):
    from sqquid_etl.coerce import Lossy, coerce

    with pytest.raises(Lossy, match=r"."):
        coerce(value, type_name)


def test_coerced_values_are_stored_exactly_and_counted():
    defs = load_definitions()
    record = {"id": " 27", "created_at": "2024-01-02 03:04:05", "total": 24.99, "tax": "0.10", "shipping_phone": 5551234,
              "order_items": [{"id": "7", "qty": 2.0, "price": 1, "store_id": 3}]}
    tables = page_to_tables(defs["orders"], [record])
    order = tables["orders"].to_pylist()[0]
    assert order["id"] == 27 and order["total"] == Decimal("24.99") and order["tax"] == Decimal("0.1")
    assert order["created_at"] == datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc) and order["shipping_phone"] == "5551234"
    item = tables["order_items"].to_pylist()[0]
    assert (item["id"], item["order_id"], item["qty"], item["price"], item["store_id"]) == (7, 27, 2, Decimal(1), "3")
    # id, created_at, total, shipping_phone; the item's id, order_id (from the coerced id), qty, price, store_id
    # (tax "0.10" is a decimal as the schema says: stored, not coerced)
    assert tables.coerced == 9 and not tables.rejected
    clean = page_to_tables(defs["orders"], [{"id": 1, "created_at": "2024-01-02T03:04:05Z", "total": "1.5"}])
    assert clean.coerced == 0 and clean["orders"].num_rows == 1


def test_latest_versions_keep_the_last_arrival_of_a_repeated_key():
    import duckdb

    from sqquid_etl.definitions import Column, TableSpec
    from sqquid_etl.destinations.buffer import SEQ
    from sqquid_etl.destinations.merge_sql import latest_versions_sql

    table = TableSpec(name="t", primary_key=("id",), columns=(Column("id", "integer", "id", nullable=False), Column("v", "string", "v")))
    conn = duckdb.connect()
    conn.execute(f"CREATE TABLE staged AS SELECT * FROM (VALUES (1, 'old', 0), (2, 'only', 1), (1, 'new', 2), (3, 'x', 3), (1, 'newest', 4)) t(id, v, {SEQ})")
    assert sorted(conn.execute(latest_versions_sql("staged", table, conn)).fetchall()) == [(1, "newest"), (2, "only"), (3, "x")]
    conn.execute(f"DELETE FROM staged WHERE v IN ('new', 'newest')")
    sql = latest_versions_sql("staged", table, conn)
    assert "NOT EXISTS" not in sql  # no key came twice: no join at all
    assert sorted(conn.execute(sql).fetchall()) == [(1, "old"), (2, "only"), (3, "x")]
