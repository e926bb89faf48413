"""One writer at a time under an object-store prefix: a lock object, created only where there is
none (a conditional write), kept fresh by a heartbeat, removed on release.

A lock is stale, and taken over, when its holder ran on this host and is gone (a killed run: the
re-run goes ahead at once), or when its heartbeat is older than `STALE_AFTER` (a holder on
another machine that died). The takeover is itself conditional on the stale lock's version, so
two processes that find it stale cannot both take it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid

from ..errors import StateError
from .object_store import ObjectStore

LOCK = "_sqquid/lock.json"
HEARTBEAT_SECONDS = 30.0
STALE_AFTER = 300.0  # seconds without a heartbeat


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(holder: dict, now: float) -> bool:
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        return not _alive(holder["pid"])
    return now - float(holder.get("beat", 0)) > STALE_AFTER


class StoreLock:
    def __init__(self, store: ObjectStore, name: str = LOCK):
        self.store = store
        self.name = name  # the lock object (an account of a multi-account prefix has its own)
        self.owner = uuid.uuid4().hex
        self._tag: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps({"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                           "beat": time.time()}).encode()

    def acquire(self) -> None:
        """Hold the prefix (a StateError naming the holder when a live process holds it)."""
        tag, data = self.store.read_tagged(self.name)
        if data is not None:
            try:
                holder = json.loads(data)
            except ValueError:
                holder = {}
            if not _stale(holder, time.time()):
                raise StateError(
                    f"{self.store.url} is in use by another process (host {holder.get('host')}, pid {holder.get('pid')}; "
                    "another extract is running?); wait for it to finish"
                )
        self._tag = self.store.put_if(self.name, self._body(), tag)
        if self._tag is None:
            raise StateError(f"{self.store.url} is in use by another process (it took the lock first); wait for it to finish")
        self._thread = threading.Thread(target=self._beat, name="sqquid-lock-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                tag = self.store.put_if(self.name, self._body(), self._tag)
            except StateError:
                continue  # the store did not answer: the next beat
            if tag is None:
                return  # taken over (this process was thought dead): the manifest's own check refuses its commit
            self._tag = tag

    def check(self) -> None:
        """A StateError unless this process still holds the lock (a commit checks it first: a
        process thought dead and taken over must not commit over its successor)."""
        data = self.store.read(self.name)
        if data is None or json.loads(data).get("owner") != self.owner:
            raise StateError(f"{self.store.url}: this run lost its lock to another process (it was thought dead); "
                             "nothing of this commit is visible (run again)")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            tag, data = self.store.read_tagged(self.name)
            if data is not None and json.loads(data).get("owner") == self.owner:
                self.store.delete([self.name])
