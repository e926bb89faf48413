"""Where an extract into DuckDB spends its time: page -> Arrow, staging writes, merge, commit.

    /tmp/benchvenv/bin/python bench/phases.py --orders 200000 --products 100000

Runs `extract(["orders", "products"])` in this process against a sandbox in its own process
(throttling off), with the writer's functions, the decoder's and the conversion wrapped in
timers (wall seconds spent inside each; decoding runs in the fetch threads, conversion in the
consumer, and both compete for the GIL).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import API_KEY, sandbox_process  # noqa: E402

import sqquid_etl.decode as decode  # noqa: E402
import sqquid_etl.destinations.duckdb as duckdb_destination  # noqa: E402
import sqquid_etl.read as read  # noqa: E402
from sqquid_etl.pipeline import extract  # noqa: E402

SPENT: dict[str, float] = {}


def timed(name, function):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            SPENT[name] = SPENT.get(name, 0.0) + time.perf_counter() - start
    return wrapper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=200_000)
    ap.add_argument("--products", type=int, default=100_000)
    a = ap.parse_args()
    writer = duckdb_destination.DuckDBStreamWriter
    writer.write = timed("staging writes", writer.write)
    writer._merge = timed("merge", writer._merge)
    writer.commit = timed("commit (incl. merge)", writer.commit)
    decode.PageDecoder.decode = timed("body -> page (threads)", decode.PageDecoder.decode)
    read.page_tables = timed("page -> Arrow tables", read.page_tables)
    with sandbox_process(orders=a.orders, products=a.products, rate=0) as (url, _):
        with tempfile.TemporaryDirectory() as tmp:
            before = resource.getrusage(resource.RUSAGE_SELF)
            start = time.perf_counter()
            result = extract(["orders", "products"], base_url=url, api_key=API_KEY, rate=None, duckdb=Path(tmp) / "p.duckdb")
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_SELF)
    assert result.ok, [s.message for s in result.streams]
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    print(f"{a.orders} orders + {a.products} products -> DuckDB: wall {wall:.2f} s, process CPU {cpu:.2f} s")
    for name, seconds in SPENT.items():
        print(f"  {name:<22} {seconds:6.2f} s")


if __name__ == "__main__":
    main()
