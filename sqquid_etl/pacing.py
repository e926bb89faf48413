"""Client-side leaky bucket: wait before each request so the server's bucket never overflows."""

from __future__ import annotations

import threading
import time
from typing import Callable

from .settings import DEFAULT_BURST, DEFAULT_RATE, check_pacing


class LeakyBucketPacer:
    """Mirror of the server's leaky bucket (level leaks `rate` per second, at most `burst`).

    `acquire()` blocks until one more request fits, then counts it. `margin` keeps the client a
    few requests under the server's burst so that requests sent apart but arriving together
    (network jitter) cannot overflow the server's bucket. `rate=None` disables pacing.
    """

    def __init__(
        self,
        rate: float | None = DEFAULT_RATE,
        burst: int = DEFAULT_BURST,
        margin: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        check_pacing(rate, burst)  # a ConfigError naming the option
        self.rate = rate
        self.capacity = max(1, burst - margin)
        self._clock = clock
        self._sleep = sleep
        self._level = 0.0
        self._last = clock()
        self._lock = threading.Lock()
        self.waited_seconds = 0.0

    def _leak(self, now: float) -> None:
        self._level = max(0.0, self._level - (now - self._last) * self.rate)
        self._last = now

    def acquire(self) -> float:
        """Wait until a request fits in the bucket; return the seconds waited."""
        if self.rate is None:
            return 0.0
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._leak(now)
                if self._level + 1.0 <= self.capacity:
                    self._level += 1.0
                    self.waited_seconds += waited
                    return waited
                wait = (self._level + 1.0 - self.capacity) / self.rate
            self._sleep(wait)
            waited += wait

    def penalize(self, seconds: float) -> None:
        """After a 429: treat the bucket as full for `seconds` more (the server said so)."""
        if self.rate is None:
            return
        with self._lock:
            self._leak(self._clock())
            self._level = max(self._level, self.capacity + seconds * self.rate - 1.0)
