"""sqquid-etl: extract the Sqquid retail API into DuckDB or Parquet, and load inventory back."""

from typing import Any

from .client import Credentials, SqquidClient
from .errors import ApiError, AuthError, ConfigError, InputError, SchemaError, SqquidError, StateError

__all__ = [
    "ApiError", "AuthError", "ConfigError", "Credentials", "ExtractResult", "InputError", "SchemaError",
    "SqquidClient", "SqquidError", "StateError", "extract", "load_buffers", "load_inventory",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """`extract` and `ExtractResult` are imported on first use: importing the package (the CLI
    does, first) does not load pyarrow and DuckDB, so the CLI can choose Arrow's allocator."""
    if name in ("extract", "ExtractResult"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_inventory(*args, **kwargs):
    """Apply a DataFrame (or CSV/Parquet file) as a partial or full inventory update.
    See `sqquid_etl.reverse.load_inventory`."""
    from .reverse import load_inventory as _load_inventory

    return _load_inventory(*args, **kwargs)


def load_buffers(*args, **kwargs):
    """Make the account's dynamic buffers those of a DataFrame (or CSV/Parquet file).
    See `sqquid_etl.buffers.load_buffers`."""
    from .buffers import load_buffers as _load_buffers

    return _load_buffers(*args, **kwargs)
