"""Reconciliation: find records the incremental windows cannot see, by comparing counts.

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

from .client import SqquidClient
from .definitions import StreamDefinition
from .destinations.base import Destination
from .engine import RunOptions, StreamResult, run_stream
from .fetch import count_records
from .state import format_timestamp

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
) -> tuple[list[Gap], list[Surplus]]:
    """Compare the API's count with the destination's for each partition; bisect any shortfall.
    `known_counts` are API counts already asked with the same filter (this run's window, when it
    started at the start date): they save a request each."""
    known_counts = known_counts or {}
    if stream.count is None or stream.cursor is None:
        return [], []
    table = stream.tables[0].name
    column = stream.cursor.field
    gaps, surpluses = [], []
    for partition in stream.partition.values if stream.partition else [None]:
        equals = {stream.partition.param: partition} if stream.partition and partition else {}

        def shortfall(since: datetime | None) -> int:
            if since == start_date and partition in known_counts:
                api = known_counts[partition]
            else:
                api = count_records(stream, client, since, partition)
            local = destination.count_since(table, column, since, equals)
            return api - local

        total = shortfall(start_date)
        requests = 1
        if total < 0:
            surpluses.append(Surplus(partition, -total))
            continue
        if total == 0:
            continue
        low, high = destination.cursor_bounds(table, column, equals)
        if low is None or high is None:
            gaps.append(Gap(partition, start_date or datetime(1970, 1, 1, tzinfo=timezone.utc), total, requests))
            continue
        # invariant: shortfall(lo) == total, shortfall(hi) < total (past every stored and missing record)
        lo = _floor_second(min(low, start_date) if start_date else low) - timedelta(seconds=1)
        hi = _floor_second(max(high, datetime.now(timezone.utc))) + timedelta(seconds=2)
        if shortfall(lo) != total:
            lo = start_date or datetime(1970, 1, 1, tzinfo=timezone.utc)
        requests += 1
        while (hi - lo) > timedelta(seconds=1):
            mid = _floor_second(lo + (hi - lo) / 2)
            if mid <= lo:
                break
            requests += 1
            if shortfall(mid) >= total:
                lo = mid
            else:
                hi = mid
        gaps.append(Gap(partition, lo, total, requests))
        log.warning(
            "stream %s%s: %d record(s) missing behind the cursor, at or after %s (found with %d count requests)",
            stream.name, f" [{partition}]" if partition else "", total, lo.isoformat(), requests,
        )
    return gaps, surpluses


def _floor_second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def reconcile_stream(
    definition: StreamDefinition,
    client: SqquidClient,
    destination: Destination,
    options: RunOptions,
    run_id: str,
    stream_result: StreamResult,
) -> None:
    """After a stream ran: compare the destination with the API's /count, re-fetch any range found
    missing (merged, bookmarks unchanged), and say so in the stream's result."""
    base = format_timestamp(options.start_date) if options.start_date else None
    known = {p: n for p, n in stream_result.api_counts.items() if stream_result.windows.get(p) == base}
    gaps, surpluses = find_gaps(definition, client, destination, options.start_date, known)
    notes = []
    if gaps:
        repair = run_stream(
            definition, client, destination, options, run_id, windows_override={g.partition: g.since for g in gaps}
        )
        stream_result.pages += repair.pages
        stream_result.requests += repair.requests + sum(g.count_requests for g in gaps)
        for table, rows in repair.rows.items():
            stream_result.rows[table] = stream_result.rows.get(table, 0) + rows
        ranges = ", ".join(f"{g.partition + ': ' if g.partition else ''}{g.missing} since {g.since.isoformat()}" for g in gaps)
        notes.append(f"reconciled: re-fetched records missing behind the cursor ({ranges})")
        stream_result.repaired = sum(g.missing for g in gaps)
        remaining, _ = find_gaps(definition, client, destination, options.start_date)
        if remaining:
            notes.append(f"still {sum(g.missing for g in remaining)} missing after the repair")
            stream_result.status = "warning"
    if surpluses:
        notes.append(
            f"destination holds {sum(s.extra for s in surpluses)} more records than the API counts "
            "(deleted upstream?); --full-refresh removes them"
        )
        stream_result.status = "warning"
    if notes:
        message = "; ".join(notes)
        stream_result.message = f"{stream_result.message}; {message}" if stream_result.message else message
        if options.strict and stream_result.status == "warning":
            stream_result.status, stream_result.exit_code = "failed", 1
            stream_result.message += " (--strict)"
