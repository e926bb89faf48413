"""The DuckDB writer alone: many accounts' first loads committed in parts into one file.

    python bench/first_load_parts.py [--accounts 20] [--orders 40000] [--every 20] [--checkpoint 4MB 16MB 32MB]

The orders pages are read once from a sandbox in its own process (throttling off) and kept as
Arrow; then, for each checkpoint threshold (DuckDB's `checkpoint_threshold`, of write-ahead log),
a new multi-account file is written by one `DuckDBStreamWriter` an account, round-robin a page
each, each account's pages committed as a part every --every pages (`commit_part`, as a first
load at the API's pace: 20 pages = 10 s at 2 requests/s) and the rest by its last commit. Prints
the CPU an order (this process, user+sys) and the most memory DuckDB said it held (sampled after
the parts). Each checkpoint compresses again the last row groups of the tables every account
appends to, so how often it runs sets much of the CPU; the rows committed but not checkpointed
stay in memory (the file's limit: 128 MB).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import API_KEY, sandbox_process  # noqa: E402

from sqquid_etl.definitions import load_definitions  # noqa: E402
from sqquid_etl.destinations import duckdb_tuning, open_destination  # noqa: E402
from sqquid_etl.destinations.duckdb_writer import DuckDBStreamWriter  # noqa: E402
from sqquid_etl.pipeline import extract  # noqa: E402
from sqquid_etl.runs import RunRecord  # noqa: E402
from sqquid_etl.state import StreamState  # noqa: E402


def read_pages(orders: int, work: Path) -> list[dict]:
    """The orders stream's pages as the writer is given them (one extract, its writes kept)."""
    pages, real = [], DuckDBStreamWriter.write
    DuckDBStreamWriter.write = lambda self, tables: (pages.append(dict(tables)), real(self, tables))[1]
    try:
        with sandbox_process(orders=orders, products=50, rate=0) as (url, _):
            result = extract(["orders"], base_url=url, api_key=API_KEY, rate=None, duckdb=work / "read.duckdb")
    finally:
        DuckDBStreamWriter.write = real
    assert result.ok, [s.message for s in result.streams]
    return pages


def write(pages: list[dict], accounts: int, every: int, threshold: str, path: Path) -> tuple[float, float]:
    duckdb_tuning.ACCOUNTS_CHECKPOINT_THRESHOLD = threshold
    stream = load_definitions()["orders"]
    destinations = [open_destination(path, account=f"a{k}") for k in range(accounts)]
    try:
        writers = [d.begin(stream, replace=False) for d in destinations]
        runs = [RunRecord(run_id="r", stream="orders", started_at="2024-01-01T00:00:00+00:00") for _ in writers]
        peak, before = 0.0, resource.getrusage(resource.RUSAGE_SELF)
        for number, page in enumerate(pages, 1):
            for writer, run in zip(writers, runs):
                writer.write(page)
                if number % every == 0:
                    writer.commit_part(StreamState(), run)
            if number % every == 0:
                held = destinations[0].conn.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchall()[0][0]
                peak = max(peak, held / 2**20)
        for writer, run in zip(writers, runs):
            writer.commit(StreamState(), run)
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        for d in destinations:
            d.close()
    check_each_row_once(path, pages, accounts)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, peak


def check_each_row_once(path: Path, pages: list[dict], accounts: int) -> None:
    """Every account's rows of `pages` stored in the DuckDB file at `path`, each once."""
    import duckdb

    with duckdb.connect(str(path), read_only=True) as conn:
        for table in ("orders", "order_items"):
            expected = sum(p[table].num_rows for p in pages) * accounts
            stored, keys = conn.execute(f"SELECT count(*), count(DISTINCT (account, id)) FROM {table}").fetchall()[0]
            assert stored == keys == expected, (table, stored, keys, expected)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=20)
    ap.add_argument("--orders", type=int, default=40_000, help="an account's (the same pages for each)")
    ap.add_argument("--every", type=int, default=20, help="pages a part")
    ap.add_argument("--checkpoint", nargs="+", default=["4MB", "16MB", "32MB"])
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sqquid-parts-"))
    try:
        pages = read_pages(a.orders, work)
        orders = sum(p["orders"].num_rows for p in pages) * a.accounts
        for run, threshold in enumerate(a.checkpoint):
            cpu, peak = write(pages, a.accounts, a.every, threshold, work / f"{run}-{threshold}.duckdb")
            print(f"{a.accounts} accounts x {orders // a.accounts} orders, a part every {a.every} pages, checkpoint every "
                  f"{threshold} of log: CPU {cpu:.2f} s = {cpu / orders * 1e6:.1f} us an order; DuckDB held at most "
                  f"{peak:.0f} MB (sampled after the parts)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
