"""`sqquid-etl upgrade --account NAME` for Parquet on object storage: a single-account prefix made
multi-account (`parquet_store_layout.py`), its tables, state, run and quarantined records becoming
account NAME's. Objects are never changed:

1. each object the manifest lists (and each run record) copied, with a leading `account`
   column, into the account's partition (`<table>/account=NAME/`, ...), and the account's
   manifest written with the old manifest's states: nothing a reader follows changes;
2. commit: the marker of a multi-account prefix (`_sqquid/accounts.json`) written;
3. the old objects and the old manifest deleted (a re-run finishes this when interrupted).

The single-account lock is held throughout: no single-account run meanwhile."""

from __future__ import annotations

import uuid

import duckdb

from ..errors import ConfigError
from .account_scope import ACCOUNT, check_account
from .merge_sql import sql_path
from .object_store import ObjectStore
from .parquet_layout import REJECTED_DIR, RUNS_DIR
from .parquet_store_layout import MANIFEST, MULTI_ACCOUNT, Manifest, StoreLayout
from .store_lock import StoreLock


def upgrade_store(location: str, account: str) -> str:
    """Make the prefix at `location` multi-account, its rows `account`'s; returns what was done."""
    check_account(account)
    store = ObjectStore(location)
    layout = StoreLayout(store, account)
    lock = StoreLock(store)
    try:
        lock.acquire()
        tag, data = store.read_tagged(MANIFEST)
        if store.read(MULTI_ACCOUNT) is not None:
            if data is None:
                return _already(store, account)
            if store.read(layout.manifest_name) is None:
                raise ConfigError(f"{store.url}: a multi-account prefix beside a single-account manifest, and no "
                                  f"manifest of account {account!r}: not an upgrade of this account; nothing was changed")
        else:
            old = Manifest.parse(data, store.where(MANIFEST), tag)
            _copy(store, layout, old, account)
            store.write(MULTI_ACCOUNT, b'{"format": 1}\n')  # the commit point
        old = Manifest.parse(data, store.where(MANIFEST), tag)
        store.delete([name for names in old.tables.values() for name in names] + old.rejected + _runs(store))
        store.delete([MANIFEST])
    finally:
        lock.release()
        layout.close()
    return (f"{store.url}: upgraded to a multi-account destination; its rows, states and run records are account "
            f"{account!r}'s (tables: {', '.join(sorted(old.tables)) or 'none yet'})")


def _already(store: ObjectStore, account: str) -> str:
    accounts = sorted({name.split("/")[2] for name in store.list("_sqquid/accounts/") if name.endswith("/manifest.json")})
    if accounts and account not in accounts:
        raise ConfigError(f"{store.url} is already a multi-account destination (accounts: {', '.join(accounts)}); "
                          "upgrade turns a single-account one into one: nothing was changed")
    return f"{store.url} is already a multi-account destination (accounts: {', '.join(accounts) or 'none yet'}); nothing was changed"


def _runs(store: ObjectStore) -> list[str]:
    """The single-account run records (those directly under `_sqquid_runs/`)."""
    return [name for name in store.list(f"{RUNS_DIR}/") if name.count("/") == 1 and name.endswith(".parquet")]


def _copy(store: ObjectStore, layout: StoreLayout, old: Manifest, account: str) -> None:
    """Every object stamped into the account's partition; the account's manifest written."""
    tag = uuid.uuid4().hex[:8]
    tables = {table: [_stamped(store, layout, name, f"{layout.table_prefix(table)}/part-upgrade-{tag}-{i:04d}.parquet", account)
                      for i, name in enumerate(names)] for table, names in old.tables.items()}
    rejected = [_stamped(store, layout, name, layout.new_name(REJECTED_DIR, "upgrade"), account) for name in old.rejected]
    for name in _runs(store):
        _stamped(store, layout, name, f"{RUNS_DIR}/{layout.partition}/{name.split('/', 1)[1]}", account)
    store.write(layout.manifest_name, Manifest(tables, old.states, rejected, old.schema_changes).to_bytes())


def _stamped(store: ObjectStore, layout: StoreLayout, name: str, new: str, account: str) -> str:
    """The object `name` copied to `new` with a leading account column (a checked name: a safe literal)."""
    source, target = layout.work / "upgrade-in.parquet", layout.work / "upgrade-out.parquet"
    store.download(name, source)
    with duckdb.connect() as sql:
        if ACCOUNT in {r[0] for r in sql.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_path(source)})").fetchall()}:
            raise ConfigError(f"{store.where(name)} already has a column named {ACCOUNT!r}: it cannot be upgraded")
        sql.execute(f"COPY (SELECT '{account}'::VARCHAR AS {ACCOUNT}, * FROM read_parquet({sql_path(source)})) "
                    f"TO {sql_path(target)} (FORMAT parquet)")
    store.upload(target, new)
    source.unlink()
    target.unlink()
    return new
