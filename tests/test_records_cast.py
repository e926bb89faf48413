"""A page read by Arrow has its columns of text of one other type (a page of orders: its decimals)
cast together, once a type (`records._cast_together`): the same values, coerced counts and
quarantined records as a cast a column."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from sqquid_etl import records
from sqquid_etl.decode import PageDecoder
from sqquid_etl.definitions import load_definitions

ORDERS = load_definitions()["orders"]


def _order(i: int, price: str = "3.50") -> dict:
    return {"id": i, "external_id": f"e{i}", "created_at": "2024-01-01T00:00:00Z", "total": f"{i}.25", "tax": "0.10",
            "shipping_charge": "4", "customer_email": f"c{i}@x",
            "order_items": [{"id": 10 * i + k, "sku": f"s{k}", "qty": k, "price": price, "discount": "0",
                             "tax": "0.01", "total": "7.0001", "store_id": "s1"} for k in range(2)]}


def _page(orders: list[dict]):
    decoder = PageDecoder(ORDERS)
    decoder.decode(json.dumps({"Orders": [_order(0)]}).encode())  # (the plan learned on a first page)
    page = decoder.decode(json.dumps({"Orders": orders}).encode())
    assert page.array is not None
    return page


def _converted(page, together: bool, monkeypatch):
    with monkeypatch.context() as m:
        if not together:
            m.setattr(records, "_cast_together", lambda *args: {})  # a cast a column
        casts = []
        real = records.pc.cast
        m.setattr(records.pc, "cast", lambda values, target: (casts.append(target), real(values, target))[1])
        return records.page_tables(ORDERS, page), casts


def test_a_pages_decimals_are_cast_once_a_table(monkeypatch):
    page = _page([_order(i) for i in range(1, 6)])
    out, casts = _converted(page, True, monkeypatch)
    alone, casts_alone = _converted(page, False, monkeypatch)
    decimals = [t for t in casts if pa.types.is_decimal(t)]
    assert len(decimals) == 2 and len([t for t in casts_alone if pa.types.is_decimal(t)]) == 7  # orders 3, items 4
    assert out.keys() == alone.keys() and all(out[name].equals(alone[name]) for name in out)
    assert out["order_items"]["price"].to_pylist()[0] == alone["order_items"]["price"].to_pylist()[0]
    assert str(out["orders"]["total"][1]) == "2.2500" and (out.coerced, out.rejected) == (alone.coerced, alone.rejected)


@pytest.mark.parametrize("price", ["3.123456", "abc", " 3.5", "1e2"])
def test_a_value_one_cast_refuses_converts_the_page_as_a_cast_a_column_does(price, monkeypatch):
    page = _page([_order(1), _order(2, price=price), _order(3)])
    out, _ = _converted(page, True, monkeypatch)
    alone, _ = _converted(page, False, monkeypatch)
    assert out.keys() == alone.keys() and all(out[name].equals(alone[name]) for name in out)
    assert (out.records, out.coerced, out.rejected) == (alone.records, alone.coerced, alone.rejected)
