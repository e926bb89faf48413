"""Freshness: what an incremental run sees of records changed, moved or deleted behind its cursor
(re-read windows, content hashes, the count scan of reconciliation, soft deletes), and the
type-2 history of inventory and buffers. The sandbox changes its data between runs
(`sandbox/changes.py`), seeded."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pytest
from click.testing import CliRunner

from sqquid_etl import extract
from sqquid_etl.cli import main
from sqquid_etl.errors import ConfigError
from sqquid_etl.sandbox.changes import KINDS
from sqquid_etl.sandbox.order_records import SCOPES
from tests.expected import COMPARED, assert_tables_equal, expected_tables
from tests.destination_reader import KINDS as DESTINATIONS, Destination
from tests.support import API_KEY, make_client

ORDER_STREAMS = ["orders", "shipments", "shipment_items"]


def live_tables(db, tables=None) -> dict[str, list[tuple]]:
    """The compared columns of each table, without the records marked gone upstream."""
    with duckdb.connect(str(db), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        out = {}
        for table, columns in COMPARED.items():
            if tables is not None and table not in tables:
                continue
            have = {r[0] for r in conn.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [table]).fetchall()}
            where = " WHERE _sqquid_deleted_at IS NULL" if "_sqquid_deleted_at" in have else ""
            out[table] = sorted(conn.execute(f"SELECT {columns} FROM {table}{where}").fetchall(), key=repr)
        return out


def _query(db, sql: str, params=()) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return conn.execute(sql, list(params)).fetchall()


@pytest.mark.parametrize("kind", DESTINATIONS)
def test_reread_window_sees_edited_orders_and_counts_them(make_sandbox, tmp_path, kind):
    sandbox = make_sandbox(orders=200, products=20)
    dest = Destination(kind, tmp_path)
    assert dest.extract(["orders"], sandbox=sandbox).ok
    made = sandbox.store.apply_changes({"edit_orders": 3}, seed=1)["edit_orders"]
    assert len(made) == 3
    result = dest.extract(["orders"], sandbox=sandbox)
    orders = result.stream("orders")
    assert (orders.records_new, orders.records_changed) == (0, 3)
    assert orders.records_unchanged > 0
    emails = dict(dest.query("SELECT id, customer_email FROM orders WHERE id IN (SELECT unnest(?))", [made]))
    with sandbox.store.lock:
        upstream = {o["id"]: o["customer_email"] for o in sandbox.store.orders if o["id"] in made}
    assert emails == upstream
    row = dest.query("SELECT records_new, records_changed, records_deleted FROM _sqquid_runs "
                     "WHERE run_id = ? AND stream = 'orders'", [result.run_id])
    assert row == [(0, 3, 0)]
    hashes = dest.query("SELECT count(*) FROM orders WHERE id IN (SELECT unnest(?)) AND _sqquid_hash IS NOT NULL", [made])
    assert hashes == [(3,)]  # the re-read rows carry their content hash


def test_without_a_reread_window_an_edit_is_not_seen(make_sandbox, tmp_path):
    sandbox = make_sandbox(orders=200, products=20)
    db = tmp_path / "f.duckdb"
    assert extract(["orders"], duckdb=db, client=make_client(sandbox)).ok
    sandbox.store.apply_changes({"edit_orders": 3}, seed=1)
    result = extract(["orders"], duckdb=db, client=make_client(sandbox), reread="orders=0")
    assert result.stream("orders").records_changed == 0  # the 1s lookback only: the edits stay unseen


def test_reread_options_are_checked(tmp_path, sandbox):
    with pytest.raises(ConfigError, match="unknown stream 'nosuch'"):
        extract(["orders"], duckdb=tmp_path / "x.duckdb", client=make_client(sandbox), reread="nosuch=1d")
    with pytest.raises(ConfigError, match="full refresh every run"):
        extract(["orders"], duckdb=tmp_path / "x.duckdb", client=make_client(sandbox), reread={"inventory": "1d"})
    with pytest.raises(ConfigError, match="not a duration"):
        extract(["orders"], duckdb=tmp_path / "x.duckdb", client=make_client(sandbox), reread="orders=soon")
    outcome = CliRunner().invoke(main, ["extract", "--streams", "orders", "--duckdb", str(tmp_path / "y.duckdb"),
                                        "--base-url", sandbox.url, "--api-key", API_KEY, "--reread", "orders"])
    assert outcome.exit_code != 0 and "expected STREAM=WINDOW" in outcome.output
    config = tmp_path / "sqquid.toml"
    config.write_text('[reread]\norders = 30\n')
    outcome = CliRunner().invoke(main, ["extract", "--config", str(config), "--duckdb", str(tmp_path / "y.duckdb"),
                                        "--base-url", sandbox.url, "--api-key", API_KEY])
    assert outcome.exit_code != 0 and "[reread] orders" in outcome.output
    assert not (tmp_path / "y.duckdb").exists()


@pytest.mark.parametrize("kind", DESTINATIONS)
def test_deleted_records_are_marked_then_hard_deleted(make_sandbox, tmp_path, kind):
    sandbox = make_sandbox(orders=300, products=20)
    dest = Destination(kind, tmp_path)
    assert dest.extract(["orders"], sandbox=sandbox).ok
    gone = sandbox.store.apply_changes({"delete_orders": 4}, seed=2)["delete_orders"]
    result = dest.extract(["orders"], sandbox=sandbox)
    assert result.stream("orders").records_deleted == 4, result.stream("orders").message
    assert dest.marked("orders") == set(gone)
    items = dest.query("SELECT count(*) FROM order_items WHERE _sqquid_deleted_at IS NOT NULL AND order_id IN "
                       "(SELECT unnest(?))", [gone])[0][0]
    assert items > 0  # the children of a record gone are marked with it
    assert dest.query("SELECT count(*) FROM order_lines WHERE order_id IN (SELECT unnest(?))", [gone]) == [(0,)]
    assert_tables_equal(dest.live_tables(["orders", "order_items"]), expected_tables(sandbox.store), ["orders", "order_items"])
    more = sandbox.store.apply_changes({"delete_orders": 2}, seed=3)["delete_orders"]
    assert dest.extract(["orders"], sandbox=sandbox, hard_delete=True).ok
    assert dest.query("SELECT count(*) FROM orders WHERE id IN (SELECT unnest(?))", [more]) == [(0,)]
    assert dest.query("SELECT count(*) FROM order_items WHERE order_id IN (SELECT unnest(?))", [more]) == [(0,)]
    assert dest.marked("orders") == set(gone)  # those marked before stay marked


def test_scope_moves_between_all_four_scopes(make_sandbox, tmp_path):
    """Items of every age leave each scope for each of the three others; the next run has every
    item in its current scope."""
    sandbox = make_sandbox(orders=300, products=20)
    db = tmp_path / "f.duckdb"
    assert extract(["shipment_items"], duckdb=db, client=make_client(sandbox)).ok
    book = sandbox.store.book
    moved = set()
    for source in range(len(SCOPES)):
        with sandbox.store.lock:
            keys = [k for k in book.items.keys() if book.scope(k) == source and k not in moved]
            picks = keys[:: max(1, len(keys) // 3)][:3]  # spread over the ages of the scope
            for target, key in zip([c for c in range(len(SCOPES)) if c != source], picks):
                book.set_scope(key, target)
                moved.add(key)
            sandbox.store.touch("shipmentitems")
        result = extract(["shipment_items"], duckdb=db, client=make_client(sandbox))
        assert result.stream("shipment_items").status == "ok", result.stream("shipment_items").message
        assert_tables_equal(live_tables(db, ["shipment_items"]), expected_tables(sandbox.store), ["shipment_items"])
    assert len(moved) == 12


def test_a_variant_change_is_seen_when_its_parent_does_not_move(make_sandbox, tmp_path):
    sandbox = make_sandbox(orders=20, products=60)
    db = tmp_path / "f.duckdb"
    assert extract(["products"], duckdb=db, client=make_client(sandbox)).ok
    before = {p["sku"]: p["updated_at"] for p in sandbox.store.products}
    skus = sandbox.store.apply_changes({"edit_variants": 4}, seed=4)["edit_variants"]
    assert {p["sku"]: p["updated_at"] for p in sandbox.store.products} == before  # parents unmoved
    result = extract(["products"], duckdb=db, client=make_client(sandbox))
    assert result.stream("products").records_changed == 0  # the parents are the same records
    got = dict(_query(db, "SELECT sku, price::VARCHAR FROM product_variants WHERE sku IN (SELECT unnest(?))", [skus]))
    with sandbox.store.lock:
        want = {c["sku"]: c["price"] for p in sandbox.store.products for c in p["Child_Products"] if c["sku"] in skus}
    assert got == want
    assert_tables_equal(live_tables(db, ["product_variants"]), expected_tables(sandbox.store), ["product_variants"])


@pytest.mark.parametrize("kind", DESTINATIONS)
def test_inventory_history_and_stock_outs(make_sandbox, tmp_path, kind):
    sandbox = make_sandbox(orders=20, products=30)
    dest = Destination(kind, tmp_path)
    first = dest.extract(["products", "inventory"], sandbox=sandbox)
    assert first.ok
    key = next(k for k, v in sandbox.store.inventory.items() if v["qty_on_hand"] > 0)
    for other in [k for k in sandbox.store.inventory if k[:2] == key[:2]]:  # out of stock at that location
        sandbox.store.patch_inventory(other, 0)
    second = dest.extract(["products", "inventory"], sandbox=sandbox)
    assert second.ok
    versions = dest.query("SELECT qty_on_hand, valid_to IS NULL FROM inventory_history WHERE sku = ? AND "
                          "location_external_id = ? AND bin = ? ORDER BY valid_from", key)
    assert len(versions) == 2 and versions[0][1] is False and versions[1] == (0, True)
    current = dest.query("SELECT sku, location_external_id, bin, qty_on_hand FROM inventory_history "
                         "WHERE valid_to IS NULL ORDER BY ALL")
    assert current == dest.query("SELECT sku, location_external_id, bin, qty_on_hand FROM inventory ORDER BY ALL")
    for run, qty in ((first, versions[0][0]), (second, 0)):  # what was on hand when each run read it
        started = dest.started(run.run_id, "inventory")
        as_of = dest.query("SELECT qty_on_hand FROM inventory_history WHERE sku = ? AND location_external_id = ? "
                           "AND bin = ? AND valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)", [*key, started, started])
        assert as_of == [(qty,)]
    outs = dest.query("SELECT sku, location_external_id, qty_before > 0, back_in_stock_at FROM stock_outs")
    assert outs == [(key[0], key[1], True, None)]


def test_offsetting_changes_need_the_key_check(make_sandbox, tmp_path):
    """One record gone and one late record come in the same range: the counts agree, so the
    default run cannot see them; --verify-keys lists every key again and sees both."""
    sandbox = make_sandbox(orders=300, products=20)
    db = tmp_path / "f.duckdb"
    args = ["extract", "--streams", "orders", "--duckdb", str(db), "--base-url", sandbox.url, "--api-key", API_KEY,
            "--rate", "0", "--no-progress"]
    assert CliRunner().invoke(main, args).exit_code == 0
    with sandbox.store.lock:
        old = sandbox.store.orders[10]
    with sandbox.store.lock:
        sandbox.store.book.orders.delete(old["id"] - 1)
        sandbox.store.touch("orders")
    late = sandbox.store.add_orders(1, created_at=old["created_at"])[0]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert _query(db, "SELECT count(*) FROM orders WHERE id = ?", [late["id"]]) == [(0,)]  # unseen by counts
    outcome = CliRunner().invoke(main, args + ["--verify-keys"])
    assert outcome.exit_code == 0, outcome.output
    assert ", 1 deleted upstream" in outcome.output and "changes: 1 new" in outcome.output  # the summary says it
    assert _query(db, "SELECT count(*) FROM orders WHERE id = ?", [late["id"]]) == [(1,)]
    assert _query(db, "SELECT _sqquid_deleted_at IS NOT NULL FROM orders WHERE id = ?", [old["id"]]) == [(True,)]
    assert_tables_equal(live_tables(db, ["orders"]), expected_tables(sandbox.store), ["orders"])


def test_sandbox_admin_endpoint_makes_changes(sandbox):
    import json
    import urllib.request

    def post(body):
        request = urllib.request.Request(f"{sandbox.url}/_sandbox/changes", data=json.dumps(body).encode(), method="POST")
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    status, made = post({"delete_orders": 2, "move_items": 1, "seed": 7})
    assert status == 200 and len(made["delete_orders"]) == 2 and len(made["move_items"]) == 1
    with sandbox.store.lock:
        live = {o["id"] for o in sandbox.store.orders}
    assert not set(made["delete_orders"]) & live
    status, _ = post({"explode": 1})
    assert status == 400


def _logging_client(sandbox, log: list):
    """A client that notes the path and params of each list request (pages and /count)."""
    client = make_client(sandbox)
    get_body, get = client.get_body, client.get

    def logged_body(path, params=None, **kwargs):
        log.append((path, dict(params or {})))
        return get_body(path, params, **kwargs)

    def logged(path, params=None, **kwargs):
        log.append((path, dict(params or {})))
        return get(path, params, **kwargs)

    client.get_body, client.get = logged_body, logged
    return client


def test_old_changes_are_listed_again_by_range_not_to_now(make_sandbox, tmp_path):
    """Deletions and scope moves of any age: the count scan isolates small ranges, and only those
    are listed again (shipment items by created_at_min + created_at_max, orders by their stored
    ids, shipments by their orders' ids), never from the change to now."""
    sandbox = make_sandbox(orders=3000, products=20)
    db = tmp_path / "f.duckdb"
    assert extract(ORDER_STREAMS, duckdb=db, client=make_client(sandbox)).ok
    made = sandbox.store.apply_changes({"delete_orders": 3, "delete_shipments": 3, "delete_items": 3, "move_items": 4},
                                       seed=5)
    log: list = []
    result = extract(ORDER_STREAMS, duckdb=db, client=_logging_client(sandbox, log))
    assert result.ok and all(s.status == "ok" for s in result.streams), [(s.stream, s.message) for s in result.streams]
    assert_tables_equal(live_tables(db, ["orders", "shipments", "shipment_items"]), expected_tables(sandbox.store),
                        ["orders", "shipments", "shipment_items"])
    gone = _query(db, "SELECT id FROM orders WHERE _sqquid_deleted_at IS NOT NULL ORDER BY id")
    assert [r[0] for r in gone] == sorted(made["delete_orders"])
    lists = {path: [p for q, p in log if q == path] for path in ("/v1/orders", "/v1/shipments", "/v1/shipmentitems")}
    recent = (datetime.fromisoformat(sandbox.store.now.replace("Z", "+00:00")) - timedelta(days=30)).isoformat()[:19]
    for path, params in lists.items():  # listings by date alone: the re-read windows (14 days) only
        early = [p for p in params if not {"ids", "order_ids", "created_at_max"} & set(p) and p["created_at_min"] < recent]
        assert not early, (path, early, [(s.stream, s.message) for s in result.streams])
    by_ids = [p["ids"].split(",") for p in lists["/v1/orders"] if "ids" in p]
    assert by_ids and all(len(ids) <= 250 for ids in by_ids)
    assert any("order_ids" in p for p in lists["/v1/shipments"])
    assert any("created_at_max" in p for p in lists["/v1/shipmentitems"])
    assert not any("ids" in p for q, p in log if q == "/v1/orders/count")  # the reference gives its count no ids
    scanned = sum(1 for q, _ in log if q.endswith("/count"))
    assert scanned < 300, scanned  # the scan (8 counts a partition) and its bisections


def test_the_sandbox_lists_no_deleted_shipment_of_an_order(sandbox):
    with sandbox.store.lock:
        shipment = sandbox.store.shipments[0]
    client = make_client(sandbox)
    path = f"/v1/order/{shipment['order_id']}/shipments"
    assert shipment["id"] in [s["id"] for s in client.get(path)["Shipments"]]
    with sandbox.store.lock:
        sandbox.store.book.shipments.delete(shipment["id"] - 1)
        sandbox.store.touch("shipments")
    assert shipment["id"] not in [s["id"] for s in client.get(path)["Shipments"]]
    listed = client.get("/v1/shipments", {"order_ids": str(shipment["order_id"])})["Shipments"]
    assert shipment["id"] not in [s["id"] for s in listed]


def test_an_item_removed_from_an_order_is_marked_and_unchanged_records_counted_once(make_sandbox, tmp_path):
    """An order re-read without one of its items: the item's row is marked `_sqquid_deleted_at`
    (not removed); a run whose count scan lists old ranges again counts each re-read record once."""
    sandbox = make_sandbox(orders=300, products=20)
    db = tmp_path / "f.duckdb"
    assert extract(["orders"], duckdb=db, client=make_client(sandbox)).ok
    book = sandbox.store.book
    with sandbox.store.lock:
        key = max(k for k in book.orders.keys() if len(book.orders.record(k)["order_items"]) > 1)
        order = book.orders.record(key)
        dropped = order["order_items"].pop()
        book.change_order(key, order)
        sandbox.store.touch("orders")
    sandbox.store.apply_changes({"delete_orders": 2}, seed=9)
    result = extract(["orders"], duckdb=db, client=make_client(sandbox))
    orders = result.stream("orders")
    assert orders.status == "ok" and "re-listed" in orders.message, orders.message
    assert _query(db, "SELECT _sqquid_deleted_at IS NOT NULL FROM order_items WHERE id = ?", [dropped["id"]]) == [(True,)]
    live = _query(db, "SELECT id FROM order_items WHERE order_id = ? AND _sqquid_deleted_at IS NULL ORDER BY id",
                  [order["id"]])
    assert [r[0] for r in live] == sorted(i["id"] for i in order["order_items"])
    in_window = _query(db, "SELECT count(*) FROM orders WHERE created_at >= ? AND _sqquid_deleted_at IS NULL",
                       [orders.window_start])[0][0]
    assert (orders.records_changed, orders.records_unchanged) == (0, in_window)  # the hash is of the order's own columns


def test_verify_keys_is_resumable_range_by_range(make_sandbox, tmp_path, monkeypatch):
    """--verify-keys commits range by range with its progress in the state: a run that fails
    midway resumes from the last range verified; a complete pass clears the progress."""
    import sqquid_etl.verify as verify
    from sqquid_etl.errors import ApiError
    from sqquid_etl.state import parse_timestamp

    sandbox = make_sandbox(orders=600, products=20)
    db = tmp_path / "f.duckdb"
    assert extract(["orders"], duckdb=db, client=make_client(sandbox)).ok
    monkeypatch.setattr(verify, "SPAN", 60)
    original, seen = verify._verify_range, []

    def fails_after_three(run, counts, partition, since, until):
        if len(seen) == 3:
            raise ApiError("GET /v1/orders failed: HTTP 500 boom", status=500, endpoint="GET /v1/orders")
        seen.append(since)
        original(run, counts, partition, since, until)

    monkeypatch.setattr(verify, "_verify_range", fails_after_three)
    first = extract(["orders"], duckdb=db, client=make_client(sandbox), verify_keys=True)
    assert first.stream("orders").status == "warning" and "HTTP 500" in first.stream("orders").message, (first.stream("orders").message, seen)
    state = _query(db, "SELECT state FROM _sqquid_state WHERE stream = 'orders'")[0][0]
    import json
    progress = parse_timestamp(json.loads(state)["verified"]["_"], "verified")
    assert seen[2] < progress  # the third range was committed with its progress
    assert extract(["orders"], duckdb=db, client=make_client(sandbox)).ok  # a run without the check keeps it
    assert json.loads(_query(db, "SELECT state FROM _sqquid_state WHERE stream = 'orders'")[0][0])["verified"]
    gone = sandbox.store.apply_changes({"delete_orders": 3}, seed=11)["delete_orders"]
    seen.clear()
    monkeypatch.setattr(verify, "_verify_range", lambda *a: (seen.append(a[3]), original(*a)))
    second = extract(["orders"], duckdb=db, client=make_client(sandbox), verify_keys=True)
    orders = second.stream("orders")
    assert orders.status == "ok" and "keys verified" in orders.message and "requests" in orders.message, orders.message
    assert min(seen) == progress  # resumed where the first pass stopped
    assert json.loads(_query(db, "SELECT state FROM _sqquid_state WHERE stream = 'orders'")[0][0])["verified"] == {}
    marked = _query(db, "SELECT count(*) FROM orders WHERE _sqquid_deleted_at IS NOT NULL AND id IN (SELECT unnest(?))", [gone])
    assert marked == [(3,)]


@pytest.mark.parametrize("kind", DESTINATIONS)
def test_a_full_refresh_keeps_the_records_marked_gone(make_sandbox, tmp_path, kind):
    """--full-refresh replaces the tables but keeps the rows marked gone upstream (still marked):
    what was deleted, and when it was seen gone, is not lost."""
    sandbox = make_sandbox(orders=300, products=20)
    dest = Destination(kind, tmp_path)
    assert dest.extract(["orders"], sandbox=sandbox).ok
    gone = sandbox.store.apply_changes({"delete_orders": 2}, seed=12)["delete_orders"]
    assert dest.extract(["orders"], sandbox=sandbox).stream("orders").records_deleted == 2
    marked = dest.query("SELECT id, _sqquid_deleted_at FROM orders WHERE _sqquid_deleted_at IS NOT NULL ORDER BY id")
    items = dest.query("SELECT count(*) FROM order_items WHERE _sqquid_deleted_at IS NOT NULL")[0][0]
    assert [r[0] for r in marked] == sorted(gone) and items > 0
    assert dest.extract(["orders"], sandbox=sandbox, full_refresh=True).ok
    assert dest.query("SELECT id, _sqquid_deleted_at FROM orders WHERE _sqquid_deleted_at IS NOT NULL ORDER BY id") == marked
    assert dest.query("SELECT count(*) FROM order_items WHERE _sqquid_deleted_at IS NOT NULL")[0][0] == items
    assert_tables_equal(dest.live_tables(["orders", "order_items"]), expected_tables(sandbox.store), ["orders", "order_items"])


def test_a_quiet_run_scans_coarsely_and_a_change_at_every_point(make_sandbox, tmp_path):
    """The count scan asks no more counts than a partition's size calls for while nothing changed
    behind the windows (here: none beyond the two a run asks anyway); a change found there makes
    every partition of the stream be scanned at its full points, and the change is marked."""
    sandbox = make_sandbox(orders=3000, products=20)
    db = tmp_path / "f.duckdb"
    assert extract(ORDER_STREAMS, duckdb=db, client=make_client(sandbox)).ok
    log: list = []
    quiet = extract(ORDER_STREAMS, duckdb=db, client=_logging_client(sandbox, log))
    assert quiet.ok
    counts = [p for p, _ in log if p.endswith("/count")]
    assert len(counts) == 2 * (1 + 1 + len(SCOPES))  # the window's count and the start date's, a partition
    gone = sandbox.store.apply_changes({"delete_items": 1}, seed=21)["delete_items"]
    log.clear()
    busy = extract(ORDER_STREAMS, duckdb=db, client=_logging_client(sandbox, log))
    assert busy.stream("shipment_items").records_deleted == 1, busy.stream("shipment_items").message
    scopes = {p.get("scope") for q, p in log if q == "/v1/shipmentitems/count"}
    per_scope = [sum(1 for q, p in log if q == "/v1/shipmentitems/count" and p.get("scope") == s) for s in scopes]
    assert len(scopes) == len(SCOPES) and min(per_scope) >= 2 + 7  # every scope at its 8 points
    assert _query(db, "SELECT id FROM shipment_items WHERE _sqquid_deleted_at IS NOT NULL") == [(gone[0],)]
