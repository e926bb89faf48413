"""Timestamps as the API serves them: UTC, milliseconds, ``2017-08-30T17:20:40.000Z``.

Every stored timestamp has this fixed-width form, so string order is time order and date
filters compare strings (no parsing per record).
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from typing import NamedTuple

START_EPOCH = 1704067200  # 2024-01-01T00:00:00Z
END_EPOCH = 1793491199  # 2026-10-31T23:59:59Z


def fmt(epoch: float) -> str:
    """Epoch seconds -> ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    whole = int(epoch)
    ms = int(round((epoch - whole) * 1000))
    if ms >= 1000:
        whole, ms = whole + 1, ms - 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{ms:03d}Z"


def parse(value: str) -> float:
    """ISO 8601 (offset, ``Z`` or naive = UTC) -> epoch seconds. ValueError if invalid."""
    text = value.strip()
    if not text:
        raise ValueError("empty timestamp")
    dt = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text and " " in text else text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def lower_bound(value: str) -> str:
    """A filter value as the smallest stored timestamp string that satisfies ``>= value``."""
    epoch = parse(value)
    return fmt(math.ceil(round(epoch * 1000, 3)) / 1000)


def upper_bound(value: str) -> str:
    """A filter value as the largest stored timestamp string that satisfies ``<= value``."""
    epoch = parse(value)
    return fmt(math.floor(round(epoch * 1000, 3)) / 1000)


def normalize(value: str) -> str:
    """Any ISO 8601 timestamp -> the stored form (milliseconds, UTC)."""
    return fmt(round(parse(value), 3))


def to_epoch(stored: str) -> float:
    return parse(stored)


_DAYS: dict[int, str] = {}  # day number -> "YYYY-MM-DDT"
_MINUTES = [f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440)]  # minute of the day -> "HH:MM:"
_SECONDS = [f"{s:02d}.000Z" for s in range(60)]


def stamp(seconds: int) -> str:
    """Whole epoch seconds -> the stored form (fast: its date, minute and second parts are
    looked up, the date cached per day)."""
    day, rest = divmod(seconds, 86400)
    date = _DAYS.get(day)
    if date is None:
        date = _DAYS[day] = time.strftime("%Y-%m-%dT", time.gmtime(day * 86400))
    return date + _MINUTES[rest // 60] + _SECONDS[rest % 60]


def seconds_from(stored: str) -> int:
    """The first whole second at or after a stored timestamp."""
    return math.ceil(round(parse(stored), 3))


def seconds_until(stored: str) -> int:
    """The last whole second at or before a stored timestamp."""
    return math.floor(round(parse(stored), 3))


class Bound(NamedTuple):
    """A date filter: the stored-form text (for records kept as dicts) and whole seconds (for
    generated records, whose times are whole seconds)."""

    text: str
    seconds: int


def at_least(value: str) -> Bound:
    """``>= value`` as a Bound. ValueError if the value is not ISO 8601."""
    text = lower_bound(value)
    return Bound(text, seconds_from(text))


def at_most(value: str) -> Bound:
    text = upper_bound(value)
    return Bound(text, seconds_until(text))
