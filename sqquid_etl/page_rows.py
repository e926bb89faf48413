"""What the conversion of a page takes from its records rather than from its struct array
(`records.page_tables`): the fields its plan reads by Python, the values coerced of the fields
read as decimals, its undocumented fields. The records are decoded from the body once, when
first needed: as typed rows holding only those fields where the page's records hold no field
its plan does not know (`typed_rows.py`), else as dicts (`decode.read_dicts`). `typed_rows` (and
msgspec with it) is imported by the first page whose records are needed: a run of clean pages
loads neither, as `decode` defers msgspec for the dicts."""

from __future__ import annotations

from itertools import chain, repeat
from typing import TYPE_CHECKING, Any, Callable

from .decode import Page, read_dicts
from .definitions import StreamDefinition
from .evolve import find_extras
from .plan import LENIENT_FLOATS, LENIENT_KINDS

if TYPE_CHECKING:
    from .typed_rows import RowTypes


class PageRows:
    """A page's records, decoded from its body once, when first needed."""

    __slots__ = ("stream", "page", "records", "finite", "typed", "_rows", "_items", "_misfits")

    def __init__(self, stream: StreamDefinition, page: Page):
        self.stream, self.page, self.records = stream, page, page.records
        self.finite = False  # the records hold no NaN or infinity (`decode.read_dicts`)
        self.typed: RowTypes | None = None  # the types of `_rows`, when they are typed rows
        self._rows: list | None = None  # the records the conversion reads: typed rows or dicts
        self._items: dict[str, list] = {}
        self._misfits: dict[tuple, list | None] = {}

    def __call__(self) -> list[dict]:
        """The records as dicts (the record-by-record path reads them)."""
        if self.records is None:
            self.records, self.finite = read_dicts(self.stream, self.page)
        return self.records

    def _top(self) -> list:
        if self._rows is None:
            plan, rows = self.page.plan, None
            if self.page.records is None and plan is not None and plan.reads_dicts:
                from .typed_rows import row_types, typed_records  # (msgspec: only once records are needed)

                types = row_types(self.stream, plan)
                rows = typed_records(types, self.page.body) if types is not None else None
                if rows is not None:
                    self.typed, self.finite = types, True
            self._rows = rows if rows is not None else self()
        return self._rows

    def _getter(self, path: str | None, field: str) -> Callable[[Any], Any] | None:
        """How typed rows give the field (None: the rows are dicts); rows that do not hold it
        are left for dicts."""
        self._top()
        if self.typed is None:
            return None
        get = self.typed.getter(path, field)
        if get is None:
            self.typed, self._rows = None, self()
            self._items.clear()
        return get

    def rows(self, path: str | None) -> list:
        """The records (`path` None), or the items of their `path` lists."""
        if path is None:
            return self._top()
        items = self._items.get(path)
        if items is None:
            get = self._getter(None, path)
            lists = map(get, self._rows) if get is not None else map(dict.get, self._rows, repeat(path))
            items = self._items[path] = list(chain.from_iterable(filter(None, lists)))
        return items

    def values(self, path: str | None, source: str) -> list:
        """The values of one field: of each record (`path` None), or of each item of its `path` list."""
        get = self._getter(path, source)
        rows = self.rows(path)
        if get is not None and self.typed is not None:
            return self.typed.values(path, source, rows)
        try:
            return list(map(dict.get, rows, repeat(source)))
        except TypeError:  # an item that is not an object (`pa.array` read a tuple as a struct)
            return [row.get(source) for row in rows]

    def misfits(self, path: str | None, source: str, column: str) -> list[int] | None:
        """The rows whose value of the field is not of the column's JSON type (nor null): the
        values coerced where Arrow read the field as a decimal (`plan.LENIENT_TYPES`); None where
        one of them is a float past `plan.LENIENT_FLOATS` (the column is then read by Python, as
        the record-by-record path does: through the double; any other value reads the same
        either way)."""
        key = (path, source, column)
        if key not in self._misfits:
            kind, values = LENIENT_KINDS[column], self.values(path, source)
            found: list[int] | None = [i for i, v in enumerate(values) if type(v) is not kind and v is not None]
            bound = LENIENT_FLOATS[column]
            if any(type(v := values[i]) is float and not -bound < v < bound for i in found):  # type: ignore[union-attr]
                found = None
            self._misfits[key] = found
        return self._misfits[key]

    def extras(self, key: Callable[[Any], Any], read: dict) -> list:
        """The undocumented fields of the page's records (`evolve.Extra`), those of `read` as
        Arrow read them."""
        rows = self._top()
        if self.typed is not None:
            from .typed_rows import typed_extras

            return typed_extras(self.stream, self.typed, rows, self.rows, key, read)
        return find_extras(self.stream, rows, (), key, read, self.finite, self.rows)
