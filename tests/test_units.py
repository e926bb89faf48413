"""Unit tests of pure logic: pacing, pagination, state, definitions, records -> Arrow."""

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


def test_wrong_type_is_a_clear_schema_error():
    defs = load_definitions()
    with pytest.raises(SchemaError, match=r"field 'qty' of record id=2 has value 'lots'"):
        page_to_tables(defs["orders"], [{"id": 1, "created_at": "2017-01-01T00:00:00Z", "order_items": [{"id": 2, "qty": "lots"}]}])
    with pytest.raises(SchemaError, match="created_at"):
        page_to_tables(defs["orders"], [{"id": 1, "created_at": "not a date"}])
    with pytest.raises(SchemaError, match="key column 'id' is null"):
        page_to_tables(defs["orders"], [{"id": None, "created_at": "2017-01-01T00:00:00Z"}])


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
