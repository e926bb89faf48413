"""Reading a stream: its listings fetched page by page and each page converted to Arrow tables.
The one seam between the engine (and reverse load) and fetching + decoding + conversion."""

from __future__ import annotations

import gc
from contextlib import contextmanager
from datetime import datetime
from typing import Iterator

import pyarrow as pa

from .client import SqquidClient
from .cpu_gate import UNGATED
from .definitions import StreamDefinition
from .fetch import FetchStats, fetch_pages, one_of_many
from .page_body import PageBody, decoded
from .records import page_tables

# one of many accounts decodes its pages in its own thread right before converting them (`page_body.py`);
# True / False: every client / none (to compare: bench/accounts_inside.py BENCH_CONSUMER_DECODES)
CONSUMER_DECODES: bool | None = None


def read_tables(
    stream: StreamDefinition,
    client: SqquidClient,
    windows: dict[str | None, datetime | None],
    key_batches: list[str] | None = None,
    *,
    prefetch: int = 2,
    stats: FetchStats | None = None,
) -> Iterator[tuple[str | None, dict[str, pa.Table]]]:
    """Every page of the stream's windows (partition -> start, None: from the beginning), in
    order, as (partition, one Arrow table per table of the stream). Memory is bounded by the
    pages in flight. The fetch threads decode the pages (`decode`); each is converted here with
    the plan it was read with (`records.page_tables`); one of many accounts' pages are decoded
    here, in the same slot of the CPU as their conversion (`page_body.py`)."""
    gate = getattr(client, "cpu_gate", UNGATED)
    undecoded = one_of_many(client) if CONSUMER_DECODES is None else CONSUMER_DECODES
    for partition, page in fetch_pages(stream, client, windows, key_batches, prefetch, stats=stats, undecoded=undecoded):
        with gate.held(first=True), _collector_paused():
            tables = page_tables(stream, decoded(page), partition)
        if isinstance(page, PageBody):
            page.converted()  # its body used again for another answer (body_buffers.py)
        yield partition, tables


@contextmanager
def _collector_paused() -> Iterator[None]:
    """A page's conversion makes tens of thousands of short-lived objects (the dicts of a page
    that needs them, the values of its columns) and no reference cycle: the cyclic garbage
    collector would only walk them, again and again while they live (a fifth of a drifted page's
    conversion). It is paused meanwhile (a process that turned it off keeps it off)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
