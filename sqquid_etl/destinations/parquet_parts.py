"""A first load into a Parquet directory bound to an account, committed in parts as the run goes.

A run of many accounts into Parquet committed each account's stream once, after its last page,
and the accounts end together: their commits (each reads the run's staged pages and writes them
as the table's new generation, `commit_slots.py`: a few at once) queued after the last page (100
accounts x 3 min: every page answered at 182 s, the last commit ended at 207 s). So an account's
first load (nothing stored for it yet, nothing replaced, no history kept) commits the pages staged
so far once `PART_ROWS` rows are (`commit_parts.PartCommits` asks every few seconds), as the DuckDB
file's do: each part a new
generation of each table (the parts before it linked, its rows in a file of their own), the run's
OLD state and a `running` run row; the commit after the last page holds the last few pages.

What is stored is only ever rows this run received: a crash between parts leaves whole rows and
the old cursors, and the next run merges by key. A part whose keys lie apart from those the parts
stored (pages come in cursor order; `part_keys.PartKeys`) links the stored files without reading
them; else they are read and the repeated keys' old rows dropped, as any merge does. A part is
committed only when a commit slot is free at once: it never waits behind other accounts' commits.
"""

from __future__ import annotations

from typing import Any

from ..runs import REJECTED_TABLE
from .account_scope import ACCOUNT
from .commit_slots import release_part_slot, take_part_slot
from .duckdb_tuning import within_memory_limit
from .merge_sql import quote_identifier as q
from .parquet_freshness import files_sql
from .part_keys import PartKeys
from .staging import ParquetStage

# a part asked for as the run goes (`wait=False`) is committed once the stream's own table has this
# many rows staged: each part costs ~20 ms of CPU beside its rows (a generation, its files written
# and fsynced, DuckDB's COPY of a few rows, the state), so parts of every 10 s cost a stretched run
# (100 accounts x 60 s at a load of 20: ~40 parts an account) +70% of the client's CPU; parts of
# 20,000 records (80 pages, 40 s at 2/s) are 4 of a 3-minute run, and leave its last commit a ninth
PART_ROWS = 20_000


class Parts:
    """A Parquet writer's parts: whether it commits in parts, how many it committed, the keys and
    the new records they stored."""

    def __init__(self, writer: Any, allowed: bool = True):
        stream = writer.stream
        self.enabled = (allowed and writer.account is not None and not writer.replace and writer.tracks_changes
                        and not stream.history and stream.tables[0].nested_path is None
                        and not any(writer._before.values()))
        self.count = 0  # parts committed so far
        self.stored_new = 0  # records of the stream's own table the parts stored (each new then)
        self.keys = PartKeys(stream.tables[0], ACCOUNT)  # the range of the keys they stored
        self.staged: tuple | None = None  # the commit under way: the range of its staged keys (`look`)
        self.apart = False  # and whether it lies apart from those the parts stored

    def look(self, writer: Any) -> None:
        """Before a commit (a part or the last): the range of its staged keys, and whether it lies
        apart from those the parts stored."""
        self.staged = staged_range(writer) if self.enabled else None
        self.apart = self.count > 0 and self.keys.apart(self.staged)

    def links_stored(self, reshape: bool) -> bool:
        """Whether the commit under way links the files the parts stored without reading them."""
        return self.count > 0 and self.apart and not reshape


class InParts:
    """What a Parquet stream writer (`parquet.ParquetStreamWriter`) has for committing in parts."""

    @property
    def commits_in_parts(self) -> bool:
        return self._parts.enabled

    def commit_part(self, state: Any, run: Any, wait: bool = True) -> bool:
        return commit_part(self, state, run, wait)

    def _new_stage(self) -> None:
        """The pages staged anew (the writer begins, or a part was committed)."""
        # (no key column given: the stage would keep each batch's key chunks, and with them the pages'
        # Arrow memory until the part, ~250 bytes a row: 4 accounts' Arrow at most 20.8 vs 2.8 MB)
        self.stage = ParquetStage(self.layout.staging_dir(self.stream.name), self.stream, self.dest.tuning.flush_rows)
        self._latest_sql: dict[str, str] = {}  # table -> SQL of its staged rows, one a key (`_latest`)

    def _after_part(self) -> None:
        """A part was committed: its generations are the stored files now; the next pages staged anew."""
        self._read_current()
        self._new_stage()

    def _staged_unique(self, table: Any) -> bool:
        """Whether the staged rows of a table are known to hold each key once, without DuckDB."""
        return self.stage.unique(table.name)


def staged_range(writer: Any) -> tuple | None:
    """(min, max) of the key column of the stream's own table's staged rows ((None, None): none
    staged; None: no range kept)."""
    parent = writer.stream.tables[0]
    if not writer.stage.rows(parent.name):
        return None, None
    return writer._parts.keys.staged(writer.sql, writer.stage.relation(parent.name))


def commit_part(writer: Any, state: Any, run: Any, wait: bool = True) -> bool:
    """Store the pages staged so far with `state` (the caller's: the run's old one) and the run row,
    as `commit` does but proving nothing gone; the next pages are staged anew. Returns whether a
    part was committed: not when nothing is staged, nor (`wait=False`) before `PART_ROWS` rows are
    or while another part or every commit slot is taken (the pages wait for the next part)."""
    parts = writer._parts
    if not parts.enabled:
        raise RuntimeError("commit_part: this writer commits its stream in one piece")
    if not any(writer.stage.rows(t.name) for t in writer.stream.tables) and not writer.stage.rows(REJECTED_TABLE):
        return False
    if not wait and writer.stage.rows(writer.stream.tables[0].name) < PART_ROWS:
        return False
    if not take_part_slot(writer.account, wait):
        return False
    try:
        writer._commit(state, run)
    finally:
        release_part_slot(writer.account)
    parts.keys.add(parts.staged)
    parts.count += 1
    parts.stored_new += writer._part_new
    writer._after_part()
    return True


def distinct_keys(writer: Any, table: str) -> int:
    """After parts: the distinct keys of the stream's own table the run received (those the parts
    stored, each new then, and those staged now that none of them stored)."""
    parent = writer.stream.tables[0]
    if table != parent.name:
        raise ValueError(f"distinct keys of table {table!r}: counted for the stream's own table only after parts")
    parts = writer._parts
    if not writer.stage.rows(parent.name):
        return parts.stored_new
    staged = writer.stage.relation(parent.name)
    keys = ", ".join(q(k) for k in parent.primary_key)
    if parts.keys.apart(staged_range(writer)) or not writer._old_files[parent.name]:
        sql = f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {staged})"
    else:
        match = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in parent.primary_key)
        sql = (f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {staged}) s "
               f"WHERE NOT EXISTS (SELECT 1 FROM {files_sql(writer._old_files[parent.name])} t WHERE {match})")
    return parts.stored_new + within_memory_limit(writer.sql, writer.dest.tuning, writer.stream.name,
                                                  lambda: writer.sql.execute(sql).fetchall()[0][0])
