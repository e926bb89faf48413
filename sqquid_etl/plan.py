"""How a stream's pages are read into Arrow: the Arrow types of the schema's column types, and
the read plan (immutable) of a stream, built from its schema and from what was learned about
the values the API really sends. Pure: nothing here holds state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from . import arrow_compute as pc
from .definitions import StreamDefinition
from .evolve import known_fields

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

# how Arrow's JSON reader reads a field of these columns whose values are numbers and text
# mixed: as a decimal, from a number's JSON text or from the text (the cast's reading, never
# through a double); an integer column's values then cast to int64
LENIENT_TYPES: dict[str, pa.DataType] = {"decimal": pa.decimal128(18, 4), "integer": pa.decimal128(38, 0)}
LENIENT_KINDS: dict[str, type] = {"decimal": str, "integer": int}  # the JSON type taken as is; any other is coerced
# a JSON number Python decoded as a float reads the same as its text only within these (at most 15
# significant digits, 4 decimals; an integer a double holds exactly): past them the column is
# converted from the page's dicts (as the record-by-record path does, through the double)
LENIENT_FLOATS: dict[str, float] = {"decimal": 1e11, "integer": float(2**53)}

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
    through `coerce.py`); or, from a body, by Arrow's JSON reader as another type: as an
    integer and cast (`integers`: a text field the API sends as integers), or as a decimal
    (`lenient`: a decimal field holding numbers and text, an integer field holding text; the
    values not of the column's JSON type counted from the page's dicts).
    A body is read by Arrow's JSON reader (`json_schema`) in either case: the fields read by
    Python (`by_python`) are left out of its schema, and the page's dicts are decoded for them
    at conversion. Undocumented fields seen with one scalar type (`extras`) are read by it too;
    the others (`dict_extras`: objects, arrays, types that change) are taken from the dicts.
    What is learned lives in `decode.PageDecoder`."""

    struct: pa.StructType  # a page of dicts is read as this
    fields: dict  # FieldKey -> Arrow read type, of the fields read by Arrow
    python: frozenset  # FieldKeys not read by Arrow from dicts (values that do not fit their Arrow type)
    integers: frozenset  # those of them whose values were all integers: Arrow's JSON reader reads them as such
    json_schema: pa.Schema | None  # a body is read as {envelope: list<struct>, total, limit}, or None: not by Arrow
    text_fields: frozenset = frozenset()  # FieldKeys of text and decimal columns: the ones that may be learned
    lenient: frozenset = frozenset()  # those of `python` a body is read with as a decimal (LENIENT_TYPES)
    kinds: dict = field(default_factory=dict)  # FieldKey -> its columns' type, where they all have one (no default)
    extras: dict = field(default_factory=dict)  # undocumented FieldKey -> the Arrow type a body is read with
    dict_extras: frozenset = frozenset()  # undocumented FieldKeys taken from the page's dicts

    @property
    def by_python(self) -> frozenset:
        """The fields a page read from its body takes from its dicts (left out of `json_schema`)."""
        return self.python - self.integers - self.lenient

    @property
    def reads_dicts(self) -> bool:
        """Whether a page read from its body needs its dicts too (then the undocumented fields
        it does not read are left to them: the body is read ignoring them). The `extras` read
        by Arrow need them too: which records hold the field (and whose key to name)."""
        return bool(self.by_python or self.lenient or self.extras or self.dict_extras)

    def knows(self, learned: Learned) -> bool:
        return learned == Learned(self.python, self.integers, self.lenient, self.extras, self.dict_extras)


@dataclass(frozen=True)
class Learned:
    """What a plan is built with: the fields of `ReadPlan` of the same names."""

    python: frozenset = frozenset()
    integers: frozenset = frozenset()
    lenient: frozenset = frozenset()
    extras: dict = field(default_factory=dict)
    dict_extras: frozenset = frozenset()


def build_plan(stream: StreamDefinition, learned: Learned = Learned()) -> ReadPlan | None:
    """The plan of a stream with these fields learned, or None where the fast path cannot apply
    (json columns, a field read with two types, a nested list that is also a field)."""
    python, integers = learned.python, learned.integers
    top: dict[str, pa.DataType] = {}
    fields: dict[FieldKey, pa.DataType] = {}
    kinds: dict[FieldKey, str | None] = {}
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
            kind = column.type if column.default is None else None
            kinds[key] = kind if kinds.get(key, kind) == kind else None
            if key not in python or key in integers or key in learned.lenient:
                body = pa.int64() if key in integers else LENIENT_TYPES[column.type] if key in learned.lenient else read
                (body_top if path is None else body_child)[column.source] = body
            if key in python:
                continue
            if fields.setdefault(key, read) != read:
                return None
            (top if path is None else child)[column.source] = read
        if table.nested_path is not None:
            if table.nested_path in top or table.nested_path in body_top:
                return None
            body_child.update((name, kind) for (path, name), kind in learned.extras.items() if path == table.nested_path)
            top[table.nested_path] = pa.list_(pa.struct(list(child.items())))
            body_top[table.nested_path] = pa.list_(pa.struct(list(body_child.items())))
    body_top.update((name, kind) for (path, name), kind in learned.extras.items() if path is None)
    json_schema = None
    if stream.envelope is not None:
        json_schema = pa.schema([(stream.envelope, pa.list_(pa.struct(list(body_top.items())))),
                                 *((name, pa.int64()) for name in ENVELOPE_FIELDS)])
    lenient = frozenset(key for key in learned.lenient if kinds.get(key) in LENIENT_TYPES)
    return ReadPlan(pa.struct(list(top.items())), fields, python, integers, json_schema, frozenset(text - other),
                    lenient, {k: v for k, v in kinds.items() if v is not None}, dict(learned.extras),
                    learned.dict_extras)


@dataclass(frozen=True)
class Misfits:
    """What a page that did not fit its plan teaches (`misfit_fields`)."""

    learn: frozenset  # text or decimal fields holding numbers (the API's usual inconsistency): for good
    integers: frozenset  # those of them whose values are all integers (read as such by Arrow)
    lenient: frozenset  # fields (of `learn` or `drifted`) a body is read with as a decimal
    drifted: frozenset  # other fields whose values do not fit their Arrow type (while they drift)
    extras: dict  # undocumented FieldKey -> the Arrow type to read it with, or None: from the dicts


def misfit_fields(plan: ReadPlan, records: list[dict], stream: StreamDefinition | None = None) -> Misfits | None:
    """After a page did not fit the plan: what to read otherwise (`Misfits`); with `stream`, its
    undocumented fields learned too. None when nothing is to blame (records of an unexpected
    shape: the record-by-record path names it)."""
    learn, integers, lenient, drifted = set(), set(), set(), set()
    read = {**plan.fields, **{key: pa.int64() for key in plan.integers},
            **{key: LENIENT_TYPES[plan.kinds[key]] for key in plan.lenient}}
    try:
        for key, kind in read.items():
            values = field_values(records, *key)
            if not _fit(values, kind):
                _classify(plan, key, values, learn, integers, lenient, drifted)
        extras = undocumented_types(stream, plan, records) if stream is not None else {}
    except Exception:  # noqa: BLE001 - records of an unexpected shape: the slow path says
        return None
    if not learn and not drifted and not extras:
        return None
    return Misfits(frozenset(learn), frozenset(integers), frozenset(lenient), frozenset(drifted), extras)


def _classify(plan: ReadPlan, key: FieldKey, values: list, learn: set, integers: set, lenient: set, drifted: set) -> None:
    """Where a field whose values do not fit its reading goes: a text field holding numbers is
    learned for good (read as an integer when they all are); so is a decimal field holding
    numbers and text, read as a decimal; an integer field holding text (`"27"`) is read as a
    decimal while it drifts; any other field is read by Python while it drifts."""
    column = plan.kinds.get(key)
    readable = key not in plan.lenient and column in LENIENT_TYPES and _lenient_fit(values, LENIENT_TYPES[column])
    if column == "decimal" and readable and not _all_integers(values):
        learn.add(key)
        lenient.add(key)
    elif key in plan.text_fields and key not in plan.lenient and _numbers_or_text(values):
        learn.add(key)
        if _all_integers(values):
            integers.add(key)
    else:
        drifted.add(key)
        if column == "integer" and readable:
            lenient.add(key)


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
    if kind == pa.null():
        return all(v is None for v in values)
    if pa.types.is_decimal(kind):
        return _lenient_fit(values, kind)
    try:
        pa.array(values, kind)
    except ARROW_ERRORS:
        return False
    return True


def _lenient_fit(values: list, kind: pa.DataType) -> bool:
    """Whether every value is a number or text Arrow reads as the decimal `kind`."""
    texts = []
    for v in values:
        if type(v) is str:
            texts.append(v)
        elif type(v) is int or type(v) is float:
            texts.append(repr(v))
        elif v is not None:
            return False
    try:
        pc.cast(pa.array(texts, pa.string()), kind)
    except CONVERSION_ERRORS:
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


# -- undocumented fields: those of one scalar type read by Arrow ------------------------------

_SCALARS = ((str, pa.string()), (bool, pa.bool_()), (int, pa.int64()))  # (a float's text is Python's: from dicts)


def undocumented_types(stream: StreamDefinition, plan: ReadPlan, records: list[dict]) -> dict:
    """The undocumented fields of the records (and child records) whose reading changes: a new
    field of one scalar type (or only nulls so far) read by Arrow as that type, any other from
    the dicts (None); a field read by Arrow whose values now do not fit: from the dicts (one
    that held only nulls: as its values' type, once). A stream without a table of its own
    (its records' fields kept on its nested rows) leaves them all to the dicts."""
    own = stream.tables[0] if stream.tables[0].nested_path is None else None
    if own is None:
        return {}
    changes: dict[FieldKey, Any] = {}
    groups = [(None, records, known_fields(stream, own))]
    for table in stream.tables:
        if table.nested_path is not None:
            items = [i for r in records if type(r.get(table.nested_path)) is list for i in r[table.nested_path]]
            groups.append((table.nested_path, items, known_fields(stream, table)))
    for path, rows, known in groups:
        if not all(type(row) is dict for row in rows):
            continue
        for name in set().union(*rows) - known:
            key = (path, name)
            if key in plan.dict_extras:
                continue
            values = [row.get(name) for row in rows]
            was = plan.extras.get(key)
            if was is not None and _fit(values, was):
                continue
            kind = _scalar_type(values) if was is None or was == pa.null() else None
            if kind != was or key not in plan.extras:
                changes[key] = kind
    return changes


def _scalar_type(values: list) -> pa.DataType | None:
    types = {type(v) for v in values}
    types.discard(type(None))
    if not types:
        return pa.null()
    if len(types) > 1:
        return None
    kind = next((arrow for python, arrow in _SCALARS if types == {python}), None)
    if kind == pa.int64() and not _fit(values, kind):
        return None  # past 64 bits
    return kind
