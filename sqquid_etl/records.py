"""Turn one page of API records into Arrow tables, typed by the stream's schema (never guessed)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

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
    """Turns the pages of one stream into Arrow tables. Holds the plan of the fast path: the
    whole page is read in one call into an Arrow struct array typed by the schema (Arrow walks
    the dicts in C++), and each table's columns are taken from it column by column (children
    through the list offsets). A field whose values do not fit its Arrow type (the API sends a
    number where the schema says text) is marked, and from then on read by Python for this
    converter. A page that still does not fit goes through the record-by-record path, which
    converts what can be and names the record and field of what cannot."""

    def __init__(self, stream: StreamDefinition):
        self.stream = stream
        self._plan = _build_plan(stream, frozenset())

    def convert(self, records: list[dict], partition_value: str | None = None) -> dict[str, pa.Table]:
        """One Arrow table per destination table of the stream, for one page of records."""
        for _ in range(2):
            if self._plan is None:
                break
            try:
                return _fast_page(self.stream, self._plan, records, partition_value)
            except _FAST_ERRORS:
                self._plan = _replan(self.stream, self._plan, records)
        return _slow_page(self.stream, records, partition_value)


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
                if not isinstance(items, list):
                    raise SchemaError(
                        f"stream {stream.name!r}: field {table.nested_path!r} of record "
                        f"{_describe(record)} is {type(items).__name__}, expected a list"
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
    struct: pa.StructType
    fields: dict  # FieldKey -> Arrow read type, of the fields read by Arrow
    python: frozenset  # FieldKeys read by Python (values that do not fit their Arrow type)


def _build_plan(stream: StreamDefinition, python: frozenset) -> _Plan | None:
    """The struct type a page is read as, or None where the fast path cannot apply (json
    columns, a field read with two types, a nested list that is also a field)."""
    top: dict[str, pa.DataType] = {}
    fields: dict[FieldKey, pa.DataType] = {}
    for table in stream.tables:
        child: dict[str, pa.DataType] = {}
        for column in table.columns:
            if column.from_partition:
                continue
            if column.type == "json":
                return None
            path = None if column.from_parent or table.nested_path is None else table.nested_path
            key = (path, column.source)
            if key in python:
                continue
            read = _READ_TYPES[column.type]
            if fields.setdefault(key, read) != read:
                return None
            (top if path is None else child)[column.source] = read
        if table.nested_path is not None:
            if table.nested_path in top:
                return None
            top[table.nested_path] = pa.list_(pa.struct(list(child.items())))
    return _Plan(pa.struct(list(top.items())), fields, python)


def _replan(stream: StreamDefinition, plan: _Plan, records: list[dict]) -> _Plan | None:
    """After a page did not fit: mark the fields whose values do not fit their Arrow type."""
    bad = set()
    for (path, source), read in plan.fields.items():
        try:
            pa.array(_values(records, path, source), read)
        except _FAST_ERRORS:
            bad.add((path, source))
        except Exception:  # noqa: BLE001 - records of an unexpected shape: the slow path says
            return None
    if not bad:
        return None
    return _build_plan(stream, plan.python | bad)


def _values(records: list[dict], path: str | None, source: str) -> list:
    if path is None:
        return [r.get(source) for r in records]
    return [item.get(source) for r in records for item in (r.get(path) or [])]


def _fast_page(stream: StreamDefinition, plan: _Plan, records: list[dict],
               partition_value: str | None) -> dict[str, pa.Table]:
    page = pa.array(records, type=plan.struct)
    if page.null_count:
        raise _FastPathRefused()  # a record that is not an object: the slow path names it
    out: dict[str, pa.Table] = {}
    for table in stream.tables:
        path = table.nested_path
        if path is None:
            rows = parent_rows = page
            index = None
        else:
            lists = page.field(path)
            rows = lists.flatten()
            index = pc.list_parent_indices(lists)
            parent_rows = page.take(index)
        child_records: list[dict] | None = None
        arrays = []
        n = len(rows)
        for column in table.columns:
            if column.from_partition:
                values = pa.array([partition_value] * n, pa.string()) if partition_value is not None else pa.nulls(n, pa.string())
                arrays.append(_finish(values, column))
                continue
            key = (None if column.from_parent or path is None else path, column.source)
            if key in plan.python:
                if path is None or column.from_parent:
                    array = _python_column(_values(records, None, column.source), column, stream, table, records)
                    arrays.append(array if index is None or not column.from_parent else array.take(index))
                else:
                    if child_records is None:
                        child_records = [item for r in records for item in (r.get(path) or [])]
                    arrays.append(_python_column([item.get(column.source) for item in child_records], column,
                                                 stream, table, child_records))
                continue
            source = parent_rows if column.from_parent else rows
            arrays.append(_finish(source.field(column.source), column))
        out[table.name] = pa.Table.from_arrays(arrays, schema=arrow_schema(table))
    return out


def _python_column(values: list, column: Column, stream: StreamDefinition, table: TableSpec, rows: list) -> pa.Array:
    if column.default is not None:
        values = [column.default if v is None else v for v in values]
    return _to_array(values, column, stream, table, rows)


def _finish(values: pa.Array, column: Column) -> pa.Array:
    target = ARROW_TYPES[column.type]
    if column.default is not None and values.null_count:
        values = pc.fill_null(values, pa.scalar(column.default, values.type))
    if values.type != target:
        values = pc.cast(values, target)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
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
