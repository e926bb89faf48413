"""`sqquid-etl upgrade --account NAME` for DuckDB: a single-account database made multi-account in
place, in one transaction: every table of the extract's (the extracted ones, their `_history`, and
the database's own `_sqquid_*` tables: state, runs, rejected records; a table or view the user
added to the file is left as it is) is rebuilt with a leading `account`
column holding NAME, so its rows, states and run records become that account's. The content
hashes (`_sqquid_hash`) do not cover the account column: they stay valid, and the next run of
the account counts its records unchanged. `_sqquid_schema_changes` (columns of a table, shared by
its accounts) is left as it is. The views are made again after the commit."""

from __future__ import annotations

from pathlib import Path

import duckdb

from ..errors import ConfigError, StateError
from .account_scope import ACCOUNT, check_account
from .duckdb_evolve import HISTORY_TABLE
from .duckdb_history import history_table
from .duckdb_own import RUNS_TABLE, STATE_TABLE, check_ours, connect, first_line, prepare, state_columns
from .duckdb_shared import opened
from .merge_sql import quote_identifier as q


def upgrade_duckdb(path: str | Path, account: str) -> str:
    """Make the database at `path` multi-account, its rows `account`'s; returns what was done.
    A database already multi-account is left as it is (a no-op when `account` is one of its
    accounts, else a ConfigError); nothing half-done either way."""
    check_account(account)
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--duckdb {path}: no such DuckDB file (nothing to upgrade)")
    if opened(path) is not None:
        raise StateError(f"{path} is in use by this process; close it before upgrading it")
    conn = connect(path)
    try:
        check_ours(conn, path, looking=True)
        if ACCOUNT in state_columns(conn):
            return _already(conn, path, account)
        conn.execute("BEGIN TRANSACTION")
        try:
            prepare(conn, path)  # the own tables and run columns an older version lacks, first
            tables = _tables(conn)
            for view in _views(conn):
                conn.execute(f"DROP VIEW {q(view)}")
            for table in tables:
                _stamp(conn, table, account)
            conn.execute("COMMIT")
        except BaseException as exc:
            conn.execute("ROLLBACK")
            if isinstance(exc, duckdb.Error):
                raise StateError(f"{path}: not upgraded ({first_line(exc)}); it was left as it was") from None
            raise
        from ..sql_views import create_views

        views = create_views(conn)
    finally:
        conn.close()
    shown = ", ".join(t for t in tables if not t.startswith("_sqquid_")) or "none yet"
    return (f"{path}: upgraded to a multi-account destination; its rows, states and run records are account "
            f"{account!r}'s (tables: {shown}{'; views made again: ' + ', '.join(views) if views else ''})")


def _already(conn, path: Path, account: str) -> str:
    accounts = sorted({r[0] for r in conn.execute(
        f"SELECT DISTINCT {ACCOUNT} FROM {STATE_TABLE} UNION SELECT DISTINCT {ACCOUNT} FROM {RUNS_TABLE}").fetchall()
        if r[0] is not None})
    if accounts and account not in accounts:
        raise ConfigError(f"{path} is already a multi-account destination (accounts: {', '.join(accounts)}); "
                          "upgrade turns a single-account one into one: nothing was changed")
    return f"{path} is already a multi-account destination (accounts: {', '.join(accounts) or 'none yet'}); nothing was changed"


def _tables(conn) -> list[str]:
    """The base tables to stamp: the extract's own (the tables of the stream definitions, their
    `_history`, `_sqquid_state`, `_sqquid_runs`, `_sqquid_rejected`), never a table the user added
    to the file, nor the schema history."""
    rows = conn.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND NOT temporary "
                        "AND database_name = current_database() ORDER BY 1").fetchall()
    ours = _stream_tables()
    return [r[0] for r in rows if r[0] in ours or (r[0].startswith("_sqquid_") and r[0] != HISTORY_TABLE)]


def _stream_tables() -> set[str]:
    from ..definitions import load_definitions

    tables = {t.name for d in load_definitions().values() for t in d.tables}
    return tables | {history_table(t) for t in tables}


def _views(conn) -> list[str]:
    """The extract's views (`sql_views.VIEWS`), made again after the upgrade; the user's are kept."""
    from ..sql_views import VIEWS

    return [r[0] for r in conn.execute("SELECT view_name FROM duckdb_views() WHERE schema_name = 'main' AND NOT internal "
                                       "AND database_name = current_database()").fetchall() if r[0] in VIEWS]


def _stamp(conn, table: str, account: str) -> None:
    """The table rebuilt with `account` first (the name is checked: a safe literal)."""
    if ACCOUNT in {r[0] for r in conn.execute(f"DESCRIBE {q(table)}").fetchall()}:
        raise ConfigError(f"table {table!r} already has a column named {ACCOUNT!r}: it cannot be upgraded "
                          "(a multi-account destination adds that column)")
    staged = q(f"_sqquid_upgrade_{table}")
    conn.execute(f"CREATE TABLE {staged} AS SELECT '{account}'::VARCHAR AS {ACCOUNT}, * FROM {q(table)}")
    conn.execute(f"DROP TABLE {q(table)}")
    conn.execute(f"ALTER TABLE {staged} RENAME TO {q(table)}")
