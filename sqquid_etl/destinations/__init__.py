"""Destinations: DuckDB (default) and Parquet, behind one interface (`base.Destination`)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError
from .base import Destination, check_tuning


def check_destination(duckdb: str | Path | None = None, parquet: str | Path | None = None) -> None:
    """Refuse a destination that cannot be written, or tuning variables that do not parse,
    before anything is requested or created."""
    if duckdb and parquet:
        raise ConfigError("give either --duckdb or --parquet, not both")
    check_tuning()
    if parquet:
        path, option = Path(parquet), "--parquet"
    else:
        path, option = Path(duckdb or "sqquid.duckdb"), "--duckdb"
    if path.exists():
        if not os.access(path, os.W_OK):
            raise ConfigError(f"{option} {path}: not writable")
        if option == "--duckdb" and path.is_dir():
            raise ConfigError(f"{option} {path}: is a directory, expected a DuckDB file")
        return
    existing = path.absolute().parent
    while not existing.exists():
        if option == "--duckdb":
            raise ConfigError(f"{option} {path}: directory {existing} does not exist")
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise ConfigError(f"{option} {path}: directory {existing} is not writable")


def open_destination(duckdb: str | Path | None = None, parquet: str | Path | None = None) -> Destination:
    if duckdb and parquet:
        raise ConfigError("give either --duckdb or --parquet, not both")
    if parquet:
        from .parquet import ParquetDestination

        return ParquetDestination(parquet)
    from .duckdb import DuckDBDestination

    return DuckDBDestination(duckdb or "sqquid.duckdb")
