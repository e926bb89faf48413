"""Pages collected into batches before they are staged, each row numbered in arrival order."""

from __future__ import annotations

import array
from typing import Callable

import pyarrow as pa

SEQ = "_sqquid_seq"  # staging column: a table's rows in arrival order, so the last version of a key wins


_COUNTING: list[pa.Array] = []  # 0, 1, ... (the longest asked for so far), shared by every batch
SLICED_AT_MOST = 1 << 17  # numbers up to this taken as a slice of _COUNTING (1 MB at most); past it, one kernel adds


def integer_range(start: int, n: int) -> pa.Array:
    """start, start + 1, ... (n values): a slice of one array of 0, 1, ... (a part's rows: no kernel;
    a kernel releases the GIL, which a hundred accounts' threads then take in turn), or, past
    `SLICED_AT_MOST`, a slice of it plus `start` (one Arrow kernel, ~5 µs for 1,000 values against
    ~35 µs made each time from Python's integers)."""
    end = start + n if start + n <= SLICED_AT_MOST else n
    counting = _COUNTING[0] if _COUNTING else None
    if counting is None or len(counting) < end:
        longest = 0 if counting is None else len(counting)
        counting = _int64s(range(max(end, 1 << 14, min(2 * longest, SLICED_AT_MOST))))
        _COUNTING[:] = [counting]
    if end == start + n:
        return counting.slice(start, n)
    from .. import arrow_compute as pc

    return pc.call_function("add", [counting.slice(0, n), _int64s([start])[0]])


def _int64s(values) -> pa.Array:
    """Integers as an int64 array, from a buffer (`pa.array`, `pa.scalar` would import pandas)."""
    values = array.array("q", values)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


class PageBuffer:
    """Collects pages per table and hands them out in batches of about `flush_rows` rows
    (`Tuning.flush_rows`), numbered in arrival order (one numbering a table: the order of one
    table's rows is what decides which version of a key is the last): one write per batch
    instead of one per 250-record page, memory bounded by the batch. `first`: for a table, a
    function of a batch's rows giving a column put first in it (a destination bound to an account:
    its account, `account_scope.stamp_column`), set once a batch instead of once a page."""

    def __init__(self, tables: list[str], flush_rows: int,
                 first: dict[str, Callable[[int], tuple[pa.Field, pa.Array]]] | None = None):
        self.flush_rows = flush_rows
        self._first = dict(first or {})
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
        data = pages[0] if len(pages) == 1 else pa.concat_tables(pages) if same \
            else pa.concat_tables(pages, promote_options="default")
        fields, columns = [*data.schema, _SEQ_FIELD], [*data.columns, integer_range(self._next[name], data.num_rows)]
        first = self._first.get(name)
        if first is not None:
            field, column = first(data.num_rows)
            fields.insert(0, field)
            columns.insert(0, column)
        # one table made of the columns (a column added to a table is a call that releases the GIL, twice)
        batch = pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=data.schema.metadata))
        self._next[name] += batch.num_rows
        self._pages[name], self._rows[name] = [], 0
        return batch

    def clear(self) -> None:
        for name in self._pages:
            self._pages[name], self._rows[name] = [], 0


_SEQ_FIELD = pa.field(SEQ, pa.int64())
