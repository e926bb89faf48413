"""The sandbox as a Python object: configuration, tokens, counters, and the server lifecycle."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from .accounts import Account, make_accounts
from .bucket import BucketRegistry
from .data import Store
from .drift import DriftProfile
from .faults import FaultConfig, FaultInjector


@dataclass
class SandboxConfig:
    seed: int = 1
    orders: int = 5000
    products: int = 2000
    rate: float | None = 2.0  # requests/s leaked per token; None disables throttling
    burst: int = 40
    token_ttl: float = 3600.0  # seconds on `clock` (the tokens' `exp`)
    latency: float = 0.0  # real seconds slept before each response
    api_keys: tuple[str, ...] = ("sandbox-api-key",)
    users: dict[str, str] = field(default_factory=lambda: {"demo@sqquid.test": "sandbox-password"})
    clock: Callable[[], float] = time.time  # Unix time, as a JWT's `exp`
    faults: FaultConfig = field(default_factory=FaultConfig)
    host: str = "127.0.0.1"
    port: int = 0  # 0 = a free port
    prewarm: bool = False  # fill the record cache at start (first listing pass as fast as later ones)
    cache_mb: int = 256  # serialized records kept for later pages (the rest is made again when asked)
    drift: DriftProfile | bool | None = None  # None/False: the reference's shapes; True: DriftProfile()
    accounts: int | None = None  # None: one account (api_keys, users); N: acct1..acctN (``accounts.py``)
    size_spread: float = 0.5  # with accounts: each account's orders/products within this fraction of the above


class Stats:
    """Request counters; ``by_route`` keys are route templates such as ``GET /v1/orders``."""

    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.throttled = 0
            self.logins = 0
            self.faults_injected = 0
            self.by_route: Counter = Counter()
            self.faults_by_kind: Counter = Counter()
            self.by_account: dict[str, Counter] = {}  # many accounts: {name: {requests, throttled}}

    def count(self, route: str | None) -> None:
        with self._lock:
            self.requests += 1
            if route:
                self.by_route[route] += 1

    def add(self, name: str, kind: str | None = None) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)
            if kind:
                self.faults_by_kind[kind] += 1

    def account(self, name: str, what: str) -> None:
        """Count ``what`` ("requests" admitted or "throttled") for account ``name``."""
        with self._lock:
            self.by_account.setdefault(name, Counter())[what] += 1

    def to_dict(self) -> dict:
        with self._lock:
            out = {"requests": self.requests, "throttled": self.throttled, "logins": self.logins,
                   "faults_injected": self.faults_injected, "by_route": dict(self.by_route),
                   "faults_by_kind": dict(self.faults_by_kind)}
            if self.by_account:
                out["by_account"] = {name: {"requests": c["requests"], "throttled": c["throttled"]}
                                     for name, c in self.by_account.items()}
            return out


class Tokens:
    def __init__(self, ttl: float, clock: Callable[[], float]):
        self.ttl, self.clock = ttl, clock
        self._expiry: dict[str, tuple[float, str | None]] = {}  # token -> (expiry, account name)
        self._lock = threading.Lock()

    def issue(self, account: str | None = None) -> str:
        """A JWT-shaped token, as the API's: its payload's `exp` is the expiry on `clock` (not
        signed). It reads the data of ``account`` only (None: the sandbox's one account)."""
        expiry = self.clock() + self.ttl
        part = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()  # noqa: E731
        token = ".".join([part(b'{"alg":"HS256","typ":"JWT"}'),
                          part(json.dumps({"exp": expiry, "jti": secrets.token_hex(8)}).encode()),
                          part(secrets.token_bytes(32))])
        with self._lock:
            self._expiry[token] = (expiry, account)
        return token

    def check(self, token: str) -> tuple[bool, str | None]:
        """(whether the token is valid now, the account it was issued to)."""
        if not self.valid(token):  # through ``valid``: a test may replace it
            return False, None
        with self._lock:
            entry = self._expiry.get(token)
        return (False, None) if entry is None else (True, entry[1])

    def valid(self, token: str) -> bool:
        with self._lock:
            entry = self._expiry.get(token)
            if entry is None:
                return False
            if self.clock() >= entry[0]:
                del self._expiry[token]
                return False
            return True

    def expire_all(self) -> int:
        with self._lock:
            n = len(self._expiry)
            self._expiry.clear()
            return n


class Sandbox:
    """A loopback Sqquid API. ``with Sandbox(cfg) as sb: sb.url ...``"""

    def __init__(self, config: SandboxConfig | None = None):
        self.config = config or SandboxConfig()
        cfg = self.config
        drift = DriftProfile() if cfg.drift is True else cfg.drift or None
        self.accounts: dict[str, Account] = {}
        self.store: Store | None = None  # the one account's data (None with many accounts: see ``accounts``)
        if cfg.accounts is None:
            self.store = Store(cfg.seed, cfg.orders, cfg.products, cache_bytes=cfg.cache_mb << 20, drift=drift)
            self.key_accounts = dict.fromkeys(cfg.api_keys)  # api key -> account name (None: the one)
            self.user_accounts = {user: (pw, None) for user, pw in cfg.users.items()}
        else:
            self.accounts = make_accounts(cfg.accounts, seed=cfg.seed, orders=cfg.orders, products=cfg.products,
                                          spread=cfg.size_spread, cache_bytes=cfg.cache_mb << 20, drift=drift)
            self.key_accounts = {a.api_key: a.name for a in self.accounts.values()}
            self.user_accounts = {a.username: (a.password, a.name) for a in self.accounts.values()}
        self.stats = Stats()
        self.tokens = Tokens(cfg.token_ttl, cfg.clock)
        self.buckets = BucketRegistry(cfg.rate, cfg.burst, cfg.clock)
        self.faults = FaultInjector(cfg.faults)
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("sandbox is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def api_keys(self) -> dict[str, str]:
        """``{account name: api key}`` of a sandbox with many accounts (empty with one)."""
        return {name: a.api_key for name, a in self.accounts.items()}

    def store_for(self, account: str | None) -> Store:
        """The data of ``account`` (None with one account); ValueError names what is expected."""
        if not self.accounts:
            if account is not None:
                raise ValueError(f"this sandbox serves one account: no account {account!r} (leave ?account= out)")
            return self.store
        if account not in self.accounts:
            last = f"acct{len(self.accounts)}"
            what = "name one with ?account=" if account is None else f"no account {account!r}:"
            raise ValueError(f"this sandbox serves {len(self.accounts)} accounts: {what} acct1..{last}")
        return self.accounts[account].store

    def set_faults(self, faults: FaultConfig) -> None:
        """Switch fault injection at run time (counters restart)."""
        self.faults.set(faults)

    def expire_tokens(self) -> int:
        """Every token issued so far is invalid from now on."""
        return self.tokens.expire_all()

    def start(self) -> "Sandbox":
        from .server import SandboxServer  # late import: server depends on this module

        if self._server is not None:
            return self
        if self.config.prewarm:
            for store in [self.store] if self.store is not None else [a.store for a in self.accounts.values()]:
                store.warm()
        self._server = SandboxServer((self.config.host, self.config.port), self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="sqquid-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
