"""Helpers shared by tests: the sandbox's credentials and a client that never sleeps for real."""

from __future__ import annotations

from sqquid_etl.client import Credentials, SqquidClient

API_KEY = "sandbox-api-key"
USERNAME = "demo@sqquid.test"
PASSWORD = "sandbox-password"


def make_client(sandbox, **options) -> SqquidClient:
    options.setdefault("rate", None)
    options.setdefault("backoff_base", 0.001)
    credentials = options.pop("credentials", None) or Credentials(api_key=API_KEY)
    return SqquidClient(credentials, sandbox.url, **options)


class FakeClock:
    """One clock for the sandbox, the pacer and the client: sleeping advances it, so nothing
    waits for real."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
