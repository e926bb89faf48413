"""Commits to an Iceberg table that may have other writers: a table made once (whoever is
first), and a change retried on a fresh copy of the table when another writer committed first."""

from __future__ import annotations

import random
import time
import warnings
from typing import Any, Callable

import pyarrow as pa

from ..errors import StateError
from .iceberg_catalog import iceberg_schema

STREAM = "sqquid.stream"  # on a stream's first table: the stream whose state it holds
STATE = "sqquid.state"  # that stream's state (JSON), set by the same commit as the table's data
EVOLVED = "sqquid.evolved"  # JSON list of the columns added for undocumented fields
PRIMARY_KEY = "sqquid.primary-key"  # JSON list
ATTEMPTS = 8
# (data files of 8 MB in memory; the metadata files of the last 20 commits kept, older ones deleted)
TABLE_PROPERTIES = {"write.target-file-size-bytes": str(8 * 1024 * 1024),
                    "write.metadata.delete-after-commit.enabled": "true", "write.metadata.previous-versions-max": "20"}


def load_table(catalog: Any, identifier: tuple[str, str]) -> Any:
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        return None


def ensure_table(catalog: Any, identifier: tuple[str, str], schema: pa.Schema, properties: dict) -> Any:
    """The table, made with `schema` (all columns optional) when it does not exist yet."""
    from pyiceberg.exceptions import TableAlreadyExistsError

    table = load_table(catalog, identifier)
    if table is not None:
        return table
    try:
        return catalog.create_table(identifier, schema=iceberg_schema(schema), properties={**TABLE_PROPERTIES, **properties})
    except TableAlreadyExistsError:  # another writer made it in between
        return catalog.load_table(identifier)


def retried(catalog: Any, identifier: tuple[str, ...], change: Callable[[Any, Any], None]) -> Any:
    """Apply `change(table, transaction)` to the table and commit it; when another writer's commit got
    in first, again on the table as it now is (a few times, after a short random wait)."""
    from pyiceberg.exceptions import CommitFailedException

    for attempt in range(ATTEMPTS):
        table = catalog.load_table(identifier)
        transaction = table.transaction()
        change(table, transaction)
        try:
            return transaction.commit_transaction()
        except CommitFailedException as exc:
            if attempt == ATTEMPTS - 1:
                raise StateError(f"table {'.'.join(identifier)}: commit refused {ATTEMPTS} times by other writers' "
                                 f"commits ({exc}); nothing of this commit is stored, run again") from None
            time.sleep(random.uniform(0.01, 0.05 * 2 ** attempt))  # others' commits go first
    raise AssertionError("unreachable")


def quietly(delete: Callable[..., None], *args: Any) -> None:
    """A delete whose filter may match nothing (pyiceberg warns of it: nothing to say here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Delete operation did not match any records")
        delete(*args)


def remove_orphan_files(table: Any) -> int:
    """Delete the data files under the table's `data/` that no snapshot lists (those of a run
    killed before its commit). Only for a table no other process writes (this one holds its
    stream's lock): another writer's files are unlisted until its commit. Returns how many."""
    from .iceberg_scan import listed_files
    from .object_store import ObjectStore

    listed = listed_files(table)
    store = ObjectStore(table.location(), "--iceberg")
    orphans = [name for name in store.list("data") if store.where(name) not in listed]
    store.delete(orphans)
    return len(orphans)
