"""One column of a page converted from Python values: the values of the JSON type the schema
says are taken as they are, and only the others go through the coercion rules (`coerce.py`):
each coerced without loss or refused with the reason (its record is quarantined); the column is
then built and cast once. Where that cast refuses a value, the column is decided value by value.
Text Arrow's cast refuses in a timestamp or decimal column read by Arrow (`fix_text`) is found by
one pattern match over the column and only those values are coerced. Pure: nothing here holds
state."""

from __future__ import annotations

import array
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import pyarrow as pa

from . import arrow_compute as pc
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
    kind = _KIND.get(column.type)
    if kind is not None:
        try:
            return _misfits_coerced(values, column, target, kind)
        except CONVERSION_ERRORS:
            return _value_by_value(values, column, target)
    try:
        array = conforming(values, column.type, target)
    except CONVERSION_ERRORS:
        return _value_by_value(values, column, target)
    if not column.nullable and array.null_count:
        return ColumnResult(array, [], {i: _null_key(column) for i, v in enumerate(values) if v is None})
    return ColumnResult(array)


# the Python type of the values taken as they are (the JSON type the schema says); any other
# value is coerced or refused
_KIND = {"integer": int, "string": str, "decimal": str, "timestamp": str, "boolean": bool}


def _misfits_coerced(values: list, column: Column, target: pa.DataType, kind: type) -> ColumnResult:
    """Only the values that are not of the column's JSON type through `coerce.py` (the numbers
    of a decimal column cast by Arrow at once); raises one of CONVERSION_ERRORS where the column
    then does not convert (value by value decides)."""
    misfits = [i for i, v in enumerate(values) if type(v) is not kind and v is not None]
    out = list(values) if misfits else values
    coerced, bad, floats, ints = [], {}, [], []
    numbers_as_text = column.type in ("decimal", "string")
    for row in misfits:
        value = values[row]
        if numbers_as_text and type(value) is int and INT64_MIN <= value <= INT64_MAX:
            ints.append(row)
            continue
        if type(value) is float and column.type == "decimal":
            floats.append(row)
            continue
        try:
            out[row] = coerce(value, column.type)
        except Lossy as exc:
            out[row] = None
            bad[row] = str(exc)
            continue
        coerced.append(row)
    for rows, build in ((ints, int_array), (floats, float_array)):
        if rows:  # as text in one cast (a float's shortest round-trip text, as `coerce` writes it: repr)
            texts = pc.cast(build([values[row] for row in rows]), pa.string()).to_pylist()
            for row, text in zip(rows, texts):
                out[row] = text
            coerced = sorted(coerced + rows)
    if not column.nullable:
        bad.update((i, _null_key(column)) for i, v in enumerate(out) if v is None and i not in bad)
    if column.type not in _AS_IS:
        return ColumnResult(pa.array(out, target), coerced, bad)
    texts = pa.array(out, pa.string())
    try:
        return ColumnResult(pc.cast(texts, target), coerced, bad)
    except CONVERSION_ERRORS:
        fixed = fix_text(texts, column, frozenset(coerced))
    if fixed is None:
        raise ValueError("text the column's cast refuses")
    return ColumnResult(fixed.array, sorted(coerced + fixed.coerced), {**bad, **fixed.bad})


def fix_text(texts: pa.Array, column: Column, done: frozenset = frozenset()) -> ColumnResult | None:
    """A timestamp or decimal column read as text whose cast refused some value: the values not
    of the form Arrow reads as is (one pattern match over the column) coerced by the rules (or
    refused), the rest kept, one cast; None where that cast still refuses (value by value
    decides). `done`: rows already coerced."""
    pattern = _AS_IS_RE2.get(column.type)
    if pattern is None or texts.type != pa.string():
        return None
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    redo = pc.invert(pc.match_substring_regex(texts, pattern))  # (null where the text is: left null)
    rows = pc.indices_nonzero(redo).to_pylist()
    if done:
        rows = [row for row in rows if row not in done]
        redo = pc.is_in(_row_numbers(len(texts)), value_set=pa.array(rows, pa.int64()))
    fixed, coerced, bad = [], [], {}
    for row, value in zip(rows, pc.take(texts, int_array(rows)).to_pylist() if rows else []):
        try:
            fixed.append(coerce(value, column.type))
            coerced.append(row)
        except Lossy as exc:
            fixed.append(None)
            bad[row] = str(exc)
    if rows:
        texts = pc.replace_with_mask(texts, redo, pa.array(fixed, pa.string()))
    try:
        array = pc.cast(texts, ARROW_TYPES[column.type])
    except CONVERSION_ERRORS:
        return None
    return ColumnResult(array, coerced, bad)


def _row_numbers(n: int) -> pa.Array:
    return pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(array.array("q", range(n)))])


def int_array(values: list) -> pa.Array:
    """Python integers (within int64) as an int64 array, from a buffer."""
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(array.array("q", values))])


def float_array(values: list) -> pa.Array:
    """Python floats as a float64 array, from a buffer (`pa.array` would import pandas)."""
    return pa.Array.from_buffers(pa.float64(), len(values), [None, pa.py_buffer(array.array("d", values))])


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


_AS_IS_RE2 = {name: f"^(?:{pattern.pattern})$" for name, pattern in _AS_IS.items()}


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
