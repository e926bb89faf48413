"""What DuckDB keeps to see changes an incremental cursor cannot: a content hash of every row
(`_sqquid_hash`), the moment a record was proven gone upstream (`_sqquid_deleted_at`, a soft
delete), and the counts of a commit (records new / changed / unchanged / deleted).

The hash is the md5 of the row's documented columns (timestamps as epoch microseconds, so the
session's time zone does not change it); columns added for undocumented fields are not in it.
Rows stored by a first load (or a full refresh) have none (NULL), so the load that stores most
rows does not pay for a hash no one asked for yet (~0.2 s of CPU for 40,000 orders,
bench/startup.py). The counts of a commit compare a staged row's documented columns with the
stored row's (`same_row_sql`): what comparing their hashes would say, without making them.
Only the tables of incremental streams get these columns: a full-refresh stream's table is
replaced every run (its history, where kept, is `duckdb_history.py`).
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator


from ..definitions import StreamDefinition, TableSpec
from ..runs import CHANGE_COLUMNS
from .account_scope import is_stamped
from .merge_sql import quote_identifier as q

HASH = "_sqquid_hash"
DELETED_AT = "_sqquid_deleted_at"
META_COLUMNS = (HASH, DELETED_AT)
META_TYPES = {HASH: "VARCHAR", DELETED_AT: "TIMESTAMPTZ"}


@dataclass(frozen=True)
class Gone:
    """A range a run listed completely: stored records of the stream's own table in it (cursor >=
    `since`, < `until` when given, `equals`; or with `key`, (column, values): those whose column
    holds one of the values) that the run did not receive are gone upstream."""

    column: str
    since: datetime | None
    equals: dict
    until: datetime | None = None
    key: tuple | None = None


@contextmanager
def within_ranges(conn: Any, ranges: list[Gone], alias: str) -> Iterator[str]:
    """SQL true on a stored row `alias` within any of `ranges`, for statements on `conn` inside the
    block: the ranges are rows of temp tables (`range_shapes`), each joined by an EXISTS."""
    made, conditions = [], []
    try:
        for columns, joined in range_shapes(ranges, alias):
            if not columns:
                conditions.append("true")  # a range without bounds: every row
                continue
            name = f"_sqquid_ranges_{next(_RANGE_TABLES)}"
            conn.execute(f"CREATE TEMP TABLE {name} AS SELECT {', '.join(f'unnest(?) AS {c}' for c, _ in columns)}",
                         [values for _, values in columns])  # lists zipped into rows
            made.append(name)
            conditions.append(f"EXISTS (SELECT 1 FROM {name} r WHERE {joined})")
        yield "(" + (" OR ".join(conditions) or "false") + ")"
    finally:
        for name in made:
            conn.execute(f"DROP TABLE IF EXISTS {name}")


def range_shapes(ranges: list[Gone], alias: str) -> list[tuple[list[tuple[str, list]], str]]:
    """`ranges` by shape: for each, the bounds as columns of values (one row a range; a key range
    one row a key; none: a range without bounds, every row) and the condition joining a stored
    row `alias` to a row `r` of them. Rows joined to the stored rows, not one condition each: a
    run that proved a thousand ranges gone is a few semi joins, where a thousand ORs ran DuckDB
    out of memory. Key ranges with no key (nothing within them) are left out."""
    shapes: dict[tuple, list[Gone]] = {}
    for gone in ranges:
        shape = (gone.column, gone.since is not None, gone.until is not None, tuple(sorted(gone.equals)),
                 None if gone.key is None else gone.key[0])
        shapes.setdefault(shape, []).append(gone)
    out = []
    for shape, members in shapes.items():
        columns, clauses = _range_columns(shape, members, alias)
        if not clauses:
            out.append(([], "true"))
        elif columns[0][1]:
            out.append((columns, " AND ".join(clauses)))
    return out


_RANGE_TABLES = itertools.count()


def _range_columns(shape: tuple, members: list[Gone], alias: str) -> tuple[list[tuple[str, list]], list[str]]:
    """The bounds of ranges of one shape as columns of values (a key range: a row a key), and the
    conditions joining a stored row `alias` to a row `r` of them."""
    column, has_since, has_until, equal_names, key_column = shape
    if key_column is None:
        members = _coalesced(members, equal_names)
    rows = [(gone, value) for gone in members for value in (gone.key[1] if key_column is not None else [None])]
    columns, clauses = [], []
    if has_since:
        columns.append(("since", [gone.since for gone, _ in rows]))
        clauses.append(f"{alias}.{q(column)} >= r.since")
    if has_until:
        columns.append(("until", [gone.until for gone, _ in rows]))
        clauses.append(f"{alias}.{q(column)} < r.until")
    for i, name in enumerate(equal_names):
        columns.append((f"e{i}", [gone.equals[name] for gone, _ in rows]))
        clauses.append(f"{alias}.{q(name)} = r.e{i}")
    if key_column is not None:
        columns.append(("k", [value for _, value in rows]))
        clauses.append(f"{alias}.{q(key_column)} = r.k")
    return [(name, _one_type(values)) for name, values in columns], clauses


def _coalesced(members: list[Gone], equal_names: tuple) -> list[Gone]:
    """Time ranges of one shape with the same `equals`, overlapping or touching ones made one (the
    same rows are within them): the count scan's ranges are often neighbours."""
    out: list[Gone] = []
    ordered = sorted(members, key=lambda g: ([repr(g.equals[n]) for n in equal_names], g.since is not None, g.since))
    for gone in ordered:
        last = out[-1] if out else None
        if last is not None and last.equals == gone.equals and (
                last.until is None or (gone.since is not None and gone.since <= last.until)):
            if last.until is not None and (gone.until is None or gone.until > last.until):
                out[-1] = Gone(last.column, last.since, last.equals, gone.until)
            continue
        out.append(gone)
    return out


def _one_type(values: list) -> list:
    """Values of one bound as a list DuckDB binds as one type (keys of mixed types as text, as the
    API may send them)."""
    kinds = {type(v) for v in values if v is not None}
    return values if len(kinds) <= 1 else [None if v is None else str(v) for v in values]


@dataclass
class Changes:
    """What a commit did to the stream's own table, by record."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    hashed: int = 0  # of the unchanged, those stored with their hash (a merge leaves them as they are)

    def add_to(self, run: Any, before: dict[str, int] | None = None) -> None:
        """Count these into the run record's records_<kind>, on top of `before` (its counts before
        this commit, `run_counts`: a commit run again counts once) or of what it holds now."""
        for column in CHANGE_COLUMNS:
            base = getattr(run, column) if before is None else before[column]
            setattr(run, column, base + getattr(self, column.removeprefix("records_")))


def run_counts(run: Any) -> dict[str, int]:
    """A run record's records_<kind> as they are now."""
    return {column: getattr(run, column) for column in CHANGE_COLUMNS}


def tracked(stream: StreamDefinition) -> bool:
    """Whether the stream's tables carry the hash and the soft-delete columns (incremental ones)."""
    return stream.cursor is not None


def hash_sql(table: TableSpec, alias: str = "") -> str:
    """SQL of a row's content hash (md5 of its documented columns; not of the account column a
    multi-account destination stamps, so a row's hash is the same before and after an upgrade)."""
    prefix = f"{alias}." if alias else ""
    parts = []
    for column in table.columns:
        if is_stamped(column):
            continue
        value = f"{prefix}{q(column.name)}"
        if column.type == "timestamp":
            value = f"epoch_us({value})"
        parts.append(f"{q(column.name)} := {value}")
    return f"md5(CAST(struct_pack({', '.join(parts)}) AS VARCHAR))"


def same_row_sql(table: TableSpec, left: str, right: str) -> str:
    """SQL true when rows `left` and `right` hold the same documented columns (what the hash is
    of, compared as values: what comparing their hashes says, without making them)."""
    return " AND ".join(f"{left}.{q(c.name)} IS NOT DISTINCT FROM {right}.{q(c.name)}"
                        for c in table.columns if not is_stamped(c)) or "true"


def add_meta_columns(conn: Any, table: str, have: list[str]) -> list[str]:
    """The meta columns a table made by an older version lacks, added; returns those added."""
    added = [c for c in META_COLUMNS if c not in have]
    for column in added:
        conn.execute(f"ALTER TABLE {q(table)} ADD COLUMN IF NOT EXISTS {q(column)} {META_TYPES[column]}")
    return added


def count_changes(conn: Any, table: TableSpec, latest: str, target_exists: bool,
                  scope: tuple[list[str], list] = ([], [])) -> Changes:
    """Records of `latest` (SQL selecting the staged rows, one per key) that are new, changed
    (another content, or back after being marked deleted) or unchanged against the stored table;
    `scope`: conditions on its rows `t` (and their parameters), e.g. an account's. The documented
    columns are compared as values, not by their hash: the staged rows' md5 cost more than the
    comparison (0.028 -> 0.021 s in bench/startup.py's no-op run), 3-4x with that of stored rows
    a first load left without one."""
    if not target_exists:
        total = conn.execute(f"SELECT count(*) FROM ({latest})").fetchall()[0][0]
        return Changes(new=total)
    match = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in table.primary_key)
    first_key = q(table.primary_key[0])
    compared = (f"SELECT t.{first_key} IS NULL AS new, t.{first_key} IS NOT NULL AND {same_row_sql(table, 't', 's')} "
                f"AND t.{q(DELETED_AT)} IS NULL AS same, t.{q(HASH)} IS NOT NULL AS hashed "
                f"FROM ({latest}) s LEFT JOIN {q(table.name)} t ON {match}{''.join(f' AND {c}' for c in scope[0])}")
    new, unchanged, total, hashed = conn.execute(
        f"SELECT count(*) FILTER (WHERE new), count(*) FILTER (WHERE same), count(*), count(*) FILTER (WHERE same AND hashed) "
        f"FROM ({compared})", scope[1]).fetchall()[0]
    return Changes(new=new, changed=total - new - unchanged, unchanged=unchanged, hashed=hashed)


def mark_gone(conn: Any, stream: StreamDefinition, staged: str, ranges: list[Gone], at: datetime,
              hard: bool, existing: set[str], scope: tuple[str, ...] = ()) -> int:
    """The stored records of the stream's own table within `ranges` that the run did not stage,
    and their child rows: marked `_sqquid_deleted_at = at` (or removed, `hard`). Returns how many
    records of the stream's table. `scope`: columns a child shares with its parent beside the
    link (a multi-account table's `account`). Within the caller's transaction."""
    parent = stream.tables[0]
    if not ranges or parent.name not in existing:
        return 0
    keys = ", ".join(q(k) for k in parent.primary_key)
    shapes = range_shapes(ranges, "t")
    if not shapes:
        return 0
    gone, params = _gone_sql(parent, staged, shapes)
    count = conn.execute(f"SELECT count(*) FROM ({gone})", params).fetchall()[0][0]  # most runs: none, one statement
    if count:
        conn.execute(f"CREATE OR REPLACE TEMP TABLE _sqquid_gone AS {gone}", params)
        _apply(conn, parent.name, f"({keys}) IN (SELECT {keys} FROM _sqquid_gone)", at, hard)
        for child in stream.tables[1:]:
            if child.parent_link and child.name in existing:
                link, parent_key = child.parent_link
                mine = ", ".join(q(c) for c in (*scope, link))
                theirs = ", ".join(q(c) for c in (*scope, parent_key))
                _apply(conn, child.name, f"({mine}) IN (SELECT {theirs} FROM _sqquid_gone)", at, hard)
        conn.execute("DROP TABLE _sqquid_gone")
    return count


def _gone_sql(parent: TableSpec, staged: str, shapes: list[tuple[list[tuple[str, list]], str]]) -> tuple[str, list]:
    """SQL of the keys of the live stored rows `t` of `parent` within the ranges (`range_shapes`)
    that are not in `staged`, and its parameters (the ranges' bounds): a semi join a shape, then
    an anti join (written as joins: DuckDB plans EXISTS beside an inequality with a grouping of
    every stored row, 3-4x the CPU)."""
    keys = ", ".join(f"t.{q(k)}" for k in parent.primary_key)
    live = f"WHERE t.{q(DELETED_AT)} IS NULL"
    if any(not columns for columns, _ in shapes):  # a range without bounds: every live row
        within, params = f"SELECT {keys} FROM {q(parent.name)} t {live}", []
    else:
        parts, params = [], []
        for columns, joined in shapes:
            bounds = ", ".join(f"unnest(?) AS {c}" for c, _ in columns)  # lists zipped into rows
            parts.append(f"SELECT {keys} FROM {q(parent.name)} t SEMI JOIN (SELECT {bounds}) r ON {joined} {live}")
            params += [values for _, values in columns]
        within = " UNION ".join(parts)
    match = " AND ".join(f"s.{q(k)} = w.{q(k)}" for k in parent.primary_key)
    return f"SELECT w.* FROM ({within}) w ANTI JOIN {staged} s ON {match}", params


def _apply(conn: Any, table: str, condition: str, at: datetime, hard: bool) -> None:
    if hard:
        conn.execute(f"DELETE FROM {q(table)} WHERE {condition}")
    else:
        conn.execute(f"UPDATE {q(table)} SET {q(DELETED_AT)} = ? WHERE {q(DELETED_AT)} IS NULL AND {condition}", [at])
