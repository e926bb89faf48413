"""Deterministic randomness: per-record digests and bulk codes.

A record's content draws from ``Digests(seed, kind)(i)``: 64 bytes that depend only on the seed,
the kind and the index, so any record can be made again, alone, at any time. Structure that
filters and counts need (how many items an order has, which are shipped) is drawn once at
start as compact byte strings with ``codes``.
"""

from __future__ import annotations

import hashlib
import random


class Digests:
    """``digests(i)`` -> 64 bytes, a pure function of (seed, kind, i)."""

    def __init__(self, seed: int, kind: str):
        self._base = hashlib.blake2b(digest_size=64, key=str(seed).encode(), person=kind.encode())

    def __call__(self, i: int) -> bytes:
        h = self._base.copy()
        h.update(i.to_bytes(8, "little", signed=True))
        return h.digest()

    def many(self, indexes) -> list[bytes]:
        """``[self(i) for i in indexes]``, made in one call."""
        out = []
        copy = self._base.copy
        for i in indexes:
            h = copy()
            h.update(i.to_bytes(8, "little", signed=True))
            out.append(h.digest())
        return out


def u16(d: bytes, k: int) -> int:
    return d[k] | d[k + 1] << 8


def u24(d: bytes, k: int) -> int:
    return d[k] | d[k + 1] << 8 | d[k + 2] << 16


def below(p: float) -> int:
    """The byte threshold of probability ``p``: ``d[k] < below(p)`` is true with chance ~p."""
    return round(p * 256)


def codes(rng: random.Random, n: int, weights: list[int]) -> bytes:
    """n codes (byte values 0..len(weights)-1); code k has chance weights[k]/256."""
    if sum(weights) != 256:
        raise ValueError("weights must add up to 256")
    table = b"".join(bytes([code]) * w for code, w in enumerate(weights))
    return rng.randbytes(n).translate(table)


def flags(rng: random.Random, n: int, p: float) -> bytes:
    """n bytes, each 1 with chance p, else 0."""
    return codes(rng, n, [256 - below(p), below(p)])
