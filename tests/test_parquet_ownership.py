"""A Parquet destination writes only into a directory it made (marked by `.sqquid/`): a user's
own files, in a directory it did not make or under a table's name in one it did, are refused with
a clear error and left untouched."""

from __future__ import annotations

import pytest

from sqquid_etl import extract
from sqquid_etl.destinations import open_destination
from sqquid_etl.errors import ConfigError, StateError
from sqquid_etl.settings import Tuning
from tests.support import make_client


def test_a_directory_not_made_by_sqquid_etl_is_refused_untouched(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not made by sqquid-etl"):
        open_destination(parquet=mine, tuning=Tuning())
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    (tmp_path / "empty").mkdir()
    open_destination(parquet=tmp_path / "empty", tuning=Tuning()).close()  # an empty one is fine


@pytest.mark.parametrize("what", ["file", "directory", "foreign symlink"])
def test_a_users_own_entry_named_like_a_table_is_refused_on_a_full_refresh(sandbox, tmp_path, what):
    lake = tmp_path / "lake"
    client = make_client(sandbox)
    assert extract(["locations"], parquet=lake, client=client).ok
    user = lake / "buffers"
    if what == "file":
        user.write_text("the user's own")
    elif what == "directory":
        user.mkdir()
        (user / "data.csv").write_text("a,b\n")
    else:
        (tmp_path / "elsewhere").mkdir()
        user.symlink_to(tmp_path / "elsewhere")
    before = sorted(str(p.relative_to(lake)) for p in lake.rglob("*") if ".sqquid" not in p.parts)
    result = extract(["buffers"], parquet=lake, full_refresh=["buffers"], client=client)
    assert not result.ok
    assert "not managed by sqquid-etl" in result.stream("buffers").message
    after = sorted(str(p.relative_to(lake)) for p in lake.rglob("*") if ".sqquid" not in p.parts)
    assert [a for a in after if not a.startswith("_sqquid_runs")] == [b for b in before if not b.startswith("_sqquid_runs")]
    assert not list(lake.glob(".*.tmp"))
    if what == "file":
        assert user.read_text() == "the user's own"
    assert extract(["locations"], parquet=lake, client=client).ok  # the other streams go on


def test_a_state_error_names_the_entry(tmp_path):
    lake = tmp_path / "lake"
    open_destination(parquet=lake, tuning=Tuning()).close()
    (lake / "orders").write_text("x")
    destination = open_destination(parquet=lake, tuning=Tuning())
    try:
        with pytest.raises(StateError, match="orders exists but is not managed"):
            destination.count_since("orders", "created_at", None, {})
    finally:
        destination.close()
