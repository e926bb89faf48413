"""Pages collected into batches before they are staged, each row numbered in arrival order."""

from __future__ import annotations

import array

import pyarrow as pa

SEQ = "_sqquid_seq"  # staging column: a table's rows in arrival order, so the last version of a key wins


def number_rows(data: pa.Table, start: int) -> pa.Table:
    """The rows with their arrival order in a SEQ column, numbered from `start`."""
    return data.append_column(SEQ, integer_range(start, data.num_rows))


_COUNTING: list[pa.Array] = []  # 0, 1, ... (the longest asked for so far), shared by every batch


def integer_range(start: int, n: int) -> pa.Array:
    """start, start + 1, ... (n values): a slice of one array of 0, 1, ... plus `start` (one Arrow
    kernel, ~5 µs for 1,000 values against ~35 µs made each time from Python's integers)."""
    from .. import arrow_compute as pc

    counting = _COUNTING[0] if _COUNTING else None
    if counting is None or len(counting) < n:
        counting = _int64s(range(max(n, 1 << 14)))
        _COUNTING[:] = [counting]
    return pc.call_function("add", [counting.slice(0, n), _int64s([start])[0]])


def _int64s(values) -> pa.Array:
    """Integers as an int64 array, from a buffer (`pa.array`, `pa.scalar` would import pandas)."""
    values = array.array("q", values)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


class PageBuffer:
    """Collects pages per table and hands them out in batches of about `flush_rows` rows
    (`Tuning.flush_rows`), numbered in arrival order (one numbering a table: the order of one
    table's rows is what decides which version of a key is the last): one write per batch
    instead of one per 250-record page, memory bounded by the batch."""

    def __init__(self, tables: list[str], flush_rows: int):
        self.flush_rows = flush_rows
        self._next = {name: 0 for name in tables}  # the number of a table's next row
        self._pages: dict[str, list[pa.Table]] = {name: [] for name in tables}
        self._rows: dict[str, int] = {name: 0 for name in tables}

    def add(self, name: str, data: pa.Table) -> pa.Table | None:
        """Buffer a page; return a full batch to write when there is one."""
        self._pages[name].append(data)
        self._rows[name] += data.num_rows
        return self.take(name) if self._rows[name] >= self.flush_rows else None

    def take(self, name: str) -> pa.Table | None:
        """Everything buffered for a table, as one numbered batch (None when empty)."""
        if not self._pages[name]:
            return None
        pages = self._pages[name]
        same = all(page.schema == pages[0].schema for page in pages)  # (pages with undocumented columns: more)
        batch = number_rows(pa.concat_tables(pages) if same else pa.concat_tables(pages, promote_options="default"),
                            self._next[name])
        self._next[name] += batch.num_rows
        self._pages[name], self._rows[name] = [], 0
        return batch

    def clear(self) -> None:
        for name in self._pages:
            self._pages[name], self._rows[name] = [], 0
