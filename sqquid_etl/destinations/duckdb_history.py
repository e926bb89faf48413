"""Type-2 history of a snapshot stream's tables (`history: true`: inventory, buffers) in DuckDB.

`<table>_history` holds every version of every row: its columns, its content hash, `valid_from`
(the start of the run that first saw this version), `valid_to` (the start of the run that saw
it change or disappear; NULL while current) and the `run_id` that recorded it. A commit closes
the current versions whose row changed or is gone from the new snapshot and opens a version for
every row that is new or changed, in the same transaction as the snapshot itself, so "what was
on hand at location 50 on 2026-10-01" is

    SELECT sku, sum(qty_on_hand) FROM inventory_history
    WHERE location_external_id = '50' AND valid_from <= '2026-10-01'
      AND (valid_to IS NULL OR valid_to > '2026-10-01') GROUP BY sku
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..definitions import TableSpec
from ..runs import RunRecord
from .account_scope import ACCOUNT
from .duckdb_freshness import HASH, hash_sql, same_row_sql
from .merge_sql import quote_identifier as q

HISTORY_COLUMNS = (HASH, "valid_from", "valid_to", "run_id")


def history_table(table: str) -> str:
    return f"{table}_history"


def record_history(conn: Any, existing: dict[str, list[str]], table: TableSpec, latest: str, run: RunRecord,
                   account: str | None = None) -> int:
    """Close and open versions of `<table>_history` for the snapshot `latest` (SQL selecting the
    staged rows, one per key). Returns the versions opened. `account`: the snapshot is that
    account's (only its versions are closed). Within the caller's transaction."""
    name = history_table(table.name)
    columns = ", ".join(q(c) for c in table.column_names)
    if name not in existing:
        conn.execute(f"CREATE TABLE {q(name)} AS SELECT {columns}, NULL::VARCHAR AS {HASH}, "
                     f"NULL::TIMESTAMPTZ AS valid_from, NULL::TIMESTAMPTZ AS valid_to, NULL::VARCHAR AS run_id "
                     f"FROM ({latest}) LIMIT 0")
        existing[name] = table.column_names + list(HISTORY_COLUMNS)
    match = " AND ".join(f"s.{q(k)} = h.{q(k)}" for k in table.primary_key)
    mine, params = ("", []) if account is None else (f" AND h.{ACCOUNT} = ?", [account])
    if _unchanged(conn, table, name, latest, match, mine, params):
        return 0
    at = datetime.fromisoformat(run.started_at)
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _sqquid_snapshot AS SELECT {columns}, {hash_sql(table)} AS {HASH} FROM ({latest})")
    conn.execute(
        f"UPDATE {q(name)} h SET valid_to = ? WHERE h.valid_to IS NULL{mine} AND NOT EXISTS "
        f"(SELECT 1 FROM _sqquid_snapshot s WHERE {match} AND s.{HASH} = h.{HASH})", [at, *params]
    )
    opened = conn.execute(
        f"INSERT INTO {q(name)} ({columns}, {HASH}, valid_from, valid_to, run_id) "
        f"SELECT {columns}, {HASH}, ?, NULL, ? FROM _sqquid_snapshot s WHERE NOT EXISTS "
        f"(SELECT 1 FROM {q(name)} h WHERE h.valid_to IS NULL AND {match} AND s.{HASH} = h.{HASH})",
        [at, run.run_id],
    ).fetchall()[0][0]
    conn.execute("DROP TABLE _sqquid_snapshot")
    return opened


def _unchanged(conn: Any, table: TableSpec, name: str, latest: str, match: str, mine: str, params: list) -> bool:
    """Whether the snapshot is the current versions as they are: as many rows, each the same as
    the current version of its key (compared as values, as `duckdb_freshness.same_row_sql`: equal
    values have equal hashes). Then nothing is closed or opened, and no row's hash is made."""
    current = f"SELECT * FROM {q(name)} h WHERE h.valid_to IS NULL{mine}"
    differ, versions, rows = conn.execute(
        f"SELECT count(*) FILTER (WHERE h.{q(table.primary_key[0])} IS NULL OR NOT ({same_row_sql(table, 's', 'h')})), "
        f"(SELECT count(*) FROM ({current})), count(*) FROM ({latest}) s LEFT JOIN ({current}) h ON {match}",
        params * 2).fetchall()[0]
    return differ == 0 and versions == rows
