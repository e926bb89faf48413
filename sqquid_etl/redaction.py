"""Keep secrets out of logs, exception messages and reprs."""

from __future__ import annotations

import logging
import threading

MASK = "***"

# keys whose values are a customer's personal data (names, emails, phones, addresses): shown by
# kind only by `check`, replaced by fakes in a `capture`
PERSONAL = ("name", "email", "phone", "address", "street", "city", "zip", "postal", "company")


def is_personal(key: str) -> bool:
    return any(word in key.lower() for word in PERSONAL)


def fingerprint(value: str) -> str:
    """Personal data (a username) as it may be shown in logs and messages: the first 8 hex
    digits of its SHA-256, the same for the same value, so runs can be told apart without it."""
    import hashlib

    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:8]


class SecretRegistry:
    """The secrets of this process (api keys, passwords, tokens) and how to mask them in text."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            with self._lock:
                self._secrets.add(secret)

    def redact(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


SECRETS = SecretRegistry()


class RedactingFilter(logging.Filter):
    """A logging filter that masks every registered secret in the final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = SECRETS.redact(message)
        if redacted != message or record.args:
            record.msg = redacted
            record.args = None
        return True


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Attach the redacting filter to every handler of the root (or given) logger."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    log = logging.getLogger("sqquid_etl")
    if not any(isinstance(f, RedactingFilter) for f in log.filters):
        log.addFilter(RedactingFilter())
