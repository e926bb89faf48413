"""HTTP client for the Sqquid API: login and re-login, pacing, retries, timeouts.

It knows nothing of streams: it sends one request and returns the decoded JSON body.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter

from .errors import ApiError, AuthError, ConfigError
from .pacing import LeakyBucketPacer
from .redaction import SECRETS

log = logging.getLogger(__name__)

Decoder = Callable[[bytes], Any]

DEFAULT_BASE_URL = "https://api.sqquid.com"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
TRANSIENT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


def quote_segment(value: str) -> str:
    """Quote one URL path segment (skus may hold spaces and slashes)."""
    return quote(str(value), safe="")


@dataclass(frozen=True)
class Credentials:
    """An api key, or a username and password. The repr never shows a secret."""

    api_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.api_key:
            SECRETS.add(self.api_key)
        elif self.username and self.password:
            SECRETS.add(self.password)
        else:
            raise ConfigError(
                "no credentials: give an api key (--api-key or SQQUID_API_KEY) or a username and "
                "password (--username/--password or SQQUID_USERNAME/SQQUID_PASSWORD)"
            )

    @property
    def method(self) -> str:
        return "api_key" if self.api_key else f"username {self.username!r}"

    def login_body(self) -> dict[str, str]:
        if self.api_key:
            return {"api_key": self.api_key}
        return {"username": self.username or "", "password": self.password or ""}

    @classmethod
    def from_env(
        cls,
        api_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
        env: dict[str, str] | None = None,
    ) -> "Credentials":
        """Options win over the environment (SQQUID_API_KEY, SQQUID_USERNAME, SQQUID_PASSWORD)."""
        env = os.environ if env is None else env
        if api_key or (username and password):
            return cls(api_key=api_key, username=username, password=password)
        return cls(
            api_key=env.get("SQQUID_API_KEY") or None,
            username=username or env.get("SQQUID_USERNAME") or None,
            password=password or env.get("SQQUID_PASSWORD") or None,
        )


def check_base_url(base_url: str) -> str:
    """Return the base URL without a trailing slash; refuse plain http to a non-loopback host."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"base URL {base_url!r} is not an http(s) URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"base URL {base_url!r}: plain http is refused for a non-loopback host "
            "(credentials and tokens would cross the network unencrypted); use https"
        )
    return base_url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    logins: int = 0
    paced_seconds: float = 0.0


class SqquidClient:
    """One authenticated, paced, retrying connection to the Sqquid API.

    Safe to share between threads: one token, one pacer, one connection pool.
    """

    def __init__(
        self,
        credentials: Credentials,
        base_url: str | None = None,
        *,
        rate: float | None = 2.0,
        burst: int = 40,
        max_tries: int = 8,
        max_throttled: int = 60,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        timeout: tuple[float, float] = (10.0, 60.0),
        sleep: Callable[[float], None] = time.sleep,
        pacer: LeakyBucketPacer | None = None,
        pool_size: int = 8,
    ):
        self.base_url = check_base_url(base_url or os.environ.get("SQQUID_BASE_URL") or DEFAULT_BASE_URL)
        self._credentials = credentials
        self.pacer = pacer or LeakyBucketPacer(rate=rate, burst=burst)
        self.max_tries = max(1, max_tries)
        self.max_throttled = max(1, max_throttled)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.timeout = timeout
        self._sleep = sleep
        self._token: str | None = None
        self._token_lock = threading.Lock()
        self.stats = ClientStats()
        self._stats_lock = threading.Lock()
        self.pool_size = pool_size
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update({"Accept": "application/json", "User-Agent": "sqquid-etl/0.1"})

    def __repr__(self) -> str:
        return f"SqquidClient(base_url={self.base_url!r}, credentials={self._credentials!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> "SqquidClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- auth ---------------------------------------------------------------------------------

    def login(self) -> None:
        """Get a fresh token (POST /v1/login)."""
        body = self._send("POST", "/v1/login", None, self._credentials.login_body(), authenticated=False)
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError("login (POST /v1/login) answered without a token")
        SECRETS.add(token)
        self._token = token
        self._count(logins=1)
        log.debug("logged in with %s", self._credentials.method)

    def ensure_token(self) -> None:
        """Log in now unless a token is held (to fail early on bad credentials)."""
        self._ensure_token()

    def _ensure_token(self, stale: str | None = None) -> str:
        with self._token_lock:
            if self._token is None or self._token == stale:
                self.login()
            assert self._token is not None
            return self._token

    # -- requests -----------------------------------------------------------------------------

    def get(self, path: str, params: dict[str, Any] | None = None, *, decode: Decoder | None = None) -> Any:
        """GET and decode the body (JSON; or by `decode`, which raises ValueError on a body that is
        not JSON, so a truncated answer is retried like any transient failure)."""
        return self.request("GET", path, params=params, decode=decode)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json_body=body)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json_body=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        decode: Decoder | None = None,
    ) -> Any:
        """Send an authenticated request and return its decoded JSON body.

        A 401 triggers one re-login and one repeat; transient failures are retried with backoff.
        """
        token = self._ensure_token()
        try:
            return self._send(method, path, params, json_body, authenticated=True, token=token, decode=decode)
        except AuthError:
            token = self._ensure_token(stale=token)
            return self._send(method, path, params, json_body, authenticated=True, token=token, decode=decode)

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        json_body: Any,
        *,
        authenticated: bool,
        token: str | None = None,
        decode: Decoder | None = None,
    ) -> Any:
        endpoint = f"{method} {path}"
        url = self.base_url + path
        headers = {"Authorization": f"Bearer {token}"} if authenticated else {}
        data = None
        if json_body is not None:
            data = json.dumps(json_body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        last_problem = "no attempt made"
        failures = throttles = 0  # 429s have their own, larger budget: the server said "wait", not "broken"
        while True:
            waited = self.pacer.acquire()
            self._count(requests=1, paced_seconds=waited)
            retry_after: float | None = None
            throttled = False
            try:
                response = self._session.request(
                    method, url, params=params, data=data, headers=headers, timeout=self.timeout
                )
                status = response.status_code
                if status == 401:
                    if authenticated:
                        raise AuthError(f"{endpoint}: token rejected (401)")
                    raise AuthError(
                        f"login refused (401) for {self._credentials.method}: check the credentials"
                    )
                if status in RETRY_STATUSES:
                    last_problem = f"HTTP {status} {_server_message(response)}"
                    if status == 429:
                        throttled = True
                        self._count(throttled=1)
                        retry_after = _retry_after(response)
                        if retry_after is not None:
                            self.pacer.penalize(retry_after)
                elif status >= 400:
                    raise ApiError(
                        f"{endpoint} failed: HTTP {status} {_server_message(response)}",
                        status=status,
                        endpoint=endpoint,
                    )
                else:
                    try:
                        return (decode or json.loads)(response.content) if response.content else None
                    except ValueError as exc:
                        last_problem = f"unparseable JSON ({exc})"
            except TRANSIENT_ERRORS as exc:
                last_problem = f"{type(exc).__name__}: {SECRETS.redact(str(exc))}"
            if throttled:
                throttles += 1
                if throttles >= self.max_throttled:
                    raise ApiError(
                        f"{endpoint} still throttled (429) after {throttles} tries: {last_problem}", endpoint=endpoint
                    )
            else:
                failures += 1
                if failures >= self.max_tries:
                    raise ApiError(f"{endpoint} failed after {failures} tries: {last_problem}", endpoint=endpoint)
            delay = self._backoff(max(failures, throttles), retry_after)
            log.info("%s: %s; retry in %.2fs", endpoint, last_problem, delay)
            self._count(retries=1)
            self._sleep(delay)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max)
        exponential = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        return random.uniform(exponential / 2, exponential)

    def _count(self, **increments: float) -> None:
        with self._stats_lock:
            for name, value in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _server_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return SECRETS.redact(response.text[:200])
    if isinstance(body, dict):
        parts = [str(body.get(k)) for k in ("code", "message") if body.get(k)]
        if parts:
            return SECRETS.redact(": ".join(parts))
    return SECRETS.redact(str(body)[:200])
