"""What makes a DuckDB database an extract's: its own tables (`_sqquid_state`, the mark, beside
`_sqquid_runs` and `_sqquid_rejected`), and opening one. A database of the user's (tables, no
state table) is never written into; one opened to look at it is opened read-only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError, StateError
from ..runs import ADDED_RUN_COLUMNS, REJECTED_COLUMNS, REJECTED_TABLE
from .account_scope import ACCOUNT
from .duckdb_engine import duckdb
from .merge_sql import quote_identifier as q, sql_path

STATE_TABLE = "_sqquid_state"
RUNS_TABLE = "_sqquid_runs"
MARKS = {STATE_TABLE, RUNS_TABLE}  # either makes a database an extract's (versions before the state table: the runs)


# A first load appends tens of thousands of rows a table in one transaction. An append that fills
# a row group DuckDB writes to the file as it goes, compressed ("optimistic write"); a smaller one
# waits in the transaction, and its commit copies the rows into the table and its checkpoint reads
# them back to compress them: for 40,000 orders (40,000 + 120,000 rows) at DuckDB's 122,880 rows a
# group that was a third more CPU for the insert and commit (~0.08 s, bench/startup.py). So the file
# is attached with groups of 32,768 rows (a file ~7% larger; the rows are compressed a group at a
# time). The file keeps no row group size: another program appends to it with its own.
ROW_GROUP_ROWS = 32_768
DATABASE = "_sqquid_db"  # the attached file's name on the connection (`current_database()`)


def connect(path: Path, read_only: bool = False) -> Any:
    """A connection to the database file (made when new), a StateError when another process
    holds it; a writable one attached with `ROW_GROUP_ROWS` rows a group, its spill files beside
    it as DuckDB puts those of a file it opens (`<file>.tmp`). A file this process has open
    already (a `duckdb.connect(path)` of the caller's) is opened through DuckDB's own connection
    to it, whose database it shares."""
    try:
        return duckdb.connect(str(path), read_only=True) if read_only else _attached(path)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StateError(
                f"{path} is in use by another process (another extract is running?); wait for it to finish"
            ) from None
        raise ConfigError(f"cannot open DuckDB file {path}: {exc}") from None
    except duckdb.Error as exc:
        raise ConfigError(f"cannot open DuckDB file {path}: {exc}") from None


def _attached(path: Path) -> Any:
    conn = duckdb.connect()  # (an in-memory database: the file attached to it)
    try:
        conn.execute(f"ATTACH {sql_path(path)} AS {DATABASE} (ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
        conn.execute(f"USE {DATABASE}")
        conn.execute(f"SET temp_directory = {sql_path(path.with_name(path.name + '.tmp'))}")
    except duckdb.ResourceInUseException:  # open in this process already: shared, as connect does
        conn.close()
        return duckdb.connect(str(path))
    except BaseException:
        conn.close()
        raise
    return conn


def cursor(conn: Any) -> Any:
    """Another connection to the database of `conn` (its own transactions), on the same file: a
    connection's own `.cursor()` starts in DuckDB's default database (the in-memory one the file is
    attached to), so the file's other connections are made here."""
    database = conn.execute("SELECT current_database()").fetchall()[0][0]
    other = conn.cursor()
    other.execute(f"USE {q(database)}")
    return other


STATE_COLUMNS = "(stream VARCHAR, state VARCHAR, updated_at TIMESTAMPTZ)"



def state_columns(conn: Any) -> list[str]:
    """The columns of the state table ([] when there is none); `account` among them: the
    database is a multi-account one."""
    return [r[0] for r in conn.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND schema_name = 'main' "
        "AND database_name = current_database()", [STATE_TABLE]).fetchall()]


def tables(conn: Any) -> list[str]:
    """The tables and views of the database (its own catalog, every schema)."""
    return [r[0] for r in conn.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = current_database() AND NOT internal"
    ).fetchall()]


def check_ours(conn: Any, path: Path, *, looking: bool = False) -> None:
    """Refuse a database of the user's: it holds tables or views but neither mark of a database
    an extract made (`looking`: it holds no mark, even when empty): it is left as it is."""
    found = tables(conn)
    if looking and not MARKS & set(found):
        raise ConfigError(f"--duckdb {path}: not a database sqquid-etl made (no {STATE_TABLE} table); it was left as it is")
    if found and not MARKS & set(found):
        shown = ", ".join(sorted(found)[:5]) + (", ..." if len(found) > 5 else "")
        raise ConfigError(f"--duckdb {path}: a database sqquid-etl did not make (it holds {shown} and no "
                          f"{STATE_TABLE} nor {RUNS_TABLE}); it was left as it is: extract into a new file")


def prepare(conn: Any, path: Path, multi: bool = False, have: dict[str, list[str]] | None = None) -> bool:
    """The state, runs and rejected tables (a database made by an older version gains the run
    columns added since); a StateError when the database's own tables are not usable. `multi`:
    those of a multi-account database (each beginning with an `account` column), when new.
    `have`: the database's tables and their columns, when known: only what is missing is made (an
    extract's database opened again costs no statement). Returns whether anything was made."""
    first = f"{ACCOUNT} VARCHAR, " if multi else ""
    have = {} if have is None else have
    runs = have.get(RUNS_TABLE)
    rejected = ", ".join(f"{q(c)} VARCHAR" for c in REJECTED_COLUMNS)
    statements = [
        *([] if STATE_TABLE in have else [f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} ({first}{STATE_COLUMNS[1:]}"]),
        *([] if runs is not None else [
            f"""CREATE TABLE IF NOT EXISTS {RUNS_TABLE} ({first}
                run_id VARCHAR, stream VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
                status VARCHAR, rows BIGINT, pages BIGINT, requests BIGINT, window_start VARCHAR,
                cursor VARCHAR, count_expected BIGINT, count_received BIGINT, count_check VARCHAR,
                message VARCHAR)"""]),
        *(f"ALTER TABLE {RUNS_TABLE} ADD COLUMN IF NOT EXISTS {q(column)} BIGINT"
          for column in ADDED_RUN_COLUMNS if runs is None or column not in runs),
        *([] if REJECTED_TABLE in have else [f"CREATE TABLE IF NOT EXISTS {REJECTED_TABLE} ({first}{rejected})"]),
    ]
    try:
        for statement in statements:
            conn.execute(statement)
    except duckdb.Error as exc:
        raise StateError(f"{path}: its tables {STATE_TABLE}, {RUNS_TABLE}, {REJECTED_TABLE} are not usable "
                         f"({first_line(exc)})") from None
    return bool(statements)


def first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


STAGED_SUFFIXES = (".parquet", ".arrow")  # the files a DuckDB destination stages (staging.py, staging_arrow.py)


def check_staging(directory: Path) -> None:
    """The directory beside the database where pages are staged (`<db>.staging/<stream>/<table>.parquet`,
    or `.arrow` for a destination bound to an account: `staging_arrow.py`) is removed when the database
    is opened (a crashed run's pages); one of that name holding anything else is the user's: refused,
    left as it is."""
    if not (directory.exists() or directory.is_symlink()):
        return
    ours = directory.is_dir() and not directory.is_symlink() and all(
        stream.is_dir() and not stream.is_symlink() and all(f.is_file() and f.suffix in STAGED_SUFFIXES for f in stream.iterdir())
        for stream in directory.iterdir()
    )
    if not ours:
        raise ConfigError(f"{directory}: holds what sqquid-etl did not stage (it stages the pages of {directory.stem} "
                          "there); it was left as it is: move it away")
