"""HTTP client for the Sqquid API: login and token refresh, pacing, retries, timeouts.

It knows nothing of streams or pages: it sends one request and returns its body, as JSON
(`get`, `request`) or as the bytes that came (`get_body`: list pages, which `decode` reads).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import quote

from .cpu_gate import UNGATED
from .credentials import DEFAULT_BASE_URL, Credentials, base_url_from_env, check_base_url  # noqa: F401 - importable from here
from .errors import ApiError, AuthError
from .pacing import LeakyBucketPacer
from .redaction import SECRETS, SecretRegistry
from .retry import Failure, RetryBudget
from .settings import DEFAULT_BURST, DEFAULT_RATE
from .tokens import Token, TokenKeeper
from .transport import Response, Transport, TransportError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
HEADERS = {"Accept": "application/json", "User-Agent": "sqquid-etl/0.1"}


def quote_segment(value: str) -> str:
    """Quote one URL path segment (skus may hold spaces and slashes)."""
    return quote(str(value), safe="")


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    logins: int = 0
    paced_seconds: float = 0.0
    answer_seconds: float | None = None  # how long the API takes to answer (a moving average; None: not yet asked)
    fastest_answer_seconds: float | None = None  # the quickest answer so far (None: not yet asked)


class SqquidClient:
    """One authenticated, paced, retrying connection to the Sqquid API.

    Safe to share between threads: one token, one pacer, one connection pool (`transport`). The token is
    attached when a request is sent (after the pacer's wait and any backoff), renewed shortly
    before its JWT `exp` on `clock` (seconds since the epoch), and after a 401.
    """

    def __init__(
        self,
        credentials: Credentials,
        base_url: str | None = None,
        *,
        rate: float | None = DEFAULT_RATE,
        burst: int = DEFAULT_BURST,
        max_tries: int = 8,
        max_throttled: int = 60,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        timeout: tuple[float, float] = (10.0, 60.0),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        pacer: LeakyBucketPacer | None = None,
        pool_size: int = 8,
        secrets: SecretRegistry = SECRETS,
        spare_in_flight: int = 1,
        cpu_gate: Any = UNGATED,
        one_of_many: bool = False,
        body_buffers: Any = None,
    ):
        self.base_url = check_base_url(base_url or DEFAULT_BASE_URL)
        self._credentials = credentials
        # the secrets to keep out of messages: the process's registry (which the logging filter
        # reads) unless another is given; the credentials' secret and every token go in it
        self.secrets = secrets
        secrets.add(credentials.secret)
        self.pacer = pacer or LeakyBucketPacer(rate=rate, burst=burst)
        self.max_tries = max(1, max_tries)
        self.max_throttled = max(1, max_throttled)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep
        self._clock = clock
        self._tokens = TokenKeeper(self._login, clock)
        self.stats = ClientStats()
        self._stats_lock = threading.Lock()
        self.pool_size = pool_size
        # requests in flight beyond what the pace needs through twice the answer time (`fetch.default_concurrency`):
        # 1 alone; 0 where many accounts share the process (accounts_run: threads, pages held)
        self.spare_in_flight = spare_in_flight
        # the CPU shared with the other accounts of the process (`cpu_gate.CpuGate`, accounts_run): the
        # page work done for this client (decoding, conversion, staging) is done holding one of its slots
        self.cpu_gate = cpu_gate
        # one of many accounts in the process (accounts_run): its requests in flight sized by its fastest
        # answer, its pages decoded by its consumer (`fetch.one_of_many`), their bodies read into the
        # process's `body_buffers.BodyBuffers` (used again once each page is converted)
        self.one_of_many = one_of_many
        self.transport = Transport(self.base_url, timeout, pool_size)
        self.transport.body_buffers = body_buffers

    @classmethod
    def from_env(cls, base_url: str | None = None, api_key: str | None = None, username: str | None = None,
                 password: str | None = None, **options: Any) -> "SqquidClient":
        """A client for the credentials and base URL given, else the environment's (SQQUID_*)."""
        return cls(Credentials.from_env(api_key, username, password), base_url_from_env(base_url), **options)

    def __repr__(self) -> str:
        return f"SqquidClient(base_url={self.base_url!r}, credentials={self._credentials!r})"

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> "SqquidClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- auth ---------------------------------------------------------------------------------

    def login(self) -> None:
        """Get a fresh token (POST /v1/login) now."""
        self._tokens.login()

    def ensure_token(self) -> None:
        """Log in now unless a token is held and not about to expire (to fail early on bad
        credentials)."""
        self._tokens.current()

    @property
    def _token(self) -> str | None:
        return self._tokens.value

    def _login(self) -> str:
        """POST /v1/login (not paced; retried like any request): the new token."""
        request = _Request.build(self.base_url, "POST", "/v1/login", None, self._credentials.login_body())
        body = self._send(request, self.retry_budget(request.endpoint), _json)
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError("login (POST /v1/login) answered without a token")
        self.secrets.add(token)
        self._count(logins=1)
        log.debug("logged in with %s", self._credentials.method)
        return token

    # -- requests -----------------------------------------------------------------------------

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET and decode the JSON body (a body that is not JSON is retried like any transient failure)."""
        return self.request("GET", path, params=params)

    def get_body(self, path: str, params: dict[str, Any] | None = None, *, budget: RetryBudget | None = None) -> bytes:
        """GET and return the body as it came (list pages: `decode` reads them). `budget`: the
        retry budget to spend, when the caller retries this request itself too."""
        return self._authenticated("GET", path, params, None, budget, _raw)

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
    ) -> Any:
        """Send an authenticated request and return its decoded JSON body.

        A 401 triggers a re-login and a repeat, transient failures a repeat after a backoff,
        all within the request's retry budget.
        """
        return self._authenticated(method, path, params, json_body, None, _json)

    def retry_budget(self, endpoint: str) -> RetryBudget:
        """A fresh retry budget for one request to `endpoint` (e.g. "GET /v1/orders")."""
        return RetryBudget(endpoint, self.max_tries, self.max_throttled, self._wait_to_retry)

    def _authenticated(self, method: str, path: str, params: dict[str, Any] | None, json_body: Any,
                       budget: RetryBudget | None, read: Callable[[bytes], Any]) -> Any:
        request = _Request.build(self.base_url, method, path, params, json_body, authenticated=True)
        return self._send(request, budget or self.retry_budget(request.endpoint), read)

    def _send(self, request: _Request, budget: RetryBudget, read: Callable[[bytes], Any]) -> Any:
        """Attempts until one succeeds or the budget is spent (ApiError)."""
        while True:
            outcome = self._attempt(request)
            if isinstance(outcome, Failure):
                budget.failed(outcome.problem, throttled=outcome.throttled, retry_after=outcome.retry_after)
                continue
            try:
                return read(outcome)
            except ValueError as exc:
                budget.failed(f"unparseable JSON ({exc})")

    def _attempt(self, request: _Request) -> bytes | Failure:
        """One paced attempt: the body of a success, or the failure to retry (a transient
        status or transport error, a 401 that a new token may cure). Raises AuthError on a 401
        no new token can cure, ApiError on another 4xx."""
        # the login is not paced: the bucket limits the calls made with a token (docs/api-notes.md)
        waited = self.pacer.acquire() if request.authenticated else 0.0
        token, fresh = self._tokens.current() if request.authenticated else (None, False)
        self._count(requests=1, paced_seconds=waited)
        headers = request.headers if token is None else {**request.headers, "Authorization": f"Bearer {token.value}"}
        try:
            sent = time.monotonic()
            response = self.transport.send(request.method, request.url, request.params, request.data, headers)
            self._answered(time.monotonic() - sent)
            status = response.status
            if status == 401:
                return self._unauthorized(request, token, fresh)
            if status == 429:
                return self._throttled(response)
            if status in RETRY_STATUSES:
                return Failure(f"HTTP {status} {_server_message(response, self.secrets)}")
            if status >= 400:
                raise ApiError(f"{request.endpoint} failed: HTTP {status} {_server_message(response, self.secrets)}",
                               status=status, endpoint=request.endpoint)
            return response.content
        except TransportError as exc:
            return Failure(self.secrets.redact(str(exc)))

    def _unauthorized(self, request: _Request, token: Token | None, fresh: bool) -> Failure:
        """A 401: to a login, or to a token just logged in for and alive by the clock, an AuthError;
        else the token died: dropped, the request repeated at once (a failure of its budget)."""
        if token is None:
            raise AuthError(f"login refused (401) for {self._credentials.method}: check the credentials")
        if fresh and not token.expired(self._clock()):
            raise AuthError(f"{request.endpoint}: token rejected (401) right after a login with "
                            f"{self._credentials.method}: the API refuses the tokens it issues")
        self._tokens.drop(token)
        return Failure("HTTP 401 token rejected (expired?); logging in again", retry_after=0.0)

    def _throttled(self, response: Response) -> Failure:
        """A 429: counted, and the pacer told to hold off for as long as the server asked."""
        self._count(throttled=1)
        retry_after = _retry_after(response)
        if retry_after is not None:
            self.pacer.penalize(retry_after)
        return Failure(f"HTTP 429 {_server_message(response, self.secrets)}", throttled=True, retry_after=retry_after)

    def _wait_to_retry(self, endpoint: str, problem: str, attempt: int, retry_after: float | None) -> None:
        delay = self._backoff(attempt, retry_after)
        log.info("%s: %s; retry in %.2fs", endpoint, problem, delay)
        self._count(retries=1)
        self._sleep(delay)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max)
        exponential = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        return random.uniform(exponential / 2, exponential)

    def _answered(self, seconds: float) -> None:
        """An answer's time, into the moving average the fetchers size their requests in flight by."""
        with self._stats_lock:
            before = self.stats.answer_seconds
            self.stats.answer_seconds = seconds if before is None else 0.8 * before + 0.2 * seconds
            fastest = self.stats.fastest_answer_seconds
            self.stats.fastest_answer_seconds = seconds if fastest is None else min(fastest, seconds)

    def _count(self, **increments: float) -> None:
        with self._stats_lock:
            for name, value in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)


@dataclass(frozen=True)
class _Request:
    method: str
    url: str
    endpoint: str  # "GET /v1/orders": how errors and logs name it
    params: dict[str, Any] | None
    data: bytes | None
    headers: dict[str, str]  # the token's header is not here: it is added when the request is sent
    authenticated: bool = False

    @classmethod
    def build(cls, base_url: str, method: str, path: str, params: dict[str, Any] | None, json_body: Any,
              authenticated: bool = False) -> "_Request":
        headers, data = dict(HEADERS), None
        if json_body is not None:
            data = json.dumps(json_body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        return cls(method, base_url + path, f"{method} {path}", params, data, headers, authenticated)


def _json(content: bytes) -> Any:
    return json.loads(content) if content else None


def _raw(content: bytes) -> bytes:
    return content


def _retry_after(response: Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _server_message(response: Response, secrets: SecretRegistry) -> str:
    try:
        body = json.loads(response.content)
    except ValueError:
        return secrets.redact(response.text[:200])
    if isinstance(body, dict):
        parts = [str(body.get(k)) for k in ("code", "message") if body.get(k)]
        if parts:
            return secrets.redact(": ".join(parts))
    return secrets.redact(str(body)[:200])
