"""Where an Iceberg extract is: its location text, the pyiceberg SQL catalog it names, the
namespace's tables, and one writer a (namespace, stream) at a time.

    --iceberg WAREHOUSE[?catalog=URL&namespace=NAME]

WAREHOUSE is a local directory or a storage URL (`s3://bucket/warehouse`, ...); `catalog` a
SQLAlchemy URL of the SQL catalog (default: `sqlite:///WAREHOUSE/catalog.db` for a local
warehouse, `sqlite:///sqquid-iceberg.db` in the current directory for a remote one; PostgreSQL,
`postgresql+psycopg2://...`, for writers on many machines); `namespace` defaults to `sqquid`
(one namespace an account). Storage credentials come from the store's own chain (AWS_* ...).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pyarrow as pa

from ..errors import ConfigError, StateError
from .object_store import is_url

DEFAULT_NAMESPACE = "sqquid"
REMOTE_CATALOG = "sqquid-iceberg.db"
MARKER = ".sqquid-iceberg"  # in a local warehouse this tool made
LOCKS = "sqquid_writer_locks"  # a table of the catalog's database: one row per stream being written
HEARTBEAT_SECONDS = 30.0
STALE_AFTER = 300.0


@dataclass(frozen=True)
class IcebergLocation:
    text: str
    warehouse: str  # a local directory (absolute) or a storage URL
    catalog: str  # SQLAlchemy URL
    namespace: str

    @classmethod
    def parse(cls, location: Any) -> "IcebergLocation":
        text = os.fspath(location)
        base, _, query = text.partition("?")
        options = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        unknown = set(options) - {"catalog", "namespace"}
        if unknown or not base:
            raise ConfigError(f"--iceberg {text}: expected WAREHOUSE[?catalog=URL&namespace=NAME]"
                              + (f" (unknown option(s) {', '.join(sorted(unknown))})" if unknown else ""))
        remote = is_url(base)
        warehouse = base.rstrip("/") if remote else str(Path(base.removeprefix("file://")).absolute())
        default = f"sqlite:///{Path(REMOTE_CATALOG).absolute()}" if remote else f"sqlite:///{warehouse}/catalog.db"
        namespace = options.get("namespace") or DEFAULT_NAMESPACE
        if not namespace.replace("_", "").isalnum():
            raise ConfigError(f"--iceberg {text}: namespace {namespace!r} must be letters, digits and _")
        return cls(text, warehouse, options.get("catalog") or default, namespace)

    @property
    def remote(self) -> bool:
        return is_url(self.warehouse)

    def warehouse_uri(self) -> str:
        return self.warehouse if self.remote else Path(self.warehouse).as_uri()

    def check_local(self) -> None:
        """A local warehouse is made here, or is one this tool made (a ConfigError else)."""
        if self.remote:
            return
        path = Path(self.warehouse)
        if path.exists() and not (path / MARKER).exists() and (not path.is_dir() or any(path.iterdir())):
            raise ConfigError(f"--iceberg {self.text}: {path} holds files but no {MARKER}, so it was not made by "
                              "sqquid-etl; refusing to write there (choose an empty or new directory)")
        parent = path if path.exists() else path.parent
        while not parent.exists():
            parent = parent.parent
        if not os.access(parent, os.W_OK):
            raise ConfigError(f"--iceberg {self.text}: {parent} is not writable")

    def sqlite_file(self) -> Path | None:
        return Path(self.catalog[len("sqlite:///"):]) if self.catalog.startswith("sqlite:///") else None


def open_catalog(location: IcebergLocation, create: bool) -> Any:
    """The pyiceberg SQL catalog, with the namespace (made when `create`)."""
    try:
        from pyiceberg.catalog.sql import SqlCatalog
        from pyiceberg.exceptions import NamespaceAlreadyExistsError
    except ImportError:
        raise ConfigError("--iceberg needs pyiceberg: pip install 'sqquid-etl[iceberg]'") from None
    if create and not location.remote:
        Path(location.warehouse).mkdir(parents=True, exist_ok=True)
        (Path(location.warehouse) / MARKER).touch()
    sqlite = location.sqlite_file()
    if sqlite is not None and not create and not sqlite.exists():
        raise ConfigError(f"--iceberg {location.text}: no catalog {sqlite} (nothing extracted there yet)")
    try:
        catalog = SqlCatalog("sqquid", uri=location.catalog, warehouse=location.warehouse_uri(), **_s3_properties(os.environ))
        if create:
            try:
                catalog.create_namespace(location.namespace)
            except NamespaceAlreadyExistsError:
                pass
    except ConfigError:
        raise
    except Exception as exc:  # SQLAlchemy's errors: no such database, no driver, refused
        raise ConfigError(f"--iceberg {location.text}: cannot open the catalog ({str(exc).splitlines()[0]})") from None
    return catalog


def _s3_properties(environ: Any) -> dict[str, str]:
    """pyiceberg's S3 endpoint and region, from the standard AWS variables (its S3 client reads
    credentials from the environment itself, but not these)."""
    out = {}
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if endpoint:
        out["s3.endpoint"] = endpoint
    if region:
        out["s3.region"] = region
    return out


def iceberg_schema(schema: pa.Schema) -> pa.Schema:
    """An Arrow schema as the table's: every column optional (merges write what DuckDB makes)."""
    return pa.schema([field.with_nullable(True) for field in schema])


class WriterLock:
    """One writer a (namespace, stream): a row of the catalog's database, inserted only where there
    is none, kept fresh by a heartbeat. A row whose holder ran on this host and is gone, or whose
    heartbeat is older than STALE_AFTER, is taken over."""

    def __init__(self, catalog: Any, namespace: str, stream: str, where: str):
        from sqlalchemy import text

        self._text = text
        self.engine = catalog.engine
        self.key = (namespace, stream)
        self.where = where
        self.owner = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        t = self._text
        with self.engine.begin() as conn:
            conn.execute(t(f"CREATE TABLE IF NOT EXISTS {LOCKS} (namespace VARCHAR(255) NOT NULL, stream VARCHAR(255) NOT NULL, "
                           "owner VARCHAR(64) NOT NULL, host VARCHAR(255), pid INTEGER, beat FLOAT, PRIMARY KEY (namespace, stream))"))
        with self.engine.begin() as conn:
            row = conn.execute(t(f"SELECT owner, host, pid, beat FROM {LOCKS} WHERE namespace = :n AND stream = :s"),
                               {"n": self.key[0], "s": self.key[1]}).fetchone()
            if row is not None and not _stale(row.host, row.pid, row.beat):
                raise StateError(f"stream {self.key[1]!r} of {self.where} is being written by another process (host {row.host}, "
                                 f"pid {row.pid}); wait for it to finish")
            if row is not None:
                conn.execute(t(f"DELETE FROM {LOCKS} WHERE namespace = :n AND stream = :s AND owner = :o"),
                             {"n": self.key[0], "s": self.key[1], "o": row.owner})
        try:
            with self.engine.begin() as conn:
                conn.execute(t(f"INSERT INTO {LOCKS} VALUES (:n, :s, :o, :h, :p, :b)"),
                             {"n": self.key[0], "s": self.key[1], "o": self.owner, "h": socket.gethostname(), "p": os.getpid(), "b": time.time()})
        except Exception:  # the primary key: another writer inserted first
            raise StateError(f"stream {self.key[1]!r} of {self.where} is being written by another process; wait for it to finish") from None
        self._thread = threading.Thread(target=self._beat, name="sqquid-iceberg-lock", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                with self.engine.begin() as conn:
                    conn.execute(self._text(f"UPDATE {LOCKS} SET beat = :b WHERE owner = :o"), {"b": time.time(), "o": self.owner})
            except Exception:  # a busy database: the next beat
                continue

    def release(self) -> None:
        self._stop.set()
        if self._thread is None:
            return
        self._thread.join()
        self._thread = None
        with self.engine.begin() as conn:
            conn.execute(self._text(f"DELETE FROM {LOCKS} WHERE owner = :o"), {"o": self.owner})


def _stale(host: str | None, pid: int | None, beat: float | None) -> bool:
    if host == socket.gethostname() and pid:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return time.time() - (beat or 0) > STALE_AFTER
