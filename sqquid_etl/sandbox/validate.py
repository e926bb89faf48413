"""Checks the write endpoints share: JSON types, the request body, location values."""

from __future__ import annotations

from .params import bad

INVALID_JSON = "Invalid format for request body. Please make sure you provide a valid JSON"


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def body_object(body) -> dict:
    if not isinstance(body, dict):
        raise bad(INVALID_JSON)
    return body


def location_value(v, field: str) -> str:
    if isinstance(v, str):
        return v
    if is_int(v):
        return str(v)
    raise bad(f"{field} must be a string")
