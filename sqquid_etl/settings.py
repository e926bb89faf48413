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
# the largest values accepted: beyond them a number is a typo (or an overflow), never a wish
MAX_RATE = 1_000_000.0  # requests a second
MAX_BURST = 1_000_000
MAX_THREADS = 1024
MAX_FLUSH_ROWS = 100_000_000


def check_pacing(rate: float | None, burst: int) -> None:
    """A ConfigError naming the option unless `rate` (None: no pacing) is a positive finite
    number of requests a second and `burst` a whole number, both within their maximum."""
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= MAX_RATE):
        raise ConfigError(f"--rate {rate!r} (or [api] rate): must be a positive number of requests per second, "
                          f"at most {MAX_RATE:.0f} (0 turns pacing off)")
    if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= MAX_BURST:
        raise ConfigError(f"--burst {burst!r} (or [api] burst): must be a whole number from 1 to {MAX_BURST}")


@dataclass(frozen=True)
class Tuning:
    """How destinations use memory: DuckDB's memory limit (None: the default, raised for a merge
    that needs more; a limit the user chose is never raised), its threads, and the rows staged
    per write."""

    memory_limit: str | None = None
    threads: int = DEFAULT_DUCKDB_THREADS
    flush_rows: int = DEFAULT_FLUSH_ROWS
    flush_rows_chosen: bool = False  # set by the user (environment, config), even to the default's value

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
            threads=_positive(env, file, "SQQUID_DUCKDB_THREADS", "duckdb_threads", DEFAULT_DUCKDB_THREADS, MAX_THREADS),
            flush_rows=_positive(env, file, "SQQUID_FLUSH_ROWS", "flush_rows", DEFAULT_FLUSH_ROWS, MAX_FLUSH_ROWS),
            flush_rows_chosen=bool(env.get("SQQUID_FLUSH_ROWS", "").strip()) or "flush_rows" in file,
        )


def _positive(env: Mapping[str, str], file: Mapping[str, object], variable: str, key: str, default: int,
              maximum: int) -> int:
    if env.get(variable, "").strip():
        text, where = env[variable].strip(), f"environment variable {variable}"
    elif key in file:
        text, where = str(file[key]), f"config [tuning] {key}"
    else:
        return default
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= maximum:
        raise ConfigError(f"{where}={text!r}: must be a whole number from 1 to {maximum}")
    return int(text)
