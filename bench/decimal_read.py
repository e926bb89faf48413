"""What reading documented decimals as decimals in Arrow's JSON reader would save (issue #15,
docs/benchmarks.md, fourteenth session, decimal14): decoding and conversion of a page of 250
orders, the decimals read as text and cast at conversion (`--read text`, as `sqquid-etl` reads
them) or read as decimal128(18, 4) by the reader (`--read typed`: `plan.READ_TYPES` patched in
this process only; NOT exact, see below), in a loop callgrind can count:

    python bench/decimal_read.py --read text --step decode+convert --pages 300
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=functools_reduce \
        .venv/bin/python bench/decimal_read.py --read typed --step convert --pages 20   # total / 20 a page

Why the typed read is not built: the reader takes a JSON number in a decimal field as silently
as text (the text read refuses it: the page is then learned and its numbers counted as coerced),
and checks a value's digits before scaling it ("100000000000000" passes into decimal128(18, 4));
its own decimal conversion costs most of what the cast costs. The bodies are the sandbox's
(`make_accounts`, as bench/fetch_loop.py makes them); glibc's mmap threshold and Arrow's
allocator as `sqquid-etl` runs with many accounts.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow as pa  # noqa: E402

pa.set_memory_pool(pa.system_memory_pool())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--read", choices=["text", "typed"], default="text")
    ap.add_argument("--step", choices=["decode", "convert", "decode+convert"], default="decode+convert")
    ap.add_argument("--pages", type=int, default=300)
    a = ap.parse_args()
    from sqquid_etl import plan, records

    if a.read == "typed":  # (this process only: what the reader would cost, not an exact reading)
        plan.READ_TYPES["decimal"] = plan.ARROW_TYPES["decimal"]
        records.LENIENT_KINDS = {"integer": int}  # (a clean page: nothing to count from its dicts)
    from sqquid_etl.decode import PageDecoder
    from sqquid_etl.definitions import load_definitions
    from sqquid_etl.heap import large_blocks_mapped
    from sqquid_etl.sandbox import views
    from sqquid_etl.sandbox.accounts import make_accounts

    large_blocks_mapped()
    stores = [acc.store for acc in make_accounts(2, seed=1, orders=40 * 250, products=50, spread=0.0,
                                                 cache_bytes=0, drift=None).values()]
    bodies = [views.v1_list(s, "/v1/orders", {"limit": "250", "page": str(p)}) for s in stores for p in range(1, 11)]
    stream = load_definitions()["orders"]
    decoder = PageDecoder(stream)
    pages = [decoder.decode(body) for body in bodies]  # (the first teaches the plan the others are read with)
    pages = [decoder.decode(body) for body in bodies]
    assert all(page.read_by_arrow for page in pages)

    def step(n: int) -> None:
        if a.step == "decode":
            decoder.decode(bodies[n % len(bodies)])
        elif a.step == "convert":
            records.page_tables(stream, pages[n % len(pages)])
        else:
            records.page_tables(stream, decoder.decode(bodies[n % len(bodies)]))

    step(0)
    cpu = time.thread_time()
    functools.reduce(lambda _, n: step(n), range(a.pages), None)  # (the loop: callgrind's --toggle-collect=functools_reduce)
    cpu = time.thread_time() - cpu
    print(f"command: python bench/decimal_read.py --read {a.read} --step {a.step} --pages {a.pages}")
    print(f"  {1000 * cpu / a.pages:.3f} ms a page ({len(bodies)} bodies of 250 orders)")


if __name__ == "__main__":
    main()
