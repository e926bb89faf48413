"""Incremental state kept in one JSON file, `{stream: state}`, replaced atomically on each change.

A corrupt file is a StateError naming it, never "no state". One stream's entry can still be
changed while another's is corrupt (the others are kept as they are); a file that is not a JSON
object at all can only be replaced as a whole (`clear`).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import StateError
from ..state import StreamState
from .files import write_atomic


class JsonStateFile:
    """The states in a local file; subclasses keep the same JSON elsewhere (the
    manifest of a Parquet extract on object storage) by overriding `_text` and `_store`."""

    def __init__(self, path: Path | str):
        self.path = path  # where the states are, for messages

    def _text(self) -> str | None:
        """The stored JSON text; None when nothing is stored."""
        path = Path(self.path)
        return path.read_text(encoding="utf-8") if path.exists() else None

    def _store(self, text: str) -> None:
        write_atomic(Path(self.path), text.encode())

    def load(self) -> dict[str, StreamState]:
        text = self._text()
        if text is None:
            return {}
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            raise StateError(f"{self.path}: corrupt state ({exc}); fix it with 'sqquid-etl state set' or 'state reset'") from None
        return {name: StreamState.from_json(json.dumps(value), f"{self.path}, stream {name!r}") for name, value in raw.items()}

    def _raw(self) -> dict | None:
        """The file's JSON object as it is (entries unchecked); None when it is not one."""
        try:
            raw = json.loads(self._text() or "")
        except (OSError, ValueError):
            return None
        return raw if isinstance(raw, dict) else None

    def _write(self, states: dict) -> None:
        self._store(json.dumps(states, indent=2, sort_keys=True) + "\n")

    def save(self, stream: str, state: StreamState | None) -> None:
        """Store (None: remove) one stream's entry; the other entries stay as they are."""
        try:
            raw = {name: json.loads(s.to_json()) for name, s in self.load().items()}
        except StateError:
            # another stream's corrupt entry keeps the file from loading: edit this entry only
            raw = self._raw()  # type: ignore[assignment]
            if raw is None:
                raise StateError(f"{self.path}: not a JSON object, so one stream's state cannot be changed in it; "
                                 "'sqquid-etl state reset' (every stream) replaces it") from None
        if state is None:
            raw.pop(stream, None)
        else:
            raw[stream] = json.loads(state.to_json())
        self._write(raw)

    def streams(self) -> list[str]:
        """The streams with an entry, corrupt or not ([] when the file is not a JSON object)."""
        try:
            return sorted(self.load())
        except StateError:
            return sorted(self._raw() or {})

    def clear(self) -> None:
        self._write({})
