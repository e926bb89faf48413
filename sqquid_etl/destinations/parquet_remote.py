"""Parquet on object storage: `--parquet s3://bucket/prefix` (or `gs://`, `az://`, any
`pyarrow.fs` / `fsspec` URL). The same tables, merge and schema evolution as the local Parquet
destination (`parquet.py`, whose writer builds each generation on local disk); what differs is
how a generation is made current: its new files uploaded, then one manifest write that also holds
the state (`parquet_store_layout.py`), instead of a symlink switch and a state file.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from ..definitions import StreamDefinition
from ..runs import REJECTED_COLUMNS, REJECTED_TABLE, RunRecord
from ..settings import Tuning
from ..state import StreamState
from .account_scope import ACCOUNT, check_account, stamp
from .duckdb_history import history_table
from . import parquet_sql
from .duckdb_tuning import check_tuning
from .merge_sql import quote_identifier as _q, sql_path
from .object_store import ObjectStore
from .parquet import ParquetDestination, ParquetStreamWriter, run_table
from .parquet_layout import REJECTED_DIR, RUNS_DIR
from .parquet_store_layout import MANIFEST, MULTI_ACCOUNT, Manifest, StoreLayout, process_spill
from .state_file import JsonStateFile
from .store_lock import StoreLock


class ManifestStates(JsonStateFile):
    """The states kept in the manifest (`state set` / `state reset` write a new manifest)."""

    def __init__(self, layout: StoreLayout):
        super().__init__(layout.store.where(layout.manifest_name))
        self.layout = layout

    def _text(self) -> str | None:
        return json.dumps(self.layout.manifest.states)

    def _store(self, text: str) -> None:
        current = self.layout.manifest
        self.layout.commit(Manifest(current.tables, json.loads(text), current.rejected, current.schema_changes))


class StoreParquetDestination(ParquetDestination):
    @staticmethod
    def check(location: str, tuning: Tuning) -> None:
        check_tuning(tuning)
        ObjectStore(location).check_reachable()

    @staticmethod
    def missing(location: str) -> str | None:
        store = ObjectStore(location)
        if store.read(MANIFEST) is not None or store.read(MULTI_ACCOUNT) is not None:
            return None
        return f"--parquet {location}: no sqquid-etl extract there (no {MANIFEST})"

    def __init__(self, location: str, tuning: Tuning | None = None, *, read_only: bool = False,  # noqa: super().__init__ is the local one
                 account: str | None = None):
        check_account(account)
        self.root = location
        self.account = account
        self.store = ObjectStore(location)
        self.tuning = tuning or Tuning()
        self.layout = StoreLayout(self.store, account)
        self._lock = None
        if read_only:  # to look at it (`state show`): the manifest read; nothing written, no lock taken
            self.layout.open(create=False, lock=False)
            self._states = ManifestStates(self.layout)
            return
        self.layout.open(create=True, lock=False)  # a prefix that is not an extract is left untouched
        self._lock = StoreLock(self.store, self.layout.lock_name)
        try:
            self._lock.acquire()
            self.layout.guard = self._lock.check
            self.layout.open(create=True)
            self._states = ManifestStates(self.layout)
            # bound to an account: one database for the process's accounts on object storage (parquet_sql.py)
            spill = self.layout.spill if self.account is None else process_spill()
            self._shared, self.sql = parquet_sql.connect(spill, self.tuning, self.account)
            self.layout.clean_leftovers()
        except BaseException:
            if hasattr(self, "sql"):
                parquet_sql.release(self._shared, self.sql)
            self._release()
            raise

    @property
    def location(self) -> str:
        return self.store.url

    def record_run(self, run: RunRecord) -> None:
        sink = pa.BufferOutputStream()
        pq.write_table(run_table(run) if self.account is None else stamp(run_table(run), self.account), sink)
        directory = RUNS_DIR if self.account is None else f"{RUNS_DIR}/{self.layout.partition}"
        self.store.write(f"{directory}/{run.run_id}-{run.stream}.parquet", sink.getvalue().to_pybytes())

    def commit(self, stream: str, tables: dict[str, list[str]], state: StreamState, rejected: list[str], changes: list) -> None:
        """The commit point: one manifest with the stream's new files and state."""
        current = self.layout.manifest
        states = {**current.states, stream: json.loads(state.to_json())}
        self.layout.commit(Manifest({**current.tables, **tables}, states, current.rejected + rejected,
                                    current.schema_changes + changes))

    def begin(self, stream: StreamDefinition, replace: bool) -> "StoreParquetStreamWriter":
        return StoreParquetStreamWriter(self, stream, replace)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
        self.layout.close()

    def close(self) -> None:
        if hasattr(self, "sql"):
            parquet_sql.release(self._shared, self.sql)
        self._release()


class StoreParquetStreamWriter(ParquetStreamWriter):
    def _history(self) -> set:
        return {(t, c, kind) for _, t, c, kind, _ in self.dest.layout.manifest.schema_changes}

    def commit(self, state: StreamState, run: RunRecord) -> None:
        try:
            built = self._build(run)  # the tables' next generations (and their history's), the changes counted
            tables = {name: self.layout.publish(name, generation) for name, generation in built}
            known = self._history()
            changes = [[self.stream.name, t, c, kind, run.run_id] for t, c, kind in self._changes if (t, c, kind) not in known]
            self.dest.commit(self.stream.name, tables, state, self._publish_rejected(run.run_id), changes)
            self.dest.record_run(run)
        finally:
            self.abort()
        self.layout.clean_leftovers([t.name for t in self.stream.tables] + [history_table(t.name) for t in self.stream.tables
                                                                              if self.stream.history])

    def _publish_rejected(self, run_id: str) -> list[str]:
        if not self.stage.rows(REJECTED_TABLE):
            return []
        local = self.layout.work / "rejected.parquet"
        columns = ", ".join(_q(c) for c in REJECTED_COLUMNS)
        if self.account is not None:  # the name is checked (`check_account`): a safe literal
            columns = f"'{self.account}' AS {ACCOUNT}, {columns}"
        self.sql.execute(f"COPY (SELECT {columns} FROM {self.stage.relation(REJECTED_TABLE)}) TO {sql_path(local)} (FORMAT parquet)")
        name = self.layout.publish_file(local, self.layout.new_name(REJECTED_DIR, f"{run_id}-{self.stream.name}"))
        local.unlink()
        return [name]
