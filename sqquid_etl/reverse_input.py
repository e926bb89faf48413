"""Reverse load: reading an inventory input (a DataFrame, a pyarrow Table, a list of dicts, a
CSV or Parquet file, or a query on a DuckDB file) into a DataFrame, as given: validation is
`reverse_validate`'s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from .errors import InputError


def read_input(path: str | Path) -> pd.DataFrame:
    """Read a CSV (every column as text) or Parquet file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file {str(path)!r} does not exist or is not a file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".tsv"):
            sep = "\t" if suffix == ".tsv" else ","
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, sep=sep)
    except InputError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many kinds for a broken file
        raise InputError(f"input file {str(path)!r} could not be read: {type(exc).__name__}: {exc}") from exc
    raise InputError(f"input file {str(path)!r}: unknown format {suffix!r}; give a .csv or .parquet file")


def read_duckdb_query(path: str | Path, query: str) -> pd.DataFrame:
    """Run a SELECT against a DuckDB file (read-only) and return its result."""
    import duckdb

    path = Path(path)
    if not path.is_file():
        raise InputError(f"DuckDB file {str(path)!r} does not exist")
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            return con.execute(query).df()
    except duckdb.Error as exc:
        raise InputError(f"query on {str(path)!r} failed: {exc}") from exc


def to_frame(data: Any) -> pd.DataFrame:
    """A DataFrame from a DataFrame, a pyarrow Table, a list of dicts or a CSV/Parquet path."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, (str, Path)):
        return read_input(data)
    try:
        import pyarrow as pa

        if isinstance(data, pa.Table):
            return data.to_pandas()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(data, list):
        return pd.DataFrame.from_records(data)
    raise InputError(f"cannot load inventory from a {type(data).__name__}: give a DataFrame or a CSV/Parquet path")
