"""The fetch side's steps of a page in one thread, in a loop (no HTTP, no other threads): what a
page's body costs to hold (a new block each time, or a buffer used again: body_buffers.py) and
what decoding costs (Arrow's JSON reader, decode.PageDecoder).

    python bench/fetch_loop.py --pages 300

glibc's mmap threshold is fixed at 128 KB as the program fixes it for many accounts (heap.py), and
Arrow is on the system allocator as `sqquid-etl` runs it. The bodies are the sandbox's pages of
250 orders (~280 KB). Printed: ms of CPU and page faults a page for each step.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow as pa  # noqa: E402

pa.set_memory_pool(pa.system_memory_pool())


def measured(label: str, pages: int, step) -> None:
    step(0)
    faults, cpu = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.thread_time()
    for n in range(pages):
        step(n)
    cpu, faults = time.thread_time() - cpu, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(f"  {label:58s} {1000 * cpu / pages:.3f} ms, {faults / pages:.0f} page faults a page")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=300)
    a = ap.parse_args()
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
    print(f"command: python bench/fetch_loop.py --pages {a.pages}")
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

    measured("a body held in a new block, then freed", a.pages, new_block)
    measured("a body held in a buffer used again (BodyBuffers)", a.pages, used_again)
    stream = load_definitions()["orders"]
    decoder = PageDecoder(stream)
    measured("decoding (PageDecoder.decode: Arrow's JSON reader)", a.pages, lambda n: decoder.decode(bodies[n % len(bodies)]))


if __name__ == "__main__":
    main()
