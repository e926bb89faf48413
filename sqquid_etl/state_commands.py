"""Look at and change incremental state, for any destination.

`show`, `set_cursor` and `reset` work through the destination protocol only; a corrupt state is
a StateError naming where it is stored (never read as "no state", which would mean a silent full
re-extract). Setting one stream's cursor works while another stream's state is corrupt, and
resetting every stream repairs a store that cannot be read at all.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from .definitions import StreamDefinition, load_definitions
from .destinations import Destination, open_existing
from .errors import ConfigError, StateError
from .settings import Tuning
from .state import NO_PARTITION, StreamState, after_now, format_timestamp, parse_timestamp


@contextmanager
def open_state_destination(duckdb: str | Path | None = None, parquet: str | Path | None = None,
                           *, tuning: Tuning | None = None, read_only: bool = False, **others: str) -> Iterator[Destination]:
    """Open an existing extract (default ./sqquid.duckdb; `others`: another kind, as
    `iceberg=...`); never create one, nor write into what is not an extract's; `read_only`
    (looking): nothing written at all."""
    destination = open_existing(duckdb, parquet, tuning=tuning, read_only=read_only, **others)
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
    if stream is None:
        return dict(sorted(destination.load_states().items()))
    _definition(stream, load_definitions())
    return {stream: destination.load_state(stream) or StreamState()}  # another stream's corrupt state does not matter


def set_cursor(destination: Destination, stream: str, cursor: str, partition: str | None = None) -> StreamState:
    """Set the bookmark of an incremental stream (every partition, or the one given). The next
    extract starts at the cursor minus the lookback. A corrupt state of this stream is replaced."""
    definition = _definition(stream, load_definitions())
    if definition.cursor is None:
        raise ConfigError(f"stream {stream!r} is a full refresh every run: it has no cursor to set")
    parsed = parse_timestamp(cursor, "--cursor")
    if after_now(parsed):
        raise ConfigError(f"--cursor {cursor}: after now ({format_timestamp(datetime.now(timezone.utc))}); every "
                          "extract would read nothing until then: give a date in the past")
    value = format_timestamp(parsed)
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
        state = destination.load_state(stream) or StreamState()
    except StateError:
        state = StreamState()  # the corrupt one may be this stream's: setting it is the fix
    for key in keys:
        state.cursors[key] = value
    destination.save_state(stream, state)
    return state


def reset(destination: Destination, stream: str | None = None) -> list[str]:
    """Forget the state of one stream (or all): the next extract starts from the start date.
    Returns the streams whose state was removed."""
    if stream is not None:
        _definition(stream, load_definitions())
        had = stream in destination.state_streams()
        destination.save_state(stream, None)
        return [stream] if had else []
    names = destination.state_streams()
    destination.clear_states()
    return names
