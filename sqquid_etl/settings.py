"""The defaults of the connector, in one place, and the tuning a run is given.

Settings are resolved once, at the edge (the CLI, or `extract(...)`): command-line option or
argument > environment variable > config file (`sqquid.toml`) > these defaults; then passed
down. Nothing below the pipeline reads the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from .errors import ConfigError

DEFAULT_RATE = 2.0  # requests a second: the API's leak rate
DEFAULT_BURST = 40  # the API's bucket
DEFAULT_DUCKDB = "sqquid.duckdb"
DEFAULT_LOOKBACK = "1s"
DEFAULT_MEMORY_LIMIT = "40MB"  # DuckDB's; an extract's peak RSS is ~160 MB beside it (bench/memory.py)
DEFAULT_FLUSH_ROWS = 10_000
DEFAULT_DUCKDB_THREADS = 1


@dataclass(frozen=True)
class Tuning:
    """How destinations use memory: DuckDB's memory limit (None: the default, raised for a merge
    that needs more; a limit the user chose is never raised), its threads, and the rows staged
    per write."""

    memory_limit: str | None = None
    threads: int = DEFAULT_DUCKDB_THREADS
    flush_rows: int = DEFAULT_FLUSH_ROWS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, file: Mapping[str, object] | None = None) -> "Tuning":
        """SQQUID_DUCKDB_MEMORY_LIMIT, SQQUID_DUCKDB_THREADS, SQQUID_FLUSH_ROWS, else the config
        file's [tuning] duckdb_memory_limit, duckdb_threads, flush_rows, else the defaults. A bad
        value is a ConfigError naming where it came from."""
        env = os.environ if env is None else env
        file = file or {}
        limit = (env.get("SQQUID_DUCKDB_MEMORY_LIMIT") or "").strip() or file.get("duckdb_memory_limit") or None
        return cls(
            memory_limit=str(limit) if limit else None,
            threads=_positive(env, file, "SQQUID_DUCKDB_THREADS", "duckdb_threads", DEFAULT_DUCKDB_THREADS),
            flush_rows=_positive(env, file, "SQQUID_FLUSH_ROWS", "flush_rows", DEFAULT_FLUSH_ROWS),
        )


def _positive(env: Mapping[str, str], file: Mapping[str, object], variable: str, key: str, default: int) -> int:
    if env.get(variable, "").strip():
        text, where = env[variable].strip(), f"environment variable {variable}"
    elif key in file:
        text, where = str(file[key]), f"config [tuning] {key}"
    else:
        return default
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{where}={text!r}: must be a whole number, at least 1")
    return int(text)
