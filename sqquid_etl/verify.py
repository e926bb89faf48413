"""`--verify-keys`: the deep check that sees what counts cannot (one record gone and one late record
come between two count points): every range behind the run's windows listed again and its keys
compared with the stored ones (records gone marked, late ones stored), range by range, each range
committed with the stream's state. The state keeps where the pass got to (`StreamState.verified`),
so a run killed midway continues from the last verified range next time; a complete pass starts
again from the beginning. Requests go through the client's pacer like any others; their number is
said in the stream's result.
"""

from __future__ import annotations

import math
from datetime import datetime

from .engine import StreamRun, run_windows
from .reconcile import ApiCounts
from .relist import from_start, relist_windows, unfinished
from .scan import EPOCH, Changed
from .state import NO_PARTITION, StreamState, format_timestamp, parse_timestamp

SPAN = 5000  # stored records a verified range holds, about (20 pages of 250)


def verify_keys(run: StreamRun, listed: dict, span: int | None = None) -> None:
    """Verify the stream's keys behind its windows (`listed`: partition -> window start), resuming
    where the stored state says; the stream's result says what it did and cost."""
    stream, destination = run.stream, run.destination
    if stream.cursor is None or stream.count is None:
        return
    before, ranges = run.client.stats.requests, 0
    progress = dict((destination.load_state(stream.name) or StreamState()).verified)
    counts = ApiCounts(stream, run.client)
    for partition in stream.partition.values if stream.partition else [None]:
        upto = listed.get(partition)
        key = partition or NO_PARTITION
        begin = parse_timestamp(progress[key], "verified") if key in progress else run.options.start_date or EPOCH
        if upto is None or begin >= upto:
            continue
        for since, until in _ranges(run, partition, begin, upto, span or SPAN):
            progress[key] = format_timestamp(until)
            run.verified = dict(progress)  # stored by the range's commit, never before its data
            _verify_range(run, counts, partition, since, until)
            ranges += 1
    run.verified = None
    state = destination.load_state(stream.name)
    if state is not None and state.verified:  # the pass is complete: the next starts from the beginning
        state.verified = {}
        destination.save_state(stream.name, state)
    run.result.add_message(f"keys verified: {ranges} range(s), {run.client.stats.requests - before} requests")


def _ranges(run: StreamRun, partition: str | None, begin: datetime, upto: datetime, span: int) -> list[tuple]:
    """[begin, upto) in ranges of about `span` stored records each (equal times)."""
    stream, destination = run.stream, run.destination
    equals = {stream.partition.param: partition} if stream.partition and partition else {}
    table, column = stream.tables[0].name, stream.cursor.field  # type: ignore[union-attr]
    if begin == EPOCH:  # no start date: from the oldest stored record of any partition (a record that
        oldest = destination.cursor_bounds(table, column, {})[0]  # moved here may be older than all of this one's)
        begin = oldest.replace(microsecond=0) if oldest is not None else upto
    stored = destination.count_since(table, column, begin, equals) - destination.count_since(table, column, upto, equals)
    parts = max(1, math.ceil(stored / span))
    times = [begin] + [(begin + (upto - begin) * i / parts).replace(microsecond=0) for i in range(1, parts)] + [upto]
    return [(a, b) for a, b in zip(times, times[1:]) if a < b]


def _verify_range(run: StreamRun, counts: ApiCounts, partition: str | None, since: datetime, until: datetime) -> None:
    """One range listed again (by date range, stored ids or order ids: `relist.py`) and committed
    with the progress; late records a listing by key cannot reach, from the range's start."""
    stream, destination = run.stream, run.destination
    equals = {stream.partition.param: partition} if stream.partition and partition else {}
    table, column = stream.tables[0].name, stream.cursor.field  # type: ignore[union-attr]
    stored = destination.count_since(table, column, since, equals) - destination.count_since(table, column, until, equals)
    change = Changed(partition, since, until, counts(partition, since) - counts(partition, until), stored)
    state = destination.load_state(stream.name) or StreamState()
    run_windows(run, relist_windows(stream, destination, [change], every_partition=False), state, replace=False)
    late = unfinished(stream, destination, [change])
    if late:
        run_windows(run, from_start(late), destination.load_state(stream.name) or StreamState(), replace=False)
