"""Listing by key (inventory by sku): the keys of a listing in comma-joined batches, each small
enough that the request URL stays under the definition's `max_url_length`. Pure: the keys come
from the caller (a destination's table, or a user's input)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from .definitions import KeysFrom

URL_OVERHEAD = 80  # the other parameters of a listing (offset, limit, a cursor) and the separators
_UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~-"  # what `quote` leaves as it is


def quoted_length(value: str) -> int:
    """len(urllib.parse.quote(value, safe="")): each byte of its UTF-8 outside the unreserved
    characters becomes %XX (counted in C: a run lists ~7,000 skus, `quote` took ~3 ms of them)."""
    data = value.encode()
    return len(data) + 2 * len(data.translate(None, _UNRESERVED))


@dataclass
class KeyBatches:
    """Comma-joined batches of keys, and the keys that cannot be listed with their reason."""

    batches: list[str] = field(default_factory=list)
    unlistable: dict[str, str] = field(default_factory=dict)


def batch_keys(spec: KeysFrom, path: str, values: Iterable[str], base_url: str) -> KeyBatches:
    """Batches of the distinct `values` (sorted) for listing `path` by `spec.param`. A key holding a
    comma cannot be listed (the API splits on commas); nor can one alone longer than the URL limit."""
    budget = spec.max_url_length - (len(base_url) + len(path) + URL_OVERHEAD + len(spec.param))
    out = KeyBatches()
    current: list[str] = []
    size = 0
    for value in sorted(set(values)):
        if "," in value:
            out.unlistable[value] = "holds a comma, which the API reads as a separator"
            continue
        cost = quoted_length(value) + 3  # the comma, encoded as %2C
        if cost > budget:
            out.unlistable[value] = "is longer than the URL limit on its own"
            continue
        if current and size + cost > budget:
            out.batches.append(",".join(current))
            current, size = [], 0
        current.append(value)
        size += cost
    if current:
        out.batches.append(",".join(current))
    return out
