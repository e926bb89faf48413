"""One kind of record in id order: a generated base plus an overlay of runtime changes, and a
read-only list view of its records.

Keys 0..base-1 are generated records (made again from the seed whenever asked); keys after
them are records added while the sandbox runs. ``changed`` replaces a generated record,
``deleted`` hides one. The overlay is small: it holds only what changed. With a ``drift`` hook
(``drift.Drift``) a record is served drifted: made as a dict, drifted, then cached as bytes.
A page of generated records the cache neither holds nor takes is made in one call
(``make_page``): what a page served costs when records are read once.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Sequence
from typing import Callable

from .cache import ByteCache
from .pools import dumps


class Table:
    """``make_text(key)`` gives a generated record as JSON text (fast path), or
    ``make_record(key)`` gives it as a dict; ``make_page(keys)`` (optional, with
    ``make_text``) gives several as JSON, comma-separated, as ``make_text`` would one by one."""

    def __init__(self, view: str, base: int, cache: ByteCache, *,
                 make_text: Callable[[int], str] | None = None,
                 make_record: Callable[[int], dict] | None = None,
                 make_page: Callable[[Sequence[int]], bytes] | None = None):
        self.view, self.base, self.cache = view, base, cache
        self._make_text, self._make_record, self._make_page = make_text, make_record, make_page
        self.added: list[dict] = []
        self.changed: dict[int, dict] = {}
        self.deleted: set[int] = set()
        self._alive: array | None = None
        self.drift: Callable[[int, dict], dict] | None = None  # record -> as served (``drift.Drift``)

    @property
    def size(self) -> int:
        """Keys handed out so far (deleted ones included)."""
        return self.base + len(self.added)

    def __len__(self) -> int:
        return self.size - len(self.deleted)

    def keys(self) -> Sequence[int]:
        """Every live key, in id order."""
        if not self.deleted:
            return range(self.size)
        if self._alive is None:
            self._alive = array("i", (k for k in range(self.size) if k not in self.deleted))
        return self._alive

    def exists(self, key: int) -> bool:
        return 0 <= key < self.size and key not in self.deleted

    def generated(self, key: int) -> bool:
        """Whether the record is the one the seed makes (not added, not changed)."""
        return key < self.base and key not in self.changed

    def record(self, key: int) -> dict:
        """The record as a fresh dict (the caller may change it and ``change`` it back)."""
        if key >= self.base:
            return json.loads(dumps(self.added[key - self.base]))
        if key in self.changed:
            return json.loads(dumps(self.changed[key]))
        if self._make_text is not None:
            return json.loads(self._make_text(key))
        return self._make_record(key)

    def json_bytes(self, key: int) -> bytes:
        data = self.cache.get(self.view, key)
        if data is None:
            if self.drift is not None:
                data = dumps(self.drift(key, self.record(key)))
            elif not self.generated(key):
                data = dumps(self.changed.get(key) or self.added[key - self.base])
            elif self._make_text is not None:
                data = self._make_text(key).encode()
            else:
                data = dumps(self._make_record(key))
            self.cache.put(self.view, key, data)
        return data

    def page(self, keys: Sequence[int]) -> bytes:
        """The records of ``keys`` as served, comma-separated. Generated ones, when the cache
        neither holds any of them nor has room, are made together; otherwise record by record
        (``json_bytes``: from the cache, or made and kept while the cache has room)."""
        if (self._make_page is None or self.drift is not None or not self.cache.full or not keys
                or max(keys) >= self.base or not self.changed.keys().isdisjoint(keys)
                or self.cache.holds_any(self.view, keys)):
            return b",".join(map(self.json_bytes, keys))
        return self._make_page(keys)

    def add(self, record: dict) -> int:
        self.added.append(record)
        self._alive = None
        return self.size - 1

    def change(self, key: int, record: dict) -> None:
        if key >= self.base:
            self.added[key - self.base] = record
        else:
            self.changed[key] = record
        self.cache.drop(self.view, key)

    def delete(self, key: int) -> None:
        self.deleted.add(key)
        self._alive = None
        self.cache.drop(self.view, key)


class RecordList(Sequence):
    """A table's live records as a read-only list of dicts, made when read."""

    def __init__(self, table: Table):
        self._table = table

    def __len__(self) -> int:
        return len(self._table)

    def __getitem__(self, index):
        keys = self._table.keys()
        if isinstance(index, slice):
            return [self._table.record(k) for k in keys[index]]
        return self._table.record(keys[index])

    def __iter__(self):
        return (self._table.record(k) for k in self._table.keys())

    def __eq__(self, other) -> bool:
        return isinstance(other, (list, RecordList)) and list(self) == list(other)

    __hash__ = None
