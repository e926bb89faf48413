"""The `parquet` kind of destination: a local directory (`parquet.py`) or a storage URL
(`s3://bucket/prefix`, `gs://`, `az://`, ...: `parquet_remote.py`), chosen by the location."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from ..settings import Tuning
from .object_store import is_url


def _resolve(location: Any) -> tuple[Any, Any]:
    """The class that stores at `location`, and the location as that class takes it."""
    if is_url(location):
        return importlib.import_module(f"{__package__}.parquet_remote").StoreParquetDestination, location
    text = os.fspath(location)
    local = text[len("file://"):] if text.startswith("file://") else location
    return importlib.import_module(f"{__package__}.parquet").ParquetDestination, local


class ParquetKind:
    """A DestinationKind (`protocol.py`) that hands each location to the class that stores there."""

    multi_account = True  # a directory or a storage URL may be bound to an account (`account=`)
    kind_name = "Parquet"

    @staticmethod
    def check(location: Any, tuning: Tuning) -> None:
        kind, where = _resolve(location)
        kind.check(where, tuning)

    @staticmethod
    def check_form(location: Any, account: str | None) -> None:
        """A ConfigError when an existing local directory is not of the form it would be opened
        in (single- or multi-account); on object storage the open tells."""
        if not is_url(location):
            from .parquet_layout import ParquetLayout

            root = Path(_resolve(location)[1])
            if (root / ".sqquid").is_dir():
                ParquetLayout(root, account).check_form()

    @staticmethod
    def missing(location: Any) -> str | None:
        kind, where = _resolve(location)
        return kind.missing(where)

    def __call__(self, location: Any, tuning: Tuning | None = None, *, read_only: bool = False,
                 account: str | None = None) -> Any:
        kind, where = _resolve(location)
        if account is None:
            return kind(where, tuning, read_only=read_only)
        return kind(where, tuning, read_only=read_only, account=account)

    @staticmethod
    def upgrade(location: Any, account: str) -> str:
        """Make a single-account directory or prefix multi-account in place (`parquet_upgrade.py`,
        `parquet_store_upgrade.py`)."""
        if is_url(location):
            from .parquet_store_upgrade import upgrade_store

            return upgrade_store(location, account)
        from .parquet_upgrade import upgrade_parquet

        return upgrade_parquet(_resolve(location)[1], account)


PARQUET = ParquetKind()
