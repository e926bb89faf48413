"""Who the client is and where it goes: the credentials (an api key, or a username and
password) and the API's base URL, resolved from options or the environment at the edge."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .errors import ConfigError
from .redaction import fingerprint

DEFAULT_BASE_URL = "https://api.sqquid.com"


@dataclass(frozen=True)
class Credentials:
    """An api key, or a username and password. The repr never shows a secret."""

    api_key: str | None = field(default=None, repr=False)
    username: str | None = field(default=None, repr=False)  # personal data: shown hashed (`method`)
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not (self.api_key or (self.username and self.password)):
            raise ConfigError(
                "no credentials: give an api key (--api-key or SQQUID_API_KEY) or a username and "
                "password (--username/--password or SQQUID_USERNAME/SQQUID_PASSWORD)"
            )

    @property
    def secret(self) -> str:
        """What must never be shown: the api key, or the password."""
        return self.api_key or self.password or ""

    @property
    def method(self) -> str:
        return "api_key" if self.api_key else f"username {fingerprint(self.username or '')} (hashed)"

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


def base_url_from_env(base_url: str | None = None, env: dict[str, str] | None = None) -> str:
    """The base URL given, else SQQUID_BASE_URL, else the API's (resolved at the edge, like the credentials)."""
    env = os.environ if env is None else env
    return base_url or env.get("SQQUID_BASE_URL") or DEFAULT_BASE_URL


def check_base_url(base_url: str) -> str:
    """Return the base URL without a trailing slash; refuse plain http to a non-loopback host."""
    try:
        parts = urlsplit(base_url)
        host = parts.hostname
    except ValueError:  # e.g. an IPv6 address left open: "http://[::1"
        host = None
    if not host or parts.scheme not in ("http", "https"):
        raise ConfigError(f"base URL {base_url!r} is not an http(s) URL")
    if parts.scheme == "http" and not _is_loopback(host):
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
