"""Reverse load: the journal of a partial load (acknowledged batches, fsynced), and the lock
that keeps two loads from sharing one."""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from .errors import ConfigError, StateError


class Journal:
    """JSON lines: one line per acknowledged batch, one line when a load completed.

    Lines belong to an input by its hash, so one journal may hold several inputs; a line cut
    short by a crash is ignored."""

    def __init__(self, path: Path, input_hash: str):
        self.path = path
        self.input_hash = input_hash
        self.acknowledged: set[str] = set()
        self.complete = False
        for line in _lines(path):
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if not isinstance(entry, dict) or entry.get("input") != input_hash:
                continue
            if entry.get("event") == "batch":
                self.acknowledged.add(str(entry.get("batch")))
            elif entry.get("event") == "complete":
                self.complete = True

    def _append(self, entry: dict[str, Any]) -> None:
        entry = {**entry, "input": self.input_hash, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, separators=(",", ":")) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def check_writable(self) -> None:
        """Fail before anything is sent if the journal cannot be written."""
        try:
            with open(self.path, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise ConfigError(f"journal {str(self.path)!r} cannot be written ({exc.strerror}); nothing was sent") from exc

    def record_batch(self, batch_hash: str, index: int, skus: int) -> None:
        self._append({"event": "batch", "batch": batch_hash, "index": index, "skus": skus})
        self.acknowledged.add(batch_hash)

    def record_complete(self, batches: int, records: int) -> None:
        self._append({"event": "complete", "batches": batches, "records": records})
        self.complete = True


def _lines(path: Path) -> list[str]:
    """The journal's lines ([] when there is none). Every line the tool writes is ASCII JSON, so
    bytes that are not UTF-8 mean the file is not a journal, or was damaged: a StateError, and
    nothing is sent (a load that resumed from it could send a batch twice, or skip one)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfigError(f"journal {str(path)!r} cannot be read ({exc.strerror or exc}); nothing was sent") from None
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise StateError(f"journal {str(path)!r}, line {line}: not UTF-8 text (byte {data[exc.start]:#04x}): not a "
                         "journal of sqquid-etl, or damaged; nothing was sent; move it away to start the load afresh") from None


def journal_beside(data: Any, journal: str | Path | None) -> str | Path | None:
    """The journal a load keeps: the one given, else FILE.journal.jsonl beside an input file
    (a frame or a query result keeps none unless one is given)."""
    if journal is None and isinstance(data, (str, Path)):
        return Path(data).with_name(Path(data).name + ".journal.jsonl")
    return journal


def lock_of(journal: str | Path | None) -> Path | None:
    """The lock file of a journal (`journal_lock`)."""
    return None if journal is None else Path(journal).with_name(Path(journal).name + ".lock")


@contextmanager
def journal_lock(path: Path) -> Iterator[None]:
    """Hold the journal for one load: two loads sharing it would both send the batches neither
    had acknowledged yet. A second load is refused (StateError) before anything is sent."""
    lock_path = lock_of(path)
    try:
        handle = open(lock_path, "a")
    except OSError as exc:
        raise ConfigError(f"journal {str(path)!r} cannot be locked ({exc.strerror}); nothing was sent") from exc
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateError(f"journal {str(path)!r} is in use by another load (still running?); nothing was sent; "
                             "wait for it to finish") from None
        yield  # the lock file stays: removing it would race a load about to lock it
