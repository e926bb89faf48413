"""Converting pages to Arrow tables, typed by the stream's schema (never guessed): pure
functions of (stream, page, partition), each page converted with the plan it was read with
(`decode.Page.plan`).

The fast path takes each table's columns from the page's struct array column by column
(children through the list offsets), the fields the plan reads by Python from the page's
dicts. A page it refuses goes through the record-by-record path, which stores what the schema
says, coerces what drifted without loss (`columns.py`, `coerce.py`), and quarantines each
record holding a value that cannot be stored without loss (with its children): the page's
`PageTables.rejected`. Every record of a page is stored or rejected, never dropped; the fields
no column reads are found (`evolve.find_extras`) for the schema contract: `PageTables.extras`."""

from __future__ import annotations

import array
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any, Callable, Iterable

import pyarrow as pa

from . import arrow_compute as pc
from .coerce import Lossy, coerce, json_text
from .columns import ColumnResult, convert_column, fix_text
from .decode import Page, PageDecoder
from .definitions import Column, StreamDefinition, TableSpec
from .evolve import find_extras
from .page_rows import PageRows
from .plan import ARROW_ERRORS, ARROW_TYPES, CONVERSION_ERRORS, LENIENT_KINDS, ReadPlan, field_values


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record quarantined (with its children): what `_sqquid_rejected` stores of it."""

    table: str  # the table, and field of the record, of the (first) value that cannot be stored
    key: str | None  # the record's key as sent (JSON text for a key of several fields)
    field: str
    reason: str  # why, for every such value of the record
    record: str  # the record as received, as JSON text
    cursor: str | None = None  # its cursor value (ISO-8601 UTC) when it reads as a timestamp


class PageTables(dict):
    """{table name: pa.Table} of one page, and what its conversion did: `records` received,
    `coerced` values stored in another form than they were sent in, `rejected` records, and
    `extras`: the undocumented fields of the records stored (`evolve.Extra`)."""

    def __init__(self, tables: Iterable = (), records: int = 0, coerced: int = 0, rejected: Iterable = ()):
        super().__init__(tables)
        self.records = records
        self.coerced = coerced
        self.rejected: list[Rejected] = list(rejected)
        self.extras: list = []


def arrow_schema(table: TableSpec) -> pa.Schema:
    """The Arrow schema of a table's rows, made once a table definition (every page asks for it) and
    kept with it: an account-scoped copy of a definition is made each run, so a table of schemas of the
    process would only grow."""
    schema = table.__dict__.get("_arrow_schema")
    if schema is None:
        schema = pa.schema([pa.field(c.name, ARROW_TYPES[c.type], nullable=c.nullable) for c in table.columns])
        object.__setattr__(table, "_arrow_schema", schema)  # (a frozen dataclass; not one of its fields)
    return schema


def page_tables(stream: StreamDefinition, page: Page, partition_value: str | None = None) -> PageTables:
    """One Arrow table per destination table of the stream, for one page."""
    dicts = PageRows(stream, page)
    if page.array is not None and page.plan is not None:
        read: dict[str, dict[str, pa.Array]] = {}  # table -> its undocumented fields read by Arrow
        try:
            out = _fast_page(stream, page.plan, page.array, dicts, partition_value, read)
        except _FAST_ERRORS:
            pass
        else:
            if page.records is not None or page.undocumented or page.plan.reads_dicts:
                out.extras = dicts.extras(record_keys(stream), read)
            return out
    records = dicts()
    out, skipped = _slow_page(stream, records, partition_value)
    out.extras = find_extras(stream, records, skipped, record_keys(stream))
    return out


def page_to_tables(stream: StreamDefinition, records: list[dict], partition_value: str | None = None) -> PageTables:
    """A page of records already decoded into dicts, converted on its own (as its first page)."""
    return page_tables(stream, PageDecoder(stream).from_records(records), partition_value)


Faults = dict  # record index -> [(table, field, reason)] of its values that cannot be stored


def _slow_page(stream: StreamDefinition, records: list[dict], partition_value: str | None) -> tuple[PageTables, set]:
    """Record by record: every record stored (values coerced where they drifted) or rejected
    (the indices of those, with the tables)."""
    faults: Faults = {}
    built = []
    for table in stream.tables:
        rows, parents, owners = _rows_of(table, records, faults)
        arrays, coerced = [], []
        for column in table.columns:
            result = convert_column(_values(column, rows, parents, partition_value), column)
            for row, reason in result.bad.items():
                faults.setdefault(owners[row], []).append((table.name, column.source, reason))
            arrays.append(result.array)
            coerced.extend(result.coerced)
        built.append((table.name, pa.Table.from_arrays(arrays, schema=arrow_schema(table)), owners, coerced))
    out = PageTables(records=len(records), rejected=[_rejected(stream, records[i], faults[i]) for i in sorted(faults)])
    for name, data, owners, coerced in built:
        if faults:
            data = data.filter(pa.array([owner not in faults for owner in owners], pa.bool_()))
        out[name] = data
        out.coerced += sum(1 for row in coerced if owners[row] not in faults)
    return out, set(faults)


def _rows_of(table: TableSpec, records: list[dict], faults: Faults) -> tuple[list, list, Any]:
    """The table's rows on the page, the record each comes from, and that record's index."""
    if table.nested_path is None:
        return records, records, range(len(records))
    rows: list = []
    parents: list = []
    owners: list = []
    for index, record in enumerate(records):
        items = record.get(table.nested_path)
        if items is None:
            continue
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            found = "a list holding a non-object" if isinstance(items, list) else _kind(items)
            faults.setdefault(index, []).append((table.name, table.nested_path, f"{found}, expected a list of objects"))
            continue
        rows.extend(items)
        parents.extend([record] * len(items))
        owners.extend([index] * len(items))
    return rows, parents, owners


def _values(column: Column, rows: list, parents: list, partition_value: str | None) -> list:
    if column.from_partition:
        values = [partition_value] * len(rows)
    elif column.from_parent:
        values = [p.get(column.source) for p in parents]
    else:
        values = [r.get(column.source) for r in rows]
    if column.default is not None:
        values = [column.default if v is None else v for v in values]
    return values


def _rejected(stream: StreamDefinition, record: dict, faults: list) -> Rejected:
    table, field, reason = faults[0]
    seen = {(field, reason)}  # a parent's value its children repeat is said once
    for t, f, r in faults[1:]:
        if (f, r) not in seen:
            seen.add((f, r))
            reason += f"; {t}.{f}: {r}"
    cursor = None
    if stream.cursor is not None and record.get(stream.cursor.field) is not None:
        try:
            cursor = coerce(record[stream.cursor.field], "timestamp")
        except Lossy:
            pass
    return Rejected(table, record_key(stream, record), field, reason,
                    json.dumps(record, ensure_ascii=False, sort_keys=True, default=str), cursor)


def record_key(stream: StreamDefinition, record: dict) -> str | None:
    """The record's key as sent: its table's primary key fields (or, for a stream whose records
    only hold a nested table, the fields its rows take from the record); None when it has none."""
    return _key(_key_sources(stream), record)


def record_keys(stream: StreamDefinition) -> Callable[[Any], str | None]:
    """`record_key` of the stream's records (its key fields looked up once)."""
    return partial(_key, _key_sources(stream))


def _key_sources(stream: StreamDefinition) -> list[str]:
    first = stream.tables[0]
    if first.nested_path is None:
        return [c.source for c in first.columns if c.name in first.primary_key and not c.from_partition]
    return [c.source for c in first.columns if c.from_parent]


def _key(sources: list[str], record: Any) -> str | None:
    values = [record.get(source) for source in sources]
    if all(v is None for v in values):
        return None
    if len(values) == 1:
        value = values[0]
        # (an integer's JSON text is its str: json_text's own, without the encoder)
        return value if isinstance(value, str) else str(value) if type(value) is int else json_text(value)
    return json_text(values)


def _kind(value: Any) -> str:
    return {dict: "an object", str: "text", bool: "a boolean"}.get(type(value), type(value).__name__)


# -- fast path: one struct array a page ----------------------------------------------------

class _FastPathRefused(Exception):
    """The page needs the record-by-record path (which coerces, or names and rejects, the value)."""


_FAST_ERRORS = (*ARROW_ERRORS, _FastPathRefused)


def _fast_page(stream: StreamDefinition, plan: ReadPlan, page: pa.StructArray, dicts: PageRows,
               partition_value: str | None, read: dict) -> PageTables:
    """The tables of a page read by Arrow: each column from the page's struct array, but the
    fields it does not hold (`plan.python`), which are read from the page's dicts; the
    undocumented fields it holds (`plan.extras`) into `read`, by table."""
    if page.null_count:
        raise _FastPathRefused()  # a record that is not an object: the slow path names it
    out = PageTables(records=len(page))
    for table in stream.tables:
        path = table.nested_path
        if path is None:
            rows, index = page, None
        else:
            lists = page.field(path)
            rows, index = pc.list_flatten(lists), pc.list_parent_indices(lists)
        cast = _cast_together(page, rows, index, path, table)
        arrays = [_fast_column(page, rows, index, path, column, dicts, partition_value, out, cast.get(column.name))
                  for column in table.columns]
        out[table.name] = pa.Table.from_arrays(arrays, schema=arrow_schema(table))
        names = [name for p, name in plan.extras if p == path and rows.type.get_field_index(name) >= 0]
        if names and (path is not None or table is stream.tables[0]):
            read[table.name] = {name: rows.field(name) for name in names}
    return out


def _cast_together(page: pa.StructArray, rows: pa.StructArray, index: pa.Array | None, path: str | None,
                   table: TableSpec) -> dict[str, pa.Array]:
    """The table's columns read by Arrow as text of another type (the decimals of a page of orders),
    each type's cast once for all its columns (one cast of their values end to end, then sliced:
    the same values a cast of each column gives, ~25% less CPU than a cast a column); {} for a type
    whose cast refuses a value (then each column is cast alone, as `_fast_column` always does)."""
    groups: dict[pa.DataType, list[tuple[str, pa.Array]]] = {}
    for column in table.columns:
        if column.from_partition or column.default is not None or (column.from_parent and index is not None):
            continue
        holder, at = _source(page, rows, path, column)
        target = ARROW_TYPES[column.type]
        if at >= 0 and holder.type.field(at).type == pa.string() and target != pa.string():
            groups.setdefault(target, []).append((column.name, holder.field(at)))
    cast: dict[str, pa.Array] = {}
    for target, columns in groups.items():
        if len(columns) < 2:
            continue
        try:
            together = pc.cast(pa.concat_arrays([values for _, values in columns]), target)
        except CONVERSION_ERRORS:
            continue
        start = 0
        for name, values in columns:
            cast[name] = together.slice(start, len(values))
            start += len(values)
    return cast


def _source(page: pa.StructArray, rows: pa.StructArray, path: str | None, column: Column) -> tuple[pa.StructArray, int]:
    """The struct array a column's values come from (the page's records, or a nested table's rows)
    and the index of its field there (-1: not read by Arrow, a field read by Python)."""
    holder = page if path is None or column.from_parent else rows
    return holder, holder.type.get_field_index(column.source)


def _fast_column(page: pa.StructArray, rows: pa.StructArray, index: pa.Array | None, path: str | None, column: Column,
                 dicts: PageRows, partition_value: str | None, out: PageTables, cast: pa.Array | None = None) -> pa.Array:
    if column.from_partition:
        return _finish(string_constant(partition_value, len(rows)), column, out)
    parent = column.from_parent and index is not None
    holder, at = _source(page, rows, path, column)
    if at < 0:  # a field read by Python
        return _by_python(dicts, path, column, index, out)
    values = holder.field(at)
    try:
        # only the columns needed; a column cast with others of its type (`_cast_together`) as it came
        done = _finish(pc.take(values, index) if parent else values if cast is None else cast, column, out)
    except CONVERSION_ERRORS:
        # text Arrow's cast does not read (a timestamp in another ISO form, a decimal with
        # spaces): only those values coerced (`columns.fix_text`), else the column by Python
        fixed = fix_text(values, column) if column.default is None else None
        if fixed is None:
            return _by_python(dicts, path, column, index, out)
        if fixed.bad:
            raise _FastPathRefused() from None  # the slow path rejects the record
        return _finish(_taken(fixed, index, out) if parent else _counted(fixed, out), column, out)
    if pa.types.is_decimal(values.type) and column.type in LENIENT_KINDS:  # read as a decimal: count what was coerced
        if column.type == "decimal" and not _within_precision(done):
            return _by_python(dicts, path, column, index, out)  # (the slow path rejects its record, as a cast would)
        misfits = dicts.misfits(None if path is None or column.from_parent else path, column.source, column.type)
        if misfits is None:
            return _by_python(dicts, path, column, index, out)
        if not parent:
            out.coerced += len(misfits)
        elif misfits:  # a child counts its parent's value
            out.coerced += pc.sum(pc.is_in(index, value_set=pa.array(misfits, pa.int64()))).as_py() or 0
    return done


def _within_precision(values: pa.Array) -> bool:
    """Whether a decimal column Arrow's JSON reader read holds only values its type's precision
    holds (a full validation checks it: ~0.6 µs for 250 values). The reader checks a value's
    digits before scaling it to the type's scale: a text or number of 15 to 18 integer digits
    ("100000000000000") is read into decimal128(18, 4) past its 18 digits, where a cast (and the
    record-by-record path) refuses it."""
    try:
        values.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _by_python(dicts: PageRows, path: str | None, column: Column, index: pa.Array | None, out: PageTables) -> pa.Array:
    """A column of a page read from its dicts (`columns.convert_column`)."""
    if path is None or column.from_parent:
        result = _python_column(dicts.values(None, column.source), column)
        return _taken(result, index, out) if column.from_parent and index is not None else _counted(result, out)
    return _counted(_python_column(dicts.values(path, column.source), column), out)


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


def _python_column(values: list, column: Column) -> ColumnResult:
    """A field the plan reads by Python; a value that cannot be stored sends the page to the
    record-by-record path (which rejects its record)."""
    if column.default is not None:
        values = [column.default if v is None else v for v in values]
    result = convert_column(values, column)
    if result.bad:
        raise _FastPathRefused()
    return result


def _counted(result: ColumnResult, out: PageTables) -> pa.Array:
    out.coerced += len(result.coerced)
    return result.array


def _taken(result: ColumnResult, index: pa.Array, out: PageTables) -> pa.Array:
    """A parent's column repeated for its children (a coerced value counts once per child)."""
    if result.coerced:
        coerced = pa.array(result.coerced, pa.int64())
        out.coerced += pc.sum(pc.is_in(index, value_set=coerced)).as_py() or 0
    return pc.take(result.array, index)


def _finish(values: pa.Array, column: Column, out: PageTables) -> pa.Array:
    target = ARROW_TYPES[column.type]
    if values.type != target:
        numbers = pa.types.is_integer(values.type) and column.type in ("string", "decimal")
        if numbers and column.type == "decimal":
            values = pc.cast(values, pa.string())  # (an int64 cast to a decimal wants 23 digits)
        values = pc.cast(values, target)
        if numbers:
            out.coerced += len(values) - values.null_count  # numbers sent where text or decimals are expected
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if column.default is not None and values.null_count:
        values = pc.coalesce(values, string_constant(column.default, len(values)))
    if not column.nullable and values.null_count:
        raise _FastPathRefused()  # the slow path rejects the record
    return values
