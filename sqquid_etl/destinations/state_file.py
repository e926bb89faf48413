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
        raw = self._read()
        return {name: StreamState.from_json(json.dumps(value), f"{self.path}, stream {name!r}") for name, value in raw.items()}

    def load_one(self, stream: str) -> StreamState | None:
        """One stream's entry (None: it has none); a StateError when it, or the file as a whole, is corrupt."""
        raw = self._read()
        return StreamState.from_json(json.dumps(raw[stream]), f"{self.path}, stream {stream!r}") if stream in raw else None

    def _read(self) -> dict:
        """The file's JSON object ({} when there is no file); a StateError when it is not one, or
        names a stream twice."""
        try:
            text = self._text()
            if text is None:
                return {}
            raw = json.loads(text, object_pairs_hook=_no_duplicates)
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise StateError(f"{self.path}: corrupt state ({exc}); fix it with 'sqquid-etl state set' or 'state reset'") from None
        except OSError as exc:
            raise StateError(f"{self.path}: state cannot be read ({exc.strerror or exc}); "
                             "'sqquid-etl state reset' (every stream) rewrites it when it is a file") from None
        return raw

    def _raw(self) -> list[tuple[str, object]] | None:
        """The file's JSON object as it is, as (stream, entry) pairs (entries unchecked, a stream
        given twice kept twice); None when it is not one."""
        try:
            raw = json.loads(self._text() or "", object_pairs_hook=_Pairs)
        except (OSError, ValueError, RecursionError):
            return None
        return [(name, _plain(entry)) for name, entry in raw] if isinstance(raw, _Pairs) else None

    def _write(self, states: dict | list[tuple[str, object]]) -> None:
        pairs = sorted(states.items() if isinstance(states, dict) else states, key=lambda pair: pair[0])
        if len({name for name, _ in pairs}) == len(pairs):
            text = json.dumps(dict(pairs), indent=2, sort_keys=True)
        else:  # a stream given twice stays so, until that stream is set or reset
            text = "{\n" + ",\n".join(f"  {json.dumps(name)}: {json.dumps(entry)}" for name, entry in pairs) + "\n}"
        try:
            self._store(text + "\n")
        except OSError as exc:  # e.g. a directory of that name: not ours to remove
            raise StateError(f"{self.path}: state cannot be written ({exc.strerror or exc}); nothing was changed") from None

    def save(self, stream: str, state: StreamState | None) -> None:
        """Store (None: remove) one stream's entry; the other entries stay as they are."""
        try:
            pairs = [(name, json.loads(s.to_json())) for name, s in self.load().items()]
        except StateError:
            # another stream's corrupt entry keeps the file from loading: edit this entry only
            pairs = self._raw()  # type: ignore[assignment]
            if pairs is None:
                raise StateError(f"{self.path}: not a JSON object, so one stream's state cannot be changed in it; "
                                 "'sqquid-etl state reset' (every stream) replaces it") from None
        pairs = [(name, entry) for name, entry in pairs if name != stream]
        if state is not None:
            pairs.append((stream, json.loads(state.to_json())))
        self._write(pairs)

    def streams(self) -> list[str]:
        """The streams with an entry, corrupt or not ([] when the file is not a JSON object)."""
        try:
            return sorted(self.load())
        except StateError:
            return sorted({name for name, _ in self._raw() or []})

    def clear(self) -> None:
        self._write({})


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object whose keys are each given once (a stream's state twice is corruption)."""
    found = dict(pairs)
    if len(found) < len(pairs):
        twice = sorted({key for key, _ in pairs if sum(k == key for k, _ in pairs) > 1})
        raise ValueError(f"{', '.join(map(repr, twice))} given more than once")
    return found


class _Pairs(list):
    """A JSON object as it was written: its (key, value) pairs, a key given twice kept twice."""


def _plain(value: object) -> object:
    """A value read as `_Pairs` back to plain JSON values (within an entry, the last of a key wins)."""
    if isinstance(value, _Pairs):
        return {key: _plain(item) for key, item in value}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
