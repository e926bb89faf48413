"""The bearer token as the API issues it: a JWT whose `exp` says when it dies. When to refresh
it (a margin before `exp`), and the one token a client holds, shared by its threads.

No signature check and no JWT library: the client only reads `exp` from the payload. A token
whose `exp` cannot be read (not a JWT, no `exp`, or already past by the client's clock) is
kept until the API rejects it (401), as before.
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
from dataclasses import dataclass
from typing import Callable

MIN_MARGIN = 1.0  # seconds: refresh at least this long before `exp` ...
MARGIN_SHARE = 0.10  # ... or this share of the token's lifetime, whichever is longer ...
# ... but never more than half the lifetime: a token is always used for its first half
_EXP = re.compile(r'"exp"\s*:\s*(\d+(?:\.\d+)?)\s*[,}]')


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT (seconds since the epoch), or None when it cannot be read."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1]
    try:
        text = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode("utf-8", "replace")
    except ValueError:  # binascii.Error
        return None
    try:
        claims = json.loads(text)
    except ValueError:  # not JSON (the reference's own example is not quite): a numeric "exp" in it
        found = _EXP.search(text)
        return float(found.group(1)) if found else None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, (int, float)) or not math.isfinite(exp):
        return None
    return float(exp)


def refresh_margin(lifetime: float) -> float:
    """How long before `exp` a token with this lifetime (seconds) is refreshed."""
    return min(max(MIN_MARGIN, MARGIN_SHARE * lifetime), lifetime / 2)


@dataclass(frozen=True)
class Token:
    """A token, its `exp` (None: unreadable) and when to refresh it on the client's clock (None:
    kept until a 401)."""

    value: str
    expires: float | None = None
    refresh_at: float | None = None

    @classmethod
    def issued(cls, value: str, now: float) -> "Token":
        exp = jwt_expiry(value)
        if exp is None or exp <= now:  # no exp; or dead on arrival, or a clock that disagrees
            return cls(value, exp)
        return cls(value, exp, exp - refresh_margin(exp - now))

    def due(self, now: float) -> bool:
        """Time to get a new one (it would die soon)."""
        return self.refresh_at is not None and now >= self.refresh_at

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires


class TokenKeeper:
    """The one token of a client. `current()` hands out the token to attach to a request about
    to be sent, logging in first (one thread at a time) when none is held or it is due."""

    def __init__(self, login: Callable[[], str], clock: Callable[[], float]):
        self._login = login
        self._clock = clock
        self._token: Token | None = None
        self._lock = threading.Lock()

    @property
    def value(self) -> str | None:
        token = self._token
        return token.value if token else None

    def login(self) -> Token:
        """Log in now, whatever is held."""
        with self._lock:
            return self._renew()

    def current(self) -> tuple[Token, bool]:
        """The token to send now, and whether it was just logged in for (True) or held."""
        with self._lock:
            held = self._token
            if held is not None and not held.due(self._clock()):
                return held, False
            return self._renew(), True

    def drop(self, token: Token) -> None:
        """The API rejected `token`: the next `current()` logs in (unless another thread has)."""
        with self._lock:
            if self._token is token:
                self._token = None

    def _renew(self) -> Token:
        value = self._login()
        self._token = Token.issued(value, self._clock())
        return self._token
