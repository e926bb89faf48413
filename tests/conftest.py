"""Shared fixtures: a sandbox on a free loopback port."""

from __future__ import annotations

import pytest

@pytest.fixture
def make_sandbox():
    """Start sandboxes (throttling off unless asked) and stop them after the test."""
    from sqquid_etl.sandbox import Sandbox, SandboxConfig

    started = []

    def start(**config):
        config.setdefault("rate", None)
        config.setdefault("orders", 300)
        config.setdefault("products", 120)
        sandbox = Sandbox(SandboxConfig(**config))
        sandbox.start()
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def sandbox(make_sandbox):
    return make_sandbox()


