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
`flush2048` batches of 2,048 rows (DuckDB's vector).
"""

from __future__ import annotations

import argparse
import os
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


def insert(variant: str, stream, stages: list, path: Path) -> float:
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
        started = time.thread_time()
        conn.execute("BEGIN")
        for table in stream.tables:
            cols = ", ".join(f'"{c}"' for c in table.column_names)
            conn.register("g", StagedFiles.joined([s.staged(table.name) for s in stages]))
            conn.execute((statement or 'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM g').format(table=table.name, cols=cols)).fetchall()
            conn.unregister("g")
        conn.execute("COMMIT")
        return time.thread_time() - started
    finally:
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=50)
    ap.add_argument("--pages", type=int, default=20, help="an account's part")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variants", nargs="+", default=["base", "pagebatches"], choices=sorted(VARIANTS))
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


if __name__ == "__main__":
    main()
