"""Turn one page of API records into Arrow tables, typed by the stream's schema (never guessed)."""

from __future__ import annotations

import json
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


def page_to_tables(
    stream: StreamDefinition, records: list[dict], partition_value: str | None = None
) -> dict[str, pa.Table]:
    """One Arrow table per destination table of the stream, for one page of records."""
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
