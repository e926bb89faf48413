"""A destination under test (a DuckDB file or a Parquet directory), extracted into and read back
through DuckDB the way a user reads it: the DuckDB file read-only, the Parquet directory through
`sql_views.attach_parquet` (one view a table, then the SQL views) plus its `_sqquid_runs`."""

from __future__ import annotations

from pathlib import Path

import duckdb

from sqquid_etl import extract
from sqquid_etl.sql_views import attach_parquet
from tests.expected import COMPARED
from tests.support import make_client

KINDS = ["duckdb", "parquet"]


class Destination:
    def __init__(self, kind: str, tmp_path: Path):
        self.kind = kind
        self.location = tmp_path / ("f.duckdb" if kind == "duckdb" else "lake")

    def extract(self, streams=None, *, sandbox, **options):
        return extract(streams, **{self.kind: self.location}, client=make_client(sandbox), **options)

    def query(self, sql: str, params=()) -> list[tuple]:
        if self.kind == "duckdb":
            conn = duckdb.connect(str(self.location), read_only=True)
        else:
            conn = duckdb.connect()
            attach_parquet(conn, str(self.location))
            runs = str(self.location / "_sqquid_runs" / "*.parquet").replace("'", "''")
            conn.execute(f"CREATE VIEW _sqquid_runs AS SELECT * FROM read_parquet('{runs}', union_by_name = true)")
        with conn:
            conn.execute("SET TimeZone = 'UTC'")
            return conn.execute(sql, list(params)).fetchall()

    def columns(self, table: str) -> list[str]:
        return [r[0] for r in self.query(f"DESCRIBE {table}")]

    def live_tables(self, tables=None) -> dict[str, list[tuple]]:
        """The compared columns of each table, without the records marked gone upstream."""
        out = {}
        for table, columns in COMPARED.items():
            if tables is not None and table not in tables:
                continue
            where = " WHERE _sqquid_deleted_at IS NULL" if "_sqquid_deleted_at" in self.columns(table) else ""
            out[table] = sorted(self.query(f"SELECT {columns} FROM {table}{where}"), key=repr)
        return out

    def marked(self, table: str, key: str = "id") -> set:
        """The keys of `table` marked gone upstream."""
        return {r[0] for r in self.query(f"SELECT {key} FROM {table} WHERE _sqquid_deleted_at IS NOT NULL")}

    def started(self, run_id: str, stream: str):
        """When the run `run_id` of `stream` started (what its history versions are stamped with)."""
        return self.query("SELECT started_at::TIMESTAMPTZ FROM _sqquid_runs WHERE run_id = ? AND stream = ?",
                          [run_id, stream])[0][0]
