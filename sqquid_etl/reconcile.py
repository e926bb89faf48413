"""Reconciliation: find which windows of a stream must be read again, by comparing counts.

It only answers the question; the pipeline runs the windows it names through the engine.

Find records the incremental windows cannot see, by comparing counts.

Late-arriving records keep their original timestamp, so they land behind the cursor where no
incremental window looks; records inserted ahead of the page being read can shift pagination.
Both show up as the API's `/count` exceeding the destination's own count. The gap is located
by bisecting on the cursor: f(t) = API count(cursor >= t) - destination count(cursor >= t)
falls from the total number missing to 0 past the last missing record's timestamp; the
largest t with f(t) = total is where a re-fetch must start to cover every missing record.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from .client import SqquidClient
from .definitions import StreamDefinition
from .destinations import Destination
from .fetch import count_records

log = logging.getLogger(__name__)


@dataclass
class Gap:
    """Records the API has and the destination lacks, all with cursor >= `since`."""

    partition: str | None
    since: datetime
    missing: int
    count_requests: int


@dataclass
class Surplus:
    """The destination holds more records than the API counts (deleted upstream?)."""

    partition: str | None
    extra: int


def find_gaps(
    stream: StreamDefinition,
    client: SqquidClient,
    destination: Destination,
    start_date: datetime | None,
    known_counts: dict[str | None, int] | None = None,
    quarantined: list[tuple[str | None, datetime | None]] = (),  # type: ignore[assignment]
) -> tuple[list[Gap], list[Surplus]]:
    """Compare the API's count with the destination's for each partition; bisect any shortfall.
    `known_counts` are API counts already asked with the same filter (this run's window, when it
    started at the start date): they save a request each. `quarantined`: (partition, cursor) of
    the records this run received and stored in `_sqquid_rejected`: received, so no gap."""
    if stream.count is None or stream.cursor is None:
        return [], []
    gaps, surpluses = [], []
    for partition in stream.partition.values if stream.partition else [None]:
        mine = [cursor for p, cursor in quarantined if p == partition]
        shortfall = _shortfall(stream, client, destination, partition, start_date,
                               (known_counts or {}).get(partition), mine)
        total = shortfall(start_date)
        if total < 0:
            surpluses.append(Surplus(partition, -total))
        elif total > 0:
            gap = _locate(stream, destination, partition, start_date, shortfall, total)
            gaps.append(gap)
            log.warning(
                "stream %s%s: %d record(s) missing behind the cursor, at or after %s (found with %d count requests)",
                stream.name, f" [{partition}]" if partition else "", total, gap.since.isoformat(), gap.count_requests,
            )
    return gaps, surpluses


def _shortfall(stream: StreamDefinition, client: SqquidClient, destination: Destination, partition: str | None,
               start_date: datetime | None, known: int | None,
               quarantined: list[datetime | None]) -> Callable[[datetime | None], int]:
    """f(t): the API's count of the partition's records with cursor >= t, less those received
    (stored in the destination, or quarantined by this run)."""
    equals = {stream.partition.param: partition} if stream.partition and partition else {}
    table, column = stream.tables[0].name, stream.cursor.field  # type: ignore[union-attr]

    def shortfall(since: datetime | None) -> int:
        api = known if since == start_date and known is not None else count_records(stream, client, since, partition)
        rejected = sum(1 for c in quarantined if since is None or (c is not None and c >= since))
        return api - destination.count_since(table, column, since, equals) - rejected

    return shortfall


def _locate(stream: StreamDefinition, destination: Destination, partition: str | None, start_date: datetime | None,
            shortfall: Callable[[datetime | None], int], total: int) -> Gap:
    """Bisect on the cursor for the largest t with shortfall(t) == total: a re-fetch from t covers
    every missing record."""
    equals = {stream.partition.param: partition} if stream.partition and partition else {}
    low, high = destination.cursor_bounds(stream.tables[0].name, stream.cursor.field, equals)  # type: ignore[union-attr]
    beginning = start_date or datetime(1970, 1, 1, tzinfo=timezone.utc)
    if low is None or high is None:
        return Gap(partition, beginning, total, 1)
    # invariant: shortfall(lo) == total, shortfall(hi) < total (past every stored and missing record)
    lo = _floor_second(min(low, start_date) if start_date else low) - timedelta(seconds=1)
    hi = _floor_second(max(high, datetime.now(timezone.utc))) + timedelta(seconds=2)
    if shortfall(lo) != total:
        lo = beginning
    requests = 2
    while (hi - lo) > timedelta(seconds=1):
        mid = _floor_second(lo + (hi - lo) / 2)
        if mid <= lo:
            break
        requests += 1
        if shortfall(mid) >= total:
            lo = mid
        else:
            hi = mid
    return Gap(partition, lo, total, requests)


def _floor_second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def describe_gaps(gaps: list[Gap]) -> str:
    ranges = ", ".join(f"{g.partition + ': ' if g.partition else ''}{g.missing} since {g.since.isoformat()}" for g in gaps)
    return f"reconciled: re-fetched records missing behind the cursor ({ranges})"


def describe_surpluses(surpluses: list[Surplus]) -> str:
    return (
        f"destination holds {sum(s.extra for s in surpluses)} more records than the API counts "
        "(deleted upstream?); --full-refresh removes them"
    )


def find_changed_windows(stream: StreamDefinition, client: SqquidClient, destination: Destination,
                         start_date: datetime | None, listed: dict, points: int = 8) -> tuple[dict, int]:
    """Where the records behind this run's windows changed in number, partition by partition:
    {partition: where a re-listing must start} and the count requests spent. It catches what the
    cumulative count of `find_gaps` cannot: deletions, records that moved to another partition
    (a shipment item's scope), and changes that offset each other in the total but not at every
    point. `listed`: this run's windows (partition -> start; the range after it was just read).

    f(t) = API count(cursor >= t) - stored count(cursor >= t) is constant (N) from the oldest
    stored record up to the earliest change. f is asked at `points` times evenly spread up to the
    window, then bisected between the last point where f = N and the first where it is not: the
    re-listing starts there. Two changes that offset each other between two neighbouring points
    (one record gone, one late record come) stay unseen: a key-set comparison is what sees those."""
    if stream.count is None or stream.cursor is None:
        return {}, 0
    windows: dict = {}
    requests = 0
    for partition in stream.partition.values if stream.partition else [None]:
        upto = listed.get(partition)
        equals = {stream.partition.param: partition} if stream.partition and partition else {}
        low, _ = destination.cursor_bounds(stream.tables[0].name, stream.cursor.field, equals)
        if upto is None or low is None:
            continue
        low = _floor_second(max(low, start_date) if start_date else low)
        if low >= upto:
            continue
        f = _difference(stream, client, destination, partition, equals)
        since, spent = _first_change(f, low, upto, points)
        requests += spent
        if since is not None:
            windows[partition] = since
    return windows, requests


def _difference(stream: StreamDefinition, client: SqquidClient, destination: Destination, partition: str | None,
                equals: dict) -> Callable[[datetime], int]:
    table, column = stream.tables[0].name, stream.cursor.field  # type: ignore[union-attr]

    def f(since: datetime) -> int:
        return count_records(stream, client, since, partition) - destination.count_since(table, column, since, equals)

    return f


def _first_change(f: Callable[[datetime], int], low: datetime, upto: datetime, points: int) -> tuple[datetime | None, int]:
    """(where a re-listing must start to cover every change f shows, or None; requests spent)."""
    n = f(low)
    requests = 1
    step = (upto - low) / points
    before = low
    for i in range(1, points + 1):
        at = _floor_second(low + step * i) if i < points else upto
        requests += 1
        if f(at) != n:
            while (at - before) > timedelta(seconds=1):  # invariant: f(before) == n != f(at)
                mid = _floor_second(before + (at - before) / 2)
                if mid <= before:
                    break
                requests += 1
                if f(mid) == n:
                    before = mid
                else:
                    at = mid
            return before, requests
        before = at
    return (upto if n else None), requests


def describe_changes(windows: dict, requests: int, deleted: int) -> str:
    ranges = ", ".join(f"{p + ': ' if p else ''}since {w.isoformat()}" for p, w in windows.items() if w is not None)
    return f"re-listed where the records behind the cursor changed in number ({ranges}; {requests} count requests): " \
           f"{deleted} record(s) gone upstream"
