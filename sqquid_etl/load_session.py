"""What an inventory load and a buffers load share: the client they send with (the caller's, or
one of their own from the credentials) and the cost written into the report when they end."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator

from .client import SqquidClient


@contextmanager
def load_client(report: Any, client: SqquidClient | None, started: float, *, base_url: str | None,
                api_key: str | None, username: str | None, password: str | None, rate: float | None,
                burst: int) -> Iterator[SqquidClient]:
    """`client`, else a client of the load's own (closed at the end); however the load ends, the
    report gets its requests and retries (this load's only) and its duration since `started`
    (a `time.monotonic()`)."""
    own_client = client is None
    if client is None:
        client = SqquidClient.from_env(base_url, api_key, username, password, rate=rate, burst=burst)
    requests_before, retries_before = client.stats.requests, client.stats.retries
    try:
        yield client
    finally:
        report.requests = client.stats.requests - requests_before
        report.retries = client.stats.retries - retries_before
        report.duration_seconds = time.monotonic() - started
        if own_client:
            client.close()
