"""Bounded caches: serialized records (``ByteCache``) and filtered key lists (``QueryCache``)."""

from __future__ import annotations


class ByteCache:
    """Serialized records up to a byte budget. It keeps the first records served until it is
    full (a sequential pass over more data than fits keeps its head, where an LRU would keep
    nothing useful); dropping a record frees its room."""

    ENTRY_COST = 120  # bytes object header + dict slot, roughly

    def __init__(self, budget: int):
        self.budget = budget
        self.used = 0
        self._views: dict[str, dict[int, bytes]] = {}

    def get(self, view: str, key: int) -> bytes | None:
        entries = self._views.get(view)
        return entries.get(key) if entries else None

    def holds_any(self, view: str, keys) -> bool:
        """Whether any of ``keys`` of ``view`` is kept."""
        entries = self._views.get(view)
        return bool(entries) and not entries.keys().isdisjoint(keys)

    def put(self, view: str, key: int, data: bytes) -> None:
        cost = len(data) + self.ENTRY_COST
        if self.used + cost <= self.budget:
            entries = self._views.setdefault(view, {})
            if key not in entries:
                entries[key] = data
                self.used += cost

    def drop(self, view: str, key: int) -> None:
        entries = self._views.get(view)
        data = entries.pop(key, None) if entries else None
        if data is not None:
            self.used -= len(data) + self.ENTRY_COST

    @property
    def full(self) -> bool:
        return self.used + self.ENTRY_COST * 8 >= self.budget


class QueryCache:
    """Filtered key lists by query (endpoint, filter values, data version); cleared whole
    when it holds more than ``max_entries`` lists or ``max_keys`` keys in all."""

    def __init__(self, max_entries: int = 256, max_keys: int = 4_000_000):
        self.max_entries, self.max_keys = max_entries, max_keys
        self._entries: dict = {}
        self._keys = 0

    def get(self, query: tuple, build):
        hit = self._entries.get(query)
        if hit is None:
            hit = build()
            if len(self._entries) >= self.max_entries or self._keys + len(hit) > self.max_keys:
                self._entries.clear()
                self._keys = 0
            self._entries[query] = hit
            self._keys += len(hit)
        return hit
