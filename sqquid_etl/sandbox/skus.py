"""The generated skus: made from a product's index (or id) and read back.

Generated skus hold only ASCII letters, digits, spaces, ``-``, ``.`` and ``/``: they go into
JSON between quotes as they are. Reading one back gives candidates; the catalog confirms a
candidate by making the sku again and comparing.
"""

from __future__ import annotations

import re

from .pools import SIZES

_PARENT = re.compile(r"(?:ABC (\d+)/\d|(\d+)-\d{3}(?: X)?)\Z")
_SIZED = re.compile(r"(.+)-(XS|S|M|L|XL|9\.5|10|One Size)\Z")
_ORPHAN = re.compile(r"ORPHAN-(\d{4,})\Z")
NUMERIC_BASE = 1523532750


def parent_sku(i: int) -> str:
    k = i % 10
    if k == 3:
        return f"ABC {i}/{i % 7}"
    if k == 7:
        return f"{645506 + i}-{i % 1000:03d} X"
    return f"{645506 + i}-{i % 1000:03d}"


def variant_sku(parent: str, pid: int, v: int) -> str:
    """Variant v of the product with sku ``parent`` and id ``pid``."""
    return f"{parent}-{SIZES[v % len(SIZES)]}" if v % 4 != 1 else str(NUMERIC_BASE + pid * 10 + v)


def alu(pid: int, v: int) -> str:
    return str(884776750000 + pid * 10 + v)


def orphan_sku(k: int) -> str:
    return f"ORPHAN-{k:04d}"


def parent_index(sku: str) -> int | None:
    """The index i with ``parent_sku(i) == sku``, if there is one."""
    m = _PARENT.match(sku)
    if m is None:
        return None
    i = int(m.group(1)) if m.group(1) is not None else int(m.group(2)) - 645506
    return i if i >= 0 and parent_sku(i) == sku else None


def variant_ref(sku: str) -> tuple[str, int, int] | None:
    """``("index", parent index, v)`` for a sized variant sku, ``("id", parent id, v)`` for a
    numeric one; None when the sku cannot be a generated variant."""
    if sku.isascii() and sku.isdigit():
        x = int(sku) - NUMERIC_BASE
        return ("id", x // 10, x % 10) if x >= 10 else None
    m = _SIZED.match(sku)
    if m is None:
        return None
    i = parent_index(m.group(1))
    return None if i is None else ("index", i, SIZES.index(m.group(2)))


def orphan_index(sku: str) -> int | None:
    m = _ORPHAN.match(sku)
    if m is None:
        return None
    k = int(m.group(1))
    return k if orphan_sku(k) == sku else None
