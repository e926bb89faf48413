"""Cursor tracking: the largest cursor value seen per partition in a run's pages, and the
stored cursors it advances (never backwards)."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from .definitions import StreamDefinition
from .records import column_max
from .state import NO_PARTITION, later


class CursorTracker:
    """Watches the parent table's cursor column page by page."""

    def __init__(self, stream: StreamDefinition):
        self.stream = stream
        self.maxima: dict[str | None, datetime] = {}

    def observe(self, partition: str | None, tables: dict[str, pa.Table]) -> None:
        if self.stream.cursor is None:
            return
        page_max = column_max(tables[self.stream.tables[0].name][self.stream.cursor.field])
        current = self.maxima.get(partition)
        if page_max is not None and (current is None or page_max > current):
            self.maxima[partition] = page_max

    def advance(self, cursors: dict[str, str]) -> dict[str, str]:
        """The stored cursors (partition key -> ISO text) moved to the largest values seen."""
        out = dict(cursors)
        for partition, maximum in self.maxima.items():
            key = partition or NO_PARTITION
            out[key] = later(out.get(key), maximum) or ""
        return out
