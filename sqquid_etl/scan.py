"""The count scan: where, behind a run's windows, the records of a stream changed in number
(deleted upstream, moved to another partition such as a shipment item's scope, or late), as
small ranges that can be listed again on their own (`relist.py`). It only answers; the pipeline
runs the listings.

f(t) = the API's count of a partition's records with cursor >= t, less the destination's. Between
two times where f is the same, the records are (as far as counts can tell) the same; between two
where it differs, something changed. f is known at the start date (reconciliation asked it) and
at the window's start (the run's count check asked it): the scan asks it at `points - 1` times in
between, evenly spread from the oldest stored record, and splits each interval where f differs in
halves until a range holds no more records than one page (or one second): the ranges returned.
Two changes that offset each other between two neighbouring times (one record gone, one late
record come) stay unseen: `--verify-keys` compares the keys themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from .definitions import StreamDefinition
from .destinations import Destination
from .reconcile import ApiCounts

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)  # the lower end of a scan without a start date
SPAN = 64  # pages of records behind the window a point of a partition's first scan stands for (`_sized`)


@dataclass(frozen=True)
class Changed:
    """A range [since, until) of a partition whose records changed in number: the API counts `api`
    records in it, the destination holds `stored` (live ones)."""

    partition: str | None
    since: datetime
    until: datetime
    api: int
    stored: int


class Point:
    """f's two terms at t: (the API's count, the destination's live count) of a partition's
    records with cursor >= t. The stored counts of many times are read at once (`many`: one scan
    of the table, not one a time); the API's are asked once a run (`ApiCounts`)."""

    def __init__(self, stream: StreamDefinition, counts: ApiCounts, destination: Destination, partition: str | None,
                 equals: dict, start_date: datetime | None):
        self.counts, self.destination, self.partition, self.equals = counts, destination, partition, equals
        self.table, self.column = stream.tables[0].name, stream.cursor.field  # type: ignore[union-attr]
        self.start_date = start_date

    def since(self, t: datetime) -> datetime | None:
        return None if t == EPOCH and self.start_date is None else t  # the count reconciliation asked

    def api(self, t: datetime) -> int:
        return self.counts(self.partition, self.since(t))

    def many(self, times: list[datetime]) -> list[tuple[int, int]]:
        since = [self.since(t) for t in times]
        stored = self.destination.counts_since(self.table, self.column, since, self.equals)
        return [(self.counts(self.partition, s), n) for s, n in zip(since, stored)]

    def __call__(self, t: datetime) -> tuple[int, int]:
        return self.many([t])[0]


def find_changed_ranges(stream: StreamDefinition, counts: ApiCounts, destination: Destination,
                        start_date: datetime | None, listed: dict, points: int = 8, fine: bool = False) -> list[Changed]:
    """The ranges behind this run's windows (`listed`: partition -> where its window started)
    whose records changed in number, partition by partition, in time order. Each partition is
    first scanned at the points its size calls for (`_sized`); where any partition's counts part,
    every partition is scanned at `points` (a scope move leaves one partition for another; their
    counts can offset within a coarse interval of one and not of the other). `fine`: at `points`
    from the start (a later pass of the run: those counts were asked already)."""
    if stream.count is None or stream.cursor is None:
        return []
    table, column = stream.tables[0].name, stream.cursor.field
    by = stream.partition.param if stream.partition else None
    values = [p for p in (stream.partition.values if stream.partition else [None]) if listed.get(p) is not None]
    spans = []  # (partition, its counts at t, its oldest stored record, its window's start)
    for partition, (low, _) in zip(values, destination.cursor_bounds_each(table, column, by, values) if values else []):
        upto = listed[partition]
        if low is None:
            continue
        low = _floor_second(max(low, start_date) if start_date else low)
        if low < upto:
            equals = {by: partition} if by else {}
            spans.append((partition, Point(stream, counts, destination, partition, equals, start_date), low, upto))
    first = start_date or EPOCH
    scans = _scan(destination, by, spans, first,
                  [points if fine else _sized(at.api(first) - at.api(upto), points, stream.paginator.limit) for _, at, _, upto in spans])
    if not fine and any(len({api - stored for api, stored in values}) > 1 for _, values in scans):
        scans = _scan(destination, by, spans, first, [points] * len(spans))
    out: list[Changed] = []
    for (partition, at, _, _), (times, values) in zip(spans, scans):
        hints = sorted({t for c in out for t in (c.since, c.until)})  # another partition's ranges: a move's other end
        for x, y, fx, fy in zip(times, times[1:], values, values[1:]):
            _split(at, partition, x, y, fx, fy, stream.paginator.limit, out, hints)
    return out


def _sized(behind: int, points: int, page: int) -> int:
    """The points of a partition's first scan: 1, 2, 4 ... `points`, one for every `SPAN` pages
    the API holds behind the window (1: its start only, whose count is asked anyway). A point
    costs a request and only narrows where a change is (bisection finds it from any interval), so
    a quiet scan costs at most a count for every 64 pages of records; a power of two, so that its
    points are among those of the full scan."""
    n = 1
    while n < points and n * SPAN * page < behind:
        n *= 2
    return min(n, points)


def _scan(destination: Destination, by: str | None, spans: list, first: datetime, sizes: list[int]
          ) -> list[tuple[list[datetime], list[tuple[int, int]]]]:
    """The times of each partition's scan at its number of points in `sizes` (its start, then
    evenly from its oldest stored record to its window's start) and the counts at each (the stored
    ones of every partition in one query)."""
    times, since = [], {}
    for (partition, at, low, upto), n in zip(spans, sizes):
        at_n = [first] + [_floor_second(low + (upto - low) * i / n) for i in range(1, n)]
        times.append(sorted(set(t for t in at_n if t < upto)) + [upto])
        since[partition] = [at.since(t) for t in times[-1]]
    if not spans:
        return []
    stored = destination.counts_since_each(spans[0][1].table, spans[0][1].column, by, since)
    return [(ts, [(at.counts(partition, s), n) for s, n in zip(since[partition], stored[partition])])
            for (partition, at, _, _), ts in zip(spans, times)]


def _split(at: Point, partition: str | None, x: datetime, y: datetime, fx: tuple[int, int], fy: tuple[int, int],
           limit: int, out: list[Changed], hints: list[datetime]) -> None:
    """The ranges within [x, y) where f changes, each holding at most `limit` records (or one
    second wide), into `out`. fx, fy: (API, stored) counts at x and y. The interval is split at a
    bound of a range found in another partition when one falls inside (an item that moved scope
    left one and came into another at the same time), else in the middle."""
    if fx[0] - fx[1] == fy[0] - fy[1]:
        return
    api, stored = fx[0] - fy[0], fx[1] - fy[1]
    mid = next((h for h in hints if x < h < y), None) or _floor_second(x + (y - x) / 2)
    if _whole(max(api, stored), abs((fx[0] - fx[1]) - (fy[0] - fy[1])), limit) or mid <= x:
        out.append(Changed(partition, x, y, api, stored))
        return
    fm = at(mid)
    _split(at, partition, x, mid, fx, fm, limit, out, hints)
    _split(at, partition, mid, y, fm, fy, limit, out, hints)


def _whole(records: int, changes: int, limit: int) -> bool:
    """Whether listing a range of `records` again as it is costs no more than bisecting it further
    (about one count a halving for each of at least `changes` changes, then a page each): a range
    of one page always; a dense one (many changes) at once, which also sees changes that offset."""
    pages = -(-records // limit)
    halvings = max(0, (records - 1).bit_length() - (limit - 1).bit_length())
    return pages <= 1 or pages <= max(1, changes) * (halvings + 1)


def _floor_second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def describe_changes(changed: list[Changed], requests: int, deleted: int) -> str:
    where = ", ".join(f"{c.partition + ' ' if c.partition else ''}{c.since.isoformat()}..{c.until.isoformat()}"
                      for c in changed[:5])
    more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
    return (f"reconciled: re-listed {len(changed)} range(s) behind the cursor where the records changed in number "
            f"({where}{more}; {requests} count requests): {deleted} record(s) gone upstream")

