"""The retry policy of one request: how many failed attempts it may take, and what a failed
attempt is. The client spends a budget per request; a caller that retries a request itself
(a list page whose body is not JSON: `fetch.page_reader`) spends the same one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .errors import ApiError


class RetryBudget:
    """The retries one request may take: `max_tries` failed attempts, and apart from them
    `max_throttled` 429s (the server said "wait", not "broken"). Each retry waits first
    (Retry-After, or exponential backoff with jitter); a spent budget is an ApiError."""

    def __init__(self, endpoint: str, max_tries: int, max_throttled: int,
                 wait: Callable[[str, str, int, float | None], None]):
        self.endpoint = endpoint
        self.max_tries, self.max_throttled = max_tries, max_throttled
        self._wait = wait
        self.failures = self.throttles = 0

    def failed(self, problem: str, *, throttled: bool = False, retry_after: float | None = None) -> None:
        """Count a failed attempt: raise ApiError when the budget is spent, else wait to retry."""
        if throttled:
            self.throttles += 1
            if self.throttles >= self.max_throttled:
                raise ApiError(f"{self.endpoint} still throttled (429) after {self.throttles} tries: {problem}",
                               endpoint=self.endpoint)
        else:
            self.failures += 1
            if self.failures >= self.max_tries:
                raise ApiError(f"{self.endpoint} failed after {self.failures} tries: {problem}", endpoint=self.endpoint)
        self._wait(self.endpoint, problem, max(self.failures, self.throttles), retry_after)


@dataclass(frozen=True)
class Failure:
    """An attempt to retry: what went wrong (redacted), and whether the server throttled."""

    problem: str
    throttled: bool = False
    retry_after: float | None = None
