"""Pages numbered in arrival order, collected into batches before they are staged."""

from __future__ import annotations

import array

import pyarrow as pa

SEQ = "_sqquid_seq"  # staging column: arrival order, so the last version of a key wins


def number_rows(data: pa.Table, start: int) -> pa.Table:
    """The page with its arrival order in a SEQ column, numbered from `start`."""
    return data.append_column(SEQ, integer_range(start, data.num_rows))


def integer_range(start: int, n: int) -> pa.Array:
    """start, start + 1, ... (n values), built from a buffer (`pa.array` would import pandas)."""
    return pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(array.array("q", range(start, start + n)))])


class PageBuffer:
    """Collects numbered pages per table and hands them out in batches of about `flush_rows` rows
    (`Tuning.flush_rows`): one write per batch instead of one per 250-record page, memory bounded
    by the batch."""

    def __init__(self, tables: list[str], flush_rows: int):
        self.flush_rows = flush_rows
        self._seq = 0
        self._pages: dict[str, list[pa.Table]] = {name: [] for name in tables}
        self._rows: dict[str, int] = {name: 0 for name in tables}

    def add(self, name: str, data: pa.Table) -> pa.Table | None:
        """Buffer a page; return a full batch to write when there is one."""
        self._pages[name].append(number_rows(data, self._seq))
        self._seq += data.num_rows
        self._rows[name] += data.num_rows
        return self.take(name) if self._rows[name] >= self.flush_rows else None

    def take(self, name: str) -> pa.Table | None:
        """Everything buffered for a table, as one batch (None when empty)."""
        if not self._pages[name]:
            return None
        batch = pa.concat_tables(self._pages[name])
        self._pages[name], self._rows[name] = [], 0
        return batch

    def clear(self) -> None:
        for name in self._pages:
            self._pages[name], self._rows[name] = [], 0
