"""Durable file operations of a file-based destination: what a crash leaves is the old or the new."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import ConfigError


def fsync_path(path: Path) -> None:
    """Flush a file or a directory (a rename is durable once its directory is flushed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that a crash leaves either the old or the new content."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def replace_symlink(link: Path, target: Path) -> None:
    """Point `link` at `target` (relative) in one rename, durably."""
    tmp = link.with_name(f".{link.name}.link.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(target, link.parent), tmp)
    os.replace(tmp, link)
    fsync_path(link.parent)


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link (an unchanged file costs nothing), or a copy where links are not possible."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def check_can_write(location: str | os.PathLike, option: str, *, what: str | None = None) -> None:
    """Refuse, before anything is requested or created, a location that cannot be written: an
    existing one that is not writable (or, when `what` names the file expected, a directory), a
    new one whose nearest existing directory is not writable (a file's own directory must exist)."""
    path = Path(location)
    if path.exists():
        if not os.access(path, os.W_OK):
            raise ConfigError(f"{option} {path}: not writable")
        if what is not None and path.is_dir():
            raise ConfigError(f"{option} {path}: is a directory, expected {what}")
        return
    directory = path.absolute().parent
    if what is not None and not directory.exists():
        raise ConfigError(f"{option} {path}: directory {directory} does not exist")
    while not directory.exists():
        directory = directory.parent
    if not directory.is_dir() or not os.access(directory, os.W_OK):
        raise ConfigError(f"{option} {path}: directory {directory} is not writable")
