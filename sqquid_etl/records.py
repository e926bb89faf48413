"""Turn one page of API records into Arrow tables, typed by the stream's schema (never guessed)."""

from __future__ import annotations

import array
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from .definitions import Column, StreamDefinition, TableSpec
from .errors import SchemaError

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


def arrow_schema(table: TableSpec) -> pa.Schema:
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.type], nullable=c.nullable) for c in table.columns])


class PageConverter:
    """Turns the pages of one stream into Arrow tables. Holds the plan of the fast paths, which
    read a whole page as one Arrow struct array typed by the schema and take each table's
    columns from it column by column (children through the list offsets):

    - `decode` reads a response body with Arrow's JSON reader straight into that struct array
      (in C++, without the GIL, no Python object per value) when the plan allows it; the fetch
      threads call it;
    - `convert` takes such a page, or a page already decoded into dicts (read by Arrow in one
      call), and gives the tables.

    A field whose values do not fit its Arrow type (the API sends a number where the schema says
    text) is marked, and from then on read by Python from dicts, or by Arrow as an integer when
    every value seen was one. A page that still does not fit goes through the record-by-record
    path, which converts what can be and names the record and field of what cannot."""

    def __init__(self, stream: StreamDefinition):
        self.stream = stream
        self._plan = _build_plan(stream, frozenset(), frozenset())

    def decode(self, body: bytes, meta: tuple[str, ...] = ()) -> Any:
        """A list response: an `ArrowPage` when Arrow reads it whole with the current plan, else
        the body decoded into Python objects. Raises ValueError when the body is not JSON."""
        plan = self._plan
        if plan is None or plan.json_schema is None or self.stream.envelope is None:
            return json.loads(body)
        page = _read_json_page(body, plan, self.stream.envelope, meta)
        if page is not None:
            return page
        decoded = json.loads(body)
        # numbers where the schema says text (the API's usual inconsistency): learn them from this
        # page and read it by Arrow again, reading them as integers
        integers = _integer_text_fields(plan, decoded.get(self.stream.envelope) if isinstance(decoded, dict) else None)
        if integers:
            plan = self._plan = _build_plan(self.stream, plan.python | integers, plan.integers | integers)
            if plan is not None and plan.json_schema is not None:
                page = _read_json_page(body, plan, self.stream.envelope, meta)
                if page is not None:
                    return page
        return decoded

    def convert(self, records: "list[dict] | ArrowPage", partition_value: str | None = None) -> dict[str, pa.Table]:
        """One Arrow table per destination table of the stream, for one page of records."""
        if isinstance(records, ArrowPage):
            try:
                return _fast_page(self.stream, records.plan, records.array, None, partition_value)
            except _FAST_ERRORS:
                records = page_records(self.stream, json.loads(records.body))
        for _ in range(2):
            if self._plan is None:
                break
            try:
                page = pa.array(records, type=self._plan.struct)
                return _fast_page(self.stream, self._plan, page, records, partition_value)
            except _FAST_ERRORS:
                self._plan = _replan(self.stream, self._plan, records)
        return _slow_page(self.stream, records, partition_value)


class ArrowPage:
    """A page read by Arrow from the response body: its records as one struct array, the
    envelope's other fields asked for (`meta`, e.g. an offset list's `total`), and the body
    itself, for the record-by-record path should the fast path refuse the page."""

    __slots__ = ("array", "meta", "body", "plan")

    def __init__(self, array: pa.StructArray, meta: dict[str, Any], body: bytes, plan: "_Plan"):
        self.array, self.meta, self.body, self.plan = array, meta, body, plan

    def __len__(self) -> int:
        return len(self.array)


def page_records(stream: StreamDefinition, body: Any) -> list[dict]:
    """The records of a decoded list response, from its envelope."""
    if stream.envelope is None:
        records = body
    elif isinstance(body, dict) and stream.envelope in body:
        records = body[stream.envelope]
    else:
        found = list(body)[:5] if isinstance(body, dict) else type(body).__name__
        raise SchemaError(f"stream {stream.name!r}: GET {stream.path} answered without the {stream.envelope!r} envelope (got {found})")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise SchemaError(f"stream {stream.name!r}: GET {stream.path} envelope {stream.envelope!r} is not a list of records")
    return records


def page_to_tables(
    stream: StreamDefinition, records: list[dict], partition_value: str | None = None
) -> dict[str, pa.Table]:
    """One page converted on its own (a converter for a single page; runs keep one converter)."""
    return PageConverter(stream).convert(records, partition_value)


def _slow_page(stream: StreamDefinition, records: list[dict], partition_value: str | None) -> dict[str, pa.Table]:
    out: dict[str, pa.Table] = {}
    for table in stream.tables:
        if table.nested_path is None:
            rows, parents = records, records
        else:
            rows, parents = [], []
            for record in records:
                items = record.get(table.nested_path) or []
                if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                    found = type(items).__name__ if not isinstance(items, list) else "a list holding a non-object"
                    raise SchemaError(
                        f"stream {stream.name!r}: field {table.nested_path!r} of record "
                        f"{_describe(record)} is {found}, expected a list of objects"
                    )
                rows.extend(items)
                parents.extend([record] * len(items))
        arrays = []
        for column in table.columns:
            if column.from_partition:
                values = [partition_value] * len(rows)
            elif column.from_parent:
                values = [p.get(column.source) for p in parents]
            else:
                values = [r.get(column.source) for r in rows]
            if column.default is not None:
                values = [column.default if v is None else v for v in values]
            arrays.append(_to_array(values, column, stream, table, rows))
        out[table.name] = pa.Table.from_arrays(arrays, schema=arrow_schema(table))
    return out


# -- fast path: one struct conversion a page --------------------------------------------------

class _FastPathRefused(Exception):
    """The page needs the record-by-record path (which finds and names the bad value)."""


_FAST_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError,
                OverflowError, KeyError, AttributeError, _FastPathRefused)

# how a value is read from the JSON before the column's cast: timestamps and decimals as text
_READ_TYPES: dict[str, pa.DataType] = {**ARROW_TYPES, "timestamp": pa.string(), "decimal": pa.string()}

FieldKey = tuple  # (nested path or None for the record itself, source key)


@dataclass(frozen=True)
class _Plan:
    struct: pa.StructType  # a page of dicts is read as this
    fields: dict  # FieldKey -> Arrow read type, of the fields read by Arrow
    python: frozenset  # FieldKeys read by Python from dicts (values that do not fit their Arrow type)
    integers: frozenset  # those of them whose values were all integers: Arrow's JSON reader reads them as such
    json_schema: pa.Schema | None  # a body is read as {envelope: list<this struct>}, or None: not by Arrow


def _build_plan(stream: StreamDefinition, python: frozenset, integers: frozenset) -> _Plan | None:
    """The struct type a page is read as, or None where the fast path cannot apply (json
    columns, a field read with two types, a nested list that is also a field)."""
    top: dict[str, pa.DataType] = {}
    fields: dict[FieldKey, pa.DataType] = {}
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
            read = _READ_TYPES[column.type]
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
    if python <= integers and stream.envelope is not None:
        json_schema = pa.schema([(stream.envelope, pa.list_(pa.struct(list(body_top.items()))))])
    return _Plan(pa.struct(list(top.items())), fields, python, integers, json_schema)


def _replan(stream: StreamDefinition, plan: _Plan, records: list[dict]) -> _Plan | None:
    """After a page did not fit: mark the fields whose values do not fit their Arrow type."""
    bad, integers = set(), set()
    for (path, source), read in plan.fields.items():
        values: list | None = None
        try:
            values = _values(records, path, source)
            pa.array(values, read)
        except _FAST_ERRORS:
            bad.add((path, source))
            if values is not None and read == pa.string() and _all_integers(values):
                integers.add((path, source))
        except Exception:  # noqa: BLE001 - records of an unexpected shape: the slow path says
            return None
    if not bad:
        return None
    return _build_plan(stream, plan.python | bad, plan.integers | integers)


def _integer_text_fields(plan: _Plan, records: Any) -> frozenset:
    """The text fields whose values on this page are integers (and none text)."""
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        return frozenset()
    found = set()
    for (path, source), read in plan.fields.items():
        if read != pa.string():
            continue
        try:
            values = _values(records, path, source)
        except (TypeError, AttributeError):
            return frozenset()  # records of an unexpected shape: the record-by-record path says
        if _all_integers(values):
            found.add((path, source))
    return frozenset(found)


def _all_integers(values: list) -> bool:
    """Integers (no booleans, no text), at least one, nulls aside: what Arrow reads as int64 and
    casts to the same text Python would write."""
    present = [v for v in values if v is not None]
    return bool(present) and all(type(v) is int for v in present)


def _read_json_page(body: bytes, plan: _Plan, envelope: str, meta: tuple[str, ...]) -> ArrowPage | None:
    """The page read by Arrow's JSON reader, or None where it cannot be (not exactly one JSON
    object, a value of another type than the plan's, no envelope, ...: decoded by Python then)."""
    schema = plan.json_schema
    assert schema is not None
    for name in meta:
        schema = schema.append(pa.field(name, pa.int64()))
    text = body if b"\n" not in body and b"\r" not in body else body.replace(b"\n", b" ").replace(b"\r", b" ")
    try:
        table = pa_json.read_json(
            pa.BufferReader(text),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=max(1 << 16, len(text) + 1)),
            parse_options=pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if table.num_rows != 1:
        return None
    lists = table.column(envelope).combine_chunks()
    if lists.null_count:
        return None
    values = {name: table.column(name)[0].as_py() for name in meta}
    return ArrowPage(lists.flatten(), {k: v for k, v in values.items() if v is not None}, body, plan)


def _values(records: list[dict], path: str | None, source: str) -> list:
    if path is None:
        return [r.get(source) for r in records]
    return [item.get(source) for r in records for item in (r.get(path) or [])]


def _fast_page(stream: StreamDefinition, plan: _Plan, page: pa.StructArray, records: list[dict] | None,
               partition_value: str | None) -> dict[str, pa.Table]:
    """The tables of a page read by Arrow: from dicts (`records` given: the fields of
    `plan.python` are read from them) or from the body (every field is in `page`)."""
    if page.null_count:
        raise _FastPathRefused()  # a record that is not an object: the slow path names it
    out: dict[str, pa.Table] = {}
    for table in stream.tables:
        path = table.nested_path
        if path is None:
            rows = page
            index = None
        else:
            lists = page.field(path)
            rows = lists.flatten()
            index = pc.list_parent_indices(lists)
        child_records: list[dict] | None = None
        arrays = []
        n = len(rows)
        for column in table.columns:
            if column.from_partition:
                arrays.append(_finish(string_constant(partition_value, n), column))
                continue
            key = (None if column.from_parent or path is None else path, column.source)
            if key in plan.python and records is not None:
                if path is None or column.from_parent:
                    array = _python_column(_values(records, None, column.source), column, stream, table, records)
                    arrays.append(array if index is None or not column.from_parent else array.take(index))
                else:
                    if child_records is None:
                        child_records = [item for r in records for item in (r.get(path) or [])]
                    arrays.append(_python_column([item.get(column.source) for item in child_records], column,
                                                 stream, table, child_records))
                continue
            if column.from_parent and index is not None:
                arrays.append(_finish(page.field(column.source).take(index), column))  # only the columns needed
            else:
                arrays.append(_finish(rows.field(column.source), column))
        out[table.name] = pa.Table.from_arrays(arrays, schema=arrow_schema(table))
    return out


def column_max(values: pa.Array | pa.ChunkedArray) -> Any:
    """The largest value of a column as a Python object (None when all are null). Timestamps
    are converted here: their `as_py` makes pyarrow import pandas."""
    largest = pc.max(values)
    if not pa.types.is_timestamp(largest.type):
        return largest.as_py()
    if not largest.is_valid:
        return None
    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[largest.type.unit]
    seconds, fraction = divmod(largest.value, per_second)
    moment = _EPOCH + timedelta(seconds=seconds, microseconds=fraction * 1_000_000 // per_second)
    return moment if largest.type.tz else moment.replace(tzinfo=None)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def string_constant(value: str | None, n: int) -> pa.Array:
    """`n` times the same text (or null), built from buffers: `pa.array` on Python values makes
    pyarrow import pandas (~50 MB), which an extract otherwise never needs."""
    if value is None:
        return pa.nulls(n, pa.string())
    data = value.encode()
    offsets = array.array("i", range(0, (n + 1) * len(data), len(data))) if data else array.array("i", [0] * (n + 1))
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data * n)])


def _python_column(values: list, column: Column, stream: StreamDefinition, table: TableSpec, rows: list) -> pa.Array:
    if column.default is not None:
        values = [column.default if v is None else v for v in values]
    return _to_array(values, column, stream, table, rows)


def _finish(values: pa.Array, column: Column) -> pa.Array:
    target = ARROW_TYPES[column.type]
    if values.type != target:
        values = pc.cast(values, target)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if column.default is not None and values.null_count:
        values = pc.coalesce(values, string_constant(column.default, len(values)))
    if not column.nullable and values.null_count:
        raise _FastPathRefused()  # the slow path names the record
    return values


def _to_array(values: list, column: Column, stream: StreamDefinition, table: TableSpec, rows: list[dict]) -> pa.Array:
    target = ARROW_TYPES[column.type]
    try:
        array = _convert(values, column.type, target)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError, OverflowError):
        _raise_for_bad_value(values, column, stream, table, rows)
        raise  # pragma: no cover - _raise_for_bad_value always raises
    if not column.nullable and array.null_count:
        index = next(i for i, v in enumerate(array.to_pylist()) if v is None)
        raise SchemaError(
            f"stream {stream.name!r}, table {table.name!r}: key column {column.name!r} is null in record "
            f"{_describe(rows[index])}"
        )
    return array


def _convert(values: list, type_name: str, target: pa.DataType) -> pa.Array:
    if type_name == "timestamp":
        return pc.cast(pa.array(values, pa.string()), target)
    if type_name == "decimal":
        try:
            return pc.cast(pa.array(values, pa.string()), target)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return pc.cast(pa.array([_decimal_text(v) for v in values], pa.string()), target)
    if type_name == "json":
        return pa.array([None if v is None else json.dumps(v, ensure_ascii=False, sort_keys=True) for v in values], target)
    if type_name == "string":
        try:
            return pa.array(values, target)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return pa.array([_scalar_text(v) for v in values], target)
    if type_name == "attributes":
        try:
            return pa.array(values, target)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return pa.array([_attribute_list(v) for v in values], target)
    if type_name == "integer":
        if any(isinstance(v, bool) for v in values):
            raise TypeError("boolean is not an integer")
        return pa.array(values, target)
    return pa.array(values, target)


def _decimal_text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise TypeError("boolean is not a decimal")
    if isinstance(value, (int, float)):
        return format(Decimal(repr(value)), "f")
    raise TypeError(f"{type(value).__name__} is not a decimal")


def _scalar_text(value: Any) -> Any:
    """Numbers where the schema says text (the API is not consistent) are kept as their text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a string")


def _attribute_list(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, list):
        raise TypeError("attributes must be a list of {label, value}")
    out = []
    for item in value:
        if not isinstance(item, dict):
            raise TypeError("attributes must be a list of {label, value}")
        out.append({"label": _scalar_text(item.get("label")), "value": _scalar_text(item.get("value"))})
    return out


def _raise_for_bad_value(values: list, column: Column, stream: StreamDefinition, table: TableSpec, rows: list[dict]) -> None:
    target = ARROW_TYPES[column.type]
    for index, value in enumerate(values):
        try:
            _convert([value], column.type, target)
        except Exception as exc:  # noqa: BLE001 - we re-raise as SchemaError with context
            raise SchemaError(
                f"stream {stream.name!r}, table {table.name!r}: field {column.source!r} of record "
                f"{_describe(rows[index])} has value {value!r}, which is not a valid {column.type} ({exc})"
            ) from None
    raise SchemaError(f"stream {stream.name!r}, table {table.name!r}: column {column.name!r} could not be converted")


def _describe(record: Any) -> str:
    if isinstance(record, dict):
        for key in ("id", "sku"):
            if key in record:
                return f"{key}={record[key]!r}"
    return "(without id)"
