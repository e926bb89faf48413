"""Type-2 history of a snapshot stream's tables (`history: true`: inventory, buffers) in the Parquet
destination, as DuckDB keeps it (`duckdb_history.py`): the table `<table>_history` (its own
directory of generations, an account's partition in a multi-account directory) holds every
version of every row: its columns, its content hash, `valid_from` (the start of the run that
first saw this version), `valid_to` (the start of the run that saw it change or disappear; NULL
while current) and the `run_id` that recorded it.

The commit of the snapshot builds the history's next generation too: the old files linked, or
rewritten where a current version closes, and one file of the versions opened; it is made
current with the snapshot's tables, before the state (on object storage: in the same manifest
write). The history is compared with itself, not with the snapshot table, so a run that failed
between the two switches leaves nothing the next run would record wrongly.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from ..definitions import TableSpec
from ..runs import RunRecord
from .duckdb_freshness import HASH, hash_sql
from .duckdb_history import history_table
from .files import link_or_copy
from .merge_sql import quote_identifier as q, sql_path
from .parquet_freshness import files_sql

SNAPSHOT = "_sqquid_snapshot"


def build_history(sql: Any, layout: Any, table: TableSpec, latest: str, run: RunRecord, commit_id: str,
                  row_group: int) -> tuple[str, Path]:
    """The next generation of `<table>_history` for the snapshot `latest` (SQL selecting the
    staged rows, one per key): (the history table's name, its new generation, to be switched in)."""
    name = history_table(table.name)
    current = layout.current_generation(name)
    old_files = sorted(current.glob("*.parquet")) if current else []
    generation = layout.new_generation(name, commit_id)
    at = f"TIMESTAMPTZ '{datetime.fromisoformat(run.started_at).isoformat()}'"
    columns = ", ".join(q(c) for c in table.column_names)
    sql.execute(f"CREATE OR REPLACE TEMP TABLE {SNAPSHOT} AS SELECT {columns}, {hash_sql(table)} AS {q(HASH)} FROM ({latest})")
    same = " AND ".join(f"s.{q(k)} IS NOT DISTINCT FROM h.{q(k)}" for k in table.primary_key) + f" AND s.{q(HASH)} = h.{q(HASH)}"
    closes = f"h.valid_to IS NULL AND NOT EXISTS (SELECT 1 FROM {SNAPSHOT} s WHERE {same})"
    for old in old_files:
        source = f"read_parquet({sql_path(old)}) h"
        if not sql.execute(f"SELECT count(*) FROM {source} WHERE {closes}").fetchall()[0][0]:
            link_or_copy(old, generation / old.name)
            continue
        sql.execute(f"COPY (SELECT * REPLACE (CASE WHEN {closes} THEN {at} ELSE h.valid_to END AS valid_to) FROM {source}) "
                    f"TO {sql_path(generation / old.name)} (FORMAT parquet, ROW_GROUP_SIZE {row_group})")
    still = f"SELECT 1 FROM {files_sql(old_files)} h WHERE h.valid_to IS NULL AND {same}" if old_files else "SELECT 1 WHERE false"
    opened = (f"SELECT {columns}, s.{q(HASH)}, {at} AS valid_from, NULL::TIMESTAMPTZ AS valid_to, "
              f"'{run.run_id.replace(chr(39), chr(39) * 2)}'::VARCHAR AS run_id FROM {SNAPSHOT} s WHERE NOT EXISTS ({still})")
    count = sql.execute(f"SELECT count(*) FROM ({opened})").fetchall()[0][0]
    if count or not old_files:
        sql.execute(f"COPY ({opened}) TO {sql_path(generation / f'part-{commit_id}.parquet')} "
                    f"(FORMAT parquet, ROW_GROUP_SIZE {row_group})")
    sql.execute(f"DROP TABLE {SNAPSHOT}")
    return name, generation
