"""Incremental state: bookmarks per stream (and per partition), windows, and their validation."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from .errors import ConfigError, StateError

NO_PARTITION = "_"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
# a year written with fewer than four digits (`999-01-01`): how earlier versions stored a cursor
# before year 1000 (strftime's %Y does not pad it); read as the year it is
_SHORT_YEAR = re.compile(r"^(\d{1,3})-")
MAX_DURATION = timedelta(days=365 * 100)  # a lookback longer than this is a mistake, not a wish
EARLIEST = datetime.min.replace(tzinfo=timezone.utc)
BEGINNING = datetime(1970, 1, 1, tzinfo=timezone.utc)  # a window starting before it reads from the beginning


@dataclass
class StreamState:
    """What a stream remembers between runs. `cursors` maps a partition value (or "_") to the
    largest cursor value stored, as ISO 8601 UTC."""

    cursors: dict[str, str] = field(default_factory=dict)
    last_run_at: str | None = None
    last_run_id: str | None = None
    rows_last_run: int = 0
    verified: dict[str, str] = field(default_factory=dict)  # partition -> where `--verify-keys` resumes

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> "StreamState":
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict):
                raise ValueError("not an object")
            cursors = raw.get("cursors") or {}
            if not isinstance(cursors, dict):
                raise ValueError("'cursors' is not an object")
            for key, value in cursors.items():
                if not isinstance(value, str):
                    raise ValueError(f"cursor {key!r} is not a string: {value!r}")
                parse_timestamp(value, f"cursor {key!r}")
            for name in ("last_run_at", "last_run_id"):
                if not isinstance(raw.get(name), (str, type(None))):
                    raise ValueError(f"{name!r} is not a string: {raw[name]!r}")
            verified = raw.get("verified") or {}
            if not isinstance(verified, dict) or not all(isinstance(v, str) for v in verified.values()):
                raise ValueError("'verified' is not an object of timestamps")
            for key, value in verified.items():
                parse_timestamp(value, f"verified {key!r}")
            rows = raw.get("rows_last_run") or 0
            if not isinstance(rows, int) or isinstance(rows, bool):
                raise ValueError(f"'rows_last_run' is not a whole number: {rows!r}")
            return cls(
                cursors={str(k): v for k, v in cursors.items()},
                last_run_at=raw.get("last_run_at"),
                last_run_id=raw.get("last_run_id"),
                rows_last_run=rows,
                verified={str(k): v for k, v in verified.items()},
            )
        except (ValueError, TypeError, RecursionError, ConfigError) as exc:
            raise StateError(f"{where}: corrupt state ({exc}); fix it with 'sqquid-etl state set' or 'state reset'") from None


def parse_timestamp(value: Any, what: str) -> datetime:
    """Parse an ISO 8601 timestamp (a date alone means midnight UTC); naive means UTC."""
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        text = _SHORT_YEAR.sub(lambda m: m.group(1).zfill(4) + "-", text)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ConfigError(f"{what}: {value!r} is not an ISO 8601 date or timestamp (e.g. 2024-01-31 or 2024-01-31T12:00:00Z)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:
        raise ConfigError(f"{what}: {value!r} is outside the years 1 to 9999 in UTC") from None


def parse_duration(value: Any, what: str = "duration") -> timedelta:
    """'90' or '90s', '15m', '2h', '1d', '500ms' -> timedelta."""
    if isinstance(value, timedelta):
        return value
    match = _DURATION.match(str(value))
    if not match:
        raise ConfigError(f"{what}: {value!r} is not a duration (e.g. 1s, 15m, 2h, 1d)")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not seconds <= MAX_DURATION.total_seconds():  # also inf, from a number too large for a float
        raise ConfigError(f"{what}: {value!r} is too long (at most {MAX_DURATION.days} days)")
    return timedelta(seconds=seconds)


def format_timestamp(value: datetime) -> str:
    """UTC with microseconds and 'Z', the year in four digits (0999 too): how cursors are stored."""
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def format_param(value: datetime) -> str:
    """The API's filter format (`2017-09-25T16:15:47-04:00`), in UTC, floored to the second."""
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds") + "+00:00"


def window_start(cursor: str | None, lookback: timedelta, start_date: datetime | None) -> datetime | None:
    """Where the next incremental request starts: the bookmark minus the lookback (so records
    sharing the boundary timestamp are read again and merged), never before the start date. A
    start before 1970 is the beginning (None: no lower bound is sent; how the API reads such a
    date is not documented, and reading from the beginning loses nothing)."""
    if cursor is None:
        begin = start_date
    else:
        stored = parse_timestamp(cursor, "cursor")
        begin = stored - lookback if stored - EARLIEST > lookback else EARLIEST
        if start_date is not None and begin < start_date:
            begin = start_date
    return None if begin is None or begin < BEGINNING else begin


def after_now(value: datetime, slack: timedelta = timedelta(0)) -> bool:
    """Whether a cursor lies after now (plus `slack`, for an API whose clock runs ahead): the
    next extract would then read nothing new."""
    return value > datetime.now(timezone.utc) + slack


def later(a: str | None, b: datetime | None) -> str | None:
    """The later of a stored cursor and a new maximum."""
    if b is None:
        return a
    if a is None or parse_timestamp(a, "cursor") < b:
        return format_timestamp(b)
    return a
