"""The acceptance test of issue 14, for DuckDB and Parquet: 10 rounds of random upstream changes of
every kind (`sandbox/changes.py`: edits of orders, shipments and variants, shipment items moved
between scopes, deletions of orders, shipments, items, products and buffers, stock changes), then an
incremental run; after each round every table equals the API's data, the records deleted upstream
(and only they) are marked `_sqquid_deleted_at` with their child rows, the runs count what changed,
and at the end `inventory_history` and `buffers_history` hold the sequence of snapshots, one
version a change. The sandbox's clock is its own (`Store.tick`): nothing sleeps."""

from __future__ import annotations

import pytest

from sqquid_etl.sandbox.changes import KINDS
from tests.destination_reader import KINDS as DESTINATIONS, Destination
from tests.expected import assert_tables_equal, expected_tables

DELETED = {"orders": "delete_orders", "shipments": "delete_shipments", "shipment_items": "delete_items",
           "products": "delete_products"}
CHILDREN = [("order_items", "order_id", "orders"), ("product_variants", "parent_id", "products"),
            ("shipment_order_items", "shipment_id", "shipments")]
SNAPSHOTS = {"inventory": "sku, location_external_id, bin, qty_on_hand", "buffers": "id, qty"}


def round_changes(rnd: int) -> dict[str, int]:
    """1 to 3 changes of every kind, varying by round."""
    return {kind: 1 + (rnd + i) % 3 for i, kind in enumerate(KINDS)}


def _check_marks(dest: Destination, gone: dict[str, set]) -> None:
    """Exactly the records deleted upstream are marked, and a child row is marked with its parent."""
    for table, ids in gone.items():
        assert dest.marked(table) == ids, table
    for child, link, parent in CHILDREN:
        odd = dest.query(f"SELECT count(*) FROM {child} c JOIN {parent} p ON p.id = c.{link} "
                         f"WHERE p._sqquid_deleted_at IS NOT NULL AND c._sqquid_deleted_at IS NULL")
        assert odd == [(0,)], child


def _check_counts(result, made: dict[str, list]) -> None:
    """Each stream's run counts the records deleted, and the orders and shipments edited, as made."""
    for stream, kind in DELETED.items():
        assert result.stream(stream).records_deleted == len(made[kind]), (stream, result.stream(stream).message)
    for stream, edits, deletions in (("orders", "edit_orders", "delete_orders"), ("shipments", "edit_shipments", "delete_shipments")):
        assert result.stream(stream).records_changed == len(set(made[edits]) - set(made[deletions])), stream
        assert result.stream(stream).records_new > 0, stream  # the orders and shipments added this round


def _check_history(dest: Destination, states: list[tuple]) -> None:
    """As of each run's start, the history holds that run's snapshot; versions begin and end at
    runs' starts only."""
    for table, columns in SNAPSHOTS.items():
        starts = {s[table][0] for s in states}
        for state in states:
            at, rows = state[table]
            as_of = dest.query(f"SELECT {columns} FROM {table}_history WHERE valid_from <= ? "
                               f"AND (valid_to IS NULL OR valid_to > ?)", [at, at])
            assert sorted(as_of, key=repr) == rows, (table, at)
        bounds = dest.query(f"SELECT DISTINCT valid_from FROM {table}_history UNION "
                            f"SELECT DISTINCT valid_to FROM {table}_history WHERE valid_to IS NOT NULL")
        assert {b[0] for b in bounds} <= starts, table


def _snapshots(dest: Destination, result) -> dict:
    """table -> (when the run started, the snapshot it stored) of inventory and buffers."""
    return {table: (dest.started(result.run_id, table), sorted(dest.query(f"SELECT {columns} FROM {table}"), key=repr))
            for table, columns in SNAPSHOTS.items()}


@pytest.mark.parametrize("kind", DESTINATIONS)
def test_ten_rounds_of_upstream_changes(make_sandbox, tmp_path, kind):
    sandbox = make_sandbox(orders=400, products=80)
    dest = Destination(kind, tmp_path)
    first = dest.extract(sandbox=sandbox)
    assert first.ok
    gone: dict[str, set] = {table: set() for table in DELETED}
    states = [_snapshots(dest, first)]
    for rnd in range(10):
        made = sandbox.store.apply_changes(round_changes(rnd), seed=rnd)
        assert set(made) == set(KINDS)
        sandbox.store.add_orders(4)
        sandbox.store.add_shipments(2)
        result = dest.extract(sandbox=sandbox)
        assert result.ok and all(s.status == "ok" for s in result.streams), [(s.stream, s.message) for s in result.streams]
        live = dest.live_tables()
        assert_tables_equal(live, expected_tables(sandbox.store))
        for table, change in DELETED.items():
            gone[table].update(made[change])
        _check_marks(dest, gone)
        _check_counts(result, made)
        states.append(_snapshots(dest, result))
    _check_history(dest, states)
    assert sum(len(ids) for ids in gone.values()) >= 40  # every round deleted records of each kind
