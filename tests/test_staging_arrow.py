"""A DuckDB destination bound to an account stages its pages in Arrow IPC files
(`destinations/staging_arrow.py`), read back by DuckDB as Arrow streams registered on the writer's
connection (and by the file's group writer on its own); a single-account one, and the Parquet and
Iceberg destinations, stage in Parquet files."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from sqquid_etl import commit_parts
from sqquid_etl.definitions import load_definitions
from sqquid_etl.destinations import open_destination, staging, staging_arrow
from sqquid_etl.destinations.duckdb_writer import DuckDBStreamWriter
from sqquid_etl.pipeline import extract as pipeline_extract
from sqquid_etl.records import page_to_tables
from sqquid_etl.runs import RunRecord
from sqquid_etl.settings import Tuning
from sqquid_etl.state import StreamState
from tests.support import make_client

ORDERS = load_definitions()["orders"]


def _page(*ids: int, total: str = "1.00"):
    return page_to_tables(ORDERS, [{"id": i, "created_at": "2024-01-01T00:00:00Z", "total": total,
                                    "order_items": [{"id": 10 * i, "sku": f"s{i}", "qty": 1}]} for i in ids])


def _run() -> RunRecord:
    return RunRecord(run_id="r1", stream="orders", started_at="2024-01-01T00:00:00+00:00")


@pytest.mark.parametrize("account, suffix", [("acme", ".arrow"), (None, ".parquet")])
def test_a_destination_bound_to_an_account_stages_arrow_files(tmp_path, account, suffix):
    destination = open_destination(tmp_path / "w.duckdb", account=account)
    try:
        writer = destination.begin(ORDERS, replace=False)
        writer.write(_page(1, 2, 3))
        writer.stage.finish()
        files = writer.stage.files("orders")
        assert [f.suffix for f in files] == [suffix]
        if account is not None:  # Arrow's own file format, the account stamped
            with pa.memory_map(str(files[0])) as source:
                staged = ipc.open_stream(source).read_all()
            assert staged.column("account").to_pylist() == ["acme"] * 3 and staged.column("id").to_pylist() == [1, 2, 3]
        writer.commit(StreamState(), _run())
        stored = destination.conn.execute("SELECT id, total::VARCHAR FROM orders ORDER BY id").fetchall()
    finally:
        destination.close()
    assert stored == [(1, "1.0000"), (2, "1.0000"), (3, "1.0000")]


def test_files_of_more_columns_are_read_by_name_and_scanned_as_often_as_asked(tmp_path):
    """A file begun when undocumented columns came has more of them: the table's files are read
    with the columns of all (null where a file has none), and a query may scan them twice."""
    conn = duckdb.connect()
    stage = staging_arrow.ArrowStage(tmp_path / "stage", ORDERS, 1, "account", conn=conn)
    stage.write({"orders": _page(1)["orders"]})
    wider = _page(2, 3)["orders"]
    stage.write({"orders": wider.append_column("x", pa.array(["v2", None], pa.string()))})
    stage.finish()
    assert len(stage.files("orders")) == 2
    staged = stage.relation("orders")
    assert conn.execute(f"SELECT id, x, _sqquid_seq FROM {staged} ORDER BY id").fetchall() == \
        [(1, None, 0), (2, "v2", 1), (3, None, 2)]
    twice = f"SELECT count(*) FROM {staged} a WHERE EXISTS (SELECT 1 FROM {staged} b WHERE b.id = a.id AND b.x IS NULL)"
    assert conn.execute(twice).fetchall() == [(2,)]
    assert conn.execute(f"SELECT count(*) FROM {stage.relation('order_items')}").fetchall() == [(0,)]  # none staged
    stage.discard()
    with pytest.raises(duckdb.CatalogException):  # the names let go
        conn.execute(f"SELECT count(*) FROM {staged}")
    assert not (tmp_path / "stage").exists()


def test_a_staged_file_is_mapped_only_while_its_batches_are_read(tmp_path, monkeypatch):
    """Memory stays bounded by a file, whatever the staged rows: each file is mapped while its
    batches are read, and closed before the next is."""
    monkeypatch.setattr(staging_arrow, "ARROW_FILE_BATCHES", 1)
    stage = staging_arrow.ArrowStage(tmp_path / "stage", ORDERS, 1, "account", conn=duckdb.connect())
    for i in range(1, 4):
        stage.write({"orders": _page(i)["orders"]})
    stage.finish()
    maps, real = [], pa.memory_map

    def recorded(path, *args):
        assert all(m.closed for m in maps), "a file was mapped while another still was"
        maps.append(real(path, *args))
        return maps[-1]

    monkeypatch.setattr(pa, "memory_map", recorded)
    allocated, ids = pa.total_allocated_bytes(), []
    for batch in stage.staged("orders")._batches():
        assert pa.total_allocated_bytes() == allocated  # read where it is mapped: no copy
        ids.append(batch.column("id").to_pylist())
    assert ids == [[1], [2], [3]] and len(maps) == 3 and all(m.closed for m in maps)


def test_an_open_staged_file_holds_no_buffer_between_batches(tmp_path):
    """Each batch is serialized and written at once: a file open between batches (a hundred
    accounts' files are) holds no memory of its own."""
    stage = staging_arrow.ArrowStage(tmp_path / "stage", ORDERS, 1, "account", conn=duckdb.connect())
    first, page = _page(1)["orders"], _page(*range(2, 300))["orders"]
    allocated = pa.total_allocated_bytes() - staging_arrow.SCRATCH.held()
    stage.write({"orders": first})
    stage.write({"orders": page})
    held = pa.total_allocated_bytes() - staging_arrow.SCRATCH.held()  # (the process's buffers to serialize into)
    assert held <= allocated + 4096 and stage._writers  # (the file still open)
    stage.finish()
    assert [b.num_rows for b in stage.staged("orders")._batches()] == [1, 298]


def test_staged_batches_are_serialized_into_buffers_used_again(tmp_path, monkeypatch):
    """Where many accounts run, glibc maps a block of 128 KB or more anew each time (heap.py): a
    staged batch is serialized into a buffer used again, its bytes those `serialize` gives."""
    scratch = staging_arrow.ScratchBuffers()
    monkeypatch.setattr(staging_arrow, "SCRATCH", scratch)
    stage = staging_arrow.ArrowStage(tmp_path / "stage", ORDERS, 200, "account", conn=duckdb.connect())
    pages = [_page(*range(k, k + 100)) for k in range(1, 601, 100)]
    for page in pages:
        stage.write(page)  # 3 batches of 200 orders
    stage.finish()
    assert scratch.made == 1 and scratch.held() > 0
    [path] = stage.files("orders")
    with pa.memory_map(str(path)) as source:
        batches = list(ipc.open_stream(source))
    assert [b.num_rows for b in batches] == [200, 200, 200]
    expected = batches[0].schema.serialize().to_pybytes() + b"".join(b.serialize().to_pybytes() for b in batches)
    assert path.read_bytes() == expected + staging_arrow.SerializedStream.END  # the IPC stream as serialized
    assert [i for b in batches for i in b.column("id").to_pylist()] == list(range(1, 601))


def test_the_buffers_kept_are_few_and_not_large():
    scratch = staging_arrow.ScratchBuffers(kept=2, largest=1 << 16)
    taken = [scratch._take(size) for size in (1000, 2000, 3000, 1 << 17)]
    for buffer in taken:
        scratch._give(buffer)
    assert scratch.made == 4 and len(scratch._free) == 2 and scratch.held() < 2 * 4000  # the largest two kept under it
    assert scratch._take(1500).size >= 1500 and scratch.made == 4  # one kept fits: used again


def test_files_registered_by_a_transaction_rolled_back_are_registered_again(tmp_path, monkeypatch):
    """A name registered on the connection within a transaction is gone with its rollback: the
    commit run again (here after running out of memory) registers the staged files again."""
    destination = open_destination(tmp_path / "w.duckdb", account="acme")
    try:
        writer = destination.begin(ORDERS, replace=False)
        writer.write(_page(1, 2))
        prepare, store, attempts = writer._prepare, writer._store, []

        def unregistered(*args):  # (before the transaction: the files to be registered within it)
            changes = prepare(*args)
            writer.conn.unregister(writer.stage.relation("orders").strip('"'))
            writer.stage.forget()
            return changes

        def registered_then_out_of_memory(*args):
            attempts.append(1)
            if len(attempts) == 1:
                writer.conn.execute(f"SELECT count(*) FROM {writer.stage.relation('orders')}").fetchall()
                raise duckdb.OutOfMemoryException("out of memory (injected)")
            return store(*args)

        monkeypatch.setattr(writer, "_prepare", unregistered)
        monkeypatch.setattr(writer, "_store", registered_then_out_of_memory)
        writer.commit(StreamState(), _run())
        stored = destination.conn.execute("SELECT id FROM orders ORDER BY id").fetchall()
    finally:
        destination.close()
    assert len(attempts) == 2 and stored == [(1,), (2,)]


def test_the_group_writer_inserts_the_arrow_files_of_every_accounts_parts(tmp_path, monkeypatch):
    """Plain parts of several accounts, staged in Arrow files, committed by the group writer in one
    transaction: every account's rows stored once, the files removed."""
    from sqquid_etl.destinations import duckdb_group

    monkeypatch.setattr(duckdb_group, "GROUP_SECONDS", 3600.0)
    path = tmp_path / "w.duckdb"
    names = ("acme", "globex")
    destinations = {n: open_destination(path, account=n, tuning=Tuning(flush_rows=1)) for n in names}
    try:
        writers = {n: d.begin(ORDERS, replace=False) for n, d in destinations.items()}
        runs = {n: _run() for n in names}
        writers["acme"].write(_page(1))
        assert writers["acme"].commit_part(StreamState(), runs["acme"])  # (creates the tables)
        for k, n in enumerate(names):
            writers[n].write(_page(10 * (k + 1), 10 * (k + 1) + 1))
            writers[n].write(_page(10 * (k + 1) + 2))
            assert writers[n].commit_part(StreamState(), runs[n])
        parts = [p for w in writers.values() for p in w._grouped]
        assert len(parts) == 2 and all(f.suffix == ".arrow" for p in parts for f in p.files["orders"][0].paths)
        destinations["acme"].group().settle(parts)
        assert not any(p.directory.exists() for p in parts)
        for n in names:
            writers[n].commit(StreamState(), runs[n])
        stored = destinations["acme"].conn.execute("SELECT account, id FROM orders ORDER BY ALL").fetchall()
        items = destinations["acme"].conn.execute("SELECT count(*) FROM order_items").fetchall()
    finally:
        for d in destinations.values():
            d.close()
    assert stored == [("acme", 1), ("acme", 10), ("acme", 11), ("acme", 12), ("globex", 20), ("globex", 21), ("globex", 22)]
    assert items == [(7,)]


def test_undocumented_fields_staged_as_arrow_in_parts_are_stored_as_by_one_commit(make_sandbox, tmp_path, monkeypatch):
    """Drifting pages (undocumented fields appearing page by page) into a file of many accounts,
    staged in Arrow files and committed a part a page: the same columns and values as one commit
    into a single-account file (staged in Parquet)."""
    sandbox = make_sandbox(orders=900, products=20, drift=True)
    whole, parts = tmp_path / "whole.duckdb", tmp_path / "parts.duckdb"
    assert pipeline_extract(["orders"], duckdb=whole, client=make_client(sandbox)).ok
    monkeypatch.setattr(commit_parts, "COMMIT_SECONDS", 0.0)
    stages = []
    real = DuckDBStreamWriter.commit_part
    monkeypatch.setattr(DuckDBStreamWriter, "commit_part",
                        lambda self, state, run, wait=True: stages.append(type(self.stage)) or real(self, state, run, wait))
    assert pipeline_extract(["orders"], duckdb=parts, client=make_client(sandbox), account="acme").ok
    assert len(stages) >= 3 and set(stages) == {staging_arrow.ArrowStage}
    for table in ("orders", "order_items"):
        read = []
        for path in (whole, parts):
            with duckdb.connect(str(path), read_only=True) as conn:
                columns = conn.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
                                       "AND column_name NOT LIKE '\\_sqquid\\_%' ESCAPE '\\' AND column_name <> 'account' "
                                       "ORDER BY column_name", [table]).fetchall()
                names = ", ".join(f'"{c}"' for c, _ in columns)
                read.append((columns, conn.execute(f"SELECT {names} FROM {table} ORDER BY id").fetchall()))
        assert read[0] == read[1], table
        assert len(read[0][0]) > len(ORDERS.tables[0 if table == "orders" else 1].columns)


def test_rows_are_numbered_in_arrival_order_across_batches_of_any_size():
    from sqquid_etl.destinations.buffer import SEQ, PageBuffer, integer_range

    buffer = PageBuffer(["t"], 3)
    batches = [buffer.add("t", pa.table({"v": list(range(n))})) for n in (2, 2, 1, 40_000)]
    batches.append(buffer.take("t"))
    numbers = [b.column(SEQ).to_pylist() for b in batches if b is not None]
    assert numbers == [[0, 1, 2, 3], list(range(4, 40_005))]
    assert integer_range(7, 3).to_pylist() == [7, 8, 9] and integer_range(3, 0).to_pylist() == []
    assert integer_range(2**40, 70_000).to_pylist()[-1] == 2**40 + 69_999


def test_a_parts_rows_are_numbered_without_a_kernel(monkeypatch):
    """A kernel releases the GIL, which a hundred accounts' threads then take in turn: the numbers
    of a part's rows are a slice of one array of 0, 1, ...; a kernel adds only past SLICED_AT_MOST."""
    from sqquid_etl import arrow_compute
    from sqquid_etl.destinations import buffer

    def refused(*args, **kwargs):
        raise AssertionError("a kernel called")

    monkeypatch.setattr(arrow_compute, "call_function", refused)
    assert buffer.integer_range(5_000, 1_000).to_pylist() == list(range(5_000, 6_000))
    assert buffer.integer_range(buffer.SLICED_AT_MOST - 3, 3).to_pylist()[-1] == buffer.SLICED_AT_MOST - 1
    monkeypatch.undo()
    assert buffer.integer_range(buffer.SLICED_AT_MOST, 2).to_pylist() == [buffer.SLICED_AT_MOST, buffer.SLICED_AT_MOST + 1]


def test_the_account_is_put_first_in_each_batch_as_stamping_each_page_did(tmp_path):
    """Bound to an account, the stage stamps each batch of the stream's tables (once, not once a
    page): the same rows, columns and types as its pages stamped and numbered one by one."""
    from functools import partial

    from sqquid_etl.destinations.account_scope import stamp, stamp_column
    from sqquid_etl.destinations.buffer import SEQ, PageBuffer

    pages = [_page(1, 2)["orders"], _page(3)["orders"], _page(4, 5, 6)["orders"]]
    buffer = PageBuffer(["orders", "t"], 6, {"orders": partial(stamp_column, "acme")})
    assert buffer.add("orders", pages[0]) is None and buffer.add("orders", pages[1]) is None
    batch = buffer.add("orders", pages[2])
    one_by_one = pa.concat_tables([stamp(p, "acme") for p in pages])
    assert batch.equals(one_by_one.append_column(SEQ, pa.array(range(6), pa.int64())), check_metadata=True)
    assert batch.schema.names[0] == "account" and batch.column("account").to_pylist() == ["acme"] * 6
    assert buffer.add("t", pa.table({"v": [1]})) is None and buffer.take("t").schema.names == ["v", "_sqquid_seq"]
    stage = staging_arrow.ArrowStage(tmp_path / "stage", ORDERS, 2, "account", conn=duckdb.connect()).stamp("acme")
    stage.write(_page(7, 8))
    stage.write({"_sqquid_rejected": pa.table({c: pa.array(["x"], pa.string()) for c in staging.REJECTED_SCHEMA.names})})
    stage.finish()
    [orders] = list(stage.staged("orders")._batches())
    assert orders.column("account").to_pylist() == ["acme", "acme"] and orders.column("id").to_pylist() == [7, 8]
    [rejected] = list(stage.staged("_sqquid_rejected")._batches())
    assert "account" not in rejected.schema.names


def test_a_crashed_runs_arrow_files_are_removed_when_the_file_is_next_opened(tmp_path):
    staging_dir = tmp_path / "w.duckdb.staging"
    (staging_dir / "orders@acme.3").mkdir(parents=True)
    (staging_dir / "orders@acme.3" / "orders.1.arrow").write_bytes(b"a crashed run's page")
    (staging_dir / "orders@globex").mkdir()
    (staging_dir / "orders@globex" / "order_items.parquet").write_bytes(b"another")
    open_destination(tmp_path / "w.duckdb", account="acme").close()
    assert not staging_dir.exists()


def test_the_keys_kept_for_a_part_hold_only_the_key_values(tmp_path):
    """A part's key range is counted from the keys of its batches, kept until the part: a copy of
    the values, not the batch's chunks (which would hold its pages' Arrow memory that long)."""
    import array

    stage = staging_arrow.ArrowStage(tmp_path / "stage", ORDERS, 1, "account", conn=duckdb.connect())
    ids = array.array("q", range(1, 200_001))  # a page's ids: a slice of a larger buffer (as a reader's block)
    page = _page(1, 2, 3)["orders"]
    page = page.set_column(page.schema.get_field_index("id"), "id",
                           pa.Array.from_buffers(pa.int64(), len(ids), [None, pa.py_buffer(ids)]).slice(0, 3))
    stage.write({"orders": page})
    kept = stage._key_chunks["orders"]
    assert sum(b.size for chunk in kept for b in chunk.buffers() if b is not None) <= 64
    stage.finish()
    assert stage.key_range("orders") == (True, 1, 3)


def test_a_batch_of_several_pages_is_staged_as_one_arrow_batch(tmp_path):
    """DuckDB reads a batch into vectors of its rows (and appends them a vector at a time): the
    pages of a staged batch are written as one batch of all their rows, not one a page."""
    destination = open_destination(tmp_path / "w.duckdb", account="acme", tuning=Tuning(flush_rows=6))
    try:
        writer = destination.begin(ORDERS, replace=False)
        for first in (1, 4, 7):  # three pages of 3: a batch of 6 rows, then one of 3
            writer.write(_page(first, first + 1, first + 2))
        writer.stage.finish()
        with pa.memory_map(str(writer.stage.files("orders")[0])) as source:
            batches = list(ipc.open_stream(source))
        assert [b.num_rows for b in batches] == [6, 3]
        assert [i for b in batches for i in b.column("id").to_pylist()] == list(range(1, 10))
        writer.commit(StreamState(), _run())
        assert destination.conn.execute("SELECT count(*) FROM orders").fetchall() == [(9,)]
    finally:
        destination.close()


def test_a_table_whose_schema_metadata_differs_from_its_files_is_staged_whole(tmp_path):
    """A batch is serialized after the stream's own schema message (whose size is cut off): a
    table of the same columns with other metadata (a longer schema message) is stored intact."""
    schema = pa.schema([("id", pa.int64()), ("name", pa.string())])
    path = tmp_path / "s.arrow"
    with open(path, "wb") as sink:
        stream = staging_arrow.SerializedStream(sink, schema)
        stream.write_table(pa.table({"id": [1, 2], "name": ["a", "b"]}).replace_schema_metadata({"k": "v" * 100}))
        stream.close()
    with pa.memory_map(str(path)) as source:
        assert ipc.open_stream(source).read_all().to_pydict() == {"id": [1, 2], "name": ["a", "b"]}


@pytest.mark.parametrize("pages, expected, hashed", [
    ([[1, 2, 3], [4, 9]], (True, 1, 9), False),  # increasing (as a listing by id): no hash of the keys
    ([[5]], (True, 5, 5), False),
    ([[3, 1], [2]], (True, 1, 3), True),  # another order: every key hashed
    ([[1, 2], [2, 3]], (False, 1, 3), True),  # a key twice (the second page repeats it)
    ([[4, 4]], (False, 4, 4), True),
])
def test_a_parts_key_range_hashes_its_keys_only_when_they_do_not_rise(tmp_path, monkeypatch, pages, expected, hashed):
    from sqquid_etl import arrow_compute
    from sqquid_etl.destinations import staging

    real, calls = arrow_compute.unique, []
    monkeypatch.setattr(arrow_compute, "unique", lambda values: (calls.append(len(values)), real(values))[1])
    monkeypatch.setattr(staging, "keys_unique", lambda batch, keys: False)  # (a batch's own count: not the part's)
    stage = staging_arrow.ArrowStage(tmp_path / "stage", ORDERS, 1, "account", conn=duckdb.connect())
    for ids in pages:
        stage.write(_page(*ids))
    stage.finish()
    assert stage.key_range("orders") == expected and bool(calls) == hashed


def test_a_part_of_many_batches_is_staged_in_one_file_a_table(tmp_path):
    """An IPC file holds up to `ARROW_FILE_BATCHES` batches (a part of 100 accounts' runs, ~27 pages
    of 250 orders every 10 s, is one file a table): a staged file made and deleted costs the kernel
    far more than its bytes where thousands are a minute."""
    stage = staging_arrow.ArrowStage(tmp_path / "stage", ORDERS, 2, "account", conn=duckdb.connect())
    for k in range(1, 41, 2):
        stage.write(_page(k, k + 1))  # 20 batches of 2 orders, as many of their items
    stage.finish()
    assert staging_arrow.ARROW_FILE_BATCHES >= 20 and staging.FILE_BATCHES < 20
    assert len(stage.files("orders")) == len(stage.files("order_items")) == 1
    assert [i for b in stage.staged("orders")._batches() for i in b.column("id").to_pylist()] == list(range(1, 41))


def test_the_keys_of_a_part_are_counted_only_when_asked(tmp_path, monkeypatch):
    """A stage that keeps a part's keys (`key_range`) does not hash its first batch's keys (and the
    account stamped on them) as it writes it: a run of parts never asks whether they are unique."""
    from sqquid_etl import arrow_compute

    real, calls = arrow_compute.unique, []
    monkeypatch.setattr(arrow_compute, "unique", lambda values: (calls.append(len(values)), real(values))[1])
    stage = staging_arrow.ArrowStage(tmp_path / "stage", ORDERS, 10, "account", conn=duckdb.connect())
    stage.write(_page(3, 1, 2))
    stage.finish()
    assert calls == []
    assert stage.unique("orders") and stage.unique("order_items")
    twice = staging_arrow.ArrowStage(tmp_path / "twice", ORDERS, 10, "account", conn=duckdb.connect())
    twice.write(_page(1, 2, 1))
    twice.finish()
    assert not twice.unique("orders")
