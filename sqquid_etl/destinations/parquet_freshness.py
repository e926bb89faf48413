"""What the Parquet destination keeps to see changes an incremental cursor cannot, as DuckDB does
(`duckdb_freshness.py`): a content hash of every row (`_sqquid_hash`), the moment a record was
proven gone upstream (`_sqquid_deleted_at`, a soft delete), and the counts of a commit (records
new / changed / unchanged / deleted).

Only the tables of incremental streams carry the two columns, after the documented columns and
the ones added for undocumented fields. Parquet files are immutable: a commit's new generation
holds the re-read rows with their hash, and the old files it carries over rewritten where a row
is marked (or removed: `--hard-delete`), linked where nothing of theirs changed. Rows written by
a first load (or a full refresh) have no hash (NULL): a comparison computes it from the stored
row, so the load that stores most rows does not pay for it. Files written by an older version
lack both columns: the next commit rewrites them with the columns null.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..definitions import TableSpec
from .duckdb_freshness import DELETED_AT, HASH, META_COLUMNS, Changes, hash_sql
from .merge_sql import quote_identifier as q, sql_path
from .parquet_evolve import carried_columns, file_columns


def split_meta(have: dict[str, str]) -> tuple[dict[str, str], bool]:
    """A generation's file columns without the meta columns, and whether its files carry them."""
    return {c: t for c, t in have.items() if c not in META_COLUMNS}, DELETED_AT in have


def files_sql(files: list[Path]) -> str:
    return "read_parquet([" + ", ".join(sql_path(f) for f in files) + "])"


def with_meta(new_sql: str, table: TableSpec, hashed: bool) -> str:
    """SQL of the new rows (`new_sql`) with their hash (or NULL, a first load) and no deletion."""
    digest = hash_sql(table) if hashed else "NULL::VARCHAR"
    return f"SELECT *, {digest} AS {q(HASH)}, NULL::TIMESTAMPTZ AS {q(DELETED_AT)} FROM ({new_sql})"


def meta_columns(has_meta: bool, mark: str | None, at: str) -> str:
    """SQL of an old row `o`'s meta columns in the new generation: `mark` (SQL, or None): rows
    proven gone now, marked at `at` (those marked before keep their time)."""
    digest = f"o.{q(HASH)}" if has_meta else "NULL::VARCHAR"
    deleted = f"o.{q(DELETED_AT)}" if has_meta else "NULL::TIMESTAMPTZ"
    if mark:
        deleted = f"CASE WHEN {mark} THEN coalesce({deleted}, TIMESTAMPTZ '{at}') ELSE {deleted} END"
    return f"{digest} AS {q(HASH)}, {deleted} AS {q(DELETED_AT)}"


def newly_marked(has_meta: bool, mark: str | None) -> str:
    """SQL on an old row `o`: `mark` holds and it was not marked before ("false": no mark)."""
    if not mark:
        return "false"
    return f"({mark}) AND o.{q(DELETED_AT)} IS NULL" if has_meta else f"({mark})"


def count_changes(sql: Any, table: TableSpec, latest: str, old_files: list[Path]) -> Changes:
    """Records of `latest` (SQL selecting the staged rows, one per key) that are new, changed
    (another hash, or back after being marked deleted) or unchanged against the stored files
    (those of the generation before the commit, a full refresh's too)."""
    if not old_files:
        return Changes(new=sql.execute(f"SELECT count(*) FROM ({latest})").fetchall()[0][0])
    has_meta = split_meta(file_columns(sql, old_files[0]))[1]
    match = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in table.primary_key)
    keys = ", ".join(q(k) for k in table.primary_key)
    stored = f"coalesce(t.{q(HASH)}, {hash_sql(table, 't')})" if has_meta else hash_sql(table, "t")
    live = f" AND t.{q(DELETED_AT)} IS NULL" if has_meta else ""
    first = q(table.primary_key[0])
    new, unchanged, total = sql.execute(
        f"WITH s AS ({latest}) SELECT count(*) FILTER (WHERE t.{first} IS NULL), "
        f"count(*) FILTER (WHERE t.{first} IS NOT NULL AND {stored} IS NOT DISTINCT FROM {hash_sql(table, 's')}{live}), "
        f"count(*) FROM s LEFT JOIN (SELECT * FROM {files_sql(old_files)} WHERE ({keys}) IN (SELECT {keys} FROM s)) t "
        f"ON {match}"
    ).fetchall()[0]
    return Changes(new=new, changed=total - new - unchanged, unchanged=unchanged)


def keep_marked(sql: Any, table: TableSpec, old_files: list[Path], final: dict[str, str], target: Path, row_group: int) -> None:
    """A full refresh keeps the rows marked gone upstream that it did not receive again (still
    marked): written to `target` in the new generation's shape (`_new` holds the new rows)."""
    kept = kept_marked_sql(table, old_files, file_columns(sql, old_files[0]), final) if old_files else None
    if kept and sql.execute(f"SELECT count(*) FROM ({kept})").fetchall()[0][0]:
        sql.execute(f"COPY ({kept}) TO {sql_path(target)} (FORMAT parquet, ROW_GROUP_SIZE {row_group})")


def kept_marked_sql(table: TableSpec, old_files: list[Path], have: dict[str, str], final: dict[str, str]) -> str | None:
    """A full refresh keeps the rows marked gone upstream that it did not receive again (still
    marked): SQL of them in the new generation's shape (the documented columns, `final`'s, the
    meta columns), over the old generation's files; None when those cannot be kept (no such
    column, or another set of documented columns: they go with the table, as in DuckDB)."""
    documented, has_meta = split_meta(have)
    if not old_files or not has_meta or list(documented)[:len(table.column_names)] != table.column_names:
        return None
    match = " AND ".join(f"n.{q(k)} IS NOT DISTINCT FROM o.{q(k)}" for k in table.primary_key)
    return (f"SELECT {carried_columns(table, final, documented)}, {meta_columns(True, None, '')} "
            f"FROM {files_sql(old_files)} o WHERE o.{q(DELETED_AT)} IS NOT NULL "
            f"AND NOT EXISTS (SELECT 1 FROM _new n WHERE {match})")
