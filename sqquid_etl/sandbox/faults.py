"""Fault injection: the configuration and the decision of which request gets which fault.

Faults apply only to authenticated data requests (never to ``/v1/login`` or ``/_sandbox/*``).
Precedence for one request: storm 429, then error status, then dropped connection, then
truncated body. ``mutate_every`` is independent: it fires after every Nth list page served.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field

from .data import MUTATIONS

STORM, ERROR, DROP, TRUNCATE, MUTATE = "storm_429", "error", "drop", "truncate", "mutate"


@dataclass
class FaultConfig:
    error_every: int = 0  # every Nth data request answers error_status
    error_status: int = 500
    drop_every: int = 0  # every Nth: headers + half the body, then the connection is closed
    truncate_every: int = 0  # every Nth: 200 with a body that is JSON cut in half
    storm_429: int = 0  # the next K data requests get 429
    storm_retry_after: int = 1  # Retry-After value sent during a storm
    mutate_every: int = 0  # after every Nth list page served, apply `mutate` to the store
    mutate: dict = field(default_factory=dict)  # {"add_orders": 3, "update_products": 2, ...}

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "mutate":
                if not isinstance(value, dict):
                    raise ValueError("mutate must be an object")
                for key, n in value.items():
                    if key not in MUTATIONS:
                        raise ValueError(f"mutate: unknown mutation {key!r} (one of {', '.join(MUTATIONS)})")
                    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                        raise ValueError(f"mutate.{key} must be an integer >= 0")
            elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{f.name} must be an integer >= 0")
        if not 100 <= self.error_status <= 599:
            raise ValueError("error_status must be an HTTP status (100-599)")

    @classmethod
    def from_dict(cls, data: dict) -> "FaultConfig":
        if not isinstance(data, dict):
            raise ValueError("faults must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class FaultInjector:
    """Counts eligible requests and list pages; thread-safe."""

    def __init__(self, config: FaultConfig | None = None):
        self._lock = threading.Lock()
        self.set(config or FaultConfig())

    def set(self, config: FaultConfig) -> None:
        with self._lock:
            self.config = config
            self.storm_left = config.storm_429
            self.requests = 0
            self.pages = 0

    def decide(self) -> str | None:
        """The fault for the next authenticated data request, or None."""
        with self._lock:
            cfg = self.config
            if self.storm_left > 0:
                self.storm_left -= 1
                return STORM
            self.requests += 1
            n = self.requests
            if cfg.error_every and n % cfg.error_every == 0:
                return ERROR
            if cfg.drop_every and n % cfg.drop_every == 0:
                return DROP
            if cfg.truncate_every and n % cfg.truncate_every == 0:
                return TRUNCATE
            return None

    def page_served(self) -> dict | None:
        """Call after each list page; returns the mutation spec when one is due."""
        with self._lock:
            cfg = self.config
            if not cfg.mutate_every or not cfg.mutate:
                return None
            self.pages += 1
            return dict(cfg.mutate) if self.pages % cfg.mutate_every == 0 else None
