"""Drifted pages read by Arrow (issue #12 item 8): the fields a decoder learns to read from a
body (decimals holding numbers and text, ids sent as text, undocumented fields of one scalar
type) give, page after page, exactly what the reading of the page's dicts gives: the tables, the
values coerced, the records quarantined and the undocumented fields with their types and texts,
also when a learned field changes type."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from sqquid_etl.decode import PageDecoder
from sqquid_etl.definitions import load_definitions
from sqquid_etl import records
from sqquid_etl.records import _python_column as python_column, page_tables, page_to_tables

ORDER = {"id": 1, "created_at": "2024-01-01T00:00:00.000Z", "total": "1.50",
         "order_items": [{"id": 7, "qty": 1, "price": "2.00"}]}


def order(n: int, **fields) -> dict:
    return {**ORDER, "id": n, **fields}


def extras_of(tables) -> list[tuple]:
    out = []
    for e in tables.extras:
        values = e.values.to_pylist() if isinstance(e.values, pa.Array) else list(e.values)
        out.append((e.table, e.field, e.column, e.type, values, e.record))
    return out


def outcome(tables) -> tuple:
    return ({n: t.to_pylist() for n, t in tables.items()}, tables.records, tables.coerced,
            [(r.key, r.field, r.reason) for r in tables.rejected], extras_of(tables))


def read_pages(pages: list[list[dict]]) -> PageDecoder:
    """Each page through one decoder (what it learned carried to the next), its outcome that of
    its dicts; the decoder, with the plan each page was read with (`plans`)."""
    stream = load_definitions()["orders"]
    decoder = PageDecoder(stream)
    decoder.plans = []
    for n, records in enumerate(pages):
        page = decoder.decode(json.dumps({"Orders": records}).encode())
        assert page.read_by_arrow, n
        assert outcome(page_tables(stream, page)) == outcome(page_to_tables(stream, records)), n
        decoder.plans.append(page.plan)
    return decoder


def test_undocumented_scalars_are_learned_and_read_by_arrow():
    pages = [[order(1, id="1", note="a", rank=3, flag=True, gone=None, meta={"k": 1}),
              order(2, note="b", rank=4, flag=False, meta=[1])],
             [order(3, note="c", rank=5), order(4, flag=True, gone=None)],
             [order(5, id="5", note=None, rank=None, meta={"v": 1.5, "w": None})]]
    decoder = read_pages(pages)
    plan = decoder.plan
    assert plan.extras == {(None, "note"): pa.string(), (None, "rank"): pa.int64(), (None, "flag"): pa.bool_(),
                           (None, "gone"): pa.null()}
    assert plan.dict_extras == {(None, "meta")}


def test_an_undocumented_scalar_that_changes_type_or_becomes_an_object_is_left_to_the_dicts():
    pages = [[order(1, id="1", rank=3, label="x", empty=None)],
             [order(2, rank="three", label="y", empty=None)],   # text where an integer was
             [order(3, rank=4, label={"x": 1}, empty=7)],       # an object where text was; a value where only nulls were
             [order(4, rank=5, label="z", empty=8)],
             [order(5, rank=True, empty="8")]]
    decoder = read_pages(pages)
    assert {(None, "rank"), (None, "label"), (None, "empty")} <= decoder.plan.dict_extras


def test_undocumented_fields_of_child_records_are_read_by_arrow_too():
    item = {"id": 7, "qty": 1, "price": 2.5, "colour": "red", "size": 3}
    pages = [[order(1, order_items=[item, {**item, "id": "8", "colour": None}])],
             [order(2, order_items=[{**item, "size": 4}]), order(3, order_items=[])],
             [order(4, order_items=[{**item, "size": "L"}])]]
    decoder = read_pages(pages)
    assert decoder.plan.extras.get(("order_items", "colour")) == pa.string()
    assert ("order_items", "size") in decoder.plan.dict_extras


def test_an_object_holding_a_nan_keeps_its_json_text():
    """orjson writes a NaN as null: a page whose body holds one (json.loads read it) is written by the JSON encoder."""
    stream = load_definitions()["orders"]
    records = [order(1, id="1", meta={"v": float("nan")}), order(2, meta={"v": None})]
    tables = page_tables(stream, PageDecoder(stream).decode(json.dumps({"Orders": records}).encode()))
    assert [e.values for e in tables.extras if e.field == "meta"] == [['{"v":NaN}', '{"v":null}']]


def test_decimals_and_ids_of_numbers_and_text_are_read_as_decimals_and_counted():
    pages = [[order(1, id="1", total=24.99, tax=3), order(2, total="1.50", tax="0.25", order_items=[{"id": "9", "qty": 2.0}])],
             [order(3, id="3", total=5, tax=0.1), order(4, total=None, order_items=[{"id": 10, "qty": "3"}])],
             # past what a double holds: the column is read from the dicts, as the record-by-record path does
             [order(5, id="5", total=12345678901.25), order(6, id=5.084710622239126e+16)],
             # lossy: quarantined on either path
             [order(7, id="7", total="N/A"), order(8, id="abc"), order(9, id="9", total=1.23456)]]
    decoder = read_pages(pages)
    assert decoder.plans[1].lenient == {(None, "id"), (None, "total"), (None, "tax"), ("order_items", "id"),
                                        ("order_items", "qty")}
    assert (None, "total") in decoder.plan.by_python and (None, "tax") in decoder.plan.lenient  # "N/A": read by Python meanwhile


def test_probes_come_less_often_while_the_drift_lasts(monkeypatch):
    """While every page drifts, the page tried without the drift (a probe) comes after 8, then
    16, 32, ... pages (up to PROBE_EVERY_MOST); a probe that reads its page forgets the drift and
    the gap is 8 again."""
    from sqquid_etl import decode

    stream = load_definitions()["orders"]
    decoder = PageDecoder(stream)
    probes = []
    read = decode._read_body

    def counted(body, plan, envelope):
        if plan is not None and plan is decoder._base and decoder._base is not decoder._plan:
            probes.append(pages)
        return read(body, plan, envelope)

    monkeypatch.setattr(decode, "_read_body", counted)
    drifted = json.dumps({"Orders": [order(1, id="1"), order(2)]}).encode()
    pages = 0
    for pages in range(1, 200):
        decoder.decode(drifted)
    assert probes == [8, 24, 56, 120, 184]
    clean = json.dumps({"Orders": [order(3)]}).encode()
    for pages in range(200, 300):
        decoder.decode(clean)
    assert probes[5] == 248 and len(probes) == 6 and decoder._probe_gap == decode.PROBE_EVERY  # read: drift forgotten


def test_a_drifted_pages_dicts_hold_integers_past_64_bits_exactly():
    """The dicts of a drifted page (msgspec) hold an integer past 64 bits as json.loads does (no
    float): its text in an undocumented object or as an undocumented value is exact."""
    big = 2**70
    pages = [[order(1, id="1", meta={"n": big}, huge=big), order(2, meta=[big, 1.5], huge=3)]]
    stream = load_definitions()["orders"]
    read_pages(pages)
    tables = page_tables(stream, PageDecoder(stream).decode(json.dumps({"Orders": pages[0]}).encode()))
    texts = {e.field: (e.type, list(e.values)) for e in tables.extras}
    assert texts == {"meta": ("JSON", [f'{{"n":{big}}}', f"[{big},1.5]"]), "huge": ("VARCHAR", [str(big), "3"])}


def test_a_body_is_decoded_exactly_or_by_json_loads():
    """msgspec decodes what it reads exactly (then the values hold no NaN); a NaN, a number past a
    double or a lone surrogate go to json.loads."""
    from sqquid_etl.decode import _decoded

    pytest.importorskip("msgspec")  # (a venv installed before it became a dependency: json.loads reads every body)
    assert _decoded(b'{"a": 123456789012345678901234, "b": [0.1, -0]}') == (
        {"a": 123456789012345678901234, "b": [0.1, 0]}, True)
    values, finite = _decoded(b'{"a": NaN, "b": 1e400, "c": "\\ud800"}')
    assert not finite and values["a"] != values["a"] and values["b"] == float("inf") and values["c"] == "\ud800"


def test_text_and_integers_past_a_double_beside_small_floats_stay_read_by_arrow(monkeypatch):
    """Only a float past `plan.LENIENT_FLOATS` sends a decimal column to the dicts: text and
    integers past it read the same by Arrow (here beside floats within it), page after page."""
    pages = [[order(1, id="1", total=24.99), order(2, total="1.50")],
             [order(3, id="3", total="123456789012.50"), order(4, total=2.5), order(5, total=99999999999999)],
             [order(6, id="6", total=12345678901.25), order(7, total="3.00")]]
    decoder = read_pages(pages)
    assert (None, "total") in decoder.plans[1].lenient
    stream, by_python = load_definitions()["orders"], []
    monkeypatch.setattr(records, "_python_column", lambda values, column: by_python.append(column.name) or python_column(values, column))
    fresh = PageDecoder(stream)
    for records_ in pages:
        by_python.clear()
        page_tables(stream, fresh.decode(json.dumps({"Orders": records_}).encode()))
        if records_ is pages[1]:
            assert "total" not in by_python


def test_without_msgspec_orjson_decodes_a_body_without_long_integers(monkeypatch):
    """An environment made before msgspec became a dependency: orjson decodes the dicts, but a body
    holding an integer of 19 digits or more (which it would read as a float) goes to json.loads."""
    import sys

    from sqquid_etl import decode

    monkeypatch.setitem(sys.modules, "msgspec", None)  # (its import fails)
    decode._fast_decoder.cache_clear()
    try:
        assert decode._decoded(b'{"a": [1, 2.5]}') == ({"a": [1, 2.5]}, True)
        assert decode._decoded(b'{"a": 1234567890123456789012}') == ({"a": 1234567890123456789012}, False)
    finally:
        decode._fast_decoder.cache_clear()


def test_a_decimal_read_by_arrow_past_its_precision_is_quarantined_as_the_dicts_say():
    """Arrow's JSON reader checks a decimal's digits before scaling it: "100000000000000" (15
    integer digits) is read into decimal128(18, 4) past its 18 digits. A field read as a decimal
    (`plan.lenient`: numbers and text) holding one is converted as the record-by-record path
    converts it: its record quarantined, not stored past the column's precision."""
    item = {"id": 7, "qty": 1, "price": "2.00"}
    pages = [[order(1, total=24.99, order_items=[{**item, "price": 2.5}]), order(2, total="1.50")],
             [order(3, total="100000000000000"), order(4, total="2.00")],
             [order(5, total=999999999999999999), order(6, total=1.5)],
             [order(7, order_items=[{**item, "price": "123456789012345.5"}, item]), order(8, total=-99999999999999.9999)]]
    decoder = read_pages(pages)
    assert {(None, "total"), ("order_items", "price")} <= decoder.plans[1].lenient
