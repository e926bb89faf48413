"""The keys a first load's parts stored (`DuckDBStreamWriter.commit_part`), kept as the range of
the one key column of the stream's own table. A commit whose staged keys lie outside that range
repeats none of them: it is told so without reading the stored table, which in a file of many
accounts holds every account's rows (a probe of it scanned them all, each part: at 100 accounts
several million rows a part). Pages come in cursor order, so a first load's parts usually hold
keys apart from each other's; where they do not (keys of another order, a record listed twice),
the stored table is probed as before. Keys of more than one column (beside the account) keep no
range."""

from __future__ import annotations

from typing import Any

from ..definitions import TableSpec
from .merge_sql import quote_identifier as q


class PartKeys:
    def __init__(self, table: TableSpec, stamped: str | None):
        columns = [k for k in table.primary_key if k != stamped]
        self.column = columns[0] if len(columns) == 1 else None  # the key column whose range is kept
        self.low: Any = None  # the smallest and largest key stored by the parts (None: none yet)
        self.high: Any = None

    def staged(self, conn: Any, relation: str) -> tuple | None:
        """(min, max) of the key column of the staged rows `relation` (None: no range kept)."""
        if self.column is None:
            return None
        return tuple(conn.execute(f"SELECT min({q(self.column)}), max({q(self.column)}) FROM {relation}").fetchall()[0])

    def apart(self, staged: tuple | None) -> bool:
        """Whether no key of a staged range can be one the parts stored."""
        if staged is None:
            return False
        if staged[0] is None or self.low is None:
            return True  # no staged key that can match (a NULL key matches none), or none stored
        return staged[1] < self.low or staged[0] > self.high

    def add(self, staged: tuple | None) -> None:
        """A part stored the staged keys of this range."""
        if staged is None or staged[0] is None:
            return
        self.low = staged[0] if self.low is None else min(self.low, staged[0])
        self.high = staged[1] if self.high is None else max(self.high, staged[1])
