"""Iceberg retention: snapshots past the table's retention are expired after each commit, and the
files that only they reached (manifest lists, manifests, data files) are deleted then: a table
written every few minutes does not grow a file a commit forever. Old `metadata.json` files are
Iceberg's own business (`write.metadata.delete-after-commit.enabled`, set when a table is made).

Safe beside other writers (the shared `_sqquid_runs` has them): only files that an expired snapshot
reached and no remaining one does are deleted, and the remaining ones are read after the expiry's
commit. A writer's commit in flight builds on the current snapshot (never expired), and if its
base moved it is retried on the table as it is; its new files are in no expired snapshot."""

from __future__ import annotations

import logging
import time
from typing import Any, Iterable

from .iceberg_commit import retried

log = logging.getLogger(__name__)

# Iceberg's own retention properties (and their defaults): snapshots older than the age are
# expired, the newest few always kept
MAX_SNAPSHOT_AGE_MS = ("history.expire.max-snapshot-age-ms", 5 * 24 * 3600 * 1000)
MIN_SNAPSHOTS_TO_KEEP = ("history.expire.min-snapshots-to-keep", 1)


def expire_snapshots(catalog: Any, identifier: tuple[str, ...], now_ms: int | None = None) -> int:
    """Expire the table's snapshots past its retention (never its current one, a branch's or a
    tag's, nor the newest MIN_SNAPSHOTS_TO_KEEP; a conflict with another writer is retried) and
    delete the files only they reached. Returns how many files were deleted."""
    from pyiceberg.table.update.snapshot import ExpireSnapshots

    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    gone: list[Any] = []

    def change(table: Any, tx: Any) -> None:
        expired = set(expired_snapshots(table.metadata, now_ms))
        gone[:] = [s for s in table.snapshots() if s.snapshot_id in expired]
        if gone:
            ExpireSnapshots(tx).by_ids(sorted(expired)).commit()

    retried(catalog, identifier, change)
    if not gone:
        return 0
    table = catalog.load_table(identifier)
    unreached = reached_files(table.io, gone) - reached_files(table.io, table.snapshots())
    delete_files(table.io, unreached)
    return len(unreached)


def expired_snapshots(metadata: Any, now_ms: int) -> list[int]:
    """The ids of the snapshots of a table's metadata that its retention lets go."""
    properties = metadata.properties
    max_age = int(properties.get(MAX_SNAPSHOT_AGE_MS[0], MAX_SNAPSHOT_AGE_MS[1]))
    keep = max(1, int(properties.get(MIN_SNAPSHOTS_TO_KEEP[0], MIN_SNAPSHOTS_TO_KEEP[1])))
    protected = {ref.snapshot_id for ref in metadata.refs.values()}
    newest_first = sorted(metadata.snapshots, key=lambda s: s.timestamp_ms, reverse=True)
    return [s.snapshot_id for s in newest_first[keep:] if s.timestamp_ms < now_ms - max_age and s.snapshot_id not in protected]


def reached_files(io: Any, snapshots: Iterable[Any]) -> set[str]:
    """Every file the snapshots reach: their manifest lists, the manifests those list, and the data
    and delete files the manifests hold live (each manifest read once)."""
    files: set[str] = set()
    manifests = {}
    for snapshot in snapshots:
        if snapshot.manifest_list:
            files.add(snapshot.manifest_list)
        manifests.update((m.manifest_path, m) for m in snapshot.manifests(io))
    files.update(manifests)
    for manifest in manifests.values():
        files.update(entry.data_file.file_path for entry in manifest.fetch_manifest_entry(io))
    return files


def delete_files(io: Any, paths: Iterable[str]) -> None:
    """Delete each path through the table's FileIO; one already gone is not an error. The expiry
    is committed already: a file that cannot be deleted is left (and said), not a failed run."""
    left = 0
    for path in sorted(paths):
        try:
            io.delete(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            left += 1
            log.debug("could not delete %s: %s", path, exc)
    if left:
        log.warning("%d file(s) of expired Iceberg snapshots could not be deleted; they are no longer read", left)
