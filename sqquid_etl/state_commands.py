"""Look at and change incremental state, for DuckDB and Parquet destinations alike.

`show`, `set_cursor` and `reset` work through the destination's `load_states`/`save_state`;
a corrupt state is a StateError naming the file (never read as "no state", which would mean a
silent full re-extract). Resetting every stream also repairs a Parquet state file that is not
JSON at all.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .definitions import StreamDefinition, load_definitions
from .destinations.base import Destination
from .errors import ConfigError, StateError
from .state import NO_PARTITION, StreamState, format_timestamp, parse_timestamp


@contextmanager
def open_state_destination(duckdb: str | Path | None = None, parquet: str | Path | None = None,
                           *, must_exist: bool = True) -> Iterator[Destination]:
    """Open an existing destination (default ./sqquid.duckdb); never create one by looking at it."""
    if duckdb and parquet:
        raise ConfigError("give either --duckdb or --parquet, not both")
    if parquet:
        path = Path(parquet)
        if must_exist and not path.is_dir():
            raise ConfigError(f"--parquet {path}: no such directory (nothing extracted there yet)")
        from .destinations.parquet import ParquetDestination

        destination: Destination = ParquetDestination(path)
    else:
        path = Path(duckdb or "sqquid.duckdb")
        if must_exist and not path.is_file():
            raise ConfigError(f"--duckdb {path}: no such DuckDB file (nothing extracted there yet)")
        from .destinations.duckdb import DuckDBDestination

        destination = DuckDBDestination(path)
    try:
        yield destination
    finally:
        destination.close()


def _definition(name: str, definitions: dict[str, StreamDefinition]) -> StreamDefinition:
    if name not in definitions:
        raise ConfigError(f"unknown stream {name!r}; known streams: {', '.join(definitions)}")
    return definitions[name]


def show(destination: Destination, stream: str | None = None) -> dict[str, StreamState]:
    """Every stream's stored state (or one stream's; an empty state if it has none)."""
    states = destination.load_states()
    if stream is None:
        return dict(sorted(states.items()))
    _definition(stream, load_definitions())
    return {stream: states.get(stream, StreamState())}


def set_cursor(destination: Destination, stream: str, cursor: str, partition: str | None = None) -> StreamState:
    """Set the bookmark of an incremental stream (every partition, or the one given). The next
    extract starts at the cursor minus the lookback. A corrupt state of this stream is replaced."""
    definition = _definition(stream, load_definitions())
    if definition.cursor is None:
        raise ConfigError(f"stream {stream!r} is a full refresh every run: it has no cursor to set")
    value = format_timestamp(parse_timestamp(cursor, "--cursor"))
    if definition.partition:
        values = definition.partition.values
        if partition is not None and partition not in values:
            raise ConfigError(f"--partition {partition!r}: stream {stream!r} has partitions {', '.join(values)}")
        keys = [partition] if partition is not None else list(values)
    else:
        if partition is not None:
            raise ConfigError(f"--partition: stream {stream!r} is not partitioned")
        keys = [NO_PARTITION]
    try:
        state = destination.load_states().get(stream, StreamState())
    except StateError:
        state = StreamState()  # the corrupt one may be this stream's: setting it is the fix
    for key in keys:
        state.cursors[key] = value
    _write(destination, stream, state)
    return state


def reset(destination: Destination, stream: str | None = None) -> list[str]:
    """Forget the state of one stream (or all): the next extract starts from the start date.
    Returns the streams whose state was removed."""
    if stream is not None:
        _definition(stream, load_definitions())
        try:
            had = stream in destination.load_states()
        except StateError:
            had = True
        _write(destination, stream, None)
        return [stream] if had else []
    try:
        names = sorted(destination.load_states())
    except StateError:
        if _is_parquet(destination):
            names = sorted(_raw_parquet_states(destination) or {})
            _rewrite_parquet(destination, {})
            return names
        names = _duckdb_state_streams(destination)
    for name in names:
        destination.save_state(name, None)
    return names


def _is_parquet(destination: Destination) -> bool:
    from .destinations.parquet import ParquetDestination

    return isinstance(destination, ParquetDestination)


def _duckdb_state_streams(destination: Destination) -> list[str]:
    from .destinations.duckdb import STATE_TABLE

    rows = destination.conn.execute(f"SELECT DISTINCT stream FROM {STATE_TABLE}").fetchall()  # type: ignore[attr-defined]
    return sorted(r[0] for r in rows)


def _parquet_state_path(destination: Destination) -> Path:
    from .destinations.parquet import STATE_FILE

    return destination.root / STATE_FILE  # type: ignore[attr-defined]


def _raw_parquet_states(destination: Destination) -> dict | None:
    try:
        raw = json.loads(_parquet_state_path(destination).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def _rewrite_parquet(destination: Destination, states: dict) -> None:
    from .destinations.parquet import write_atomic

    write_atomic(_parquet_state_path(destination), (json.dumps(states, indent=2, sort_keys=True) + "\n").encode())


def _write(destination: Destination, stream: str, state: StreamState | None) -> None:
    """save_state; for a Parquet state file that another stream's corrupt entry keeps from
    loading, edit this stream's entry in the JSON and leave the rest as it is."""
    try:
        destination.save_state(stream, state)
        return
    except StateError:
        if not _is_parquet(destination):
            raise
    raw = _raw_parquet_states(destination)
    if raw is None:
        raise StateError(f"{_parquet_state_path(destination)}: not a JSON object, so one stream's state cannot be "
                         "changed in it; 'sqquid-etl state reset' (every stream) replaces it") from None
    if state is None:
        raw.pop(stream, None)
    else:
        raw[stream] = json.loads(state.to_json())
    _rewrite_parquet(destination, raw)
