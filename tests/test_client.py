"""The client against the sandbox: login both ways, re-login, pacing, retries of every fault kind."""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import urlsplit

import pytest

from sqquid_etl import tokens
from sqquid_etl.client import Credentials
from sqquid_etl.errors import ApiError, AuthError
from sqquid_etl.pacing import LeakyBucketPacer
from sqquid_etl.redaction import fingerprint
from sqquid_etl.sandbox import FaultConfig
from sqquid_etl.tokens import Token, jwt_expiry, refresh_margin
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
        with pytest.raises(AuthError, match=fingerprint(USERNAME)) as err:  # personal data: hashed
            client.get("/v1/orders")
    assert "wrong-password-9" not in str(err.value) and USERNAME not in str(err.value)


def test_token_expiry_mid_run_relogs_in_once(make_sandbox):
    # the client's clock (real time) disagrees with the sandbox's: the exp is not used, a 401 is
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


def _sends(client, clock) -> list[tuple[str, float | None, float, int]]:
    """What the client's session sends: (path, the exp of the token it carries, the clock when
    sent, the status answered)."""
    sent = []
    send = client.transport.send

    def request(method, url, params=None, data=None, headers=None):
        bearer = (headers or {}).get("Authorization", "").removeprefix("Bearer ")
        exp, now = (jwt_expiry(bearer) if bearer else None), clock.now
        response = send(method, url, params, data, headers)
        sent.append((urlsplit(url).path, exp, now, response.status))
        return response

    client.transport.send = request
    return sent


def test_a_token_is_renewed_shortly_before_its_exp_without_a_401(make_sandbox):
    clock = FakeClock()
    sandbox = make_sandbox(clock=clock, token_ttl=60)
    with make_client(sandbox, clock=clock) as client:
        sent = _sends(client, clock)
        for step in (0, 30, 23.5, 1, 53, 1):  # renewed 6 s (10% of 60 s) before its exp
            clock.now += step
            client.get("/v1/orders", {"limit": 1})
    logins = [now for path, _, now, _ in sent if path == "/v1/login"]
    assert logins == [1000.0, 1054.5, 1108.5]  # never waiting for the token to die
    assert all(status == 200 for *_, status in sent) and client.stats.retries == 0
    assert all(exp - now >= 6 for path, exp, now, _ in sent if path != "/v1/login")


def test_the_token_is_attached_after_the_pacers_wait(make_sandbox):
    clock = FakeClock()
    sandbox = make_sandbox(clock=clock, token_ttl=60)
    pacer = LeakyBucketPacer(rate=2.0, burst=1, margin=0, clock=clock, sleep=clock.sleep)
    with make_client(sandbox, pacer=pacer, sleep=clock.sleep, clock=clock) as client:
        sent = _sends(client, clock)
        client.get("/v1/orders", {"limit": 1})
        pacer.penalize(120)  # the next request waits two minutes, twice as long as a token lives
        client.get("/v1/orders", {"limit": 1})
    assert [path for path, *_ in sent] == ["/v1/login", "/v1/orders", "/v1/login", "/v1/orders"]
    # the login is not paced (it spends no slot): it goes out right after the request's own wait (120 s)
    assert [now for *_, now, _ in sent] == [1000.0, 1000.0, 1120.0, 1120.0]
    assert all(status == 200 for *_, status in sent) and client.stats.retries == 0
    assert all(exp > now for path, exp, now, _ in sent if path != "/v1/login")


def test_a_token_without_a_readable_exp_is_kept_until_a_401(make_sandbox, monkeypatch):
    monkeypatch.setattr(tokens, "jwt_expiry", lambda token: None)
    clock = FakeClock()
    sandbox = make_sandbox(clock=clock, token_ttl=60)
    with make_client(sandbox, clock=clock) as client:
        sent = _sends(client, clock)
        client.get("/v1/orders", {"limit": 1})
        clock.now += 59
        client.get("/v1/orders", {"limit": 1})  # not renewed: nothing says it dies
        clock.now += 1
        assert client.get("/v1/orders/count")["Orders"] == len(sandbox.store.orders)
    assert [(path, status) for path, _, _, status in sent] == [
        ("/v1/login", 200), ("/v1/orders", 200), ("/v1/orders", 200),
        ("/v1/orders/count", 401), ("/v1/login", 200), ("/v1/orders/count", 200),
    ]


def test_a_401_right_after_a_login_is_an_auth_error_at_once(sandbox, monkeypatch):
    monkeypatch.setattr(sandbox.tokens, "valid", lambda token: False)  # it refuses its own tokens
    with make_client(sandbox) as client:
        with pytest.raises(AuthError, match=r"GET /v1/orders: token rejected \(401\) right after a login with api_key"):
            client.get("/v1/orders")
    assert sandbox.stats.logins == 1 and client.stats.retries == 0


def test_the_exp_of_a_jwt_and_the_margin_before_it():
    example = ("eyJhbGciOiJIUzI1NiIsfdfsdfsI6IkpXVCJ9.eyJ1c2VybmFtZSI6InRlc3RwcmVsInVzZXJfaWQiOjE3LCJlbWFpbCI6InRl"
               "c3RwcmVzcy5pbkBnbWFpbC5jb20iLCJleHAiOjE0NDc4MzMyMjl9.Ik_yi4lHbNbrRGhqmRpsW82Nls_O9lgXakk_syV-vSw")
    assert jwt_expiry(example) == 1447833229  # the reference's example (its payload is not quite JSON)
    payload = lambda claims: "h." + base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=") + ".s"  # noqa: E731
    assert jwt_expiry(payload({"exp": 12.5})) == 12.5
    for unreadable in ("opaque-token", "a.b", "a.%%%.c", payload({"exp": "12"}), payload({"exp": True}),
                       payload({"sub": 1}), payload([1])):
        assert jwt_expiry(unreadable) is None, unreadable
    assert [refresh_margin(t) for t in (1.5, 5, 60, 3600)] == [0.75, 1.0, 6.0, 360.0]
    token = Token.issued(payload({"exp": 1060}), now=1000)
    assert (token.refresh_at, token.due(1053.9), token.due(1054)) == (1054, False, True)
    assert Token.issued(payload({"exp": 990}), now=1000).refresh_at is None  # a clock that disagrees: until a 401


def test_pacing_with_scaled_clock_takes_the_time_the_bucket_says_and_gets_no_429(make_sandbox):
    clock = FakeClock()
    sandbox = make_sandbox(clock=clock, rate=2.0, burst=40)
    pacer = LeakyBucketPacer(rate=2.0, burst=40, margin=2, clock=clock, sleep=clock.sleep)
    with make_client(sandbox, pacer=pacer, sleep=clock.sleep) as client:
        start = clock.now
        for page in range(1, 101):
            client.get("/v1/orders", {"page": 1, "limit": 1})
        elapsed = clock.now - start
    # 100 requests (the login is not paced): 38 go out at once (burst 40 minus a margin of 2), the other 62 at 2/s
    assert elapsed == pytest.approx(62 / 2.0, abs=0.01)
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


def test_the_transport_reads_proxy_settings_once_for_its_host(monkeypatch):
    from sqquid_etl.client import Credentials, SqquidClient

    monkeypatch.setenv("HTTPS_PROXY", "http://user:p%40ss@proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    with SqquidClient(Credentials(api_key="k-proxy-1"), "https://api.sqquid.com") as client:
        proxy = client.transport.proxy
        assert (proxy.host, proxy.port) == ("proxy.example", 3128)
        assert proxy.headers["Proxy-Authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()
    with SqquidClient(Credentials(api_key="k-proxy-1"), "https://internal.example") as client:
        assert client.transport.proxy is None  # NO_PROXY kept


def test_the_login_spends_no_slot_of_the_bucket(make_sandbox):
    """The bucket limits the calls made with a token (docs/api-notes.md): a login and then a
    bucket's worth of requests go out at once; only the request after them waits."""
    clock = FakeClock()
    sandbox = make_sandbox(clock=clock, rate=2.0, burst=3)
    pacer = LeakyBucketPacer(rate=2.0, burst=3, margin=0, clock=clock, sleep=clock.sleep)
    with make_client(sandbox, pacer=pacer, sleep=clock.sleep, clock=clock) as client:
        sent = _sends(client, clock)
        for _ in range(4):
            client.get("/v1/orders/count")
    assert [(path, now) for path, _, now, _ in sent] == [
        ("/v1/login", 1000.0)] + [("/v1/orders/count", 1000.0)] * 3 + [("/v1/orders/count", 1000.5)]
    assert all(status == 200 for *_, status in sent) and sandbox.stats.throttled == 0
