"""DuckDB's engine as the destinations use it: `connect` and the exceptions, nothing more.

The destinations only run SQL on a connection (`execute`, `fetchall`, `cursor`, `close`). In
DuckDB 2 those live in its C extension, `_duckdb`; the `duckdb` package adds a Python layer of
relations and expressions on top of it (`duckdb._relation`, `_expression`, `_sources`) that they
never call and that costs ~0.03 s of CPU to import, a tenth of a scheduled no-op run
(bench/startup.py). So the extension is imported alone when it is there; the objects are the same
(`duckdb.connect is _duckdb.connect`, `duckdb.Error is _duckdb.Error`), and a caller that imports
`duckdb` later (`api.py`'s relations, `sql_cli.py`) gets the relation methods on every connection,
these included. A DuckDB laid out otherwise (1.x: its extension is `duckdb.duckdb`) is imported
whole."""

from __future__ import annotations

try:
    import _duckdb as duckdb
except ImportError:  # pragma: no cover - DuckDB 1.x
    import duckdb  # type: ignore[no-redef]

__all__ = ["duckdb"]
