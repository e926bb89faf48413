"""Schema drift (issue #12 item 2): lossless drift is coerced and counted, a record holding a
value that cannot be stored without loss is quarantined in `_sqquid_rejected` (with its
children) and the run goes on; under --strict it fails the stream and nothing is stored.
Rows in = rows stored + rows quarantined, always."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqquid_etl import extract
from sqquid_etl.cli import main
from sqquid_etl.decode import PageDecoder
from sqquid_etl.definitions import load_definitions
from sqquid_etl.records import page_tables, page_to_tables
from tests.expected import assert_tables_equal, duckdb_tables, expected_tables, parquet_tables
from tests.support import API_KEY, make_client

QUARANTINED = (3, 4)  # order keys whose drift cannot be stored without loss


def serve_drifted(sandbox, changes) -> None:
    """Serve some orders drifted: their cached bytes in the sandbox replaced (key -> change)."""
    table = sandbox.store.book.orders
    for key, change in changes.items():
        record = table.record(key)
        change(record)
        table.cache.drop(table.view, key)
        table.cache.put(table.view, key, json.dumps(record).encode())
        assert table.cache.get(table.view, key) is not None


def _set(**fields):
    return lambda record: record.update(fields)


def _fraction_qty(record):
    record["order_items"][0]["qty"] = 2.5


def drift(sandbox) -> int:
    """Drift orders 0..5 (ids 1..6); returns the values that drift makes coerced (net of those
    quarantined with their records)."""
    orders = sandbox.store.orders
    first = orders[1]
    assert first["order_items"], "order 2 has items"
    naive = first["created_at"].replace("T", " ").replace(".000Z", "")
    serve_drifted(sandbox, {
        0: _set(id="1"),                                       # integer from text
        1: _set(created_at=naive),                              # YYYY-MM-DD HH:MM:SS, UTC
        2: _set(total=float(orders[2]["total"])),               # decimal from a JSON number
        3: _set(id="abc"),                                      # lossy: quarantined
        4: _fraction_qty,                                       # lossy in a child: quarantined
        5: _set(shipping_phone=["555", "556"]),                 # text from an array: its JSON
    })
    lost = sum(isinstance(i.get("store_id"), int) for k in QUARANTINED for i in orders[k].get("order_items") or [])
    children_of_1 = len(orders[0].get("order_items") or [])  # their order_id comes from the coerced id
    return 4 + children_of_1 - lost


def expected_without_quarantined(sandbox) -> dict:
    expected = expected_tables(sandbox.store)
    ids = {k + 1 for k in QUARANTINED}
    expected["orders"] = [r for r in expected["orders"] if r[0] not in ids]
    expected["order_items"] = [r for r in expected["order_items"] if r[1] not in ids]
    return expected


@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_drifted_records_are_coerced_or_quarantined_and_counted(make_sandbox, tmp_path, kind):
    sandbox = make_sandbox(orders=300, products=20)
    clean = extract(["orders"], duckdb=tmp_path / "clean.duckdb", client=make_client(sandbox)).stream("orders")
    assert (clean.records_stored, clean.records_quarantined) == (300, 0)
    extra = drift(sandbox)
    where = {"duckdb": tmp_path / "s.duckdb"} if kind == "duckdb" else {"parquet": tmp_path / "lake"}
    result = extract(["orders"], client=make_client(sandbox), **where)
    orders = result.stream("orders")
    assert result.ok and result.exit_code == 0 and orders.status == "warning"
    assert (orders.records_stored, orders.records_quarantined) == (298, 2)
    assert orders.values_coerced == clean.values_coerced + extra
    assert orders.count_check == "ok" and orders.count_received == orders.count_expected == 300  # rows in = stored + quarantined
    assert "reconciled" not in orders.message and "2 record(s) quarantined" in orders.message
    tables = ["orders", "order_items"]
    if kind == "duckdb":
        actual = duckdb_tables(where["duckdb"], tables)
        with duckdb.connect(str(where["duckdb"]), read_only=True) as conn:
            rejected = conn.execute('SELECT run_id, stream, "table", "key", field, reason, record FROM _sqquid_rejected ORDER BY "key"').fetchall()
            run = conn.execute("SELECT records_stored, values_coerced, records_quarantined FROM _sqquid_runs").fetchall()
            phone = conn.execute("SELECT shipping_phone FROM orders WHERE id = 6").fetchone()[0]
    else:
        actual = parquet_tables(where["parquet"], tables)
        with duckdb.connect() as conn:
            lake = where["parquet"]
            rejected = conn.execute(f"SELECT run_id, stream, \"table\", \"key\", field, reason, record FROM read_parquet('{lake}/_sqquid_rejected/*.parquet') ORDER BY \"key\"").fetchall()
            run = conn.execute(f"SELECT records_stored, values_coerced, records_quarantined FROM read_parquet('{lake}/_sqquid_runs/*.parquet')").fetchall()
            phone = conn.execute(f"SELECT shipping_phone FROM read_parquet('{lake}/orders/*.parquet') WHERE id = 6").fetchone()[0]
    assert_tables_equal(actual, expected_without_quarantined(sandbox), tables)  # the coerced ones exactly as sent
    assert phone == '["555", "556"]'
    assert run == [(298, orders.values_coerced, 2)]
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rejected] == [
        (result.run_id, "orders", "order_items", "5", "qty"), (result.run_id, "orders", "orders", "abc", "id")]
    assert rejected[1][5] == "'abc' is not a valid integer" and json.loads(rejected[1][6])["id"] == "abc"
    assert json.loads(rejected[0][6])["order_items"][0]["qty"] == 2.5  # the raw record, children included


@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_strict_fails_the_stream_stores_nothing_and_keeps_the_state(make_sandbox, tmp_path, kind):
    sandbox = make_sandbox(orders=300, products=20)
    drift(sandbox)
    where = {"duckdb": tmp_path / "s.duckdb"} if kind == "duckdb" else {"parquet": tmp_path / "lake"}
    result = extract(["orders"], client=make_client(sandbox), strict=True, **where)
    orders = result.stream("orders")
    assert orders.status == "failed" and result.exit_code == 5
    assert "record 'abc' cannot be stored without loss" in orders.message and "--strict" in orders.message
    if kind == "duckdb":
        with duckdb.connect(str(where["duckdb"]), read_only=True) as conn:
            tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            assert "orders" not in tables
            assert conn.execute("SELECT count(*) FROM _sqquid_rejected").fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM _sqquid_state").fetchone()[0] == 0
            assert conn.execute("SELECT status FROM _sqquid_runs").fetchall() == [("failed",)]
    else:
        lake = where["parquet"]
        assert not (lake / "orders").exists() and not list(lake.glob("_sqquid_rejected/*.parquet"))
        state = lake / "_sqquid_state.json"
        assert not state.exists() or "orders" not in json.loads(state.read_text())
    again = extract(["orders"], client=make_client(sandbox), **where).stream("orders")  # state not advanced
    assert again.window_start is None and again.records_stored == 298


def test_cli_exit_code_is_zero_unless_strict_and_the_summary_shows_the_counts(make_sandbox, tmp_path, monkeypatch):
    sandbox = make_sandbox(orders=300, products=20)
    drift(sandbox)
    monkeypatch.chdir(tmp_path)
    env = {"SQQUID_BASE_URL": sandbox.url, "SQQUID_API_KEY": API_KEY}
    ran = CliRunner().invoke(main, ["extract", "--streams", "orders", "--duckdb", "a.duckdb", "--rate", "0"], env=env)
    assert ran.exit_code == 0, ran.output
    assert "records: 298 stored (" in ran.output and "2 quarantined" in ran.output
    assert "2 records quarantined (_sqquid_rejected)" in ran.output
    strict = CliRunner().invoke(main, ["extract", "--streams", "orders", "--duckdb", "b.duckdb", "--rate", "0", "--strict"], env=env)
    assert strict.exit_code != 0


def test_a_destination_made_by_an_older_version_gains_the_new_run_columns(sandbox, tmp_path):
    old_columns = ("run_id VARCHAR, stream VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, status VARCHAR, rows BIGINT, "
                   "pages BIGINT, requests BIGINT, window_start VARCHAR, cursor VARCHAR, count_expected BIGINT, "
                   "count_received BIGINT, count_check VARCHAR, message VARCHAR")
    db = tmp_path / "old.duckdb"
    with duckdb.connect(str(db)) as conn:
        conn.execute(f"CREATE TABLE _sqquid_runs ({old_columns})")
        conn.execute("INSERT INTO _sqquid_runs (run_id, stream, status) VALUES ('old-run', 'orders', 'ok')")
    assert extract(["locations"], duckdb=db, client=make_client(sandbox)).ok
    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute("SELECT run_id, records_stored, records_quarantined FROM _sqquid_runs ORDER BY run_id = 'old-run'").fetchall()
    assert rows[-1] == ("old-run", None, None) and rows[0][1] == len(sandbox.store.locations) and rows[0][2] == 0
    lake = tmp_path / "lake"
    assert extract(["locations"], parquet=lake, client=make_client(sandbox)).ok
    old = pa.table({"run_id": ["old-run"], "stream": ["orders"], "rows": pa.array([5], pa.int64())})
    pq.write_table(old, lake / "_sqquid_runs" / "old-run-orders.parquet")
    with duckdb.connect() as conn:
        rows = conn.execute(f"SELECT run_id, rows, records_stored FROM read_parquet('{lake}/_sqquid_runs/*.parquet', "
                            "union_by_name = true) ORDER BY run_id = 'old-run'").fetchall()
    assert rows[-1] == ("old-run", 5, None) and rows[0][2] == len(sandbox.store.locations)


# -- generated drift: never a crash, never a record lost ---------------------------------------

drifted_integer = st.one_of(st.integers(-5, 10**6), st.sampled_from(["27", " 27", "27.0", "abc", "", "1e3", "2.5"]),
                            st.floats(allow_nan=True), st.booleans(), st.none(), st.just([1]))
drifted_timestamp = st.one_of(st.just("2024-01-01T00:00:00.000Z"), st.sampled_from([
    "2024-01-01 10:00:00", "2024-01-01T10:00:00+02:00", "2024-01-01", "20240101T100000Z", "not a date",
    "2024-02-30T00:00:00Z", "2024-01-01T00:00:00.1234567Z"]), st.integers(), st.none(), st.text(max_size=8))
drifted_decimal = st.one_of(st.sampled_from(["1.50", " 2 ", "x", "1e3", "12345678901234567890"]),
                            st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.booleans(), st.none())
drifted_text = st.one_of(st.text(max_size=5), st.integers(), st.floats(), st.booleans(), st.none(),
                         st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))
drifted_item = st.fixed_dictionaries({}, optional={"id": drifted_integer, "qty": drifted_integer, "price": drifted_decimal,
                                                   "store_id": drifted_text, "sku": drifted_text})
drifted_order = st.fixed_dictionaries(
    {"id": drifted_integer, "created_at": drifted_timestamp},
    optional={"total": drifted_decimal, "receipt_id": drifted_text, "source": drifted_text,
              "order_items": st.one_of(st.lists(drifted_item, max_size=3), drifted_text)},
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(drifted_order, min_size=1, max_size=6))
def test_generated_drifted_pages_never_crash_and_never_lose_a_record(records):
    stream = load_definitions()["orders"]
    body = json.dumps({"Orders": records}).encode()
    for tables in (page_to_tables(stream, records), page_tables(stream, PageDecoder(stream).decode(body))):
        stored = tables["orders"].num_rows
        assert tables.records == len(records) and stored + len(tables.rejected) == len(records)
        assert all(isinstance(i, int) for i in tables["orders"].column("id").to_pylist())
        kept = set(tables["orders"].column("id").to_pylist())
        assert set(tables["order_items"].column("order_id").to_pylist()) <= kept  # no orphan child of a rejected record
        rejected = [json.loads(r.record) for r in tables.rejected]
        assert all(r in json.loads(body)["Orders"] for r in rejected)  # the raw records, as sent


def test_drift_is_learned_while_it_lasts_and_a_probe_forgets_it():
    """A drifted page teaches the decoder which fields to read by Python (the body is still read
    by Arrow, those fields from the page's dicts); the pages after it are read so until a probe
    (one page in PROBE_EVERY) reads a page without them: the plan is the clean one again. (Numbers
    in text or decimal fields are the API's known habit: those are learned for good.)"""
    from sqquid_etl import decode

    stream = load_definitions()["orders"]
    clean = {"id": 1, "created_at": "2024-01-01T00:00:00.000Z", "total": "1.50", "order_items": [{"id": 7, "qty": 1}]}
    clean_body = json.dumps({"Orders": [clean]}).encode()
    for drifted in ({"id": "abc"}, {"id": "27"}, {"created_at": "2024-01-01 00:00:00"}, {"order_items": [{"id": 7, "qty": 2.5}]},
                    {"order_items": [{"id": 7, "qty": 2.0}]}, {"receipt_id": ["a"]}, {"id": None}):
        decoder = PageDecoder(stream)
        records = [clean, {**clean, **drifted}]
        page = decoder.decode(json.dumps({"Orders": records}).encode())
        tables = page_tables(stream, page)
        assert tables.records == 2 and (tables.coerced >= 1 or len(tables.rejected) == 1), drifted
        assert outcome(tables) == outcome(page_to_tables(stream, records)), drifted
        after = [decoder.decode(clean_body) for _ in range(decode.PROBE_EVERY)]
        assert all(p.read_by_arrow and page_tables(stream, p).coerced == 0 for p in after), drifted
        assert decoder.plan.python == frozenset(), drifted  # forgotten once a probe read a clean page


def outcome(tables) -> tuple:
    return ({n: t.to_pylist() for n, t in tables.items()}, tables.records, tables.coerced,
            [(r.key, r.field, r.reason) for r in tables.rejected])


# -- the sandbox's drift profile: every record of every stream stored or quarantined -------------

VIEWS = {"orders": "orders", "products": "products", "shipments": "shipments", "shipment_items": "shipmentitems",
         "inventory": "inventory", "buffers": "buffers", "locations": "locations"}


def unstorable(definition, lossy: dict) -> set[str]:
    """The keys of records whose lossy value is in a column that is not text ("abc" is text)."""
    types = {(t.nested_path, c.source): c.type for t in definition.tables for c in t.columns if not c.from_parent}
    keys = set()
    for key, path in lossy.items():
        parts = path.split(".")
        nested, source = (parts[0], parts[-1]) if len(parts) > 1 else (None, parts[0])
        if types.get((nested, source), "string") != "string":
            keys.add(str(key))
    return keys


@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_the_sandbox_drift_profile_is_stored_or_quarantined_record_by_record(make_sandbox, tmp_path, kind):
    from sqquid_etl.sandbox import DriftProfile

    sandbox = make_sandbox(orders=600, products=200, drift=DriftProfile(lossy=0.03))
    where = {"duckdb": tmp_path / "s.duckdb"} if kind == "duckdb" else {"parquet": tmp_path / "lake"}
    result = extract(client=make_client(sandbox), **where)
    assert result.ok and result.exit_code == 0
    definitions = load_definitions()
    skus = "SELECT sku FROM {0}products UNION SELECT sku FROM {0}product_variants"
    if kind == "duckdb":
        with duckdb.connect(str(where["duckdb"]), read_only=True) as conn:
            rejected = conn.execute('SELECT stream, "key" FROM _sqquid_rejected').fetchall()
            listed = {r[0] for r in conn.execute(skus.format("")).fetchall()}
    else:
        lake = where["parquet"]
        with duckdb.connect() as conn:
            rejected = conn.execute(f"SELECT stream, \"key\" FROM read_parquet('{lake}/_sqquid_rejected/*.parquet')").fetchall()
            conn.execute(f"CREATE VIEW products AS SELECT * FROM read_parquet('{lake}/products/*.parquet')")
            conn.execute(f"CREATE VIEW product_variants AS SELECT * FROM read_parquet('{lake}/product_variants/*.parquet')")
            listed = {r[0] for r in conn.execute(skus.format("")).fetchall()}
    for stream, view in VIEWS.items():
        outcome = result.stream(stream)
        served, lossy = sandbox.store.served(view), sandbox.store.lossy(view)
        if stream == "inventory":  # listed by the skus stored: none of a product quarantined with its variants
            served = [r for r in served if r["sku"] in listed]
            lossy = {k: p for k, p in lossy.items() if k in listed}
        assert outcome.records_stored + outcome.records_quarantined == len(served), stream  # rows in = stored + quarantined
        assert {k for s, k in rejected if s == stream} == unstorable(definitions[stream], lossy), stream
        assert outcome.records_quarantined == sum(s == stream for s, _ in rejected)
        if outcome.count_expected is not None:
            assert outcome.count_check == "ok" and "reconciled" not in (outcome.message or ""), stream
    assert sum(s.records_quarantined for s in result.streams) > 0 and result.stream("orders").values_coerced > 0
    quarantined = {int(k) for s, k in rejected if s == "orders"}
    expected = expected_tables(sandbox.store)
    expected["orders"] = [r for r in expected["orders"] if r[0] not in quarantined]
    expected["order_items"] = [r for r in expected["order_items"] if r[1] not in quarantined]
    tables = ["orders", "order_items"]
    actual = duckdb_tables(where["duckdb"], tables) if kind == "duckdb" else parquet_tables(where["parquet"], tables)
    assert_tables_equal(actual, expected, tables)


drifted_attributes = st.one_of(st.none(), st.lists(st.fixed_dictionaries({"label": drifted_text, "value": drifted_text}), max_size=2),
                               drifted_text)
drifted_variant = st.fixed_dictionaries({"id": drifted_integer}, optional={
    "sku": drifted_text, "qty": drifted_integer, "price": drifted_decimal, "updated_at": drifted_timestamp,
    "Attributes": drifted_attributes})
drifted_product = st.fixed_dictionaries({"id": drifted_integer, "updated_at": drifted_timestamp}, optional={
    "weight": drifted_decimal, "Attributes": drifted_attributes, "Categories": st.one_of(st.lists(drifted_text, max_size=2), drifted_text),
    "Child_Products": st.one_of(st.lists(drifted_variant, max_size=3), drifted_text)})


@settings(max_examples=200, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(drifted_product, min_size=1, max_size=5))
def test_generated_drifted_products_never_crash_lose_a_record_or_differ_by_path(records):
    stream = load_definitions()["products"]
    body = json.dumps({"Products": records}).encode()
    from_dicts = page_to_tables(stream, records)
    from_body = page_tables(stream, PageDecoder(stream).decode(body))
    for tables in (from_dicts, from_body):
        assert tables["products"].num_rows + len(tables.rejected) == tables.records == len(records)
        kept = set(tables["products"].column("id").to_pylist())
        assert set(tables["product_variants"].column("parent_id").to_pylist()) <= kept
    same = [({k: t.to_pylist() for k, t in x.items()}, x.coerced, [(r.key, r.field, r.reason) for r in x.rejected])
            for x in (from_dicts, from_body)]
    assert same[0] == same[1]


def test_a_stream_that_keeps_drifting_stops_trying_arrow_but_probes_it_again():
    """After SLOW_STREAK pages in a row that no plan reads (a nested list sent as text) a page is
    decoded by Python directly (converted the same), but for one in PROBE_EVERY: a clean probe
    ends the streak and Arrow reads bodies again."""
    from sqquid_etl import decode

    stream = load_definitions()["orders"]
    decoder = PageDecoder(stream)
    clean = {"id": 1, "created_at": "2024-01-01T00:00:00.000Z", "total": "1.50", "order_items": [{"id": 7, "qty": 1}]}
    drifted = json.dumps({"Orders": [clean, {**clean, "order_items": "none"}]}).encode()
    clean_body = json.dumps({"Orders": [clean]}).encode()
    for _ in range(decode.SLOW_STREAK):
        assert not decoder.decode(drifted).read_by_arrow  # tried on the body, read from dicts
    pages = [decoder.decode(clean_body) for _ in range(decode.PROBE_EVERY)]
    by_arrow = [p.read_by_arrow for p in pages]
    assert by_arrow.count(True) >= 1 and by_arrow.count(False) >= decode.PROBE_EVERY - 2 - 1
    after_probe = by_arrow.index(True)
    assert all(by_arrow[after_probe:])  # the probe read by Arrow ended the streak
    expected = page_tables(stream, pages[after_probe])
    for page in pages:  # read either way, the page converts to the same tables
        tables = page_tables(stream, page)
        assert {n: t.to_pylist() for n, t in tables.items()} == {n: t.to_pylist() for n, t in expected.items()}


def test_a_page_with_drifted_values_keeps_the_fast_path_for_its_other_columns():
    """Ids as text, a timestamp in another ISO form, an integer sent as 2.0: Arrow reads the body
    with those fields read as decimals (numbers and text alike) and cast, the values that drifted
    counted from the page's dicts; the timestamp column is read by Arrow and only its value in
    another form coerced; the tables are exactly those of the record-by-record path."""
    from sqquid_etl import records as records_module

    stream = load_definitions()["orders"]
    clean = {"id": 1, "created_at": "2024-01-01T00:00:00.000Z", "total": "1.50", "order_items": [{"id": 7, "qty": 1}]}
    page = [clean, {**clean, "id": "27", "created_at": "2024-01-02 03:04:05", "order_items": [{"id": "8", "qty": 2.0}]}]
    decoder = PageDecoder(stream)
    decoded = decoder.decode(json.dumps({"Orders": page}).encode())
    assert decoded.read_by_arrow and decoded.plan.lenient == {(None, "id"), ("order_items", "id"), ("order_items", "qty")}
    assert decoded.plan.by_python == frozenset()
    expected, _ = records_module._slow_page(stream, page, None)
    fast = page_tables(stream, decoded)
    assert {n: t.to_pylist() for n, t in fast.items()} == {n: t.to_pylist() for n, t in expected.items()}
    assert fast.coerced == expected.coerced == 5  # id, created_at, order_id (from the id), item id, qty
    assert decoder.plan is decoded.plan  # learned for the pages after it, while the drift lasts
