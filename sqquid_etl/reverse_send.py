"""Reverse load: sending records as chunked partial updates (`PATCH /v1/inventory/partial`), each
acknowledged chunk journaled so that a re-run skips it. Used by a partial load (the input's
records) and by a full update sent the default way (the input's records and a 0 for every record
the update zeroes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from .client import SqquidClient
from .errors import ApiError, SqquidError
from .reverse_chunks import MAX_BODY_BYTES, chunk_payload, plan_chunks
from .reverse_current import fetch_current
from .reverse_diff import compute_diff, count_diff, write_diff
from .reverse_journal import Journal, journal_lock
from .reverse_report import LoadReport
from .reverse_validate import PreparedInventory, payload_hash

PARTIAL_PATH = "/v1/inventory/partial"


def send_partial(client: SqquidClient, prepared: PreparedInventory, report: LoadReport, *, batch_size: int,
                 journal: str | Path | None, dry_run: bool, diff_out: str | Path | None) -> None:
    """Set the input's records; with `diff_out` or `dry_run`, diff them against the account first."""
    if dry_run or diff_out is not None:
        current, unlistable = fetch_current(client, set(prepared.records["sku"].tolist()))
        if unlistable:
            report.warnings.append(f"{len(unlistable)} sku(s) contain a comma or are too long to be listed; their "
                                   f"current inventory was not seen (e.g. {unlistable[:3]})")
        diff = compute_diff(prepared.records, current, "partial")
        count_diff(diff, report, "partial", len(current))
        if diff_out is not None:
            write_diff(diff, diff_out, report)
    send_chunks(client, prepared.records, report, batch_size=batch_size, journal=journal, dry_run=dry_run,
                key=prepared.input_hash())


def send_chunks(client: SqquidClient, records: pd.DataFrame, report: LoadReport, *, batch_size: int,
                journal: str | Path | None, dry_run: bool, key: str,
                max_bytes: int | None = None) -> None:
    """PATCH `records` (sorted by sku, location, bin) in chunks; with a journal (held locked) the
    chunks it acknowledges for `key` are skipped, and each chunk acknowledged now is added."""
    chunks = plan_chunks(records, batch_size, max_bytes or MAX_BODY_BYTES)
    report.batches_total = len(chunks)
    report.journal = str(journal) if journal is not None else None
    book = Journal(Path(journal), key) if journal is not None else None
    if dry_run:
        if book is not None and book.acknowledged:
            report.batches_skipped = sum(payload_hash(chunk_payload(records, c)) in book.acknowledged for c in chunks)
        return
    if book is None:
        _send(client, records, chunks, report, None)
        return
    with journal_lock(book.path):  # read and written by this load alone
        book = Journal(book.path, key)  # as it is now that the lock is held
        if book.complete:
            report.already_applied = True
            report.batches_skipped = len(chunks)
            return
        book.check_writable()
        _send(client, records, chunks, report, book)
        book.record_complete(len(chunks), len(records))


def _send(client: SqquidClient, records: pd.DataFrame, chunks: list[tuple[int, int]], report: LoadReport,
          book: Journal | None) -> None:
    """PATCH every chunk the journal has not acknowledged; journal each one acknowledged."""
    for index, chunk in enumerate(chunks, start=1):
        payload = chunk_payload(records, chunk)
        digest = payload_hash(payload)
        if book is not None and digest in book.acknowledged:
            report.batches_skipped += 1
            continue
        try:
            client.patch(PARTIAL_PATH, payload)
        except SqquidError as exc:
            raise type(exc)(f"load stopped at chunk {index} of {len(chunks)}: {exc}. "
                            f"{_resume_hint(report, len(chunks), book)}", **_error_kwargs(exc)) from exc
        if book is not None:
            book.record_batch(digest, index, len(payload))
        report.batches_sent += 1
        report.skus_sent += len(payload)
        report.records_sent += chunk[1] - chunk[0]


def _resume_hint(report: LoadReport, total: int, book: Journal | None) -> str:
    done = report.batches_sent + report.batches_skipped
    if book is not None:
        return (f"{done} of {total} chunks are acknowledged in the journal {report.journal}: re-run with the same "
                "input to send only the rest")
    return (f"{done} of {total} chunks were applied; no journal was kept, so a re-run sends every chunk again "
            "(harmless: each sets records to the input's quantities)")


def _error_kwargs(exc: SqquidError) -> dict[str, Any]:
    if isinstance(exc, ApiError):
        return {"status": exc.status, "endpoint": exc.endpoint}
    return {}


