"""sqquid-etl: extract the Sqquid retail API into DuckDB or Parquet, and load inventory back."""

from .client import Credentials, SqquidClient
from .errors import ApiError, AuthError, ConfigError, InputError, SchemaError, SqquidError, StateError
from .pipeline import ExtractResult, extract

__all__ = [
    "ApiError", "AuthError", "ConfigError", "Credentials", "ExtractResult", "InputError", "SchemaError",
    "SqquidClient", "SqquidError", "StateError", "extract", "load_inventory",
]
__version__ = "0.1.0"


def load_inventory(*args, **kwargs):
    """Apply a DataFrame (or CSV/Parquet file) as a partial or full inventory update.
    See `sqquid_etl.reverse.load_inventory`."""
    from .reverse import load_inventory as _load_inventory

    return _load_inventory(*args, **kwargs)
