"""The ranges a run proved gone, as SQL (`duckdb_freshness.within_ranges`): the rows within any of
them are exactly those a plain reading of each range finds, for ranges of every shape (time
bounds, equal columns, key lists), neighbours and overlaps, and thousands of them at once."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from sqquid_etl.destinations.duckdb_freshness import Gone, within_ranges

BASE = datetime(2025, 1, 1, tzinfo=timezone.utc)
ROWS = [(i, BASE + timedelta(hours=i % 50), ("toship", "shipped")[i % 2]) for i in range(200)]


def _table() -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    rows = pa.table({"id": [r[0] for r in ROWS], "created_at": [r[1] for r in ROWS], "scope": [r[2] for r in ROWS]})
    conn.execute("CREATE TABLE t AS SELECT * FROM rows")
    return conn


CONN = _table()


def _within(gone: Gone, row: tuple) -> bool:
    """A range read plainly (Gone's docstring)."""
    key, at, scope = row
    if gone.since is not None and at < gone.since:
        return False
    if gone.until is not None and at >= gone.until:
        return False
    if any({"scope": scope}[name] != value for name, value in gone.equals.items()):
        return False
    return gone.key is None or key in set(gone.key[1])


hours = st.integers(0, 55).map(lambda h: BASE + timedelta(hours=h))
ranges = st.builds(
    lambda since, length, equals, keys: Gone(
        "created_at", since, equals, None if length is None or since is None else since + timedelta(hours=length),
        None if keys is None else ("id", keys)),
    st.one_of(st.none(), hours), st.one_of(st.none(), st.integers(0, 20)),
    st.sampled_from([{}, {"scope": "toship"}, {"scope": "shipped"}, {"scope": "lost"}]),
    st.one_of(st.none(), st.lists(st.integers(-5, 210), max_size=12)))


@settings(max_examples=150, derandomize=True, database=None, deadline=None)
@given(st.lists(ranges, max_size=8))
def test_the_rows_within_the_ranges_are_those_each_range_finds(proven):
    conn = CONN
    with within_ranges(conn, proven, "t") as within:
        found = {r[0] for r in conn.execute(f"SELECT id FROM t WHERE {within}").fetchall()}
    assert found == {row[0] for row in ROWS if any(_within(g, row) for g in proven)}
    assert not [t for t in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()
                if t[0].startswith("_sqquid_ranges")]  # made for the block only


def test_thousands_of_ranges_in_one_statement():
    conn = _table()
    rng = random.Random(7)
    proven = [Gone("created_at", BASE + timedelta(minutes=m), {}, BASE + timedelta(minutes=m + 30))
              for m in (rng.randrange(3000) for _ in range(1500))]
    proven += [Gone("created_at", None, {}, key=("id", [rng.randrange(400) for _ in range(250)])) for _ in range(300)]
    with within_ranges(conn, proven, "t") as within:
        found = {r[0] for r in conn.execute(f"SELECT id FROM t WHERE {within}").fetchall()}
    assert found == {row[0] for row in ROWS if any(_within(g, row) for g in proven)}
