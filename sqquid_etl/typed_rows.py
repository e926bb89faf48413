"""A drifted page's records as typed rows (issue #12 item 8): what the conversion of a page read
by Arrow still takes from its records (the fields its plan reads by Python, the undocumented
fields it knows, the record's key), decoded from the body by msgspec into rows holding only
those fields as Python values. Every other field the plan knows is only stepped over (a
`msgspec.Raw`: no str, int or dict made of it, none freed after), and a field it does not know
makes the decoding fail: the page then takes its records as dicts (`decode.read_dicts`), which
find it. So a page's rows are typed exactly when its records hold no field the plan does not
know, and then its undocumented fields are the plan's (`extras`, `dict_extras`) that some row holds.

Pure but for the row types built once a plan (kept while the plan lives)."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from itertools import compress, count, repeat
from operator import attrgetter, is_not
from typing import Any, Callable, ClassVar

from .definitions import StreamDefinition, TableSpec
from .evolve import ItemOwners, extras_found, known_fields, values_text, values_type
from .plan import ReadPlan

try:
    import msgspec
except ImportError:  # pragma: no cover - a dependency; without it a page's records are dicts
    msgspec = None

UNSET: Any = msgspec.UNSET if msgspec is not None else object()  # a field a row does not hold

if msgspec is not None:
    class TypedRow(msgspec.Struct, forbid_unknown_fields=True, gc=False):
        """One record (or child record) of a page: `get` as a dict's."""

        _attrs: ClassVar[dict] = {}  # key in the record -> the attribute holding it

        def get(self, name: str, default: Any = None) -> Any:
            attr = self._attrs.get(name)
            value = UNSET if attr is None else getattr(self, attr)
            return default if value is UNSET or type(value) is msgspec.Raw else value


@dataclass(frozen=True)
class RowTypes:
    """The row types of one plan: the body's decoder, and per level of records (None: the
    records; else a nested path) the fields taken as values and the undocumented ones known."""

    decode: Callable[[bytes], Any]
    taken: dict  # path -> frozenset of the fields a row holds as values
    undocumented: dict  # path -> the undocumented fields the plan knows there (sorted)
    attrs: dict  # (path, field) -> the getter of the attribute of a row holding it
    refused: list = field(default_factory=list)  # not empty once a page's rows could not be typed

    def getter(self, path: str | None, field: str) -> Callable[[Any], Any] | None:
        """The getter of a field's value in a row (absent: None, or UNSET for an undocumented
        field); None where a row does not hold the field as a value."""
        if field not in self.taken[path]:
            return None
        return self.attrs[(path, field)]

    def values(self, path: str | None, field: str, rows: list) -> list:
        """A field's values of the rows at `path` (None where a row does not hold it)."""
        values = list(map(self.attrs[(path, field)], rows))
        if field in self.undocumented[path] and UNSET in values:
            return [None if v is UNSET else v for v in values]
        return values


def typed_records(types: RowTypes, body: bytes) -> list | None:
    """The page's records as typed rows; None where the body holds a field the plan does not
    know, a record or list of another shape, a NaN, ... (its dicts decide). After such a page
    the plan's pages are not tried again (a field it does not know likely comes again)."""
    if types.refused:
        return None
    try:
        return types.decode(body).records
    except (msgspec.DecodeError, ValueError):  # (ValidationError is a DecodeError)
        types.refused.append(True)
        return None


_CACHE: dict[int, RowTypes | None] = {}  # id of a live plan -> its row types (dropped with the plan)
_CACHE_LOCK = threading.Lock()


def row_types(stream: StreamDefinition, plan: ReadPlan) -> RowTypes | None:
    """The row types of a plan (built once a plan, kept while the plan lives), or None where
    rows cannot be typed: no msgspec, no envelope, a stream without a table of its own (its
    records' fields are kept on its nested rows: found from the dicts)."""
    key = id(plan)
    if key in _CACHE:
        return _CACHE[key]
    types = _built(stream, plan)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = types
            weakref.finalize(plan, _CACHE.pop, key, None)
        return _CACHE[key]


def _built(stream: StreamDefinition, plan: ReadPlan) -> RowTypes | None:
    own = stream.tables[0]
    if msgspec is None or stream.envelope is None or own.nested_path is not None:
        return None
    undocumented = {**{k: True for k in plan.extras}, **{k: True for k in plan.dict_extras}}
    keys = {c.source for c in own.columns if c.name in own.primary_key and not c.from_partition}
    levels: dict[str | None, tuple[frozenset, set]] = {None: (known_fields(stream, own), {*keys})}
    for table in stream.tables:
        if table.nested_path is not None:
            levels[table.nested_path] = (known_fields(stream, table), set())
    for path, name in (*plan.python, *undocumented):
        if path not in levels:
            return None
        levels[path][1].add(name)
    taken, attrs, extras, classes = {}, {}, {}, {}
    for path in sorted(levels, key=lambda p: p is None):  # the nested levels first: the records hold them
        known, values = levels[path]
        extras[path] = sorted(name for p, name in undocumented if p == path)
        names = sorted(known | values | set(extras[path]))
        fields, rename = [], {}
        for i, name in enumerate(names):
            attr = f"f{i}"
            rename[attr] = name
            attrs[(path, name)] = attrgetter(attr)
            if path is None and name in classes:
                fields.append((attr, list[classes[name]] | None, UNSET))
            elif name in extras[path]:  # (UNSET where a row lacks it: which rows hold it)
                fields.append((attr, Any, UNSET))
            elif name in values:
                fields.append((attr, Any, None))
            else:
                fields.append((attr, msgspec.Raw, UNSET))
        taken[path] = frozenset(values | set(extras[path]) | (set(classes) if path is None else set()))
        row = msgspec.defstruct(f"Row_{stream.name}_{path or ''}", fields, bases=(TypedRow,), rename=rename,
                                namespace={"_attrs": {name: f"f{i}" for i, name in enumerate(names)}},
                                forbid_unknown_fields=True, gc=False)
        if path is not None:
            classes[path] = row
    envelope = msgspec.defstruct(f"Page_{stream.name}", [("records", list[row])], rename={"records": stream.envelope})
    return RowTypes(msgspec.json.Decoder(envelope).decode, taken, extras, attrs)


def typed_extras(stream: StreamDefinition, types: RowTypes, records: list, items: Callable[[str], list],
                 key: Callable[[Any], Any], read: dict) -> list:
    """`evolve.find_extras` of a page whose records are typed rows: its undocumented fields
    are those of the plan some row holds (a field the plan does not know failed the decoding)."""
    own = stream.tables[0]
    found = _level_extras(own, None, records, None, types, key, read.get(own.name))
    for table in stream.tables:
        if table.nested_path is not None:
            rows = items(table.nested_path)
            found += _level_extras(table, table.nested_path, rows, ItemOwners(records, table.nested_path), types, key,
                                   read.get(table.name))
    return found


def _level_extras(table: TableSpec, path: str | None, rows: list, owners: Any, types: RowTypes,
                  key: Callable[[Any], Any], read: dict | None) -> list:
    firsts = {}
    for name in types.undocumented[path]:
        first = next((i for i, v in enumerate(map(types.getter(path, name), rows)) if v is not UNSET), None)
        if first is not None:
            firsts[name] = first

    def texts_of(name: str) -> tuple[str, list]:
        return held_texts(list(map(types.attrs[(path, name)], rows)))

    return extras_found(table, rows, firsts, texts_of, owners, key, read)


def held_texts(values: list) -> tuple[str, list]:
    """The type and texts (`evolve.values_type`, `values_text`) of an undocumented field's values
    on a level's rows, UNSET where a row does not hold it: a row holds a few of the undocumented
    fields, so only the values of the rows holding it are looked at, the others' texts left null."""
    held = list(compress(count(), map(is_not, values, repeat(UNSET))))
    if len(held) == len(values):
        kind = values_type(values)
        return kind, values_text(values, kind, True)
    present = list(map(values.__getitem__, held))
    kind = values_type(present)
    texts: list = [None] * len(values)
    for row, text in zip(held, values_text(present, kind, True)):
        texts[row] = text
    return kind, texts
