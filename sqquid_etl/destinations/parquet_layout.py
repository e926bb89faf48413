"""The directory of a Parquet destination, and its generations.

  DIR/<table>                 -> a symlink to `.sqquid/generations/<table>/<generation>/`
  DIR/_sqquid_state.json      state of every stream (temp file + rename)
  DIR/_sqquid_runs/*.parquet  one file per stream per run
  DIR/_sqquid_rejected/*.parquet  records a run quarantined: one file per stream commit that had any
  DIR/.sqquid/staging/<run>/  pages of the running stream, before commit
  DIR/.sqquid/lock            held while a run is using the directory

A multi-account directory (`account_scope.py`; marked by `.sqquid/accounts/`) is partitioned by
account under each table, each account's partition committed on its own:

  DIR/<table>/account=NAME    -> a symlink to `.sqquid/generations/<table>/account=NAME/<generation>/`
  DIR/_sqquid_state/account=NAME.json, DIR/_sqquid_runs/account=NAME/, DIR/_sqquid_rejected/account=NAME/
  DIR/.sqquid/staging/account=NAME/
  DIR/.sqquid/accounts/NAME.lock  held while a run writes the account (the directory's lock shared)

so the runs of several accounts (threads of one process, or processes) write it at once.

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
from .account_scope import mixed_error
from .files import fsync_path, replace_symlink

STATE_FILE = "_sqquid_state.json"
RUNS_DIR = "_sqquid_runs"
REJECTED_DIR = "_sqquid_rejected"
SCHEMA_DIR = "_sqquid_schema_changes"  # columns added for undocumented fields (`parquet_evolve.py`)
META_DIR = ".sqquid"


UPGRADE_JOURNAL = "upgrade.json"  # under META_DIR: an upgrade to multi-account committed, not yet applied
ACCOUNTS_DIR = "accounts"  # under META_DIR: marks a multi-account directory, holds its accounts' locks


class ParquetLayout:
    def __init__(self, root: Path, account: str | None = None):
        self.root = root
        self.account = account
        self.partition = None if account is None else f"account={account}"
        self.meta = root / META_DIR
        self.staging = self.meta / "staging" if account is None else self.meta / "staging" / self.partition
        self.generations = self.meta / "generations"
        self.spill = self.meta / "spill"
        self.runs = root / RUNS_DIR if account is None else root / RUNS_DIR / self.partition
        self.rejected = root / REJECTED_DIR if account is None else root / REJECTED_DIR / self.partition
        self.state_file = root / STATE_FILE if account is None else root / STATE_FILE.removesuffix(".json") / f"{self.partition}.json"
        self.accounts = self.meta / ACCOUNTS_DIR

    def multi_account(self) -> bool:
        """Whether the directory is a multi-account one."""
        return self.accounts.is_dir()

    def check_form(self) -> None:
        """A ConfigError when the directory is not of the form it is opened in (read-only opens)."""
        if self.root.is_dir() and self.multi_account() != (self.account is not None):
            if self.account is None or self.single_account():
                raise mixed_error(str(self.root), self.account, self.multi_account())

    def single_account(self) -> bool:
        """Whether the directory holds a single-account extract (a state, or a table)."""
        return (self.root / STATE_FILE).exists() or any(
            p.is_symlink() for p in self.root.iterdir() if not p.name.startswith(("_", ".")))

    def create(self) -> None:
        """Make the directories (a ConfigError when it cannot be done or written). An existing
        directory that is neither empty nor marked as an extract (`.sqquid/`) is refused and
        left untouched: the tool writes only where it made the destination."""
        if self.root.exists() and not self.meta.is_dir():
            if not self.root.is_dir():
                raise ConfigError(f"--parquet {self.root}: not a directory")
            # `.sqquid/` is made before anything else in the directory: another account's run
            # making the directory right now has nothing else there yet
            if any(p.name != META_DIR for p in self.root.iterdir()) and not self.meta.is_dir():  # (made meanwhile)
                raise ConfigError(f"--parquet {self.root}: holds files but no {META_DIR}/, so it was not made by sqquid-etl; "
                                  "refusing to write there (choose an empty or new directory)")
        try:
            for directory in (self.meta, self.staging, self.generations, self.runs):  # .sqquid/ first
                directory.mkdir(parents=True, exist_ok=True)
            if self.account is not None:
                self.state_file.parent.mkdir(exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--parquet {self.root}: cannot create the directory ({exc.strerror})") from None
        if not os.access(self.root, os.W_OK):
            raise ConfigError(f"--parquet {self.root}: not writable")

    def lock(self) -> list[IO[str]]:
        """Hold the directory for this process (a StateError when another one holds it); bound to
        an account: the directory shared with the other accounts' runs, the account held."""
        if (self.meta / UPGRADE_JOURNAL).exists():
            raise StateError(f"{self.root}: its upgrade to a multi-account destination was interrupted; run "
                             "'sqquid-etl upgrade --account NAME' again (the same NAME) to finish it")
        if self.account is None:
            if self.multi_account():  # before the lock: another account's run may hold it
                raise mixed_error(str(self.root), None, True)
            held = [flock(self.meta / "lock", fcntl.LOCK_EX, f"{self.root}")]
            if self.multi_account():
                release(held)
                raise mixed_error(str(self.root), None, True)
            return held
        held = [flock(self.meta / "lock", fcntl.LOCK_SH, f"{self.root}")]
        try:
            if not self.multi_account() and self.single_account():
                raise mixed_error(str(self.root), self.account, False)
            self.accounts.mkdir(exist_ok=True)
            held.append(flock(self.accounts / f"{self.account}.lock", fcntl.LOCK_EX, f"{self.root} account {self.account}"))
        except BaseException:
            release(held)
            raise
        return held

    def table_link(self, table: str) -> Path:
        return self.root / table if self.partition is None else self.root / table / self.partition

    def table_generations(self, table: str) -> Path:
        """Where the table's generations are (bound to an account: those of its partition)."""
        return self.generations / table if self.partition is None else self.generations / table / self.partition

    def current_generation(self, table: str) -> Path | None:
        """The directory of the table's current files; None when it has not been extracted."""
        link = self.table_link(table)
        if link.is_symlink() and link.resolve().parent == self.table_generations(table).resolve():
            return link.resolve()
        if link.exists() or link.is_symlink():
            raise StateError(f"{link} exists but is not managed by sqquid-etl (expected a symlink to a generation); "
                             "it is left as it is: move it away, or extract elsewhere")
        return None

    def new_generation(self, table: str, commit_id: str) -> Path:
        generation = self.table_generations(table) / commit_id
        generation.mkdir(parents=True, exist_ok=False)
        return generation

    def switch(self, table: str, generation: Path) -> None:
        """Make `generation` (its files flushed first) the table's current one, in one rename."""
        for path in generation.iterdir():
            fsync_path(path)
        fsync_path(generation)
        if self.partition is not None:
            self.table_link(table).parent.mkdir(exist_ok=True)  # the table's directory of partitions
        replace_symlink(self.table_link(table), generation)

    def staging_dir(self, stream: str) -> Path:
        return self.staging / f"{stream}-{os.getpid()}"

    def clean_leftovers(self) -> None:
        """Remove what a crashed run left: staging files and generations no table points to
        (bound to an account: its own only; the other accounts' runs may be writing theirs)."""
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True, exist_ok=True)
        for table_dir in self.generations.iterdir():
            try:
                current = self.current_generation(table_dir.name)
            except StateError:
                continue  # a file of the user's under the table's name: its stream is refused, nothing removed
            generations = self.table_generations(table_dir.name)
            for gen in generations.iterdir() if generations.is_dir() else ():
                if (current is None or gen.resolve() != current) and not gen.name.startswith("account="):
                    shutil.rmtree(gen, ignore_errors=True)
        if self.account is None:
            shared = [*self.root.glob(".*.tmp"), *(self.root / SCHEMA_DIR).glob(".*.tmp")]
        else:  # what is shared with the other accounts may be theirs, being written: only the account's own
            shared = list(self.state_file.parent.glob(f".{self.state_file.name}.*.tmp"))
        for tmp in [*shared, *self.rejected.glob(".*.tmp")]:
            tmp.unlink(missing_ok=True)


def flock(path: Path, mode: int, what: str) -> IO[str]:
    lock_file = open(path, "a+")
    try:
        fcntl.flock(lock_file, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.close()
        raise StateError(f"{what} is in use by another process (another extract is running?); wait for it to finish") from None
    return lock_file


def release(held: list[IO[str]]) -> None:
    """Let go of the locks `ParquetLayout.lock` took."""
    for lock_file in reversed(held):
        if not lock_file.closed:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
            lock_file.close()
