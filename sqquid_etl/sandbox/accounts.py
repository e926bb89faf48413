"""Many accounts in one sandbox (``SandboxConfig(accounts=N)``), as the API serves many.

Account i (1-based) is named ``acct{i}``. Each has its own api key and login, and its own data:
a ``Store`` seeded from (seed, i), its size drawn from (seed, i) within ``spread`` of the
configured orders and products (so accounts differ in size), and its share of the byte cache.
The server gives each its own tokens and its own leaky bucket (the API limits an account, not a
token). Records are made from the seed when asked, so an account costs its compact layout
(~0.8 MB at 5,000 orders and 2,000 products), not its records.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from .data import Store
from .drift import DriftProfile


@dataclass(frozen=True)
class Account:
    """One account of the sandbox: its name, credentials and data."""
    name: str
    api_key: str
    username: str
    password: str
    store: Store

    @property
    def sizes(self) -> dict[str, int]:
        return {"orders": self.store.book.layout.count, "products": self.store.catalog.layout.count}


def account_name(i: int) -> str:
    return f"acct{i}"


def account_seed(seed: int, i: int) -> int:
    """The seed of account i's data: a pure function of (seed, i)."""
    digest = hashlib.blake2b(f"sandbox:{seed}:account:{i}".encode(), digest_size=6).digest()
    return int.from_bytes(digest, "little")


def account_key(seed: int, i: int) -> str:
    """Account i's api key: stable for a seed (a config can keep it), distinct per account."""
    return f"sandbox-key-acct{i}-" + hashlib.sha256(f"sandbox:{seed}:key:{i}".encode()).hexdigest()[:16]


def account_size(seed: int, i: int, what: str, configured: int, spread: float) -> int:
    """``configured`` scaled by a factor drawn from (seed, i) in [1 - spread, 1 + spread]."""
    factor = 1.0 + spread * (2.0 * random.Random(f"sandbox:{seed}:account:{i}:{what}").random() - 1.0)
    return max(0, round(configured * factor))


def make_accounts(count: int, *, seed: int, orders: int, products: int, spread: float,
                  cache_bytes: int, drift: DriftProfile | None) -> dict[str, Account]:
    """``{name: Account}`` for accounts 1..count, in order; the cache budget is shared out."""
    if count < 1:
        raise ValueError("accounts must be at least 1")
    if not 0.0 <= spread < 1.0:
        raise ValueError("size_spread must be in [0, 1)")
    out = {}
    for i in range(1, count + 1):
        name = account_name(i)
        store = Store(account_seed(seed, i), account_size(seed, i, "orders", orders, spread),
                      account_size(seed, i, "products", products, spread),
                      cache_bytes=cache_bytes // count, drift=drift)
        out[name] = Account(name, account_key(seed, i), f"{name}@sqquid.test", f"sandbox-password-{name}", store)
    return out
