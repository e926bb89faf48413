"""A Parquet extract on object storage (`s3://bucket/prefix`, ...), and its generations.

  PREFIX/<table>/part-*.parquet          a table's files: after a commit, only its current ones
  PREFIX/_sqquid/manifest.json           the commit: every table's current files, every stream's
                                         state, the quarantine files and the schema history
  PREFIX/_sqquid/lock.json               held while a run uses the prefix (`store_lock.py`)
  PREFIX/_sqquid_runs/<run>-<stream>.parquet   one object per stream per run
  PREFIX/_sqquid_rejected/*.parquet      records quarantined, listed in the manifest

A multi-account prefix (`account_scope.py`; marked by `_sqquid/accounts.json`) is partitioned by
account: `PREFIX/<table>/account=NAME/part-*.parquet`, `_sqquid_runs/account=NAME/`,
`_sqquid_rejected/account=NAME/`, and each account has its own manifest and lock
(`_sqquid/accounts/NAME/manifest.json`, `lock.json`): its commits are its own, so several
accounts write the prefix at once.

Object stores have no rename: a commit uploads its new files under new names, then replaces the
manifest in one conditional write (the commit point: data and state move together), then
deletes the files the manifest no longer lists. Readers that follow the manifest see the old or
the new generation; files of a run killed before its manifest write are listed nowhere and are
deleted by the next run. Work is done on local disk: a table's current files are downloaded
once a process (names are never reused) and new ones built beside them, as in `parquet.py`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import ConfigError, StateError
from .account_scope import mixed_error
from .files import link_or_copy
from .object_store import ObjectStore
from .store_lock import LOCK
from .parquet_layout import REJECTED_DIR

MANIFEST = "_sqquid/manifest.json"
MULTI_ACCOUNT = "_sqquid/accounts.json"  # marks a multi-account prefix
FORMAT = 1
# objects a run may leave behind: a table's part files and quarantine files (nothing else is deleted)
_OURS = re.compile(r"^(?:[^/_.][^/]*/part-[^/]*|" + REJECTED_DIR + r"/[^/]*)\.parquet$")
WORK_ROOT = Path(tempfile.gettempdir()) / "sqquid-etl"


@dataclass
class Manifest:
    tables: dict[str, list[str]] = field(default_factory=dict)  # table -> its current objects
    states: dict = field(default_factory=dict)  # stream -> its state (JSON, as state_file stores it)
    rejected: list[str] = field(default_factory=list)
    schema_changes: list[list[str]] = field(default_factory=list)  # [stream, table, column, type, first run]
    tag: str | None = None  # the stored object's version (None: not stored yet)

    def to_bytes(self) -> bytes:
        body = {"format": FORMAT, "tables": self.tables, "states": self.states, "rejected": self.rejected,
                "schema_changes": self.schema_changes}
        return (json.dumps(body, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes, where: str, tag: str | None) -> "Manifest":
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict) or raw.get("format") != FORMAT:
                raise ValueError(f"not a format {FORMAT} manifest")
            return cls(dict(raw["tables"]), raw["states"], list(raw["rejected"]), list(raw["schema_changes"]), tag)
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(f"{where}: corrupt manifest ({exc}); it cannot be read, so nothing is written there") from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def process_spill() -> Path:
    """Where the DuckDB shared by this process's destinations bound to accounts spills (removed,
    as a working directory, once the process is gone)."""
    return WORK_ROOT / f"{os.getpid()}-spill"


def _work_dir() -> Path:
    """This process's local working directory; those of processes gone are removed."""
    WORK_ROOT.mkdir(parents=True, exist_ok=True)
    for old in WORK_ROOT.glob("*-*"):
        pid = old.name.split("-")[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=WORK_ROOT))


class StoreLayout:
    """The prefix's objects and this process's local copy of what it works on (the same
    methods as `parquet_layout.ParquetLayout` where the writer uses them)."""

    def __init__(self, store: ObjectStore, account: str | None = None):
        self.store = store
        self.root = store.url
        self.account = account
        self.partition = None if account is None else f"account={account}"
        self.manifest_name = MANIFEST if account is None else f"_sqquid/accounts/{account}/manifest.json"
        self.lock_name = LOCK if account is None else f"_sqquid/accounts/{account}/lock.json"
        self.work = _work_dir()
        self.cache = self.work / "files"  # downloaded or uploaded files, by object name
        self.staging = self.work / "staging"
        self.spill = self.work / "spill"
        self.manifest = Manifest()
        self.guard: Callable[[], None] = lambda: None  # raises when this process may not commit (`StoreLock.check`)

    def open(self, create: bool, lock: bool = True) -> None:
        """Read the manifest; `create`: make an empty extract where there is nothing (`lock`:
        this process holds the lock, else only check). Anything else under the prefix (no
        manifest: not made by sqquid-etl) is refused, left untouched."""
        multi = self.store.read(MULTI_ACCOUNT) is not None
        if multi != (self.account is not None) and (multi or self.store.read(MANIFEST) is not None):
            raise mixed_error(self.root, self.account, multi)
        tag, data = self.store.read_tagged(self.manifest_name)
        if data is not None:
            self.manifest = Manifest.parse(data, self.store.where(self.manifest_name), tag)
            return
        if not create:
            raise ConfigError(f"{self.store.option} {self.root}: no sqquid-etl extract there (no {self.manifest_name})")
        if not multi and [name for name in self.store.list() if name != self.lock_name and not (
                self.account is not None and name.startswith("_sqquid/accounts"))]:
            raise ConfigError(f"{self.store.option} {self.root}: holds objects but no {MANIFEST}, so it was not made by "
                              "sqquid-etl; refusing to write there (choose an empty prefix)")
        if lock:
            if self.account is not None and not multi:
                self.store.write(MULTI_ACCOUNT, b'{"format": 1}\n')
            self.commit(Manifest())

    def commit(self, manifest: Manifest) -> None:
        """Store `manifest` in one conditional write: only over the version this process read."""
        self.guard()
        tag = self.store.put_if(self.manifest_name, manifest.to_bytes(), self.manifest.tag)
        if tag is None:
            raise StateError(f"{self.store.where(self.manifest_name)} was changed by another process during this run; "
                             "nothing of this commit is visible (run again)")
        manifest.tag = tag
        self.manifest = manifest

    # -- the writer's view (as ParquetLayout) -------------------------------------------------------

    def current_generation(self, table: str) -> Path | None:
        """A local directory holding exactly the table's current files; None when not extracted."""
        names = self.manifest.tables.get(table)
        if names is None:
            return None
        current = self.work / "current" / table
        shutil.rmtree(current, ignore_errors=True)
        current.mkdir(parents=True)
        for name in names:
            link_or_copy(self._cached(name), current / Path(name).name)
        return current

    def _cached(self, name: str) -> Path:
        cached = self.cache / name
        if not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_name(f".{cached.name}.part")
            self.store.download(name, partial)
            os.replace(partial, cached)
        return cached

    def table_prefix(self, table: str) -> str:
        """Where the table's objects are (bound to an account: its partition's)."""
        return table if self.partition is None else f"{table}/{self.partition}"

    def new_generation(self, table: str, commit_id: str) -> Path:
        generation = self.work / "generations" / table / commit_id
        generation.mkdir(parents=True)
        return generation

    def staging_dir(self, stream: str) -> Path:
        return self.staging / stream

    def publish(self, table: str, generation: Path) -> list[str]:
        """Upload a generation's new files (those not linked from the current ones) under new
        names; the objects of the generation, for the manifest."""
        current = self.work / "current" / table
        names = []
        for i, path in enumerate(sorted(generation.iterdir())):
            kept = current / path.name
            if kept.exists() and os.path.samefile(kept, path):
                names.append(f"{self.table_prefix(table)}/{path.name}")
                continue
            name = f"{self.table_prefix(table)}/part-{generation.name}-{i:04d}.parquet"
            self.store.upload(path, name)
            self.cache.joinpath(self.table_prefix(table)).mkdir(parents=True, exist_ok=True)
            os.replace(path, self.cache / name)
            names.append(name)
        shutil.rmtree(generation, ignore_errors=True)
        return names

    def publish_file(self, path: Path, name: str) -> str:
        self.store.upload(path, name)
        return name

    def new_name(self, directory: str, stem: str) -> str:
        """A new object's name in `directory` (bound to an account: in its partition)."""
        directory = directory if self.partition is None else f"{directory}/{self.partition}"
        return f"{directory}/{stem}-{uuid.uuid4().hex[:8]}.parquet"

    def clean_leftovers(self, tables: list[str] | None = None) -> None:
        """Delete the table and quarantine files no committed manifest lists (a killed run's, or
        those a commit replaced): under every prefix, or those of `tables` only (bound to an
        account: of its partitions only; the other accounts' are theirs)."""
        listed = {name for names in self.manifest.tables.values() for name in names} | set(self.manifest.rejected)
        found = self.store.list() if tables is None else [n for t in tables for n in self.store.list(f"{self.table_prefix(t)}/")]
        ours = _OURS if self.account is None else re.compile(
            rf"^(?:[^/_.][^/]*/{re.escape(self.partition)}/part-[^/]*|{REJECTED_DIR}/{re.escape(self.partition)}/[^/]*)\.parquet$")
        self.store.delete([name for name in found if ours.match(name) and name not in listed])
        shutil.rmtree(self.staging, ignore_errors=True)
        shutil.rmtree(self.work / "generations", ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
