"""Apache Iceberg destination (`--iceberg WAREHOUSE[?catalog=URL&namespace=NAME]`, pyiceberg):
one typed Iceberg table per stream table in the namespace, merged by primary key, and the
stream's state a property of its first table, set in the same snapshot commit as that table's
data (`iceberg_writer.py`), so data and state move together. Many processes may write one
namespace at once (each table's commit is optimistic, a conflict is retried); one process a
(namespace, stream) (`iceberg_catalog.WriterLock`).

Where the catalog and warehouse are: `iceberg_catalog.py`. Run records, quarantined records and
the schema history are the tables `_sqquid_runs`, `_sqquid_rejected`, `_sqquid_schema_changes`.
Reading (`distinct_values`, `count_since`, `cursor_bounds`) scans the table with pyiceberg and
asks DuckDB. The views of a DuckDB extract are not stored (`after_load`): `sqquid-etl sql --iceberg`
defines them in DuckDB over the current data files (`data_files`), as for a Parquet extract.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import duckdb
import pyarrow as pa

from ..definitions import StreamDefinition
from ..errors import ConfigError
from ..runs import RunRecord
from ..settings import Tuning
from ..state import StreamState
from .duckdb_tuning import check_tuning, tune
from .iceberg_catalog import IcebergLocation, iceberg_schema, open_catalog
from .iceberg_commit import STATE, STREAM, load_table, quietly, retried
from .iceberg_expire import expire_snapshots
from .iceberg_scan import current_files, scan_reader
from .merge_sql import counts_at, quote_identifier as _q, sql_path, where_clause
from .object_store import ObjectStore
from .protocol import bounds_each, counts_each
from .parquet import run_table

RUNS = "_sqquid_runs"


class IcebergDestination:
    kind_name = "Iceberg"  # no multi-account form yet: `account=` is refused (`destinations._accepts`)

    @staticmethod
    def check(location: Any, tuning: Tuning) -> None:
        check_tuning(tuning)
        where = IcebergLocation.parse(location)
        where.check_local()
        if where.remote:
            ObjectStore(where.warehouse, "--iceberg").check_reachable()

    @staticmethod
    def missing(location: Any) -> str | None:
        where = IcebergLocation.parse(location)
        sqlite = where.sqlite_file()
        if sqlite is not None and not sqlite.exists():
            return f"--iceberg {where.text}: no catalog {sqlite} (nothing extracted there yet)"
        return None

    def __init__(self, location: Any, tuning: Tuning | None = None, *, read_only: bool = False):
        self.where = IcebergLocation.parse(location)
        self.where.check_local()
        self.tuning = tuning or Tuning()
        self.catalog = open_catalog(self.where, create=not read_only)  # read_only (`state show`): nothing made
        self.namespace = self.where.namespace
        self.work = Path(tempfile.mkdtemp(prefix="sqquid-iceberg-"))
        self.sql = duckdb.connect()
        self.sql.execute("SET TimeZone = 'UTC'")
        self.sql.execute(f"SET temp_directory = {sql_path(self.work / 'spill')}")
        tune(self.sql, self.tuning)

    @property
    def location(self) -> str:
        return self.where.text

    def table(self, name: str) -> Any:
        """The namespace's table `name` (pyiceberg), None when there is none."""
        return load_table(self.catalog, (self.namespace, name))

    def _tables(self) -> list[Any]:
        return [t for t in (self.table(name) for _, name in self.catalog.list_tables(self.namespace)) if t is not None]

    # -- state: a property of each stream's first table ---------------------------------------------
    # (of the namespace while the stream has no table: `state set` before its first extract)

    def _state_tables(self) -> dict[str, Any]:
        return {t.properties[STREAM]: t for t in self._tables() if STREAM in t.properties}

    def _raw_states(self) -> dict[str, tuple[str, str]]:
        """stream -> (its state's JSON, where it is kept)."""
        prefix = f"{STATE}."
        properties = self.catalog.load_namespace_properties(self.namespace)
        out = {k[len(prefix):]: (v, f"namespace {self.namespace}") for k, v in properties.items() if k.startswith(prefix)}
        for stream, table in self._state_tables().items():
            if STATE in table.properties:
                out[stream] = (table.properties[STATE], f"table {'.'.join(table.name())}")
        return out

    def load_states(self) -> dict[str, StreamState]:
        return {stream: StreamState.from_json(text, f"{self.location}, {where}, stream {stream!r}")
                for stream, (text, where) in sorted(self._raw_states().items())}

    def load_state(self, stream: str) -> StreamState | None:
        found = self._raw_states().get(stream)
        return None if found is None else StreamState.from_json(found[0], f"{self.location}, {found[1]}, stream {stream!r}")

    def save_state(self, stream: str, state: StreamState | None) -> None:
        table = self._state_tables().get(stream)
        key = f"{STATE}.{stream}"
        if key in self.catalog.load_namespace_properties(self.namespace) or table is None:
            updates = {key: state.to_json()} if state is not None and table is None else {}
            self.catalog.update_namespace_properties(self.namespace, removals=set() if updates else {key}, updates=updates)
        if table is None:
            return

        def change(_: Any, tx: Any) -> None:
            if state is None:
                tx.remove_properties(STATE)
            else:
                tx.set_properties({STATE: state.to_json()})
        retried(self.catalog, table.name(), change)

    def state_streams(self) -> list[str]:
        return sorted(self._raw_states())

    def clear_states(self) -> None:
        for stream in self.state_streams():
            self.save_state(stream, None)

    def record_run(self, run: RunRecord) -> None:
        from pyiceberg.expressions import And, EqualTo

        row = run_table(run)
        table = self._ensure(RUNS, row.schema)

        def change(_: Any, tx: Any) -> None:
            with tx.update_schema() as update:
                update.union_by_name(iceberg_schema(row.schema))
            quietly(tx.delete, And(EqualTo("run_id", run.run_id), EqualTo("stream", run.stream)))
            tx.append(row)
        retried(self.catalog, table.name(), change)
        expire_snapshots(self.catalog, table.name())

    def _ensure(self, name: str, schema: pa.Schema, properties: dict | None = None) -> Any:
        from .iceberg_commit import ensure_table

        return ensure_table(self.catalog, (self.namespace, name), schema, properties or {})

    # -- reading ------------------------------------------------------------------------------------

    def _scan(self, table: str, columns: list[str], column: str | None, since: datetime | None,
              equals: dict[str, str]) -> tuple[str, list] | None:
        found = self.table(table)
        if found is None:
            return None
        self.sql.register("_scan", scan_reader(found, None, columns + list(equals)))  # read once, by the caller's query
        where, params = where_clause(column, since, equals)
        return f"FROM _scan{where}", params

    def distinct_values(self, table: str, column: str) -> list[Any] | None:
        scan = self._scan(table, [column], None, None, {})
        if scan is None:
            return None
        return [r[0] for r in self.sql.execute(f"SELECT DISTINCT {_q(column)} {scan[0]} WHERE {_q(column)} IS NOT NULL ORDER BY 1").fetchall()]

    def count_since(self, table: str, column: str, since: datetime | None, equals: dict[str, str]) -> int:
        return self.counts_since(table, column, [since], equals)[0]

    def counts_since(self, table: str, column: str, times: list[datetime | None], equals: dict[str, str]) -> list[int]:
        scan = self._scan(table, [column], None, None, equals)  # the table read once for every count
        if scan is None:
            return [0] * len(times)
        counts, bounds = counts_at(column, times)
        return list(self.sql.execute(f"SELECT {counts} {scan[0]}", [*bounds, *scan[1]]).fetchall()[0])

    cursor_bounds_each, counts_since_each = bounds_each, counts_each  # one query a partition

    def cursor_bounds(self, table: str, column: str, equals: dict[str, str]) -> tuple[Any, Any]:
        scan = self._scan(table, [column], None, None, equals)
        if scan is None:
            return None, None
        return self.sql.execute(f"SELECT min({_q(column)}), max({_q(column)}) {scan[0]}", scan[1]).fetchall()[0]

    def data_files(self) -> dict[str, list[str]]:
        """Each table's data files in its current snapshot, as local paths (`sqquid-etl sql`); a
        ConfigError for a remote warehouse (DuckDB reads object storage only with its httpfs extension)."""
        if self.where.remote:
            raise ConfigError(f"--iceberg {self.location}: `sqquid-etl sql` reads a local warehouse; query object storage "
                              "with an Iceberg engine, or DuckDB's iceberg and httpfs extensions")
        return {name: [unquote(urlparse(path).path) for path in current_files(table)]
                for name, table in ((name, self.table(name)) for _, name in self.catalog.list_tables(self.namespace)) if table is not None}

    # -- writing ------------------------------------------------------------------------------------

    def begin(self, stream: StreamDefinition, replace: bool) -> Any:
        from .iceberg_writer import IcebergStreamWriter

        return IcebergStreamWriter(self, stream, replace)

    def after_load(self) -> list[str]:
        return []

    def close(self) -> None:
        self.sql.close()
        shutil.rmtree(self.work, ignore_errors=True)
        engine = getattr(self.catalog, "engine", None)
        if engine is not None:
            engine.dispose()
