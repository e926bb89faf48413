"""Reverse load: reading an input (a DataFrame, a pyarrow Table, a list of dicts, a CSV or Parquet
file, or a query on a DuckDB file) into a DataFrame, as given: validation is `reverse_validate`'s
(inventory) and `buffers_validate`'s (buffers). A CSV means what it says: a row with more or fewer
fields than the header (a ragged row, an unquoted comma inside a value) and a header naming a
column twice are refused, with row and column named. Also: the check that no file the load writes
(journal, diff) is one it reads."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .errors import ConfigError, InputError

SHOWN_ROWS = 20


def read_input(path: str | Path) -> pd.DataFrame:
    """Read a CSV (every column as text, exactly as written) or Parquet file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file {str(path)!r} does not exist or is not a file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".tsv"):
            return read_csv(path, "\t" if suffix == ".tsv" else ",")
    except InputError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many kinds for a broken file
        raise InputError(f"input file {str(path)!r} could not be read: {type(exc).__name__}: {exc}") from exc
    raise InputError(f"input file {str(path)!r}: unknown format {suffix!r}; give a .csv or .parquet file")


def csv_header(path: Path, sep: str) -> list[str]:
    """The header's column names; a name given twice is refused (both positions named)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        header = next(csv.reader(fh, delimiter=sep), None)
    if not header:
        raise InputError(f"input file {str(path)!r} is empty: no header; nothing was sent")
    first: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if name in first:
            raise InputError(f"input file {str(path)!r}: header column {position} {name!r} repeats column "
                             f"{first[name]}; each column must be named once; nothing was sent")
        first[name] = position
    return header


def read_csv(path: Path, sep: str) -> pd.DataFrame:
    """Every field as text; a row whose field count is not the header's is refused."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    header = csv_header(path, sep)
    ragged: list[Any] = []

    def refuse(row: Any) -> str:
        ragged.append(row)
        return "skip"

    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(use_threads=False, column_names=header, skip_rows=1),
        parse_options=pacsv.ParseOptions(delimiter=sep, invalid_row_handler=refuse, newlines_in_values=True,
                                         ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(column_types={name: pa.string() for name in header},
                                             strings_can_be_null=False, quoted_strings_can_be_null=False),
    )
    if ragged:
        raise InputError(_ragged_message(path, header, ragged))
    return table.to_pandas()


def _ragged_message(path: Path, header: list[str], rows: list[Any]) -> str:
    lines = []
    for row in rows[:SHOWN_ROWS]:
        where = f"row {row.number - 1}" if row.number is not None else "a row"
        if row.actual_columns > row.expected_columns:
            column = f"column {row.expected_columns + 1} (past the last header column {header[-1]!r})"
            reason = "an unquoted comma inside a value? quote the value (\"A,B\")" if path.suffix != ".tsv" else ""
        else:
            column = f"column {header[row.actual_columns]!r}" if row.actual_columns < len(header) else "a column"
            reason = "the row ends early"
        lines.append(f"  {where}, {column}: {row.actual_columns} field(s) where the header has "
                     f"{row.expected_columns}{'; ' + reason if reason else ''}: {row.text[:60]!r}")
    rest = len(rows) - len(lines)
    if rest > 0:
        lines.append(f"  ... and {rest} more row(s) not shown")
    return (f"input file {str(path)!r}: {len(rows)} row(s) do not have the header's {len(header)} field(s); "
            "nothing was sent. Row numbers count data rows from 1 (the CSV header is not counted).\n"
            + "\n".join(lines))


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


def to_frame(data: Any, what: str = "inventory") -> pd.DataFrame:
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
    raise InputError(f"cannot load {what} from a {type(data).__name__}: give a DataFrame or a CSV/Parquet path")


def _same(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def refuse_overlaps(reads: Iterable[tuple[str, Any]], writes: Iterable[tuple[str, Any]]) -> None:
    """Refuse (ConfigError, before anything is read or written) a file the load would write that
    is a file it reads, or that another of its outputs writes: `(what, path or None)` pairs."""
    reads = [(what, Path(p)) for what, p in reads if isinstance(p, (str, Path))]
    writes = [(what, Path(p)) for what, p in writes if isinstance(p, (str, Path))]
    for i, (what, path) in enumerate(writes):
        for other, source in reads + writes[:i]:
            if _same(path, source):
                raise ConfigError(f"{what} {str(path)!r} is the same file as the {other}: the load would overwrite "
                                  f"or append to it; give another path; nothing was written or sent")
