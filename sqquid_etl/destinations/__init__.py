"""Destinations: DuckDB (default), Parquet (a directory or object storage) and Apache Iceberg,
behind one interface (`protocol.Destination`).

Callers get a destination from these functions and use only the protocol. A new kind of
destination is a class (or, as `parquet_kind.PARQUET`, an object) implementing the
protocol's `DestinationKind` (a `Destination`, plus `check(location, tuning)` and
`missing(location)`), added to KINDS; the functions below take it as a keyword named after its
kind (`open_destination(iceberg="s3://...")`).

Modules: `protocol` (the interface), `duckdb` / `parquet` (the two kinds and their writers),
`parquet_layout` (a Parquet directory and its generations), `state_file` (state as one JSON
file), `files` (durable file operations), `staging` + `buffer` (pages staged before a commit),
`merge_sql` (SQL of merges and reads), `duckdb_tuning` (memory, threads, the memory-limit retry),
`duckdb_own` (what marks a database as an extract's, and opening one); `parquet_kind` (a
directory or a URL), `parquet_remote` + `parquet_store_layout` (Parquet on object storage: a
manifest commit), `object_store` (objects under a URL, conditional writes), `store_lock` (one
writer a prefix); `iceberg` + `iceberg_writer` (the Iceberg kind), `iceberg_catalog` (location,
SQL catalog, one writer a stream), `iceberg_commit` (commits retried, tables made once);
`account_scope` (a destination bound to one account of a multi-account location: the `account`
column, scoped definitions), `duckdb_shared` (one DuckDB database a file in a process, one
writer), `duckdb_writer` (DuckDB's stream writer), `duckdb_merge` (its merge of rows into a table
holding rows: only those new or changed written); `duckdb_upgrade`, `parquet_upgrade`,
`parquet_store_upgrade` (a single-account location made multi-account: `upgrade_destination`).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..settings import DEFAULT_DUCKDB, Tuning
from .account_scope import check_account
from .protocol import Destination, DestinationKind, StreamWriter

__all__ = ["Destination", "DestinationKind", "StreamWriter", "KINDS", "check_destination", "open_destination", "open_existing",
           "opened_to_check", "upgrade_destination"]

# kind -> (module, class), imported when used; none given: DuckDB at DEFAULT_DUCKDB
KINDS: dict[str, tuple[str, str]] = {
    "duckdb": (f"{__name__}.duckdb", "DuckDBDestination"),
    "parquet": (f"{__name__}.parquet_kind", "PARQUET"),  # a directory, or a storage URL (s3://...)
    "iceberg": (f"{__name__}.iceberg", "IcebergDestination"),  # WAREHOUSE[?catalog=URL&namespace=NAME]
}


def _choose(duckdb: str | Path | None, parquet: str | Path | None, others: dict[str, Any]) -> tuple[DestinationKind, Any]:
    """The class of the one destination given (DuckDB at DEFAULT_DUCKDB when none is) and its location."""
    unknown = set(others) - set(KINDS)
    if unknown:
        raise TypeError(f"unknown destination kind(s): {', '.join(sorted(unknown))}")
    given = {kind: location for kind, location in {"duckdb": duckdb, "parquet": parquet, **others}.items() if location}
    if len(given) > 1:
        raise ConfigError("give either " + " or ".join(f"--{kind}" for kind in given) + ", not both")
    kind, location = next(iter(given.items())) if given else ("duckdb", DEFAULT_DUCKDB)
    module, name = KINDS[kind]
    return getattr(importlib.import_module(module), name), location


def _tuning(tuning: Tuning | None) -> Tuning:
    # settings are resolved by the caller (the CLI, `extract(...)`); none given: the defaults
    return Tuning() if tuning is None else tuning


def _bound(account: str | None) -> dict[str, str]:
    """The keyword binding a destination to an account (`account_scope.py`); none: {} (a kind
    that has no multi-account form is never given one)."""
    check_account(account)
    return {} if account is None else {"account": account}


def _accepts(kind: DestinationKind, account: str | None) -> None:
    if account is not None and not getattr(kind, "multi_account", False):
        raise ConfigError(f"account {account!r}: {getattr(kind, 'kind_name', 'this destination')} has no multi-account "
                          "form yet; extract many accounts into DuckDB or Parquet")


def check_destination(duckdb: str | Path | None = None, parquet: str | Path | None = None, *,
                      tuning: Tuning | None = None, account: str | None = None, look: bool = True,
                      **others: Any) -> None:
    """Refuse a destination that cannot be written, or tuning that is not usable, before
    anything is requested or created. `account`: it is to be bound to that account. `look`:
    an existing location's form is checked too (False: the caller opens it next, which checks
    it, `opened_to_check`)."""
    kind, location = _choose(duckdb, parquet, others)
    _bound(account)
    _accepts(kind, account)
    kind.check(location, _tuning(tuning))
    check_form = getattr(kind, "check_form", None)
    if look and check_form is not None:  # a single-account location given an account, or the reverse
        check_form(location, account)


def opened_to_check(duckdb: str | Path | None = None, parquet: str | Path | None = None, **others: Any) -> bool:
    """Whether the destination is checked by opening it, for less than a look before it is
    opened (`check_destination(look=False)`, then opened before anything is requested): an
    existing DuckDB file, whose every open costs ~15 ms of a scheduled run's CPU."""
    kind, location = _choose(duckdb, parquet, others)
    opened = getattr(kind, "opened_to_check", None)
    return bool(opened is not None and opened(location))


def open_destination(duckdb: str | Path | None = None, parquet: str | Path | None = None, *,
                     tuning: Tuning | None = None, account: str | None = None, **others: Any) -> Destination:
    """The destination to extract into (created when it does not exist). `account`: bound to
    that account of a multi-account location (every table's rows, state and runs its own; see
    `account_scope.py`); None: a single-account location, as before accounts existed. The two
    are never mixed: opening one in the other's form is a ConfigError naming the upgrade."""
    kind, location = _choose(duckdb, parquet, others)
    _accepts(kind, account)
    return kind(location, _tuning(tuning), **_bound(account))


def open_existing(duckdb: str | Path | None = None, parquet: str | Path | None = None, *, must_exist: bool = True,
                  tuning: Tuning | None = None, read_only: bool = False, account: str | None = None,
                  **others: Any) -> Destination:
    """A destination an extract made, to look at (`read_only`: nothing written) or change its
    state: a ConfigError, and nothing created or changed, when there is none or what is there is
    not an extract's (unless `must_exist` is False). `account`: as `open_destination`."""
    kind, location = _choose(duckdb, parquet, others)
    _accepts(kind, account)
    why = kind.missing(location) if must_exist else None
    if why:
        raise ConfigError(why)
    if read_only:
        return kind(location, _tuning(tuning), read_only=True, **_bound(account))
    return kind(location, _tuning(tuning), **_bound(account))


def upgrade_destination(duckdb: str | Path | None = None, parquet: str | Path | None = None, *, account: str,
                        **others: Any) -> str:
    """Make a single-account destination multi-account in place, its rows, states and run
    records becoming `account`'s (`sqquid-etl upgrade --account NAME`): all or nothing; one
    already multi-account is left as it is. Returns what was done, for the user."""
    kind, location = _choose(duckdb, parquet, others)
    check_account(account)
    upgrade = getattr(kind, "upgrade", None)
    if upgrade is None:
        _accepts(kind, account)  # a kind with no multi-account form says so
        raise ConfigError(f"{getattr(kind, 'kind_name', 'this destination')} cannot be upgraded in place")
    why = kind.missing(location)
    if why:
        raise ConfigError(why)
    return upgrade(location, account)
