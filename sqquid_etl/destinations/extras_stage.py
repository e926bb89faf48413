"""Staging of a stream's undocumented values (`PageTables.extras`, see `evolve.py`) in the rows
they belong to: each undocumented field of a table is one more text column of the table's staged
rows (`staged_column`: the field's column, prefixed), holding the text its type reads back exactly
(`evolve.value_text`), null in a row without it. Once a table has such a column, every page after
carries it (null where the page has none), so the staged columns only ever grow; a batch with
a column its file lacks starts a new file (`staging.ParquetStage`), and DuckDB reads a table's
files by column name. Each column's type is kept as found, widened across pages (`types`). The
commit casts the columns to their types and stores them with the rows (`duckdb_evolve.py`,
`parquet_evolve.py`): the same rows, no join."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ..evolve import widen

EXTRA_PREFIX = "_sqquid_extra:"  # a staged column of undocumented values: the prefix, then its column's name


def staged_column(column: str) -> str:
    """The staged column holding the text of the undocumented column `column`."""
    return f"{EXTRA_PREFIX}{column}"


class ExtraColumns:
    """The undocumented columns of a stream's staged tables: their types so far, and each page's
    values as columns of its tables."""

    def __init__(self) -> None:
        self.types: dict[str, dict[str, str]] = {}  # table -> {undocumented column: its type so far}

    def columns(self, table: str) -> list[str]:
        """The staged columns of a table's undocumented values, in the order they came."""
        return [staged_column(c) for c in self.types.get(table, ())]

    def add(self, tables: dict[str, pa.Table], extras: list) -> dict[str, pa.Table]:
        """The page's tables with their undocumented values as columns (every such column of the
        table so far, in the order they came, null where the page has no value)."""
        found: dict[str, dict[str, Any]] = {}
        for extra in extras or ():
            types = self.types.setdefault(extra.table, {})
            types[extra.column] = widen(types.get(extra.column, "NULL"), extra.type)
            found.setdefault(extra.table, {})[extra.column] = extra
        out = dict(tables)
        for name, columns in self.types.items():
            data = tables.get(name)
            if data is None or not data.num_rows:
                continue
            on_page = found.get(name, {})
            for column in columns:
                extra = on_page.get(column)
                values = pa.nulls(data.num_rows, pa.string()) if extra is None else _aligned(extra, data.num_rows)
                data = data.append_column(staged_column(column), values)
            out[name] = data
        return out


def _aligned(extra: Any, n: int) -> pa.Array:
    """An undocumented field's text on each of the page's `n` rows of its table (null where absent)."""
    given = extra.values if isinstance(extra.values, pa.Array) else None  # text Arrow read
    if extra.rows == range(n):
        return given if given is not None else pa.array(extra.values, pa.string())
    values: list = [None] * n
    for row, value in zip(extra.rows, given.to_pylist() if given is not None else extra.values):
        values[row] = value
    return pa.array(values, pa.string())
