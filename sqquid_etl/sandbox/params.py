"""Query parameters as the API reads them, and the API's error answers (``Reject``)."""

from __future__ import annotations

from urllib.parse import parse_qs

from . import timeutil


class Reject(Exception):
    """An API error answer: status, error code, message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def bad(message: str) -> Reject:
    return Reject(400, "BadRequest", message)


def not_found(message: str) -> Reject:
    return Reject(404, "NotFound", message)


# ---- parameters ----------------------------------------------------------------------------
def parse_params(query: str) -> dict[str, str]:
    """First value of each query parameter; blank values count as absent."""
    out: dict[str, str] = {}
    for key, values in parse_qs(query, keep_blank_values=True).items():
        if values and values[0] != "":
            out[key] = values[0]
    return out


def get_int(params: dict, name: str, default: int | None = None, minimum: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad(f"{name} must be an integer") from None
    if minimum is not None and value < minimum:
        raise bad(f"{name} must be >= {minimum}")
    return value


def get_bool(params: dict, name: str) -> bool | None:
    raw = params.get(name)
    if raw is None:
        return None
    low = raw.lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise bad(f"{name} must be true or false")


def get_list(params: dict, name: str, max_items: int | None = None, as_int: bool = False) -> tuple | None:
    raw = params.get(name)
    if raw is None:
        return None
    items = [x.strip() for x in raw.split(",") if x.strip() != ""]
    if max_items is not None and len(items) > max_items:
        raise bad(f"{name}: list max {max_items}")
    if as_int:
        try:
            return tuple(sorted({int(x) for x in items}))
        except ValueError:
            raise bad(f"{name} must be a comma-separated list of integers") from None
    return tuple(dict.fromkeys(items))


def get_stamp(params: dict, name: str, upper: bool = False) -> timeutil.Bound | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return timeutil.at_most(raw) if upper else timeutil.at_least(raw)
    except ValueError:
        raise bad(f"{name} is not a valid ISO 8601 date: {raw!r}") from None


def page_limit(params: dict) -> tuple[int, int]:
    page = get_int(params, "page", 1, minimum=1)
    limit = min(get_int(params, "limit", 50, minimum=1), 250)
    return page, limit


def offset_limit(params: dict, maximum: int, default: int = 20) -> tuple[int, int]:
    offset = get_int(params, "offset", 0, minimum=0)
    limit = min(get_int(params, "limit", default, minimum=1), maximum)
    return offset, limit
