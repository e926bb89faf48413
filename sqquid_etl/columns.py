"""One column of a page converted from Python values: by the conforming conversion (the values
are what the schema says) where it takes them all, else value by value: each stored as sent,
coerced without loss (`coerce.py`), or refused with the reason (its record is quarantined).
Pure: nothing here holds state."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc

from .coerce import INT64_MAX, INT64_MIN, Lossy, coerce, json_text
from .definitions import Column
from .plan import ARROW_TYPES, CONVERSION_ERRORS

# where Python's type of a value says exactly whether the conforming conversion takes it (and
# the coercion's result is of that type): no Arrow call a value
_EXACT = {
    "integer": lambda v: type(v) is int and INT64_MIN <= v <= INT64_MAX,
    "string": lambda v: type(v) is str,
    "boolean": lambda v: type(v) is bool,
}
_READ_AS_TEXT = ("timestamp", "decimal")  # only text is taken as is (then parsed by Arrow)


@dataclass(frozen=True, slots=True)
class ColumnResult:
    array: pa.Array  # null where a value was refused (its record is not stored)
    coerced: list = field(default_factory=list)  # rows whose value was coerced
    bad: dict = field(default_factory=dict)  # row -> why its value cannot be stored


def convert_column(values: list, column: Column) -> ColumnResult:
    """The column's Arrow array of `values` (defaults already applied); a null in a column that
    is not nullable (a key) is refused."""
    target = ARROW_TYPES[column.type]
    try:
        array = conforming(values, column.type, target)
    except CONVERSION_ERRORS:
        return _value_by_value(values, column, target)
    if not column.nullable and array.null_count:
        return ColumnResult(array, [], {i: _null_key(column) for i, v in enumerate(values) if v is None})
    return ColumnResult(array)


def conforming(values: list, type_name: str, target: pa.DataType) -> pa.Array:
    """The values as the column's type where they are what the schema says (Arrow's reading of
    text as timestamps and decimals included); raises one of CONVERSION_ERRORS otherwise."""
    if type_name in _READ_AS_TEXT:
        return pc.cast(pa.array(values, pa.string()), target)
    if type_name == "json":
        return pa.array([None if v is None else json_text(v) for v in values], target)
    if type_name == "integer" and any(type(v) is float or type(v) is bool for v in values):
        raise TypeError("a float or a boolean is not an integer")  # Arrow would truncate 2.5 to 2
    return pa.array(values, target)


# text that Arrow's cast reads as is, for the columns read as text: the rest goes through the
# coercion rules in Python (exact), and the column is cast once
_AS_IS = {
    "timestamp": re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})"),
    "decimal": re.compile(r"[+-]?\d{1,14}(?:\.\d{1,4})?"),
}


def _value_by_value(values: list, column: Column, target: pa.DataType) -> ColumnResult:
    if column.type in _AS_IS:
        # a timestamp or decimal column without an Arrow call a value: text of the form Arrow
        # reads is kept as is, any other value coerced by the Python rules (or refused), one cast
        as_is = _AS_IS[column.type].fullmatch
        try:
            return _each_value(values, column, target, lambda v: type(v) is str and as_is(v) is not None)
        except CONVERSION_ERRORS:
            pass  # a value the pattern let through that Arrow refuses: decided one by one below
    exact = _EXACT.get(column.type)
    if exact is not None:
        return _each_value(values, column, target, exact)
    text_only = column.type in _READ_AS_TEXT

    def misfit(value) -> str | None:
        return _misfit(value, column.type, target)

    return _each_value(values, column, target, lambda v: (not text_only or type(v) is str) and misfit(v) is None,
                       misfit)


def _each_value(values: list, column: Column, target: pa.DataType, keep: Callable[[Any], bool],
                misfit: Callable[[Any], str | None] | None = None) -> ColumnResult:
    """Each value kept as sent (`keep`), else coerced (and, with `misfit`, checked against the
    conforming conversion), else refused; a null refused in a column that is not nullable."""
    out, coerced, bad = [], [], {}
    for row, value in enumerate(values):
        if value is None:
            out.append(None)
            if not column.nullable:
                bad[row] = _null_key(column)
        elif keep(value):
            out.append(value)
        else:
            try:
                fixed = coerce(value, column.type)
                why = None if misfit is None else misfit(fixed)
                if why is not None:
                    raise Lossy(f"{value!r} does not fit {target} without loss ({why})")
            except Lossy as exc:
                out.append(None)
                bad[row] = str(exc)
                continue
            out.append(fixed)
            coerced.append(row)
    return ColumnResult(conforming(out, column.type, target), coerced, bad)


def _misfit(value, type_name: str, target: pa.DataType) -> str | None:
    """Why the conforming conversion refuses the value (None: it takes it)."""
    try:
        conforming([value], type_name, target)
    except CONVERSION_ERRORS as exc:
        return str(exc).splitlines()[0] or type(exc).__name__
    return None


def _null_key(column: Column) -> str:
    return f"key column {column.name!r} is null"
