"""The defaults of the connector, in one place, and the tuning a run is given.

Settings are resolved once (command line, then the config file, then the environment, then
these defaults) and passed down; nothing below the pipeline reads the environment.
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
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Tuning":
        """SQQUID_DUCKDB_MEMORY_LIMIT, SQQUID_DUCKDB_THREADS, SQQUID_FLUSH_ROWS (a bad value is a ConfigError)."""
        env = os.environ if env is None else env
        limit = (env.get("SQQUID_DUCKDB_MEMORY_LIMIT") or "").strip() or None
        return cls(
            memory_limit=limit,
            threads=_positive(env, "SQQUID_DUCKDB_THREADS", DEFAULT_DUCKDB_THREADS),
            flush_rows=_positive(env, "SQQUID_FLUSH_ROWS", DEFAULT_FLUSH_ROWS),
        )


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    text = str(env.get(name, default)).strip()
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"environment variable {name}={text!r}: must be a whole number, at least 1")
    return int(text)
