"""A drifted page's records as typed rows (issue #12 item 8, `typed_rows.py`, `page_rows.py`):
where a page read by Arrow still needs values from its records, only the fields its plan takes
from them are decoded, and a field the plan does not know sends the page to its dicts. Each page
gives exactly what its dicts give: tables, values coerced, undocumented fields with their types,
texts and first records (a field present only as null included)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from sqquid_etl import typed_rows
from sqquid_etl.decode import PageDecoder
from sqquid_etl.definitions import load_definitions
from sqquid_etl.page_rows import PageRows
from sqquid_etl.records import page_tables

ITEM = {"id": 7, "qty": 1, "sku": "S-1", "price": "2.00", "store_id": 4}


def order(n: int, items: int = 2, **fields) -> dict:
    return {"id": n, "created_at": "2024-01-01T00:00:00.000Z", "total": "1.50", "shipping_city": "Miami",
            "order_items": [{**ITEM, "id": n * 10 + i, "store_id": "4" if i else 4, "tags": ["a"] if i else {"x": n}}
                            for i in range(items)], **fields}


def outcome(tables) -> tuple:
    extras = [(e.table, e.field, e.column, e.type, e.values.to_pylist() if isinstance(e.values, pa.Array) else list(e.values),
               e.record, list(e.rows)) for e in tables.extras]
    return ({n: t.to_pylist() for n, t in tables.items()}, tables.records, tables.coerced,
            [(r.key, r.field, r.reason) for r in tables.rejected], extras)


@pytest.fixture
def stream():
    return load_definitions()["orders"]


def through(stream, decoder: PageDecoder, records: list[dict], monkeypatch) -> tuple:
    """A page decoded from its body and converted: (typed rows used, its outcome), the outcome
    asserted equal to that of the same page converted from its dicts."""
    page = decoder.decode(json.dumps({"Orders": records}).encode())
    rows = PageRows(stream, page)
    rows.rows(None)
    typed = rows.typed is not None
    got = outcome(page_tables(stream, page))
    with monkeypatch.context() as m:
        m.setattr(typed_rows, "row_types", lambda *a: None)  # (page_rows imports it when a page needs it)
        assert outcome(page_tables(stream, page)) == got
    return typed, got


def learned(stream, monkeypatch) -> PageDecoder:
    """A decoder that learned the drift of the pages below (ids as text, prices as numbers,
    undocumented scalars and objects, in records and child records)."""
    decoder = PageDecoder(stream)
    through(stream, decoder, [order(1, id="1", total=2.5, rank=3, note=None, meta={"a": [1, 2]}),
                              order(2, note="x", score=0.5)], monkeypatch)
    return decoder


def test_a_drifted_pages_rows_are_typed_and_give_what_its_dicts_give(stream, monkeypatch):
    decoder = learned(stream, monkeypatch)
    assert decoder.plan.reads_dicts
    typed, got = through(stream, decoder, [order(3, id="3", total=9, rank=4, meta={"b": "é"}),
                                           order(4, note=None, score=1.25, total="3.10"),
                                           order(5, items=0, rank=None, meta=[1, {"c": None}])], monkeypatch)
    assert typed
    tables, records, coerced, rejected, extras = got
    assert records == 3 and rejected == [] and coerced > 0
    found = {(table, field): (kind, values, record) for table, field, _, kind, values, record, _ in extras}
    assert found[("orders", "rank")] == ("BIGINT", ["4", None, None], "3")
    assert found[("orders", "note")] == ("NULL", [None, None, None], "4")  # present only as null: its first record
    assert found[("orders", "meta")] == ("JSON", ['{"b":"é"}', None, '[1,{"c":null}]'], "3")
    assert found[("orders", "score")] == ("DOUBLE", [None, "1.25", None], "4")
    assert ("order_items", "tags") in found and found[("order_items", "tags")][0] == "JSON"
    assert [row["store_id"] for row in tables["order_items"]] == ["4", "4", "4", "4"]


def test_a_field_the_plan_does_not_know_sends_the_page_to_its_dicts(stream, monkeypatch):
    decoder = learned(stream, monkeypatch)
    for records in ([order(6, id="6", brand_new={"k": 1})],
                    [order(7, id="7", order_items=[{**ITEM, "fresh": True}])]):
        typed, got = through(stream, decoder, records, monkeypatch)
        assert not typed
        assert {"brand_new", "fresh"} & {field for _, field, *_ in got[4]}
    typed, _ = through(stream, decoder, [order(8, id="8")], monkeypatch)
    assert typed == (decoder.plan is not None and not typed_rows.row_types(stream, decoder.plan).refused)


@pytest.mark.parametrize("body", [
    {"Orders": [{"id": "1", "created_at": "2024-01-01T00:00:00.000Z", "order_items": None, "rank": 1}]},
    {"Orders": [{"id": "1", "created_at": "2024-01-01T00:00:00.000Z", "rank": 1}], "total": 1, "next": "x"},
])
def test_records_of_other_shapes_read_alike(stream, monkeypatch, body):
    decoder = learned(stream, monkeypatch)
    typed, got = through(stream, decoder, body["Orders"], monkeypatch)
    assert got[1] == 1 and got[3] == []


def test_row_types_are_built_once_a_plan_and_dropped_with_it(stream):
    import gc

    from sqquid_etl import typed_rows
    from sqquid_etl.plan import Learned, build_plan

    plan = build_plan(stream, Learned(extras={(None, "rank"): pa.int64()}, dict_extras=frozenset({(None, "meta")})))
    types = typed_rows.row_types(stream, plan)
    assert types is typed_rows.row_types(stream, plan) and id(plan) in typed_rows._CACHE
    assert types.undocumented[None] == ["meta", "rank"]
    del plan
    gc.collect()
    assert all(t is not types for t in typed_rows._CACHE.values())


def test_an_undocumented_fields_texts_are_made_of_the_rows_holding_it():
    unset = typed_rows.UNSET
    assert typed_rows.held_texts([unset, {"a": 1}, None, unset, [2]]) == ("JSON", [None, '{"a":1}', None, None, "[2]"])
    assert typed_rows.held_texts([unset, 3, unset, True]) == ("VARCHAR", [None, "3", None, "true"])
    assert typed_rows.held_texts([1.5, None, 2]) == ("DOUBLE", ["1.5", None, "2"])  # held by every row
    assert typed_rows.held_texts([unset, None]) == ("NULL", [None, None])
