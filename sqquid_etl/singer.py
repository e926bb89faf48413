"""Singer messages: a commit of the engine as SCHEMA, RECORD and STATE lines (the Singer spec).

One Singer stream per table (`orders`, `order_items`, ...: what `sqquid-etl extract` writes to
DuckDB), its SCHEMA sent before its first RECORD, `key_properties` its primary key and
`bookmark_properties` the stream's cursor. Timestamps are RFC 3339 strings, decimals strings
(`"format": "singer.decimal"`, exact), nested lists and objects JSON arrays and objects. A STATE
follows the records of each commit, so a target that stores the state has stored the rows first.

The state is `{"bookmarks": {stream: {"cursors": {partition: ISO}, ...}}, "sqquid_keys": {...}}`:
bookmarks are the engine's `StreamState`s, `sqquid_keys` the skus inventory is listed by.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa

from .emit import Commit
from .errors import StateError
from .runs import REJECTED_TABLE
from .state import StreamState


def json_schema(data_type: pa.DataType) -> dict[str, Any]:
    """The JSON schema of an Arrow type (every column nullable: a Singer record may omit nothing)."""
    if pa.types.is_boolean(data_type):
        return {"type": ["boolean", "null"]}
    if pa.types.is_integer(data_type):
        return {"type": ["integer", "null"]}
    if pa.types.is_floating(data_type):
        return {"type": ["number", "null"]}
    if pa.types.is_decimal(data_type):
        return {"type": ["string", "null"], "format": "singer.decimal"}
    if pa.types.is_timestamp(data_type):
        return {"type": ["string", "null"], "format": "date-time"}
    if pa.types.is_date(data_type):
        return {"type": ["string", "null"], "format": "date"}
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return {"type": ["array", "null"], "items": json_schema(data_type.value_type)}
    if pa.types.is_struct(data_type):
        return {"type": ["object", "null"], "properties": {f.name: json_schema(f.type) for f in data_type}}
    return {"type": ["string", "null"]}


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, (date, Decimal)):
        return value.isoformat() if isinstance(value, date) else str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def load_state(path: str | Path | None) -> tuple[dict[str, StreamState], dict[str, list]]:
    """The bookmarks and key values of a Singer state file (none: empty); a corrupt one is a
    StateError naming the file, never "no state"."""
    if path is None:
        return {}, {}
    where = f"--state {path}"
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise StateError(f"{where}: cannot read ({exc.strerror})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateError(f"{where}: not JSON ({exc})") from None
    if raw in ({}, None):
        return {}, {}
    if not isinstance(raw, dict) or not isinstance(raw.get("bookmarks", {}), dict) \
            or not isinstance(raw.get("sqquid_keys", {}), dict):
        raise StateError(f"{where}: expected {{\"bookmarks\": {{stream: ...}}, \"sqquid_keys\": {{...}}}}")
    states = {name: StreamState.from_json(json.dumps(value), f"{where}, stream {name!r}")
              for name, value in raw.get("bookmarks", {}).items()}
    keys = raw.get("sqquid_keys", {})
    if not all(isinstance(v, list) for v in keys.values()):
        raise StateError(f"{where}: sqquid_keys must map table.column to a list of values")
    return states, keys


def state_value(states: dict[str, StreamState], keys: dict[str, list]) -> dict[str, Any]:
    return {"bookmarks": {name: asdict(s) for name, s in sorted(states.items())}, "sqquid_keys": keys}


class SingerWriter:
    """Writes the messages of each commit to `out` (stdout): SCHEMA once a table, RECORDs, STATE."""

    def __init__(self, out: TextIO, states: dict[str, StreamState], keys: dict[str, list]):
        self.out = out
        self.states, self.keys = dict(states), dict(keys)
        self.schemas_sent: set[str] = set()
        self.records: dict[str, int] = {}

    def _send(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps(message, default=_json_value, separators=(",", ":")) + "\n")

    def commit(self, commit: Commit) -> None:
        stream = commit.stream
        for spec in stream.tables:
            own = spec is stream.tables[0]
            bookmark = [stream.cursor.field] if own and stream.cursor else []
            self._table(spec.name, commit.tables[spec.name], list(spec.primary_key), bookmark)
        if commit.rejected is not None:
            self._table(REJECTED_TABLE, commit.rejected, [], [])
        self.states[stream.name], self.keys = commit.state, commit.keys
        self.send_state()

    def _table(self, name: str, reader: pa.RecordBatchReader, key: list[str], bookmark: list[str]) -> None:
        if name not in self.schemas_sent:
            schema = {"type": "object", "properties": {f.name: json_schema(f.type) for f in reader.schema}}
            self._send({"type": "SCHEMA", "stream": name, "schema": schema, "key_properties": key,
                        "bookmark_properties": bookmark})
            self.schemas_sent.add(name)
        for batch in reader:
            for row in batch.to_pylist():
                self._send({"type": "RECORD", "stream": name, "record": row})
            self.records[name] = self.records.get(name, 0) + batch.num_rows

    def send_state(self) -> None:
        self._send({"type": "STATE", "value": state_value(self.states, self.keys)})
        self.out.flush()
