"""Objects under a storage URL (`s3://`, `gs://`, `az://`/`abfs://`, or any URL `pyarrow.fs` or
`fsspec` knows): read, write, copy in and out, list, delete, and the two conditional writes a
commit needs (create-if-absent, replace-if-unchanged).

Endpoint and credentials come from the store's own chain (`AWS_ENDPOINT_URL`,
`AWS_ACCESS_KEY_ID`, ..., `~/.aws`, instance roles; the GCS and Azure equivalents): nothing here
reads or logs them. On S3 the conditional writes are real (`If-None-Match` / `If-Match`, through
boto3 when it is installed); on other stores they check before they write, which is enough for
the one writer a lock lets in (see `StoreLock`).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from ..errors import ConfigError, StateError

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")


def is_url(location: Any) -> bool:
    """Whether a destination given as text names remote storage (`file://` and paths do not)."""
    match = _URL.match(str(location)) if isinstance(location, str) else None
    return bool(match) and match.group("scheme").lower() != "file"


def _filesystem(url: str, option: str) -> tuple[pafs.FileSystem, str]:
    try:
        return pafs.FileSystem.from_uri(url)
    except (ValueError, OSError, NotImplementedError, ImportError):
        pass
    try:
        import fsspec.core  # other schemes, where fsspec and the scheme's package are installed

        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"{option} {url}: no storage for this URL ({str(exc).splitlines()[0]})") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


class ObjectStore:
    """The objects under one URL prefix. Names are relative to it ("orders/part-1.parquet")."""

    def __init__(self, url: str, option: str = "--parquet"):
        self.url = url.rstrip("/")
        self.option = option
        self.fs, base = _filesystem(self.url, option)
        self.base = base.rstrip("/")
        self.scheme = _URL.match(self.url).group("scheme").lower()  # type: ignore[union-attr]
        self._s3: Any = None

    def where(self, name: str = "") -> str:
        return f"{self.url}/{name}" if name else self.url

    def _key(self, name: str) -> str:
        return f"{self.base}/{name}"

    def _fail(self, what: str, name: str, exc: Exception) -> StateError:
        return StateError(f"{self.where(name)}: cannot {what} ({str(exc).splitlines()[0]})")

    # -- plain objects ------------------------------------------------------------------------------

    def read(self, name: str) -> bytes | None:
        """An object's bytes, None when there is none."""
        return self.read_tagged(name)[1]

    def read_tagged(self, name: str) -> tuple[str | None, bytes | None]:
        """(version tag, bytes) of an object; (None, None) when there is none. The tag is the
        store's ETag on S3, else a digest of the bytes."""
        if self.scheme == "s3" and self._client() is not None:
            return self._s3_get(name)
        try:
            with self.fs.open_input_stream(self._key(name)) as f:
                data = f.read()
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
                return None, None
            raise self._fail("read", name, exc) from None
        return hashlib.sha256(data).hexdigest(), data

    def write(self, name: str, data: bytes) -> None:
        """One object, written whole (a reader sees the old one or the new one)."""
        try:
            with self.fs.open_output_stream(self._key(name)) as f:
                f.write(data)
        except OSError as exc:
            raise self._fail("write", name, exc) from None

    def upload(self, local: Path, name: str) -> None:
        try:
            pafs.copy_files(str(local), self._key(name), source_filesystem=pafs.LocalFileSystem(), destination_filesystem=self.fs)
        except OSError as exc:
            raise self._fail("write", name, exc) from None

    def download(self, name: str, local: Path) -> None:
        try:
            pafs.copy_files(self._key(name), str(local), source_filesystem=self.fs, destination_filesystem=pafs.LocalFileSystem())
        except OSError as exc:
            raise self._fail("read", name, exc) from None

    def list(self, prefix: str = "") -> list[str]:
        """Names of the objects under `prefix` (recursively); [] when there is none."""
        root = self._key(prefix).rstrip("/") if prefix else self.base
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        except OSError as exc:
            raise self._fail("list", prefix, exc) from None
        start = len(self.base) + 1
        return sorted(i.path[start:] for i in infos if i.type == pafs.FileType.File)

    def delete(self, names: list[str]) -> None:
        if not names:
            return
        if self.scheme == "s3" and self._client() is not None:
            return self._s3_delete(names)  # in batches, and no empty "directory" object left behind
        for name in names:
            try:
                self.fs.delete_file(self._key(name))
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise self._fail("delete", name, exc) from None

    def check_reachable(self) -> None:
        """A ConfigError when the bucket (or container) cannot be listed."""
        bucket = self.base.split("/")[0]
        try:
            found = self.fs.get_file_info(bucket).type != pafs.FileType.NotFound
        except OSError as exc:
            raise ConfigError(f"{self.option} {self.url}: cannot reach the storage ({str(exc).splitlines()[0]})") from None
        if not found:
            raise ConfigError(f"{self.option} {self.url}: no bucket or container {bucket!r} there")

    # -- conditional writes -----------------------------------------------------------------------

    def put_if(self, name: str, data: bytes, tag: str | None) -> str | None:
        """Write `name` only if it is unchanged since it was read with version `tag` (None: only
        if there is no such object): its new tag, or None when another writer got there first."""
        if self.scheme == "s3" and self._client() is not None:
            return self._s3_put_if(name, data, tag)
        if self.read_tagged(name)[0] != tag:
            return None
        self.write(name, data)
        return hashlib.sha256(data).hexdigest()

    def _client(self) -> Any:
        if self._s3 is None:
            try:
                import boto3  # the `s3` extra: real conditional writes on S3
            except ImportError:
                self._s3 = False
                return None
            self._s3 = boto3.client("s3")
        return self._s3 or None

    def _bucket_key(self, name: str) -> tuple[str, str]:
        bucket, _, key = self._key(name).partition("/")
        return bucket, key

    def _s3_get(self, name: str) -> tuple[str | None, bytes | None]:
        bucket, key = self._bucket_key(name)
        client = self._client()
        try:
            answer = client.get_object(Bucket=bucket, Key=key)
            return answer["ETag"], answer["Body"].read()
        except client.exceptions.NoSuchKey:
            return None, None
        except Exception as exc:  # botocore's errors: no connection, access denied, no bucket
            raise self._fail("read", name, exc) from None

    def _s3_put_if(self, name: str, data: bytes, tag: str | None) -> str | None:
        bucket, key = self._bucket_key(name)
        condition = {"IfNoneMatch": "*"} if tag is None else {"IfMatch": tag}
        client = self._client()
        try:
            return client.put_object(Bucket=bucket, Key=key, Body=data, **condition)["ETag"]
        except client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return None
            raise self._fail("write", name, exc) from None
        except Exception as exc:
            raise self._fail("write", name, exc) from None

    def _s3_delete(self, names: list[str]) -> None:
        for start in range(0, len(names), 1000):
            batch = [self._bucket_key(name) for name in names[start:start + 1000]]
            try:
                answer = self._client().delete_objects(Bucket=batch[0][0], Delete={"Objects": [{"Key": k} for _, k in batch], "Quiet": True})
            except Exception as exc:
                raise self._fail("delete", names[start], exc) from None
            if answer.get("Errors"):
                error = answer["Errors"][0]
                raise StateError(f"{self.url}/{error.get('Key')}: cannot delete ({error.get('Code')})")
