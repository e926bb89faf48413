"""Records proven gone upstream, in the Parquet destination: a run that listed a range completely
(`StreamWriter.prove_gone`) finds the stored records of that range it did not receive; the
commit's new generation marks them `_sqquid_deleted_at` with their child rows
(`parquet_freshness.py`), or drops them (`--hard-delete`, or a stream that keeps no such column)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..definitions import StreamDefinition, TableSpec
from .duckdb_freshness import DELETED_AT, Gone, within_ranges
from .merge_sql import quote_identifier as q, sql_path

GONE = "_sqquid_gone"


def find_gone(sql: Any, stream: StreamDefinition, old_files: list[Path], staged: str, ranges: list[Gone],
              marks: bool = False) -> int:
    """The keys of the stream's own table, stored in `old_files`, within `ranges` and not in
    `staged`, into the temp table `_sqquid_gone` (made only when there are ranges and files);
    returns how many. `marks`: the files carry `_sqquid_deleted_at`; rows marked before are not
    gone again."""
    parent = stream.tables[0]
    keys = ", ".join(f"o.{q(k)}" for k in parent.primary_key)
    if not ranges or not old_files or parent.nested_path is not None:
        return 0
    files = "[" + ", ".join(sql_path(f) for f in old_files) + "]"
    match = " AND ".join(f"s.{q(k)} = o.{q(k)}" for k in parent.primary_key)
    unmarked = f" AND o.{q(DELETED_AT)} IS NULL" if marks else ""
    with within_ranges(sql, ranges, "o") as within:
        sql.execute(f"CREATE OR REPLACE TEMP TABLE {GONE} AS SELECT {keys} FROM read_parquet({files}) o "
                    f"WHERE {within}{unmarked} AND NOT EXISTS (SELECT 1 FROM {staged} s WHERE {match})")  # one scan
    return sql.execute(f"SELECT count(*) FROM {GONE}").fetchall()[0][0]


def gone_condition(stream: StreamDefinition, table: TableSpec) -> str | None:
    """SQL on an old row `o` of `table`: true when it is a record gone upstream, or a child row
    of one (None: the table has no such rows)."""
    parent = stream.tables[0]
    if parent.nested_path is not None:
        return None
    if table.name == parent.name:
        keys = ", ".join(f"o.{q(k)}" for k in parent.primary_key)
        return f"({keys}) IN (SELECT * FROM {GONE})"
    if table.parent_link:
        link, parent_key = table.parent_link
        return f"o.{q(link)} IN (SELECT {q(parent_key)} FROM {GONE})"
    return None
