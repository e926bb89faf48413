"""Reconciliation: find which windows of a stream must be read again, by comparing counts.

It only answers the question; the pipeline runs the windows it names through the engine. Where
behind the windows the records changed in number (deletions, scope moves) is the count scan's
question (`scan.py`).

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


class ApiCounts:
    """The API's /count of a partition's records with cursor >= since, each asked once a run: the
    API's counts do not change with what the run stores, so reconciliation, the count scan and the
    check after a repair share them (`known`: the counts of this run's windows)."""

    def __init__(self, stream: StreamDefinition, client: SqquidClient, known: dict | None = None):
        self.stream, self.client = stream, client
        self.known: dict = dict(known or {})  # (partition, since) -> count
        self.requests = 0

    def __call__(self, partition: str | None, since: datetime | None) -> int:
        if (partition, since) not in self.known:
            self.known[(partition, since)] = count_records(self.stream, self.client, since, partition)
            self.requests += 1
        return self.known[(partition, since)]


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
    counts: ApiCounts,
    destination: Destination,
    start_date: datetime | None,
    quarantined: list[tuple[str | None, datetime | None]] = (),  # type: ignore[assignment]
) -> tuple[list[Gap], list[Surplus]]:
    """Compare the API's count with the destination's for each partition; bisect any shortfall.
    `counts`: the API's, each asked once a run. `quarantined`: (partition, cursor) of the records
    this run received and stored in `_sqquid_rejected`: received, so no gap."""
    if stream.count is None or stream.cursor is None:
        return [], []
    gaps, surpluses = [], []
    by = stream.partition.param if stream.partition else None
    partitions = list(stream.partition.values) if stream.partition else [None]
    stored = destination.counts_since_each(stream.tables[0].name, stream.cursor.field, by,  # every partition's at once
                                           {p: [start_date] for p in partitions})
    for partition in partitions:
        mine = [cursor for p, cursor in quarantined if p == partition]
        shortfall = _shortfall(stream, counts, destination, partition, mine)
        total = shortfall(start_date, stored[partition][0])
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


def _shortfall(stream: StreamDefinition, counts: ApiCounts, destination: Destination, partition: str | None,
               quarantined: list[datetime | None]) -> Callable[[datetime | None], int]:
    """f(t): the API's count of the partition's records with cursor >= t, less those received
    (stored in the destination, or quarantined by this run)."""
    equals = {stream.partition.param: partition} if stream.partition and partition else {}
    table, column = stream.tables[0].name, stream.cursor.field  # type: ignore[union-attr]

    def shortfall(since: datetime | None, stored: int | None = None) -> int:  # stored: the destination's count, if read
        api = counts(partition, since)
        rejected = sum(1 for c in quarantined if since is None or (c is not None and c >= since))
        return api - (destination.count_since(table, column, since, equals) if stored is None else stored) - rejected

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
