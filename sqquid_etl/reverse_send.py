"""Reverse load: sending a validated input. Partial: batches of skus, each acknowledged batch
journaled, so that a re-run skips them. Full: one request with the complete list (the API zeroes
every record not listed), refused above the zeroing threshold unless confirmed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .client import SqquidClient
from .errors import ApiError, ConfigError, SqquidError
from .reverse_diff import diff_into_report
from .reverse_journal import Journal, journal_lock
from .reverse_report import LoadReport
from .reverse_validate import PreparedInventory, payload_hash

PARTIAL_PATH = "/v1/inventory/partial"
FULL_PATH = "/v1/inventory/full"


# -- partial ------------------------------------------------------------------------------


def send_partial(client: SqquidClient, prepared: PreparedInventory, report: LoadReport, *, batch_size: int,
                 journal: str | Path | None, dry_run: bool, diff_out: str | Path | None) -> None:
    if journal is not None and not dry_run:
        with journal_lock(Path(journal)):  # read and written by this load alone
            _partial_batches(client, prepared, report, batch_size=batch_size, journal=journal, dry_run=dry_run,
                             diff_out=diff_out)
    else:
        _partial_batches(client, prepared, report, batch_size=batch_size, journal=journal, dry_run=dry_run,
                         diff_out=diff_out)


def _partial_batches(client: SqquidClient, prepared: PreparedInventory, report: LoadReport, *, batch_size: int,
                     journal: str | Path | None, dry_run: bool, diff_out: str | Path | None) -> None:
    payload = prepared.payload()
    batches = [payload[i:i + batch_size] for i in range(0, len(payload), batch_size)]
    report.batches_total = len(batches)
    book = Journal(Path(journal), prepared.input_hash()) if journal is not None else None
    report.journal = str(journal) if journal is not None else None
    if dry_run:
        if book is not None:
            report.batches_skipped = sum(payload_hash(b) in book.acknowledged for b in batches)
        diff_into_report(client, prepared, report, "partial", None, diff_out)
        return
    if diff_out is not None:
        diff_into_report(client, prepared, report, "partial", None, diff_out)
    if book is not None and book.complete:
        report.already_applied = True
        report.batches_skipped = len(batches)
        return
    if book is not None:
        book.check_writable()
    _send_batches(client, batches, report, book)
    if book is not None:
        book.record_complete(len(batches), len(prepared.records))


def _send_batches(client: SqquidClient, batches: list[list[dict[str, Any]]], report: LoadReport,
                  book: Journal | None) -> None:
    """PATCH every batch the journal has not acknowledged; journal each one acknowledged."""
    for index, batch in enumerate(batches, start=1):
        digest = payload_hash(batch)
        if book is not None and digest in book.acknowledged:
            report.batches_skipped += 1
            continue
        try:
            client.patch(PARTIAL_PATH, batch)
        except SqquidError as exc:
            raise type(exc)(f"partial load stopped at batch {index} of {len(batches)}: {exc}. "
                            f"{_resume_hint(report, len(batches), book)}", **_error_kwargs(exc)) from exc
        if book is not None:
            book.record_batch(digest, index, len(batch))
        report.batches_sent += 1
        report.skus_sent += len(batch)


def _resume_hint(report: LoadReport, total: int, book: Journal | None) -> str:
    done = report.batches_sent + report.batches_skipped
    if book is not None:
        return (f"{done} of {total} batches are acknowledged in the journal {report.journal}: re-run with the same "
                "input to send only the rest")
    return (f"{done} of {total} batches were applied; no journal was kept, so a re-run sends every batch again "
            "(harmless for a partial update)")


def _error_kwargs(exc: SqquidError) -> dict[str, Any]:
    if isinstance(exc, ApiError):
        return {"status": exc.status, "endpoint": exc.endpoint}
    return {}


# -- full ---------------------------------------------------------------------------------


def send_full(client: SqquidClient, prepared: PreparedInventory, report: LoadReport, *, confirm: bool, dry_run: bool,
              baseline: set[str] | None, zero_threshold: float, diff_out: str | Path | None) -> None:
    report.batches_total = 1
    if baseline is None:
        report.warnings.append(
            "no baseline: only the inventory of the input's skus was read, so records of skus outside the input "
            "could not be seen; the full update sets them to 0 too and they are not counted. Pass --baseline "
            "EXTRACT.duckdb (baseline=) to see them")
    else:
        report.warnings.append(
            "records of skus in neither the input nor the baseline (e.g. inventory without a product) could not be "
            "seen; the full update sets them to 0 too")
    current = diff_into_report(client, prepared, report, "full", baseline, diff_out)
    in_stock = int((current["current_qty"] > 0).sum())
    zeroed = report.records_zeroed or 0
    share = zeroed / in_stock if in_stock else 0.0
    if dry_run:
        if share > zero_threshold:
            report.warnings.append(f"the update would zero {zeroed} of {in_stock} records currently above 0 "
                                   f"({share:.1%} > {zero_threshold:.1%}): sending it needs --yes (confirm=True)")
        return
    if share > zero_threshold and not confirm:
        raise ConfigError(
            f"full update refused: it would set {zeroed} of the {in_stock} inventory records currently above 0 to 0 "
            f"({share:.1%}, more than the threshold {zero_threshold:.1%}); nothing was sent. Check the diff "
            "(--dry-run --diff-out diff.csv), then re-run with --yes (confirm=True) or raise --threshold")
    payload = prepared.payload()
    client.patch(FULL_PATH, payload)
    report.batches_sent = 1
    report.skus_sent = len(payload)
