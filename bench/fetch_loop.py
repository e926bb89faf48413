"""The fetch side's steps of a page in one thread, in a loop (no HTTP, no other threads): what a
page's body costs to hold (a new block each time, or a buffer used again: body_buffers.py) and
what decoding costs (Arrow's JSON reader, decode.PageDecoder), and the reader alone: one page a
call, or two pages' bodies in one call.

    python bench/fetch_loop.py --pages 300
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=functools_reduce \
        .venv/bin/python bench/fetch_loop.py --pages 20 --step reader   # instructions: total / 20 a page

glibc's mmap threshold is fixed at 128 KB as the program fixes it for many accounts (heap.py), and
Arrow is on the system allocator as `sqquid-etl` runs it. The bodies are the sandbox's pages of
250 orders (~280 KB). Printed: ms of CPU and page faults a page for each step.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow as pa  # noqa: E402

pa.set_memory_pool(pa.system_memory_pool())


STEPS: set[str] = set()  # --step: only these (all when empty)


def measured(label: str, pages: int, step, name: str = "") -> None:
    if STEPS and name not in STEPS:
        return
    step(0)
    faults, cpu = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.thread_time()
    functools.reduce(lambda _, n: step(n), range(pages), None)  # (the loop: callgrind's --toggle-collect=functools_reduce)
    cpu, faults = time.thread_time() - cpu, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(f"  {label:58s} {1000 * cpu / pages:.3f} ms, {faults / pages:.0f} page faults a page")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=300)
    ap.add_argument("--step", action="append", default=[], choices=["new", "buffers", "decode", "reader", "ignore", "two"],
                    help="run only this step (repeatable)")
    a = ap.parse_args()
    STEPS.update(a.step)
    from sqquid_etl.body_buffers import BodyBuffers
    from sqquid_etl.decode import PageDecoder
    from sqquid_etl.definitions import load_definitions
    from sqquid_etl.heap import large_blocks_mapped
    from sqquid_etl.sandbox import views
    from sqquid_etl.sandbox.accounts import make_accounts

    large_blocks_mapped()
    stores = [acc.store for acc in make_accounts(2, seed=1, orders=40 * 250, products=50, spread=0.0,
                                                 cache_bytes=0, drift=None).values()]
    bodies = [views.v1_list(s, "/v1/orders", {"limit": "250", "page": str(p)}) for s in stores for p in range(1, 11)]
    print(f"command: python bench/fetch_loop.py --pages {a.pages}{''.join(f' --step {s}' for s in a.step)}")
    print(f"{len(bodies)} bodies of 250 orders, {len(bodies[0])} bytes the first")

    def new_block(n: int) -> None:
        body = bodies[n % len(bodies)]
        held = bytearray(len(body))  # (as the socket's data is read into a new body)
        memoryview(held)[:] = body
        del held

    buffers = BodyBuffers()

    def used_again(n: int) -> None:
        body = bodies[n % len(bodies)]
        held = buffers.take(len(body))
        memoryview(held)[:] = body
        buffers.give_back(held, held_by_caller=1)

    measured("a body held in a new block, then freed", a.pages, new_block, "new")
    measured("a body held in a buffer used again (BodyBuffers)", a.pages, used_again, "buffers")
    stream = load_definitions()["orders"]
    decoder = PageDecoder(stream)
    decoder.decode(bodies[0])  # (what the first page teaches: the plan the others are read with)
    measured("decoding (PageDecoder.decode: Arrow's JSON reader)", a.pages, lambda n: decoder.decode(bodies[n % len(bodies)]), "decode")

    # the reader alone, its options built once; and two pages' bodies read by one call (newline-
    # separated envelopes, two rows): what one call's fixed cost is worth (docs/benchmarks.md,
    # thirteenth session, decode13)
    import pyarrow.json as pa_json

    read = pa_json.ReadOptions(use_threads=False, block_size=4 << 20)
    parse = pa_json.ParseOptions(explicit_schema=decoder.plan.json_schema, unexpected_field_behavior="infer")

    def reader(n: int) -> None:
        pa_json.open_json(pa.BufferReader(bodies[n % len(bodies)]), read_options=read, parse_options=parse).read_all()

    ignoring = pa_json.ParseOptions(explicit_schema=decoder.plan.json_schema, unexpected_field_behavior="ignore")

    def reader_ignoring(n: int) -> None:
        pa_json.open_json(pa.BufferReader(bodies[n % len(bodies)]), read_options=read, parse_options=ignoring).read_all()

    def two_in_one(n: int) -> None:
        if n % 2 == 0:
            two = bodies[n % len(bodies)] + b"\n" + bodies[(n + 1) % len(bodies)]
            pa_json.open_json(pa.BufferReader(two), read_options=read, parse_options=parse).read_all()

    measured("the reader alone (open_json(...).read_all(), options once)", a.pages, reader, "reader")
    measured("the same, undocumented fields ignored, not inferred", a.pages, reader_ignoring, "ignore")
    measured("two pages in one reader call (a page's share)", a.pages, two_in_one, "two")


if __name__ == "__main__":
    main()
