"""Undocumented fields (issue #12 item 1): the fields of a page's records (and child records)
that no column of the stream's definition reads, found once a page is converted, with their
values as text and a conservative type, for the schema contract to keep (`evolve`: a new
nullable column of the table), refuse (`freeze`) or drop (`discard`). Pure: nothing here holds
state. A page without such fields costs one flag check (read by Arrow) or one key-set check a
record (read by Python)."""

from __future__ import annotations

import array
import json
from dataclasses import dataclass, replace
from itertools import repeat
from operator import is_
from typing import Any, Callable

import pyarrow as pa

from . import arrow_compute as pc
from .coerce import INT64_MAX, INT64_MIN
from .definitions import StreamDefinition, TableSpec

CONTRACTS = ("evolve", "freeze", "discard")
DEFAULT_CONTRACT = "evolve"

# the column types an undocumented field may get, from the narrowest; NULL: only nulls seen so far
_NUMBERS = ("NULL", "BIGINT", "DOUBLE")


@dataclass(frozen=True, slots=True)
class Extra:
    """One undocumented field of one table on one page. A field of the record of a stream without
    a table of its own (inventory) is kept on its nested table's rows, as `record_<field>`."""

    table: str | None
    field: str  # the key in the record
    column: str  # the column it becomes
    type: str  # NULL, BIGINT, DOUBLE, BOOLEAN, JSON or VARCHAR
    rows: range | list  # the table's rows on the page (index in the page's table) the values are of
    values: list | pa.Array  # their values as text (None: null, or not in that row)
    record: Any  # the key of the first record holding it (for messages)


def widen(a: str, b: str) -> str:
    """The narrowest type holding values of both types (VARCHAR holds any value as text)."""
    if a == b or b == "NULL":
        return a
    if a == "NULL":
        return b
    if a in _NUMBERS and b in _NUMBERS:
        return "DOUBLE"
    return "VARCHAR"


def value_type(value: Any) -> str:
    if value is None:
        return "NULL"
    if type(value) is bool:
        return "BOOLEAN"
    if type(value) is int:
        return "BIGINT" if INT64_MIN <= value <= INT64_MAX else "VARCHAR"
    if type(value) is float:
        return "DOUBLE"
    if isinstance(value, (dict, list)):
        return "JSON"
    return "VARCHAR"


_json_text = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # built once, not a call

try:
    import orjson as _orjson  # compact JSON as `_json_text` writes it, faster
except ImportError:  # pragma: no cover - a dependency
    _orjson = None


def value_text(value: Any) -> str | None:
    """The value as text its column's type reads back exactly (JSON text but for text itself)."""
    if value is None or isinstance(value, str):
        return value
    if type(value) is int:
        return str(value)
    return _json_text(value)


def known_fields(stream: StreamDefinition, table: TableSpec | None) -> frozenset:
    """The keys the definition reads from a record (table None: the stream's top-level records
    when it has no table of its own) or from the child records of a nested table."""
    if table is not None and table.nested_path is not None:
        return frozenset(c.source for c in table.columns if not (c.from_parent or c.from_partition))
    known = set()
    for t in stream.tables:
        if t.nested_path is None:
            known.update(c.source for c in t.columns if not c.from_partition)
        else:
            known.add(t.nested_path)
            known.update(c.source for c in t.columns if c.from_parent)
    return frozenset(known)


def find_extras(stream: StreamDefinition, records: list[dict], skipped: set | frozenset,
                key: Callable[[dict], Any], read: dict | None = None, finite: bool = False,
                items: Callable[[str], list] | None = None) -> list[Extra]:
    """The undocumented fields of a page's records (but those of `skipped`, not stored), row by
    row of the tables the page converted to; `read`: {table: {field: its values on the table's
    rows}} of fields Arrow read (the others are taken from the dicts); `finite`: the records
    hold no NaN or infinity (decoded from a body that writes none); `items`: the items of the
    records' lists at a path, already gathered (records read by Arrow: each list one of objects)."""
    own = stream.tables[0] if stream.tables[0].nested_path is None else None
    found: list[Extra] = []
    known = known_fields(stream, own)
    read = read or {}
    if own is not None:
        rows = [r for i, r in enumerate(records) if i not in skipped] if skipped else records
        found += _extras(own, rows, known, None, key, read.get(own.name), finite)
    for table in stream.tables:
        if table.nested_path is None:
            continue
        if items is not None and own is not None and not skipped:
            rows, owners = items(table.nested_path), ItemOwners(records, table.nested_path)
        else:
            rows, owners = _rows_and_owners(records, table.nested_path, skipped)
        found += _extras(table, rows, known_fields(stream, table), owners, key, read.get(table.name), finite)
        if own is None:  # no table of its own (inventory: a record a sku): its rows carry the record's fields
            found += [replace(e, column=f"record_{e.column}", field=f"record.{e.field}")
                      for e in _extras(table, owners, known, owners, key)]
    return found


def _rows_and_owners(records: list[dict], path: str, skipped: set | frozenset) -> tuple[list, list]:
    """The items of the records' `path` lists (but those of `skipped`), and the record of each."""
    rows: list = []
    owners: list = []
    for i, record in enumerate(records):
        items = record.get(path)
        if i not in skipped and isinstance(items, list):
            rows.extend(items)
            owners.extend([record] * len(items))
    return rows, owners


class ItemOwners:
    """The record each item of the records' `path` lists belongs to, looked up when asked (for
    the key of the first record holding a field): no list of a record an item."""

    def __init__(self, records: list[dict], path: str):
        self.records, self.path = records, path

    def __getitem__(self, row: int) -> dict:
        for record in self.records:
            size = len(record.get(self.path) or ())
            if row < size:
                return record
            row -= size
        raise IndexError(row)


def _extras(table: TableSpec | None, rows: list[dict], known: frozenset, owners: list | None,
            key: Callable[[dict], Any], read: dict | None = None, finite: bool = False) -> list[Extra]:
    """The undocumented fields of `rows`, each with a value a row (None where a row lacks it);
    those of `read` as Arrow read them (a value a row too)."""
    dicts = all(map(is_, map(type, rows), repeat(dict)))
    names = set().union(*(rows if dicts else [row for row in rows if type(row) is dict])) - known
    firsts = {name: next(i for i, row in enumerate(rows) if type(row) is dict and name in row) for name in names}

    def texts_of(name: str) -> tuple[str, list]:
        values = list(map(dict.get, rows, repeat(name))) if dicts else [row.get(name) if type(row) is dict else None for row in rows]
        kind = values_type(values)
        return kind, values_text(values, kind, finite)

    return extras_found(table, rows, firsts, texts_of, owners, key, read)


def extras_found(table: TableSpec | None, rows: list, firsts: dict, texts_of: Callable[[str], tuple[str, list]],
                 owners: Any, key: Callable[[Any], Any], read: dict | None = None) -> list[Extra]:
    """The undocumented fields found on `rows` (`firsts`: each field -> the first row holding
    it), with their type and values as text (`texts_of`, or as Arrow read them: `read`), in the
    order they first come."""
    taken = {c.name.lower() for c in table.columns} if table is not None else set()
    out, records = [], {}
    for name in sorted(firsts, key=lambda n: (firsts[n], n)):  # as they first come
        array = read.get(name) if read else None
        if array is not None and len(array) == len(rows) and (array.type in _ARROW_KINDS or array.null_count == len(array)):
            kind, texts = array_text(array)
        else:
            kind, texts = texts_of(name)
        first = firsts[name]
        if first not in records:  # (the key of a record holding several, once)
            records[first] = key(rows[first] if owners is None else owners[first])
        record = records[first]
        column = name if name.lower() not in taken and not name.startswith("_sqquid") else f"{name}_undocumented"
        out.append(Extra(None if table is None else table.name, name, column, kind, range(len(rows)), texts, record))
    return out


_ARROW_KINDS = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.bool_(): "BOOLEAN"}


def array_text(values: pa.Array) -> tuple[str, pa.Array]:
    """The type (`values_type`) and text (`values_text`) of an undocumented field's values as
    Arrow read them (one scalar type: text, a 64-bit integer, a boolean; nulls)."""
    if values.null_count == len(values):
        return "NULL", pa.nulls(len(values), pa.string())
    return _ARROW_KINDS[values.type], values if values.type == pa.string() else pc.cast(values, pa.string())


def values_type(values: list) -> str:
    """The narrowest type of `value_type` holding every value (`widen` over them)."""
    types = set(map(type, values))
    types.discard(type(None))
    if not types:
        return "NULL"
    if types <= {dict, list}:
        return "JSON"
    if types == {bool}:
        return "BOOLEAN"
    if types <= {int, float}:
        try:
            array.array("q", [v for v in values if type(v) is int])
        except OverflowError:  # an integer past 64 bits
            return "VARCHAR"
        return "BIGINT" if types == {int} else "DOUBLE"
    return "VARCHAR"


def values_text(values: list, kind: str, finite: bool = False) -> list:
    """`value_text` of each value (JSON text of objects and arrays by orjson where it writes the
    same JSON: not for a NaN or an integer past 64 bits; `finite`: the values hold no NaN)."""
    if kind == "VARCHAR" and all(type(v) is str or v is None for v in values):
        return values
    if kind == "JSON" and _orjson is not None:
        try:
            if finite:
                dumps = _orjson.dumps
                return [None if v is None else dumps(v).decode() for v in values]
            raw = [None if v is None else _orjson.dumps(v) for v in values]
        except TypeError:  # an integer past 64 bits
            return [value_text(v) for v in values]
        # orjson writes a NaN as null: such a value is written by the JSON encoder
        return [None if t is None else t.decode() if b"null" not in t or _finite(v) else _json_text(v)
                for t, v in zip(raw, values)]
    if kind == "BIGINT":
        return [None if v is None else str(v) for v in values]
    if kind == "BOOLEAN":
        return [None if v is None else "true" if v else "false" for v in values]
    if kind == "NULL":
        return values
    if kind == "DOUBLE":
        return [None if v is None else repr(v) if v - v == 0 else _json_text(v) for v in values]  # (NaN, inf: as JSON)
    return [value_text(v) for v in values]


def _finite(value: Any) -> bool:
    """No NaN or infinity in the value (at any depth)."""
    if type(value) is float:
        return value - value == 0
    if type(value) is dict:
        return all(_finite(v) for v in value.values())
    if type(value) is list:
        return all(_finite(v) for v in value)
    return True


def dropped_fields(full: StreamDefinition, narrowed: StreamDefinition) -> frozenset:
    """(table, field) of the fields a catalog deselected: they stay dropped, never evolved."""
    dropped = set()
    kept = {t.name: t for t in narrowed.tables}
    for table in full.tables:
        was = known_fields(full, table)
        now = known_fields(narrowed, kept.get(table.name)) if table.name in kept else frozenset()
        name = table.name if table.nested_path is not None or full.tables[0].nested_path is None else None
        dropped.update((name, field) for field in was - now)
    return frozenset(dropped)
