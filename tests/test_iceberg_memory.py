"""What keeps an Iceberg extract's memory bounded (bench/shared_storage.py): stored rows read a data
file at a time, a merge that reads the keys first and whole rows only for the rows it keeps, the
orphan clean-up reading manifests, snapshots expired, and the extract command not loading pandas."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pytest

from sqquid_etl.destinations import iceberg_writer, open_destination
from sqquid_etl.destinations.iceberg_scan import listed_files, scan_reader
from sqquid_etl.settings import Tuning
from sqquid_etl.state import StreamState
from tests.test_destinations import ORDERS, _commit, _order


@pytest.fixture
def destination(tmp_path):
    opened = open_destination(iceberg=str(tmp_path / "w"), tuning=Tuning())
    yield opened
    opened.close()


def _orders(destination) -> dict[int, str]:
    rows = destination.table("orders").scan(selected_fields=("id", "total")).to_arrow().to_pylist()
    return {r["id"]: str(r["total"]) for r in rows}


def test_the_reader_reads_a_data_file_only_when_the_previous_one_is_consumed(destination, monkeypatch):
    from pyiceberg.io.pyarrow import ArrowScan

    for n in range(3):  # three commits: three data files
        _commit(destination, [[_order(n, "2024-01-01T00:00:00Z", items=(10 * n, 10 * n + 1))]], StreamState(), run_id=f"r{n}")
    opened = []
    real = ArrowScan.to_record_batches
    monkeypatch.setattr(ArrowScan, "to_record_batches", lambda self, tasks: (opened.append(len(tasks)), real(self, tasks))[1])
    reader = scan_reader(destination.table("order_items"), None, ["id"])
    first = reader.read_next_batch()
    assert opened == [1] and first.schema.names == ["id"]
    rest = reader.read_all()
    assert opened == [1, 1, 1]
    assert sorted(first.column(0).to_pylist() + rest.column("id").to_pylist()) == [0, 1, 10, 11, 20, 21]


def test_a_merge_by_range_keeps_the_stored_rows_it_reaches_but_does_not_replace(destination, monkeypatch):
    """More keys than IN_LIMIT are reached by their range: the stored rows inside the range that
    the commit does not bring are deleted with the range and appended again, unchanged."""
    monkeypatch.setattr(iceberg_writer, "IN_LIMIT", 1)
    _commit(destination, [[_order(n, "2024-01-01T00:00:00Z", items=(10 * n,)) for n in range(1, 6)]], StreamState())
    _commit(destination, [[_order(2, "2024-01-02T00:00:00Z", items=(20, 21), total="2.00"),
                           _order(4, "2024-01-02T00:00:00Z", items=(40,), total="4.00")]], StreamState(), run_id="r2")
    assert _orders(destination) == {1: "1.0000", 2: "2.0000", 3: "1.0000", 4: "4.0000", 5: "1.0000"}
    items = destination.table("order_items").scan(selected_fields=("id",)).to_arrow().column("id").to_pylist()
    assert sorted(items) == [10, 20, 21, 30, 40, 50]


def test_a_merge_that_replaces_every_row_it_reaches_reads_only_the_keys(destination, monkeypatch):
    """A stream re-read in full: every stored row is replaced; only key columns are read."""
    _commit(destination, [[_order(n, "2024-01-01T00:00:00Z", items=(10 * n,)) for n in range(1, 4)]], StreamState())
    asked = []
    real = iceberg_writer.scan_reader
    monkeypatch.setattr(iceberg_writer, "scan_reader", lambda table, where, columns=None: (asked.append(columns), real(table, where, columns))[1])
    _commit(destination, [[_order(n, "2024-01-02T00:00:00Z", items=(10 * n,), total="9.00") for n in range(1, 4)]], StreamState(), run_id="r2")
    assert asked and all(columns is not None for columns in asked)
    assert _orders(destination) == {1: "9.0000", 2: "9.0000", 3: "9.0000"}


def test_listed_files_are_those_of_every_snapshot(destination):
    for n in range(2):
        _commit(destination, [[_order(n, "2024-01-01T00:00:00Z")]], StreamState(), run_id=f"r{n}")
    table = destination.table("orders")
    assert listed_files(table) == set(table.inspect.all_files().column("file_path").to_pylist())
    assert len(listed_files(table)) >= 2


def test_the_extract_command_refuses_pandas_and_gives_it_back(tmp_path):
    """pyarrow.dataset (pyiceberg imports it) would load pandas; within the command it cannot,
    and pyarrow's pandas conversions still work once the command is done."""
    code = (
        "import sys\n"
        "from sqquid_etl.no_pandas import refuse_pandas\n"
        "allow = refuse_pandas()\n"
        "import pyarrow.dataset, pyiceberg.io.pyarrow\n"
        "assert 'pandas' not in sys.modules\n"
        "try:\n"
        "    import pandas\n"
        "except ModuleNotFoundError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('pandas imported')\n"
        "allow()\n"
        "import pyarrow as pa\n"
        "print(pa.table({'x': [1, 2]}).to_pandas()['x'].sum())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"


def test_refusing_pandas_is_nothing_when_it_is_loaded_already():
    import pandas  # noqa: F401

    from sqquid_etl.no_pandas import refuse_pandas

    before = list(sys.meta_path)
    allow = refuse_pandas()
    assert sys.meta_path == before
    allow()
    assert pa.array([1]).to_pylist() == [1]


def test_snapshots_past_the_retention_are_expired_with_the_files_only_they_reached(destination):
    """Iceberg's retention properties: with a maximum age of 0 every snapshot but the newest goes
    after a commit, and with it the manifest lists, manifests and data files only they reached
    (the tables' and the shared `_sqquid_runs`'); the rows stay; a file no snapshot ever listed
    (another writer's of the shared table, before its commit) is not the expiry's to delete."""
    from sqquid_etl.destinations.iceberg_expire import MAX_SNAPSHOT_AGE_MS, reached_files
    from sqquid_etl.destinations.object_store import ObjectStore

    for n in range(3):
        _commit(destination, [[_order(n, "2024-01-01T00:00:00Z", total=f"{n}.00")]], StreamState(), run_id=f"r{n}")
    assert len(destination.table("orders").snapshots()) > 1  # 5 days by default: nothing expired yet
    stores = {name: ObjectStore(destination.table(name).location(), "--iceberg") for name in ("orders", "_sqquid_runs")}
    for name in stores:
        with destination.table(name).transaction() as tx:
            tx.set_properties({MAX_SNAPSHOT_AGE_MS[0]: "0"})
    stores["_sqquid_runs"].write("data/in-flight.parquet", b"another writer's, not committed yet")
    _commit(destination, [[_order(1, "2024-01-02T00:00:00Z", total="9.00")]], StreamState(), run_id="r3")
    for name, store in stores.items():
        table = destination.table(name)
        assert [s.snapshot_id for s in table.snapshots()] == [table.current_snapshot().snapshot_id]
        kept = {store.where(n) for n in store.list() if not n.endswith(".metadata.json")} - {store.where("data/in-flight.parquet")}
        assert kept == reached_files(table.io, table.snapshots())  # nothing else of the expired snapshots is left
    assert "data/in-flight.parquet" in stores["_sqquid_runs"].list("data")
    assert _orders(destination) == {0: "0.0000", 1: "9.0000", 2: "2.0000"}
    assert destination.table("_sqquid_runs").scan().to_arrow().num_rows == 4


def test_the_retention_keeps_the_newest_snapshots_and_the_protected_ones():
    from types import SimpleNamespace as NS

    from sqquid_etl.destinations.iceberg_expire import expired_snapshots

    snapshots = [NS(snapshot_id=i, timestamp_ms=i * 1000) for i in range(1, 6)]
    metadata = NS(properties={"history.expire.max-snapshot-age-ms": "2500", "history.expire.min-snapshots-to-keep": "2"},
                  refs={"main": NS(snapshot_id=5), "tag": NS(snapshot_id=1)}, snapshots=snapshots)
    assert sorted(expired_snapshots(metadata, now_ms=5000)) == [2]  # older than 2.5 s: 1 (a tag's) and 2
    metadata.properties = {}
    assert expired_snapshots(metadata, now_ms=5000) == []  # Iceberg's default: 5 days
