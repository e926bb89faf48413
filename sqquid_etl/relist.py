"""Listing again the ranges the count scan isolated (`scan.Changed`), in the cheapest way the
stream's definition allows, so that a change behind the cursor costs a few requests, not a
re-listing from it to now:

- a cursor with an upper bound (`max_param`: shipment items' `created_at_max`): the range itself,
  one window per run of adjacent ranges, checked by its /count;
- a `relist` key (orders by `ids`, shipments by `order_ids`): the values of the stored records of
  the range, in batches of `relist.batch`; a record of a batch that does not come back is gone;
- neither: from the start of the earliest range to now (what a window does).

A range's late records (the API holds records of it that the destination never had) cannot be
listed by key: `unfinished` tells which ranges still differ after their listing, to be listed
from their start to now.
"""

from __future__ import annotations

from datetime import timedelta

from .definitions import StreamDefinition
from .destinations import Destination
from .listing import Window
from .scan import Changed

MARGIN = timedelta(seconds=1)  # listed before a range's start: whether `created_at_min` includes it is not said


def relist_windows(stream: StreamDefinition, destination: Destination, changed: list[Changed],
                   every_partition: bool = True) -> list[Window]:
    """The windows that list every changed range again (`every_partition`: in each partition too)."""
    merged = _merge(changed)
    if stream.partition and every_partition:  # a range in every partition: a record that moved left one and came into another
        merged = _merge([Changed(p, c.since, c.until, c.api, c.stored) for c in merged for p in stream.partition.values])
    cursor = stream.cursor
    if cursor is not None and cursor.max_param:
        return [Window(c.partition, c.since - MARGIN, c.until) for c in merged]
    if stream.relist is not None and hasattr(destination, "values_between"):
        return _key_windows(stream, destination, merged)
    return from_start(merged)


def from_start(changed: list[Changed]) -> list[Window]:
    """One window a partition, from the start of its earliest range to now."""
    earliest: dict = {}
    for c in changed:
        earliest[c.partition] = min(earliest.get(c.partition, c.since), c.since)
    return [Window(partition, since - MARGIN) for partition, since in earliest.items()]


def _key_windows(stream: StreamDefinition, destination: Destination, changed: list[Changed]) -> list[Window]:
    spec, table, column = stream.relist, stream.tables[0].name, stream.cursor.field  # type: ignore[union-attr]
    values: dict = {}  # partition -> the stored values of its ranges, in order, once each
    for c in changed:
        equals = {stream.partition.param: c.partition} if stream.partition and c.partition else {}
        found = destination.values_between(table, spec.field, column, c.since, c.until, equals)  # type: ignore[attr-defined,union-attr]
        values.setdefault(c.partition, {}).update(dict.fromkeys(found))
    windows = []
    for partition, keys in values.items():
        keys = list(keys)
        windows += [Window(partition, keys=tuple(keys[i:i + spec.batch])) for i in range(0, len(keys), spec.batch)]  # type: ignore[union-attr]
    return windows


def unfinished(stream: StreamDefinition, destination: Destination, changed: list[Changed]) -> list[Changed]:
    """The ranges whose live stored records still differ in number from the API's count of them
    (late records a listing by key cannot reach)."""
    table, column = stream.tables[0].name, stream.cursor.field  # type: ignore[union-attr]
    out = []
    for c in changed:
        equals = {stream.partition.param: c.partition} if stream.partition and c.partition else {}
        stored = destination.count_since(table, column, c.since, equals) - destination.count_since(table, column, c.until, equals)
        if stored != c.api:
            out.append(c)
    return out


def _merge(changed: list[Changed]) -> list[Changed]:
    """Ranges of a partition that touch (within the margin) joined: their windows do not overlap."""
    out: list[Changed] = []
    for c in sorted(changed, key=lambda c: (str(c.partition), c.since)):
        last = out[-1] if out else None
        if last is not None and last.partition == c.partition and c.since - MARGIN <= last.until:
            out[-1] = Changed(c.partition, last.since, max(last.until, c.until), last.api + c.api, last.stored + c.stored)
        else:
            out.append(c)
    return out
