"""An old file of a Parquet table carried into the table's new generation (`parquet.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .files import link_or_copy
from .merge_sql import sql_path


def carry_over(sql: Any, old: Path, generation: Path, drop: str, marked: str, columns: str, reshape: bool,
               row_group_rows: int) -> None:
    """An old file into the new generation: linked when none of its rows is dropped (`drop`: SQL
    on an old row `o`) or newly marked (`marked`), else rewritten (`columns`: SQL of its rows in the
    new shape) without the dropped rows (left out when none is kept); `reshape`: every file is
    rewritten."""
    source = f"read_parquet({sql_path(old)}) o"
    hit, kept = sql.execute(
        f"SELECT count(*) FILTER (WHERE {drop} OR {marked}), count(*) FILTER (WHERE NOT ({drop})) FROM {source}"
    ).fetchall()[0]
    if hit == 0 and not reshape:
        link_or_copy(old, generation / old.name)
        return
    if kept:
        sql.execute(
            f"COPY (SELECT {columns} FROM {source} WHERE NOT ({drop})) TO {sql_path(generation / old.name)} "
            f"(FORMAT parquet, ROW_GROUP_SIZE {row_group_rows})"
        )
