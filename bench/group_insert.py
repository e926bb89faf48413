"""The group writer's INSERT alone (a DuckDB file of many accounts), and what changes its CPU.

    python bench/group_insert.py [--accounts 50] [--pages 20] [--rounds 3] [--variants base mem scan ...]

The orders pages are read once from a sandbox (its own process, throttling off); each of --accounts
accounts stages --pages of them as the writer of a destination bound to an account does
(`staging_arrow.ArrowStage`, batches of 1,000 rows: 100 accounts' own). Then, for each variant and
round, a new file (attached as the destination attaches it: row groups of 32,768 rows, one thread,
64 MB) gets the tables and ONE transaction inserts the staged rows of every account (one INSERT a
table over their files registered as one Arrow stream, as `duckdb_group.py` does) and commits.
Prints the CPU of that (`time.thread_time`: DuckDB runs the INSERT in this thread) in ms a page.

Variants (`VARIANTS`): base; `mem` the same into an in-memory database (no compression, no file);
`scan` only reading the staged rows (a hash of every column); `rg122880` row groups of DuckDB's
default size; `uncompressed` / `nozstd` / `dictfsst` compression forced or disabled; `nometa` the
tables without the `_sqquid_hash` / `_sqquid_deleted_at` columns a first load leaves null;
`pagebatches` the staged batches written a page a batch (as before the twelfth session);
`flush2048` batches of 2,048 rows (DuckDB's vector). Thirteenth session (group13): `ckpt1g`, `walalways`,
`walckpt1g` (the checkpoint and the write-ahead log), `nooptimistic`, `threads2`, `insertorder`, `noflush`,
`flush8mb` (the program's allocator flush), `nobulkflush`, `noflushall`, `wbuf1`/`wbuf2` (row groups buffered),
`mem96`/`mem128`/`mem256` (memory limits), `blockalloc`/`blockalloc96` (DuckDB's block pool, as the program
sets it for a file of many accounts: duckdb_tuning.ACCOUNTS_BLOCK_ALLOCATOR).

`--same-file N`: N transactions a round into one file (as the group writer every 5 s), the INSERTs' and the
COMMIT's CPU apart (and the process's, DuckDB's own threads with it), the page faults of the thread, the write-ahead log after each commit;
BENCH_DUCKDB_MEMORY=1 prints what DuckDB holds after each commit; BENCH_AFTER_COMMIT="SQL;SQL" runs these after
each commit (their CPU counted with the COMMIT's).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")  # as `sqquid-etl` runs
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from first_load_parts import read_pages  # noqa: E402

import duckdb  # noqa: E402

from sqquid_etl.definitions import load_definitions  # noqa: E402
from sqquid_etl.destinations import staging_arrow  # noqa: E402
from sqquid_etl.destinations.account_scope import scoped_definition, stamp_page  # noqa: E402
from sqquid_etl.destinations.staging_arrow import ArrowStage, StagedFiles  # noqa: E402

# variant -> (settings, attach options, in memory, the statement (None: the INSERT), flush rows, meta columns)
VARIANTS = {
    "base": ([], "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "mem": ([], "", True, None, 1000, True),
    "scan": ([], "(ROW_GROUP_SIZE 32768)", False, "SELECT max(hash(COLUMNS(*))) FROM (SELECT {cols} FROM g)", 1000, True),
    "rg122880": ([], "", False, None, 1000, True),
    "uncompressed": (["SET force_compression = 'uncompressed'"], "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "nozstd": (["SET disabled_compression_methods = 'zstd'"], "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "dictfsst": (["SET force_compression = 'dict_fsst'"], "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "nometa": ([], "(ROW_GROUP_SIZE 32768)", False, None, 1000, False),
    "pagebatches": ([], "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "flush2048": ([], "(ROW_GROUP_SIZE 32768)", False, None, 2048, True),
    # the commit (group13): whether a group's transaction checkpoints, and with what
    "ckpt1g": (["SET checkpoint_threshold = '1GB'"], "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "walalways": (["SET auto_checkpoint_skip_wal_threshold = 1000000000000"], "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "walckpt1g": (["SET auto_checkpoint_skip_wal_threshold = 1000000000000", "SET checkpoint_threshold = '1GB'"],
                  "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "nooptimistic": (["SET enable_optimistic_write = false"], "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "threads2": (["SET threads = 2"], "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "insertorder": (["SET preserve_insertion_order = true"], "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "noflush": (["SET allocator_flush_threshold = '1GB'"], "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "flush8mb": (["SET allocator_flush_threshold = '8MB'"], "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "nobulkflush": (["SET allocator_flush_threshold = '8MB'", "SET allocator_bulk_deallocation_flush_threshold = '1TB'"],
                    "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "noflushall": (["SET allocator_flush_threshold = '1TB'", "SET allocator_bulk_deallocation_flush_threshold = '1TB'"],
                   "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "wbuf1": (["SET allocator_flush_threshold = '8MB'", "SET write_buffer_row_group_count = 1"], "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "wbuf2": (["SET allocator_flush_threshold = '8MB'", "SET write_buffer_row_group_count = 2"], "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "mem96": (["SET allocator_flush_threshold = '8MB'", "SET memory_limit = '96MB'"], "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "mem128": (["SET allocator_flush_threshold = '8MB'", "SET memory_limit = '128MB'"], "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "blockalloc": (["SET allocator_flush_threshold = '8MB'", "SET block_allocator_memory = '64MB'"], "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "blockalloc96": (["SET allocator_flush_threshold = '8MB'", "SET block_allocator_memory = '96MB'"], "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "blocknoflush": (["SET allocator_flush_threshold = '1TB'", "SET allocator_bulk_deallocation_flush_threshold = '1TB'",
                      "SET block_allocator_memory = '64MB'"], "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "mem256": (["SET allocator_flush_threshold = '8MB'", "SET memory_limit = '256MB'"], "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    # fourteenth session (group14): the pool with DuckDB's own row groups; without dict-FSST; with a larger limit
    "blockallocrg": (["SET allocator_flush_threshold = '8MB'", "SET block_allocator_memory = '64MB'"], "", False, None, 1000, True),
    "blocknodictfsst": (["SET allocator_flush_threshold = '8MB'", "SET block_allocator_memory = '64MB'",
                         "SET disabled_compression_methods = 'dict_fsst'"], "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
    "blockalloc80": (["SET allocator_flush_threshold = '8MB'", "SET memory_limit = '80MB'", "SET block_allocator_memory = '80MB'"],
                     "(ROW_GROUP_SIZE 32768)", False, None, 1000, True),
}


def page_batches(self, table) -> None:
    """A staged batch written a page a batch (the code before the twelfth session)."""
    for batch in table.to_batches():
        self._sink.write(batch.serialize())


def stage(pages: list, stream, accounts: int, flush: int, work: Path, by_page: bool) -> list[ArrowStage]:
    real = staging_arrow.SerializedStream.write_table
    staging_arrow.SerializedStream.write_table = page_batches if by_page else real
    try:
        stages = []
        for k in range(accounts):
            s = ArrowStage(work / f"stage-{flush}-{by_page}-{k}", stream, flush, "account", conn=None)
            for page in pages:
                s.write(stamp_page(page, f"acct{k}"))
            s.finish()
            stages.append(s)
        return stages
    finally:
        staging_arrow.SerializedStream.write_table = real


def open_file(variant: str, stream, stages: list, path: Path):
    """A connection to a new file of the variant, its tables made (as the destination makes them)."""
    settings, attach, memory, statement, _, meta = VARIANTS[variant]
    conn = duckdb.connect()
    try:
        if not memory:
            conn.execute(f"ATTACH '{path}' AS db {attach}")
            conn.execute("USE db")
        for sql in ["SET preserve_insertion_order = false", "SET threads = 1", "SET memory_limit = '64MB'",
                    "SET checkpoint_threshold = '16MB'", *settings]:
            conn.execute(sql)
        for table in stream.tables:
            cols = ", ".join(f'"{c}"' for c in table.column_names)
            conn.register("one", StagedFiles.joined([stages[0].staged(table.name)]))
            extra = ", NULL::VARCHAR AS _sqquid_hash, NULL::TIMESTAMPTZ AS _sqquid_deleted_at" if meta else ""
            conn.execute(f'CREATE TABLE "{table.name}" AS SELECT {cols}{extra} FROM one LIMIT 0')
            conn.unregister("one")
        return conn
    except BaseException:
        conn.close()
        raise


def transaction(conn, variant: str, stream, stages: list) -> tuple[float, float]:
    """ONE transaction inserting the staged rows of every account: (the INSERTs' CPU, the COMMIT's)."""
    statement = VARIANTS[variant][3]
    started = time.thread_time()
    conn.execute("BEGIN")
    for table in stream.tables:
        cols = ", ".join(f'"{c}"' for c in table.column_names)
        conn.register("g", StagedFiles.joined([s.staged(table.name) for s in stages]))
        conn.execute((statement or 'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM g').format(table=table.name, cols=cols)).fetchall()
        conn.unregister("g")
    inserted = time.thread_time()
    conn.execute("COMMIT")
    return inserted - started, time.thread_time() - inserted


def insert(variant: str, stream, stages: list, path: Path) -> float:
    conn = open_file(variant, stream, stages, path)
    try:
        return sum(transaction(conn, variant, stream, stages))
    finally:
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=50)
    ap.add_argument("--pages", type=int, default=20, help="an account's part")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variants", nargs="+", default=["base", "pagebatches"], choices=sorted(VARIANTS))
    ap.add_argument("--same-file", type=int, default=0, metavar="N",
                    help="N transactions a round into one file (as a run's group writer does every 5 s), "
                         "the INSERTs' CPU and the COMMIT's apart, and the file's write-ahead log after each")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sqquid-group-insert-"))
    try:
        pages = read_pages(a.pages * 250, work)[:a.pages]
        stream = scoped_definition(load_definitions()["orders"])
        count = len(pages) * a.accounts
        print(f"command: python bench/group_insert.py --accounts {a.accounts} --pages {a.pages} --rounds {a.rounds} "
              f"--variants {' '.join(a.variants)}; {count} pages a transaction; load {os.getloadavg()[0]:.1f}")
        staged: dict = {}
        for variant in a.variants:
            flush, by_page = VARIANTS[variant][4], variant == "pagebatches"
            if (flush, by_page) not in staged:
                staged[flush, by_page] = stage(pages, stream, a.accounts, flush, work, by_page)
        if a.same_file:
            same_file(a, stream, staged, work, count)
            return
        results: dict[str, list[float]] = {v: [] for v in a.variants}
        for round_ in range(a.rounds):  # interleaved: each variant sees the same load
            for variant in a.variants:
                path = work / f"{variant}-{round_}.duckdb"
                cpu = insert(variant, stream, staged[VARIANTS[variant][4], variant == "pagebatches"], path)
                results[variant].append(1000 * cpu / count)
                path.unlink(missing_ok=True)
        for variant, values in results.items():
            print(f"{variant:12s}: ms a page, each round: {' '.join(f'{v:.3f}' for v in values)}; least {min(values):.3f}")
        print(f"load {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def same_file(a, stream, staged: dict, work: Path, count: int) -> None:
    """--same-file N: each round, for each variant, a new file and N group transactions into it."""
    results: dict[str, list[tuple[float, float, float]]] = {v: [] for v in a.variants}
    for round_ in range(a.rounds):
        for variant in a.variants:
            path = work / f"{variant}-{round_}.duckdb"
            stages = staged[VARIANTS[variant][4], variant == "pagebatches"]
            conn = open_file(variant, stream, stages, path)
            wal = Path(str(path) + ".wal")
            try:
                inserts = commits = 0.0
                logs = []
                faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
                process = time.process_time()  # (DuckDB's own threads too: `threads2`)
                for _ in range(a.same_file):
                    ins, com = transaction(conn, variant, stream, stages)
                    if os.environ.get("BENCH_AFTER_COMMIT"):  # statements after each commit (';'-separated), counted as its
                        started = time.thread_time()
                        for sql in os.environ["BENCH_AFTER_COMMIT"].split(";"):
                            conn.execute(sql)
                        com += time.thread_time() - started
                    inserts, commits = inserts + ins, commits + com
                    logs.append(wal.stat().st_size // 1024 if wal.exists() else 0)
                    if os.environ.get("BENCH_DUCKDB_MEMORY"):  # what DuckDB holds after each commit, MB by tag
                        print("    DuckDB memory MB:", {t: round(m / 2**20) for t, m in conn.execute(
                            "SELECT tag, memory_usage_bytes FROM duckdb_memory() WHERE memory_usage_bytes > 0").fetchall()})
                faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - faults
                process = time.process_time() - process
            finally:
                conn.close()
            pages = count * a.same_file
            results[variant].append((1000 * inserts / pages, 1000 * commits / pages, path.stat().st_size / 2**20))
            print(f"  {variant} round {round_}: INSERT {1000 * inserts / pages:.3f} + COMMIT {1000 * commits / pages:.3f} "
                  f"ms a page (the process: {1000 * process / pages:.3f}), {faults / pages:.0f} page faults a page; the log after each commit, KB: {logs}; file {path.stat().st_size / 2**20:.0f} MB")
            path.unlink(missing_ok=True)
            wal.unlink(missing_ok=True)
    for variant, values in results.items():
        best = min(values, key=lambda v: v[0] + v[1])
        print(f"{variant:12s}: INSERT + COMMIT ms a page, each round: "
              f"{' '.join(f'{i:.3f}+{c:.3f}' for i, c, _ in values)}; least {best[0] + best[1]:.3f}; file {best[2]:.0f} MB")
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
