"""Leaky bucket per token, as the Sqquid API throttles: level leaks ``rate``/s; a request that
would lift the level above ``burst`` is refused (and does not add to the level)."""

from __future__ import annotations

import math
import threading
from typing import Callable


class LeakyBucket:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float]):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = float(rate)
        self.burst = burst
        self.clock = clock
        self.level = 0.0
        self.last = clock()

    def try_acquire(self) -> float | None:
        """Add one request; None if allowed, else the seconds until one would be allowed."""
        now = self.clock()
        self.level = max(0.0, self.level - (now - self.last) * self.rate)
        self.last = now
        if self.level + 1.0 > self.burst + 1e-9:
            return (self.level + 1.0 - self.burst) / self.rate
        self.level += 1.0
        return None


def retry_after_header(wait: float) -> int:
    """Whole seconds for ``Retry-After``: rounded up, at least 1."""
    return max(1, math.ceil(wait - 1e-9))


class BucketRegistry:
    """One bucket per key (token); ``rate=None`` disables throttling."""

    def __init__(self, rate: float | None, burst: int, clock: Callable[[], float]):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, LeakyBucket] = {}
        self._lock = threading.Lock()

    def try_acquire(self, key: str) -> float | None:
        if self.rate is None:
            return None
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = LeakyBucket(self.rate, self.burst, self.clock)
            return bucket.try_acquire()

    def forget(self, key: str) -> None:
        with self._lock:
            self._buckets.pop(key, None)
