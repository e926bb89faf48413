"""Deprecated: import `Destination` / `StreamWriter` from `sqquid_etl.destinations` instead.

Kept only while `engine.py` and `reconcile.py` import them from here; delete it then."""

from .protocol import Destination, StreamWriter

__all__ = ["Destination", "StreamWriter"]
