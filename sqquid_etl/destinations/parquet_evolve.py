"""Schema evolution in the Parquet destination: the undocumented fields a writer is given
(staged as in DuckDB, `staging.ParquetStage`) become columns of the table's new
generation, after its documented columns. Every file of a generation has the same columns:
a commit that adds or widens a column rewrites the files it carries over (with the column null,
or cast), so readers never need `union_by_name`. New and widened columns are recorded in
`_sqquid_schema_changes/` (one file a commit, written before the state)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..definitions import TableSpec
from .buffer import SEQ
from .duckdb_evolve import column_type, with_extras_sql
from .files import fsync_path
from .merge_sql import quote_identifier as q, sql_path
from .parquet_layout import SCHEMA_DIR

HISTORY_SCHEMA = pa.schema([(n, pa.string()) for n in ("stream", "table", "column", "type", "first_run")])


def file_columns(sql: Any, path: Path) -> dict[str, str]:
    """The columns of a Parquet file and their DuckDB types."""
    return {r[0]: r[1] for r in sql.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_path(path)})").fetchall()}


def plan_columns(table: TableSpec, have: dict[str, str], staged: dict[str, str]) -> tuple[dict[str, str], list]:
    """The undocumented columns of the new generation (those the table has, then the new ones)
    with their types, and the (column, type) added or widened by this commit."""
    final = {c: t for c, t in have.items() if c not in table.column_names}
    changed = []
    for column, found in staged.items():
        kind = column_type(final.get(column), found)
        if kind == final.get(column):
            continue
        final[column] = kind
        changed.append((column, kind))
    return final, changed


def new_rows_sql(table: TableSpec, staged: str, final: dict[str, str], staged_types: dict) -> str:
    """SQL of the staged rows, the latest version of each key, with the undocumented columns
    (`staged_types`: those the staged rows hold, `extras_stage.py`)."""
    keys = ", ".join(q(k) for k in table.primary_key)
    if staged_types:
        staged = with_extras_sql(staged, {c: final[c] for c in staged_types})
    latest = f"SELECT * FROM {staged} QUALIFY {SEQ} = max({SEQ}) OVER (PARTITION BY {keys})"
    columns = [f"s.{q(c)}" for c in table.column_names]
    columns += [f"CAST({'s.' + q(c) if c in staged_types else 'NULL'} AS {kind}) AS {q(c)}"
                for c, kind in final.items()]
    return f"SELECT {', '.join(columns)} FROM ({latest}) s"


def carried_columns(table: TableSpec, final: dict[str, str], have: dict[str, str]) -> str:
    """SQL columns of an old row `o` in the new generation's shape."""
    columns = [f"o.{q(c)}" for c in table.column_names]
    columns += [f"CAST({'o.' + q(c) if c in have else 'NULL'} AS {kind}) AS {q(c)}" for c, kind in final.items()]
    return ", ".join(columns)


def recorded(sql: Any, root: Path) -> set:
    """(table, column, type) of the columns recorded in the schema history."""
    directory = root / SCHEMA_DIR
    if not directory.is_dir() or not any(directory.glob("*.parquet")):
        return set()
    rows = sql.execute(f"SELECT {q('table')}, {q('column')}, type FROM read_parquet({sql_path(directory / '*.parquet')})")
    return {(t, c, kind) for t, c, kind in rows.fetchall()}


def write_history(root: Path, stream: str, run_id: str, changes: list) -> None:
    """The columns a commit added or widened, in one new file of the history (written aside,
    renamed in)."""
    if not changes:
        return
    directory = root / SCHEMA_DIR
    directory.mkdir(exist_ok=True)
    arrays = [pa.array([stream] * len(changes), pa.string()), pa.array([t for t, _, _ in changes], pa.string()),
              pa.array([c for _, c, _ in changes], pa.string()), pa.array([k for _, _, k in changes], pa.string()),
              pa.array([run_id] * len(changes), pa.string())]
    target = directory / f"{run_id}-{stream}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = target.with_name(f".{target.name}.tmp")
    pq.write_table(pa.Table.from_arrays(arrays, schema=HISTORY_SCHEMA), tmp)
    fsync_path(tmp)
    os.replace(tmp, target)
    fsync_path(directory)
