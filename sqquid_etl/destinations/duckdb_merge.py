"""The merge of an incremental stream's staged rows into a table that holds rows already: only the
rows that are new or changed are written.

A re-read window (`freshness.py`) stages rows most of which are stored already as they are;
deleting and inserting them again cost the merge, an md5 a row and the checkpoint that wrote them
once more. A staged row identical to a live stored row (the same documented columns, the same
undocumented ones the commit brings and no other set, its hash stored) is left as it is; the rest
replace their stored rows. The table ends as it would with every staged row replaced: each staged
key holds the staged row, live, with its hash (`duckdb_freshness.hash_sql`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from ..definitions import TableSpec
from .duckdb_freshness import DELETED_AT, HASH, META_COLUMNS, hash_sql, same_row_sql
from .merge_sql import quote_identifier as q

FRESH = "_sqquid_fresh"  # the staged rows to write (temp, dropped within the commit)


def unchanged_sql(table: TableSpec, stored: list[str], extras: dict[str, str], t: str, s: str) -> str:
    """SQL true when the stored row `t` holds what the staged row `s` would store: the same
    documented columns, live, hashed, and its undocumented columns those the commit brings (the
    others NULL, as an insert of `s` leaves them)."""
    documented = set(table.column_names) | set(META_COLUMNS)
    evolved = [f"{t}.{q(c)} IS NOT DISTINCT FROM {s}.{q(c)}" if c in extras else f"{t}.{q(c)} IS NULL"
               for c in stored if c not in documented]
    return " AND ".join([same_row_sql(table, t, s), f"{t}.{q(DELETED_AT)} IS NULL", f"{t}.{q(HASH)} IS NOT NULL", *evolved])


def stage_fresh(conn: Any, table: TableSpec, stored: list[str], latest: str, extras: dict[str, str],
                mine: tuple[str, list]) -> int:
    """The staged rows (`latest`: one a key) that are new or differ from their stored row, in the
    temp table FRESH (made only when there are any: a run that re-read rows as stored costs one
    join); returns how many."""
    first = f"t.{q(table.primary_key[0])}"
    match = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in table.primary_key)
    fresh = (f"FROM ({latest}) s LEFT JOIN {q(table.name)} t ON {match}{mine[0]} "
             f"WHERE {first} IS NULL OR NOT ({unchanged_sql(table, stored, extras, 't', 's')})")
    count = conn.execute(f"SELECT count(*) {fresh}", mine[1]).fetchall()[0][0]
    if count:
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {FRESH} AS SELECT s.* {fresh}", mine[1])
    return count


def merge_changed(conn: Any, table: TableSpec, stored: list[str], staged: tuple[str, str] | None,
                  extras: dict[str, str], scope: Callable[[str], tuple[str, list]], parents: tuple[str, str] | None,
                  hard: bool, at: datetime, as_stored: bool = False) -> None:
    """Merge the staged rows of `table` (`staged`: their relation, and SQL selecting them one a
    key, `merge_sql.latest_versions_sql`; None: no row of it was staged) into the stored table,
    writing only those new or changed. `scope(alias)`: the condition on a target row `alias`
    (` AND alias.account = ?`, or "") and its parameters. `parents`, for a child table whose
    parents were staged: their relation and the condition linking a target row to one of them
    `p`; the live children of a parent fetched again that it no longer has are marked
    `_sqquid_deleted_at = at` (`hard`: removed). `as_stored`: the caller knows every staged row
    to be stored as it is (its count of the commit's changes). Within the caller's transaction."""
    target = q(table.name)
    mine = scope(target)
    fresh = 0 if staged is None or as_stored else stage_fresh(conn, table, stored, staged[1], extras, scope("t"))
    if fresh:
        match = " AND ".join(f"{target}.{q(k)} = s.{q(k)}" for k in table.primary_key)
        conn.execute(f"DELETE FROM {target} USING {FRESH} s WHERE {match}{mine[0]}", mine[1])
    if parents is not None:
        _drop_children(conn, table, parents, mine, None if staged is None else staged[0], hard, at)
    if fresh:
        columns = ", ".join(q(c) for c in (*table.column_names, *extras))
        conn.execute(f"INSERT INTO {target} ({columns}, {HASH}) SELECT {columns}, {hash_sql(table)} FROM {FRESH}")
        conn.execute(f"DROP TABLE {FRESH}")


def _drop_children(conn: Any, table: TableSpec, parents: tuple[str, str], mine: tuple[str, list], staged: str | None,
                   hard: bool, at: datetime) -> None:
    """The live stored children of the staged parents that were not staged again: marked (or
    removed), when there are any (counted first, by joins: most runs have none)."""
    target = q(table.name)
    relation, linked = parents
    live = "" if hard else f" AND {target}.{q(DELETED_AT)} IS NULL"
    match = " AND ".join(f"{target}.{q(k)} = c.{q(k)}" for k in table.primary_key)
    anti = "" if staged is None else f" ANTI JOIN {staged} c ON {match}"
    if not conn.execute(f"SELECT count(*) FROM {target} SEMI JOIN {relation} p ON {linked}{anti} WHERE true{live}{mine[0]}",
                        mine[1]).fetchall()[0][0]:
        return
    kept = "" if staged is None else f" AND NOT EXISTS (SELECT 1 FROM {staged} c WHERE {match})"  # (left as they are)
    if hard:
        conn.execute(f"DELETE FROM {target} USING {relation} p WHERE {linked}{mine[0]}{kept}", mine[1])
    else:
        conn.execute(f"UPDATE {target} SET {q(DELETED_AT)} = ? FROM {relation} p WHERE {linked}{live}{mine[0]}{kept}",
                     [at, *mine[1]])
