"""A stream's pages into its Iceberg tables: staged on local disk as for Parquet
(`staging.ParquetStage`), then one commit a table, children first and the stream's first table
last, whose commit also sets the stream's state (`iceberg_commit.STATE`).

A table's merge is one transaction: the rows whose first key column, or whose parent link, is
among the staged ones are read (the few data files the filter reaches), those not replaced are
kept, and the filter's rows are deleted and the kept plus the new rows appended. Columns for
undocumented fields are added by a schema update in the same transaction
(`parquet_evolve.plan_columns`, the rule of every destination). Another writer's commit in
between: the transaction is made again on the table as it now is (`iceberg_commit.retried`).
A crash between two tables' commits leaves a child table ahead of its parent and the state
where it was: the re-run fetches the same records again and the merge makes it exact.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
from pyiceberg.expressions import AlwaysTrue

from ..definitions import StreamDefinition, TableSpec
from ..records import arrow_schema
from ..runs import REJECTED_COLUMNS, REJECTED_TABLE, RunRecord
from ..state import StreamState
from .duckdb_tuning import within_memory_limit
from .iceberg_catalog import WriterLock
from .iceberg_commit import EVOLVED, PRIMARY_KEY, STATE, STREAM, ensure_table, quietly, remove_orphan_files, retried
from .iceberg_expire import expire_snapshots
from .iceberg_scan import scan_reader
from .merge_sql import check_columns, latest_versions_sql, quote_identifier as _q
from .parquet_evolve import HISTORY_SCHEMA, carried_columns, new_rows_sql, plan_columns
from .staging import REJECTED_SCHEMA, ParquetStage

BATCH_ROWS = 16_384  # rows a batch handed from DuckDB to pyiceberg
CHUNK_BYTES = 8 * 1024 * 1024  # Arrow bytes given to pyiceberg at once


class IcebergStreamWriter:
    evolves = True

    def __init__(self, destination: Any, stream: StreamDefinition, replace: bool):
        self.dest = destination
        self.sql = destination.sql
        self.stream = stream
        self.replace = replace
        self.lock = WriterLock(destination.catalog, destination.namespace, stream.name, destination.location)
        self.lock.acquire()
        try:
            self._tables = {t.name: destination.table(t.name) for t in stream.tables}
            for table in self._tables.values():
                if table is not None:
                    remove_orphan_files(table)  # a killed run's: this process alone writes these tables now
            if not replace:
                for spec in stream.tables:
                    self._check_columns(spec)
            self.stage = ParquetStage(destination.work / f"staging-{stream.name}", stream, destination.tuning.flush_rows)
        except BaseException:
            self.lock.release()
            raise

    def _evolved(self, name: str) -> list[str]:
        table = self._tables[name]
        return [] if table is None else json.loads(table.properties.get(EVOLVED, "[]"))

    def _check_columns(self, spec: TableSpec) -> None:
        table = self._tables[spec.name]
        if table is not None:
            evolved = set(self._evolved(spec.name))
            have = [f.name for f in table.schema().fields if f.name not in evolved]
            check_columns(self.dest.location, spec.name, have, self.stream, spec.column_names)

    def _have(self, name: str) -> dict[str, str]:
        """The table's columns and their DuckDB types ({} when it does not exist)."""
        table = self._tables[name]
        if table is None:
            return {}
        schema = table.schema().as_arrow()
        self.sql.register("_have", pa.Table.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema))
        return {r[0]: r[1] for r in self.sql.execute("DESCRIBE SELECT * FROM _have").fetchall()}

    def write(self, tables: dict[str, pa.Table]) -> None:
        self.stage.write(tables)

    def write_rejected(self, rows: pa.Table) -> None:
        self.stage.write({REJECTED_TABLE: rows})

    def distinct_keys(self, table: str) -> int:
        if not self.stage.rows(table):
            return 0
        spec = next(t for t in self.stream.tables if t.name == table)
        keys = ", ".join(_q(k) for k in spec.primary_key)
        sql = f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {self.stage.relation(table)})"
        return within_memory_limit(self.sql, self.dest.tuning, self.stream.name, lambda: self.sql.execute(sql).fetchall()[0][0])

    # -- commit ---------------------------------------------------------------------------------------

    def commit(self, state: StreamState, run: RunRecord) -> None:
        try:
            first = self.stream.tables[0]
            parent = first if first.nested_path is None else None
            plans = {spec.name: self._plan(spec) for spec in self.stream.tables}
            self._append_aside(REJECTED_TABLE, REJECTED_SCHEMA, self._rejected_sql())
            self._record_changes(run.run_id, plans)
            for spec in reversed(self.stream.tables):  # the first table last: its commit holds the state
                state_props = {STATE: state.to_json()} if spec is first else {}
                if self.replace or self.stage.rows(spec.name) or self._tables[spec.name] is None or state_props:
                    within_memory_limit(self.sql, self.dest.tuning, self.stream.name,
                                        lambda: self._commit_table(spec, parent, plans[spec.name], state_props))
            self.dest.record_run(run)
            for spec in self.stream.tables:  # each exists now
                expire_snapshots(self.dest.catalog, (self.dest.namespace, spec.name))
        finally:
            self.abort()

    def _plan(self, spec: TableSpec) -> tuple[dict, dict, list, dict]:
        """(have, final undocumented columns, changed, staged types) of a table's commit."""
        have = {} if self.replace else self._have(spec.name)  # replaced: the columns of earlier runs go
        staged = self.stage.extra_types.get(spec.name, {}) if self.stage.rows(spec.name) else {}
        final, changed = plan_columns(spec, have, staged)
        return have, final, changed, staged

    def _rejected_sql(self) -> str | None:
        if not self.stage.rows(REJECTED_TABLE):
            return None
        return f"SELECT {', '.join(_q(c) for c in REJECTED_COLUMNS)} FROM {self.stage.relation(REJECTED_TABLE)}"

    def _record_changes(self, run_id: str, plans: dict) -> None:
        rows = [(self.stream.name, name, column, kind, run_id) for name, (_, _, changed, _) in plans.items() for column, kind in changed]
        if rows:
            data = pa.Table.from_arrays([pa.array([r[i] for r in rows], pa.string()) for i in range(5)], schema=HISTORY_SCHEMA)
            self.sql.register("_history", data)
            self._append_aside("_sqquid_schema_changes", HISTORY_SCHEMA, "SELECT * FROM _history")

    def _append_aside(self, name: str, schema: pa.Schema, sql: str | None) -> None:
        """Rows of a table of the namespace's own (quarantine, schema history), appended before the
        stream's data is committed."""
        if sql is None:
            return
        table = ensure_table(self.dest.catalog, (self.dest.namespace, name), schema, {})
        retried(self.dest.catalog, table.name(), lambda _, tx: tx.append(self._reader(sql).read_all()))

    def _commit_table(self, spec: TableSpec, parent: TableSpec | None, plan: tuple, state_props: dict) -> None:
        have, final, changed, staged = plan
        properties = {PRIMARY_KEY: json.dumps(spec.primary_key), **({STREAM: self.stream.name} if spec is self.stream.tables[0] else {})}
        table = self._tables[spec.name] or ensure_table(self.dest.catalog, (self.dest.namespace, spec.name), arrow_schema(spec), properties)
        rows = self.stage.relation(spec.name)
        if final:
            new = new_rows_sql(spec, rows, final, staged)
        else:
            new = latest_versions_sql(rows, spec, self.sql)
        self.sql.execute(f"CREATE OR REPLACE TEMP VIEW _new AS {new}")
        replaced = None if self.replace else self._replaced_filter(spec, parent)
        evolved = sorted(set(self._evolved(spec.name)) | set(final)) if not self.replace else sorted(final)
        reshape = carried_columns(spec, final, have)

        def change(current: Any, tx: Any) -> None:
            new_schema = self._reader("SELECT * FROM _new LIMIT 0").schema
            if final or self.replace:
                with tx.update_schema(allow_incompatible_changes=self.replace) as update:
                    update.union_by_name(pa.schema([f.with_nullable(True) for f in new_schema]))
                    for gone in [f.name for f in current.schema().fields if f.name not in new_schema.names] if self.replace else []:
                        update.delete_column(gone)  # replaced: the columns of earlier undocumented fields go
            if self.replace:
                quietly(tx.delete, AlwaysTrue())
                self._append(tx, "SELECT * FROM _new")
            elif replaced is not None:
                kept = self._kept(current, spec, replaced, reshape)
                quietly(tx.delete, replaced[0])
                self._append(tx, "SELECT * FROM _new" + (f" UNION ALL {kept}" if kept else ""))
            else:
                self._append(tx, "SELECT * FROM _new")
            tx.set_properties({**state_props, EVOLVED: json.dumps(evolved)})
        retried(self.dest.catalog, table.name(), change)

    def _kept(self, current: Any, spec: TableSpec, replaced: tuple[Any, str], reshape: str) -> str | None:
        """SQL of the stored rows the filter reaches that this commit does not replace (the delete
        by the filter takes them, the append puts them back); None when there are none. Their keys
        are read first (a stream re-read in full replaces every row it reaches), whole rows only
        when some are kept; both a data file at a time (`iceberg_scan.scan_reader`)."""
        keys = list(spec.primary_key) + ([spec.parent_link[0]] if spec.parent_link else [])
        self.sql.register("_old", scan_reader(current, replaced[0], keys))
        if not self.sql.execute(f"SELECT 1 FROM _old o WHERE NOT ({replaced[1]}) LIMIT 1").fetchall():
            return None
        self.sql.register("_old", scan_reader(current, replaced[0]))  # read once, by the append's query
        return f"SELECT {reshape} FROM _old o WHERE NOT ({replaced[1]})"

    def _append(self, tx: Any, sql: str) -> None:
        """The rows of a query appended a chunk at a time (pyiceberg takes in every batch of a
        reader before it writes one file: memory would grow with the table)."""
        reader = self._reader(sql)
        chunk: list[pa.RecordBatch] = []
        for batch in reader:
            chunk.append(batch)
            if sum(b.nbytes for b in chunk) >= CHUNK_BYTES:
                tx.append(pa.Table.from_batches(chunk))
                chunk = []
        if chunk:
            tx.append(pa.Table.from_batches(chunk, schema=reader.schema))

    def _reader(self, sql: str) -> pa.RecordBatchReader:
        """The rows of a query in batches (DuckDB 2 names it `to_arrow_reader`, 1.x `fetch_arrow_reader`)."""
        relation = self.sql.sql(sql)
        method = getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader
        return method(BATCH_ROWS)

    def _replaced_filter(self, spec: TableSpec, parent: TableSpec | None) -> tuple[Any, str] | None:
        """(pyiceberg filter reaching every stored row the commit may replace, SQL on such a row
        `o`: true when it is replaced); None when the commit replaces none (or the table is empty)."""
        from pyiceberg.expressions import Or

        table = self._tables[spec.name]
        if table is None or table.current_snapshot() is None:
            return None
        first = spec.primary_key[0]
        reach = [_reach(self.sql, first, f"SELECT {_q(first)} AS v FROM _new")]
        match = " AND ".join(f"o.{_q(k)} IS NOT DISTINCT FROM n.{_q(k)}" for k in spec.primary_key)
        condition = f"EXISTS (SELECT 1 FROM _new n WHERE {match})"
        if spec.parent_link and parent is not None:
            link, parent_key = spec.parent_link
            self.sql.execute(f"CREATE OR REPLACE TEMP TABLE _parents AS SELECT DISTINCT {_q(parent_key)} AS k FROM {self.stage.relation(parent.name)}")
            reach.append(_reach(self.sql, link, "SELECT k AS v FROM _parents"))
            condition += f" OR o.{_q(link)} IN (SELECT k FROM _parents)"
        reach = [r for r in reach if r is not None]
        if not reach:
            return None
        return (reach[0] if len(reach) == 1 else Or(*reach)), condition

    def abort(self) -> None:
        try:
            self.stage.discard()
        finally:
            self.lock.release()


IN_LIMIT = 2_000  # more values than this: reach them by their range (a pyiceberg `In` binds each one in Python)


def _reach(sql: Any, column: str, values: str) -> Any:
    """A pyiceberg filter on `column` reaching every non-null value of the query `values` (one
    column `v`): the values themselves when few, else their range; None when there are none."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, In, LessThanOrEqual

    count, low, high = sql.execute(f"SELECT count(DISTINCT v), min(v), max(v) FROM ({values}) WHERE v IS NOT NULL").fetchall()[0]
    if not count:
        return None
    if count <= IN_LIMIT:
        return In(column, [r[0] for r in sql.execute(f"SELECT DISTINCT v FROM ({values}) WHERE v IS NOT NULL").fetchall()])
    return And(GreaterThanOrEqual(column, low), LessThanOrEqual(column, high))
