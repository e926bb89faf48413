"""Converting pages to Arrow tables, typed by the stream's schema (never guessed): pure
functions of (stream, page, partition), each page converted with the plan it was read with
(`decode.Page.plan`).

The fast path takes each table's columns from the page's struct array column by column
(children through the list offsets), the fields the plan reads by Python from the page's
dicts. A page it refuses goes through the record-by-record path, which converts what can be
and names the record and field of what cannot."""

from __future__ import annotations

import array
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .decode import Page, PageDecoder, page_dicts
from .definitions import Column, StreamDefinition, TableSpec
from .errors import SchemaError
from .plan import ARROW_ERRORS, ARROW_TYPES, ReadPlan, field_values


def arrow_schema(table: TableSpec) -> pa.Schema:
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.type], nullable=c.nullable) for c in table.columns])


def page_tables(stream: StreamDefinition, page: Page, partition_value: str | None = None) -> dict[str, pa.Table]:
    """One Arrow table per destination table of the stream, for one page."""
    if page.array is not None and page.plan is not None:
        try:
            return _fast_page(stream, page.plan, page.array, page.records, partition_value)
        except _FAST_ERRORS:
            pass
    return _slow_page(stream, page_dicts(stream, page), partition_value)


def page_to_tables(
    stream: StreamDefinition, records: list[dict], partition_value: str | None = None
) -> dict[str, pa.Table]:
    """A page of records already decoded into dicts, converted on its own (as its first page)."""
    return page_tables(stream, PageDecoder(stream).from_records(records), partition_value)


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


# -- fast path: one struct array a page ----------------------------------------------------

class _FastPathRefused(Exception):
    """The page needs the record-by-record path (which finds and names the bad value)."""


_FAST_ERRORS = (*ARROW_ERRORS, _FastPathRefused)


def _fast_page(stream: StreamDefinition, plan: ReadPlan, page: pa.StructArray, records: list[dict] | None,
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
                    array = _python_column(field_values(records, None, column.source), column, stream, table, records)
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
