"""How a stream's pages are read into Arrow: the Arrow types of the schema's column types, and
the read plan (immutable) of a stream, built from its schema and from what was learned about
the values the API really sends. Pure: nothing here holds state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from .definitions import StreamDefinition

ATTRIBUTE_TYPE = pa.list_(pa.struct([("label", pa.string()), ("value", pa.string())]))
ARROW_TYPES: dict[str, pa.DataType] = {
    "integer": pa.int64(),
    "number": pa.float64(),
    "string": pa.string(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "decimal": pa.decimal128(18, 4),
    "string_list": pa.list_(pa.string()),
    "attributes": ATTRIBUTE_TYPE,
    "json": pa.string(),
}

# how a value is read from the JSON before the column's cast: timestamps and decimals as text
READ_TYPES: dict[str, pa.DataType] = {**ARROW_TYPES, "timestamp": pa.string(), "decimal": pa.string()}

# what a conversion raises when values do not fit the type
CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError,
                     OverflowError)
# ... and reading values from records of an unexpected shape besides
ARROW_ERRORS = (*CONVERSION_ERRORS, KeyError, AttributeError)

# the envelope's fields (besides the records) that paginators read; a body is read with them
ENVELOPE_FIELDS = ("total", "limit")

FieldKey = tuple  # (nested path or None for the record itself, source key)


@dataclass(frozen=True)
class ReadPlan:
    """How one page is read: built once per thing learned, never changed, carried by each page.

    A field whose values do not fit its Arrow type is in `python`: read by Python from the
    page's dicts (converted by `columns.convert_column`: only the values that do not fit go
    through `coerce.py`), or, when every value seen was an integer (also in `integers`: a text
    field the API sends as numbers), read by Arrow's JSON reader as an integer and cast.
    A body is read by Arrow's JSON reader (`json_schema`) in either case: the fields read by
    Python (`by_python`) are left out of its schema, and the page's dicts are decoded for them
    at conversion. What is learned lives in `decode.PageDecoder`."""

    struct: pa.StructType  # a page of dicts is read as this
    fields: dict  # FieldKey -> Arrow read type, of the fields read by Arrow
    python: frozenset  # FieldKeys not read by Arrow from dicts (values that do not fit their Arrow type)
    integers: frozenset  # those of them whose values were all integers: Arrow's JSON reader reads them as such
    json_schema: pa.Schema | None  # a body is read as {envelope: list<struct>, total, limit}, or None: not by Arrow
    text_fields: frozenset = frozenset()  # FieldKeys of text and decimal columns: the ones that may be learned

    @property
    def by_python(self) -> frozenset:
        """The fields a page read from its body takes from its dicts (left out of `json_schema`)."""
        return self.python - self.integers

    def knows(self, python: frozenset, integers: frozenset) -> bool:
        return python == self.python and integers == self.integers


def build_plan(stream: StreamDefinition, python: frozenset = frozenset(),
               integers: frozenset = frozenset()) -> ReadPlan | None:
    """The plan of a stream with these fields learned, or None where the fast path cannot apply
    (json columns, a field read with two types, a nested list that is also a field)."""
    top: dict[str, pa.DataType] = {}
    fields: dict[FieldKey, pa.DataType] = {}
    text: set = set()
    other: set = set()
    body_top: dict[str, pa.DataType] = {}  # the same, as Arrow's JSON reader reads a body
    for table in stream.tables:
        child: dict[str, pa.DataType] = {}
        body_child: dict[str, pa.DataType] = {}
        for column in table.columns:
            if column.from_partition:
                continue
            if column.type == "json":
                return None
            path = None if column.from_parent or table.nested_path is None else table.nested_path
            key = (path, column.source)
            read = READ_TYPES[column.type]
            (text if column.type in ("string", "decimal") else other).add(key)
            if key not in python or key in integers:
                (body_top if path is None else body_child)[column.source] = pa.int64() if key in integers else read
            if key in python:
                continue
            if fields.setdefault(key, read) != read:
                return None
            (top if path is None else child)[column.source] = read
        if table.nested_path is not None:
            if table.nested_path in top or table.nested_path in body_top:
                return None
            top[table.nested_path] = pa.list_(pa.struct(list(child.items())))
            body_top[table.nested_path] = pa.list_(pa.struct(list(body_child.items())))
    json_schema = None
    if stream.envelope is not None:
        json_schema = pa.schema([(stream.envelope, pa.list_(pa.struct(list(body_top.items())))),
                                 *((name, pa.int64()) for name in ENVELOPE_FIELDS)])
    return ReadPlan(pa.struct(list(top.items())), fields, python, integers, json_schema, frozenset(text - other))


def misfit_fields(plan: ReadPlan, records: list[dict]) -> tuple[frozenset, frozenset, frozenset] | None:
    """After a page did not fit the plan: the text or decimal fields holding numbers (the API's
    usual inconsistency, learned for good), those of them whose values are all integers (read
    as such by Arrow), and the other fields whose values do not fit their Arrow type (read by
    Python while they drift). None when no field is to blame (records of an unexpected shape:
    the record-by-record path names it)."""
    learn, integers, drifted = set(), set(), set()
    read = {**plan.fields, **{key: pa.int64() for key in plan.integers}}
    try:
        for (path, source), kind in read.items():
            values = field_values(records, path, source)
            if _fit(values, kind):
                continue
            if (path, source) in plan.text_fields and _numbers_or_text(values):
                learn.add((path, source))
                if _all_integers(values):
                    integers.add((path, source))
            else:
                drifted.add((path, source))
    except Exception:  # noqa: BLE001 - records of an unexpected shape: the slow path says
        return None
    if not learn and not drifted:
        return None
    return frozenset(learn), frozenset(integers), frozenset(drifted)


_INT64 = (-(2**63), 2**63 - 1)


def _fit(values: list, kind: pa.DataType) -> bool:
    """Whether Arrow reads every value as `kind` exactly (as its JSON reader does: no number
    as text, no 2.0 as an integer)."""
    if kind == pa.string():
        return all(type(v) is str for v in values if v is not None)
    if kind == pa.int64():
        low, high = _INT64
        return all(type(v) is int and low <= v <= high for v in values if v is not None)
    if kind == pa.float64():
        return all(type(v) is float or type(v) is int for v in values if v is not None)
    if kind == pa.bool_():
        return all(type(v) is bool for v in values if v is not None)
    try:
        pa.array(values, kind)
    except ARROW_ERRORS:
        return False
    return True


def field_values(records: list[dict], path: str | None, source: str) -> list:
    """The values of one field: of each record (`path` None), or of each item of its `path` list."""
    if path is None:
        return [r.get(source) for r in records]
    return [item.get(source) for r in records for item in (r.get(path) or [])]


def _numbers_or_text(values: list) -> bool:
    """Text, numbers and nulls only (the API's usual inconsistency in text and decimal fields)."""
    return all(v is None or type(v) in (str, int, float) for v in values)


def _all_integers(values: list) -> bool:
    """Integers (no booleans, no text), at least one, nulls aside: what Arrow reads as int64 and
    casts to the same text Python would write."""
    present = [v for v in values if v is not None]
    return bool(present) and all(type(v) is int for v in present)
