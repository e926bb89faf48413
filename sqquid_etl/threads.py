"""Thread names: an account's thread (many accounts, `accounts_run.py`) is `sqquid-account-NAME`,
and the threads it starts (fetch workers) carry its name, so that a log line says which account
it is about whichever thread writes it (`progress.configure_logging`)."""

from __future__ import annotations

import threading

ACCOUNT_PREFIX = "sqquid-account-"


def account_thread_name(account: str) -> str:
    return f"{ACCOUNT_PREFIX}{account}"


def worker_name(kind: str) -> str:
    """`sqquid-KIND`, or `sqquid-account-NAME/KIND` when started by an account's thread."""
    current = threading.current_thread().name
    return f"{current}/{kind}" if current.startswith(ACCOUNT_PREFIX) else f"sqquid-{kind}"


def current_account() -> str | None:
    """The account whose thread (or one of its workers) this is; None outside a run of many accounts."""
    current = threading.current_thread().name
    if not current.startswith(ACCOUNT_PREFIX):
        return None
    return current[len(ACCOUNT_PREFIX):].split("/", 1)[0]
