"""Lossless coercion of one value the API sent in another form than its column's type (schema
drift): pure functions, one per column type, each returning the value in a form the column's
conforming conversion stores exactly, or raising `Lossy` with the reason it cannot be stored
without loss (the record is then quarantined, `records.py`).

The rules (also in docs/api-notes.md, "Schema drift"):
- integer: an integral number written as text ("27", " 27 ", "+27", "27.0", "2.7e1"), within
  int64. A fraction ("2.5", 2.5), a boolean, text that is not a number, or a number beyond
  int64 is lossy. (An integral JSON number such as 27.0 is read by Arrow as is.)
- decimal: a JSON number through its shortest repr (never float arithmetic), or a numeric text
  (surrounding spaces dropped); lossy past the column's scale (4 places) or precision (18).
- number: a numeric text.
- boolean: "true" / "false" (any case, surrounding spaces dropped), and the integers 1 / 0.
- timestamp: any ISO-8601 date-time (extended or basic, week dates, `T`, `t` or a space
  between date and time, `,` or `.` before a fraction, offsets `Z`, `+HH`, `+HHMM`,
  `+HH:MM`), `YYYY-MM-DD HH:MM:SS`, or a bare date (midnight); without an offset it is UTC. A
  fraction finer than a microsecond (non-zero past 6 digits) is lossy, as is a number (an
  epoch without a unit is a guess).
- string: a number as its text, a boolean as "true" / "false", an array or object as its
  JSON text (keys sorted).
- attributes: a label or value sent as a number or boolean becomes its text.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_TIMESTAMP = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2}|\d{8}|\d{4}-?W\d{2}-?\d)"
    r"(?:[Tt ](?P<time>\d{2}(?::?\d{2}(?::?\d{2})?)?)(?:[.,](?P<fraction>\d+))?)?"
    r"(?P<zone>[Zz]|[+-]\d{2}(?::?\d{2})?)?"
)


class Lossy(ValueError):
    """The value cannot be stored in its column without loss; the message says why."""


def coerce(value: Any, type_name: str) -> Any:
    """`value` (not null, refused by the column's conforming conversion) in a storable form."""
    rule = _RULES.get(type_name)
    if rule is None:
        raise Lossy(f"{_show(value)} is not a valid {type_name}")
    return rule(value)


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise Lossy(f"{_show(value)} is a boolean, not an integer")
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")) or not value.is_integer():
            raise Lossy(f"{_show(value)} is not an integer (a fraction would be lost)")
        number = int(value)
    elif isinstance(value, str):
        exact = _number_text(value, "integer")
        if exact != exact.to_integral_value():
            raise Lossy(f"{_show(value)} is not an integer (a fraction would be lost)")
        number = int(exact)
    elif isinstance(value, int):
        number = value
    else:
        raise Lossy(f"{_kind(value)} is not an integer")
    if not INT64_MIN <= number <= INT64_MAX:
        raise Lossy(f"{_show(value)} is beyond a 64-bit integer")
    return number


def _decimal(value: Any) -> str:
    if isinstance(value, bool):
        raise Lossy(f"{_show(value)} is a boolean, not a decimal")
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise Lossy(f"{_show(value)} is not a decimal")
        return format(Decimal(repr(value)), "f")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return format(_number_text(value, "decimal"), "f")
    raise Lossy(f"{_kind(value)} is not a decimal")


def _number(value: Any) -> float:
    if isinstance(value, str):
        _number_text(value, "number")
        return float(value.strip())
    raise Lossy(f"{_show(value)} is not a number")


def _boolean(value: Any) -> bool:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if type(value) is int and value in (0, 1):
        return value == 1
    raise Lossy(f"{_show(value)} is not a boolean (true/false, 1/0)")


def _timestamp(value: Any) -> str:
    """The instant as the canonical text Arrow reads (`YYYY-MM-DDTHH:MM:SS.ffffffZ`)."""
    if not isinstance(value, str):
        raise Lossy(f"{_show(value)} is not a timestamp (an ISO-8601 text is expected)")
    text = value.strip()
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise Lossy(f"{_show(value)} is not an ISO-8601 timestamp")
    fraction = match["fraction"] or ""
    if fraction[6:].strip("0"):
        raise Lossy(f"{_show(value)} is finer than a microsecond")
    start, end = match.span("fraction") if fraction else (len(text), len(text))
    canonical = text[: start - 1 if fraction else start].replace("t", "T") + (f".{fraction[:6]}" if fraction else "") + text[end:]
    try:
        moment = datetime.fromisoformat(canonical.replace("z", "Z"))
        moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    except (ValueError, OverflowError) as exc:
        raise Lossy(f"{_show(value)} is not a valid timestamp ({exc})") from None
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, dict)):
        return json_text(value)
    raise Lossy(f"{_kind(value)} is not text")


def _attributes(value: Any) -> list:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise Lossy(f"{_kind(value)} is not a list of {{label, value}}")
    return [{"label": _scalar_text(item.get("label")), "value": _scalar_text(item.get("value"))} for item in value]


def _scalar_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return _string(value)
    raise Lossy(f"an attribute's {_kind(value)} is not text")


def json_text(value: Any) -> str:
    """An array or object as the JSON text stored for it (keys sorted, as `json` columns)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _number_text(value: str, type_name: str) -> Decimal:
    text = value.strip()
    if not _NUMBER.fullmatch(text):
        raise Lossy(f"{_show(value)} is not a valid {type_name}")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        raise Lossy(f"{_show(value)} is not a valid {type_name}") from None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    return {list: "an array", dict: "an object"}.get(type(value), _show(value))


_RULES: dict[str, Callable[[Any], Any]] = {
    "integer": _integer,
    "decimal": _decimal,
    "number": _number,
    "boolean": _boolean,
    "timestamp": _timestamp,
    "string": _string,
    "attributes": _attributes,
}
