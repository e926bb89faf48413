"""A destination that stores nothing itself: it hands each stream's commit to someone else.

The Singer tap (`singer.py`) writes a commit as RECORD and STATE messages on stdout; the dlt
source (`dlt.py`) as Parquet files its resources yield. Both run the same engine as an extract
(pacing, tolerant reading, the /count check), with an `EmittingDestination` in place of DuckDB:

- the state comes in from outside (a Singer state file, dlt's source state) and goes out with
  each commit: the receiver stores it after the rows it came with, so it never runs ahead;
- a commit holds one row a primary key (the last version, as a merge would keep) of each table;
- the values of columns another stream lists by (products.sku for inventory) are kept in the
  state under `keys`, so a later incremental run can still list inventory by every sku.

Reconciliation (which needs the stored rows to count) is left to the receiver: callers run the
pipeline with `reconcile=False`.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import duckdb
import pyarrow as pa

from .definitions import StreamDefinition, load_definitions
from .destinations.merge_sql import latest_versions_sql, quote_identifier as q
from .destinations.duckdb_tuning import tune
from .destinations.protocol import bounds_each, counts_each
from .destinations.staging import ParquetStage
from .runs import REJECTED_TABLE, RunRecord
from .settings import Tuning
from .state import StreamState

BATCH_ROWS = 2_000


@dataclass
class Commit:
    """One stream's commit: its tables (one row a key), the records it quarantined, its new state
    and run row, and the key values (`table.column` -> sorted values) after it."""

    stream: StreamDefinition
    tables: dict[str, pa.RecordBatchReader]
    rejected: pa.RecordBatchReader | None
    state: StreamState
    run: RunRecord
    replace: bool
    keys: dict[str, list]


def key_sources() -> set[tuple[str, str]]:
    """(table, column) that some stream lists by (products.sku and product_variants.sku)."""
    return {s for d in load_definitions().values() if d.keys_from for s in d.keys_from.sources}


@dataclass
class EmittingDestination:
    """`protocol.Destination` whose commits go to `on_commit` (see the module's docstring)."""

    on_commit: Callable[[Commit], None]
    states: dict[str, StreamState] = field(default_factory=dict)
    keys: dict[str, list] = field(default_factory=dict)
    label: str = "(emitted)"
    tuning: Tuning = field(default_factory=Tuning)
    runs: list[RunRecord] = field(default_factory=list)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sqquid-emit-")))

    @property
    def location(self) -> str:
        return self.label

    def load_states(self) -> dict[str, StreamState]:
        return dict(self.states)

    def load_state(self, stream: str) -> StreamState | None:
        return self.states.get(stream)

    def save_state(self, stream: str, state: StreamState | None) -> None:
        if state is None:
            self.states.pop(stream, None)
        else:
            self.states[stream] = state

    def state_streams(self) -> list[str]:
        return sorted(self.states)

    def clear_states(self) -> None:
        self.states.clear()

    def record_run(self, run: RunRecord) -> None:
        self.runs = [r for r in self.runs if (r.run_id, r.stream) != (run.run_id, run.stream)] + [run]

    def distinct_values(self, table: str, column: str) -> list[Any] | None:
        return self.keys.get(f"{table}.{column}")

    def count_since(self, table: str, column: str, since: Any, equals: dict[str, str]) -> int:
        return 0  # nothing is stored here (reconciliation is off for this destination)

    def counts_since(self, table: str, column: str, times: list, equals: dict[str, str]) -> list[int]:
        return [0] * len(times)

    cursor_bounds_each, counts_since_each = bounds_each, counts_each

    def cursor_bounds(self, table: str, column: str, equals: dict[str, str]) -> tuple[Any, Any]:
        return None, None

    def begin(self, stream: StreamDefinition, replace: bool) -> "EmittingWriter":
        return EmittingWriter(self, stream, replace)

    def after_load(self) -> list[str]:
        return []

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


class EmittingWriter:
    """Stages a stream's pages (Parquet, bounded memory, like the DuckDB writer) and on `commit`
    hands one row a key of each table to the destination's `on_commit`."""

    evolves = False  # undocumented fields are dropped with a warning (no table to add them to)

    def __init__(self, destination: EmittingDestination, stream: StreamDefinition, replace: bool):
        self.dest, self.stream, self.replace = destination, stream, replace
        self.stage = ParquetStage(destination.workdir / stream.name, stream, destination.tuning.flush_rows)
        self.conn = duckdb.connect()
        tune(self.conn, destination.tuning)  # memory and threads as the DuckDB destination's
        spill = str(destination.workdir / "duckdb-spill").replace("'", "''")
        self.conn.execute(f"SET temp_directory = '{spill}'")  # beyond the limit: here, not in the cwd

    def write(self, tables: dict[str, pa.Table]) -> None:
        self.stage.write(tables)

    def write_rejected(self, rows: pa.Table) -> None:
        self.stage.write({REJECTED_TABLE: rows})

    def distinct_keys(self, table: str) -> int:
        spec = next(t for t in self.stream.tables if t.name == table)
        if not self.stage.rows(table):
            return 0
        keys = ", ".join(q(k) for k in spec.primary_key)
        return self.conn.execute(f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {self.stage.relation(table)})").fetchall()[0][0]

    def commit(self, state: StreamState, run: RunRecord) -> None:
        try:
            tables = {}
            for spec in self.stream.tables:
                sql = latest_versions_sql(self.stage.relation(spec.name), spec, self.conn)
                tables[spec.name] = _reader(self.conn.cursor().sql(sql))  # a cursor a result: read in turn
            rejected = None
            if self.stage.rows(REJECTED_TABLE):
                rejected = _reader(self.conn.cursor().sql(f"SELECT * EXCLUDE (_sqquid_seq) FROM {self.stage.relation(REJECTED_TABLE)}"))
            keys = self._keys_after()
            self.dest.on_commit(Commit(self.stream, tables, rejected, state, run, self.replace, keys))
            self.dest.keys, self.dest.states[self.stream.name] = keys, state
            self.dest.record_run(run)
        finally:
            self.abort()

    def _keys_after(self) -> dict[str, list]:
        """The key values after this commit: this commit's added (replaced by a full refresh)."""
        keys = dict(self.dest.keys)
        names = {t.name for t in self.stream.tables}
        for table, column in sorted(key_sources()):
            if table not in names:
                continue
            found = self.conn.execute(
                f"SELECT DISTINCT CAST({q(column)} AS VARCHAR) FROM {self.stage.relation(table)} WHERE {q(column)} IS NOT NULL"
            ).fetchall()
            old = set() if self.replace else set(keys.get(f"{table}.{column}") or ())
            keys[f"{table}.{column}"] = sorted(old | {r[0] for r in found})
        return keys

    def abort(self) -> None:
        self.stage.discard()
        try:
            self.conn.close()
        except duckdb.Error:
            pass


def _reader(relation: Any) -> pa.RecordBatchReader:
    """A relation's rows in batches (DuckDB 2 names it `to_arrow_reader`, 1.x `fetch_arrow_reader`)."""
    method = getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader
    return method(BATCH_ROWS)
