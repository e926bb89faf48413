"""The directory of a Parquet destination, and its generations.

  DIR/<table>                 -> a symlink to `.sqquid/generations/<table>/<generation>/`
  DIR/_sqquid_state.json      state of every stream (temp file + rename)
  DIR/_sqquid_runs/*.parquet  one file per stream per run
  DIR/_sqquid_rejected/*.parquet  records a run quarantined: one file per stream commit that had any
  DIR/.sqquid/staging/<run>/  pages of the running stream, before commit
  DIR/.sqquid/lock            held while a run is using the directory

A table is switched to a new generation by one rename of its symlink: a reader, or a crash, sees
the old generation or the new one. Generations no table points to are a crashed run's leftovers.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path
from typing import IO

from ..errors import ConfigError, StateError
from .files import fsync_path, replace_symlink

STATE_FILE = "_sqquid_state.json"
RUNS_DIR = "_sqquid_runs"
REJECTED_DIR = "_sqquid_rejected"
SCHEMA_DIR = "_sqquid_schema_changes"  # columns added for undocumented fields (`parquet_evolve.py`)
META_DIR = ".sqquid"


class ParquetLayout:
    def __init__(self, root: Path):
        self.root = root
        self.meta = root / META_DIR
        self.staging = self.meta / "staging"
        self.generations = self.meta / "generations"
        self.spill = self.meta / "spill"
        self.runs = root / RUNS_DIR
        self.rejected = root / REJECTED_DIR  # made when a run first quarantines a record
        self.state_file = root / STATE_FILE

    def create(self) -> None:
        """Make the directories (a ConfigError when it cannot be done or written). An existing
        directory that is neither empty nor marked as an extract (`.sqquid/`) is refused and
        left untouched: the tool writes only where it made the destination."""
        if self.root.exists() and not self.meta.is_dir():
            if not self.root.is_dir():
                raise ConfigError(f"--parquet {self.root}: not a directory")
            if any(self.root.iterdir()):
                raise ConfigError(f"--parquet {self.root}: holds files but no {META_DIR}/, so it was not made by sqquid-etl; "
                                  "refusing to write there (choose an empty or new directory)")
        try:
            for directory in (self.root, self.staging, self.generations, self.runs):
                directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--parquet {self.root}: cannot create the directory ({exc.strerror})") from None
        if not os.access(self.root, os.W_OK):
            raise ConfigError(f"--parquet {self.root}: not writable")

    def lock(self) -> IO[str]:
        """Hold the directory for this process (a StateError when another one holds it)."""
        lock_file = open(self.meta / "lock", "a+")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise StateError(f"{self.root} is in use by another process (another extract is running?); wait for it to finish") from None
        return lock_file

    def table_link(self, table: str) -> Path:
        return self.root / table

    def current_generation(self, table: str) -> Path | None:
        """The directory of the table's current files; None when it has not been extracted."""
        link = self.table_link(table)
        if link.is_symlink() and link.resolve().parent == (self.generations / table).resolve():
            return link.resolve()
        if link.exists() or link.is_symlink():
            raise StateError(f"{link} exists but is not managed by sqquid-etl (expected a symlink to a generation); "
                             "it is left as it is: move it away, or extract elsewhere")
        return None

    def new_generation(self, table: str, commit_id: str) -> Path:
        generation = self.generations / table / commit_id
        generation.mkdir(parents=True, exist_ok=False)
        return generation

    def switch(self, table: str, generation: Path) -> None:
        """Make `generation` (its files flushed first) the table's current one, in one rename."""
        for path in generation.iterdir():
            fsync_path(path)
        fsync_path(generation)
        replace_symlink(self.table_link(table), generation)

    def staging_dir(self, stream: str) -> Path:
        return self.staging / f"{stream}-{os.getpid()}"

    def clean_leftovers(self) -> None:
        """Remove what a crashed run left: staging files and generations no table points to."""
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True, exist_ok=True)
        for table_dir in self.generations.iterdir():
            try:
                current = self.current_generation(table_dir.name)
            except StateError:
                continue  # a file of the user's under the table's name: its stream is refused, nothing removed
            for gen in table_dir.iterdir():
                if current is None or gen.resolve() != current:
                    shutil.rmtree(gen, ignore_errors=True)
        for tmp in [*self.root.glob(".*.tmp"), *self.rejected.glob(".*.tmp"), *(self.root / SCHEMA_DIR).glob(".*.tmp")]:
            tmp.unlink(missing_ok=True)
