"""How the DuckDB destination opens its file (duckdb_own.connect, issue #11: a first load's CPU)."""

from __future__ import annotations

import duckdb

from sqquid_etl.destinations.duckdb_own import ROW_GROUP_ROWS, connect, cursor


def test_a_writable_file_is_attached_with_smaller_row_groups_and_spills_beside_itself(tmp_path):
    path = tmp_path / "rows.duckdb"
    conn = connect(path)
    assert conn.execute("SELECT current_setting('temp_directory')").fetchall() == [(str(path) + ".tmp",)]
    conn.execute("BEGIN TRANSACTION")
    conn.execute(f"CREATE TABLE t AS SELECT range AS id, 'x' || range AS name FROM range({2 * ROW_GROUP_ROWS + 5})")
    conn.execute("COMMIT")
    other = cursor(conn)  # another connection of the same database sees the file's tables
    assert other.execute("SELECT count(*) FROM t").fetchall() == [(2 * ROW_GROUP_ROWS + 5,)]
    other.close()
    conn.close()
    assert not path.with_name(path.name + ".wal").exists()  # checkpointed when closed
    with duckdb.connect(str(path), read_only=True) as plain:  # any DuckDB opens it as it is
        assert plain.execute("SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('t')").fetchall() == [(3,)]
        assert plain.execute("SELECT max(id) FROM t").fetchall() == [(2 * ROW_GROUP_ROWS + 4,)]


def test_a_file_open_in_the_process_is_shared(tmp_path):
    """A caller's `duckdb.connect(path)` still open: the destination's connection is one of its
    database (as DuckDB's connect gives), not a second open of the file."""
    path = tmp_path / "held.duckdb"
    held = duckdb.connect(str(path))
    held.execute("CREATE TABLE kept AS SELECT 1 AS x")
    conn = connect(path)
    assert conn.execute("SELECT x FROM kept").fetchall() == [(1,)]
    conn.execute("CREATE TABLE made AS SELECT 2 AS y")
    conn.close()
    assert held.execute("SELECT y FROM made").fetchall() == [(2,)]
    held.close()
