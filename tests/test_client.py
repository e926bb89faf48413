"""The client against the sandbox: login both ways, re-login, pacing, retries of every fault kind."""

from __future__ import annotations

import json
import logging

import pytest

from sqquid_etl.client import Credentials
from sqquid_etl.errors import ApiError, AuthError
from sqquid_etl.pacing import LeakyBucketPacer
from sqquid_etl.sandbox import FaultConfig
from tests.support import API_KEY, PASSWORD, USERNAME, FakeClock, make_client


def test_login_with_api_key_and_with_username_password(sandbox):
    with make_client(sandbox) as client:
        assert client.get("/v1/orders/count")["Orders"] == len(sandbox.store.orders)
    with make_client(sandbox, credentials=Credentials(username=USERNAME, password=PASSWORD)) as client:
        assert client.get("/v1/products/count")["Products"] == len(sandbox.store.products)
    assert sandbox.stats.logins == 2


def test_bad_credentials_are_a_clear_auth_error_without_the_secret(sandbox):
    with make_client(sandbox, credentials=Credentials(api_key="not-the-key-42")) as client:
        with pytest.raises(AuthError) as err:
            client.get("/v1/orders")
    assert "login refused" in str(err.value) and "not-the-key-42" not in str(err.value)
    with make_client(sandbox, credentials=Credentials(username=USERNAME, password="wrong-password-9")) as client:
        with pytest.raises(AuthError, match="demo@sqquid.test") as err:
            client.get("/v1/orders")
    assert "wrong-password-9" not in str(err.value)


def test_token_expiry_mid_run_relogs_in_once(make_sandbox):
    clock = FakeClock()
    sandbox = make_sandbox(clock=clock, token_ttl=60)
    with make_client(sandbox) as client:
        client.get("/v1/orders", {"limit": 5})
        clock.now += 61  # the token expires
        client.get("/v1/orders", {"limit": 5})
        sandbox.expire_tokens()  # expiry "now", as an operator would
        client.get("/v1/orders", {"limit": 5})
        assert client.stats.logins == 3
    assert sandbox.stats.logins == 3


def test_pacing_with_scaled_clock_takes_the_time_the_bucket_says_and_gets_no_429(make_sandbox):
    clock = FakeClock()
    sandbox = make_sandbox(clock=clock, rate=2.0, burst=40)
    pacer = LeakyBucketPacer(rate=2.0, burst=40, margin=2, clock=clock, sleep=clock.sleep)
    with make_client(sandbox, pacer=pacer, sleep=clock.sleep) as client:
        start = clock.now
        for page in range(1, 101):
            client.get("/v1/orders", {"page": 1, "limit": 1})
        elapsed = clock.now - start
    # login + 100 requests: 38 go out at once (burst 40 minus a margin of 2), the other 63 at 2/s
    assert elapsed == pytest.approx(63 / 2.0, abs=0.01)
    assert sandbox.stats.throttled == 0
    assert client.stats.throttled == 0


def test_without_pacing_the_server_throttles_and_the_client_recovers(make_sandbox):
    clock = FakeClock()
    sandbox = make_sandbox(clock=clock, rate=2.0, burst=10)
    with make_client(sandbox, rate=None, sleep=clock.sleep) as client:
        for _ in range(15):
            client.get("/v1/orders", {"limit": 1})
    assert sandbox.stats.throttled > 0  # the server said 429 ...
    assert client.stats.throttled == sandbox.stats.throttled  # ... the client honoured Retry-After
    assert client.stats.retries == sandbox.stats.throttled


@pytest.mark.parametrize(
    "faults",
    [
        FaultConfig(error_every=3),
        FaultConfig(error_every=2, error_status=503),
        FaultConfig(drop_every=3),
        FaultConfig(truncate_every=3),
        FaultConfig(storm_429=4, storm_retry_after=0),
    ],
    ids=["500", "503", "dropped", "truncated", "429-storm"],
)
def test_each_fault_kind_is_retried_to_success(sandbox, faults):
    sandbox.set_faults(faults)
    with make_client(sandbox) as client:
        pages = [client.get("/v1/orders", {"page": p, "limit": 50})["Orders"] for p in range(1, 7)]
    ids = [o["id"] for page in pages for o in page]
    assert ids == [o["id"] for o in sandbox.store.orders[:300]]
    assert client.stats.retries >= 1
    assert sandbox.stats.faults_injected >= 1


def test_retries_are_bounded_and_the_error_names_the_endpoint(sandbox):
    sandbox.set_faults(FaultConfig(error_every=1))
    with make_client(sandbox, max_tries=3) as client:
        with pytest.raises(ApiError, match=r"GET /v1/orders failed after 3 tries: HTTP 500"):
            client.get("/v1/orders")


def test_client_error_is_not_retried(sandbox):
    with make_client(sandbox) as client:
        with pytest.raises(ApiError, match="HTTP 400") as err:
            client.get("/v1/inventory")  # skus is required
    assert err.value.status == 400
    assert client.stats.retries == 0


def test_no_secret_in_logs(sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    sandbox.set_faults(FaultConfig(error_every=2))
    with make_client(sandbox) as client:
        client.get("/v1/orders", {"limit": 2})
        client.get("/v1/orders", {"limit": 2})
        token = client._token
    text = caplog.text
    assert API_KEY not in text and token not in text
    assert "retry" in text  # something was logged, so the check above could have failed


def test_get_body_returns_the_bytes_as_they_came_and_the_caller_may_spend_the_same_budget(sandbox):
    sandbox.set_faults(FaultConfig(truncate_every=1))  # every data answer is JSON cut in half
    with make_client(sandbox, max_tries=3) as client:
        body = client.get_body("/v1/orders", {"limit": 2})
        with pytest.raises(ValueError):
            json.loads(body)  # the client does not read list pages: the decoder notices, the fetcher asks again
        assert client.stats.retries == 0
        budget = client.retry_budget("GET /v1/orders")
        budget.failed("unparseable JSON")
        budget.failed("unparseable JSON")
        with pytest.raises(ApiError, match="GET /v1/orders failed after 3 tries: unparseable JSON"):
            budget.failed("unparseable JSON")
        assert client.stats.retries == 2


def test_the_session_reads_proxy_settings_once_for_its_host(monkeypatch):
    from sqquid_etl.client import Credentials, SqquidClient

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    with SqquidClient(Credentials(api_key="k-proxy-1"), "https://api.sqquid.com") as client:
        assert client._session.proxies.get("https") == "http://proxy.example:3128"
        assert client._session.trust_env is False  # not read again on every request
    with SqquidClient(Credentials(api_key="k-proxy-1"), "https://internal.example") as client:
        assert not client._session.proxies  # NO_PROXY kept
