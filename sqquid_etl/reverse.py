"""Reverse load: set Sqquid inventory from a DataFrame, CSV or Parquet file.

    read input (reverse_input) -> validate whole input (reverse_validate) -> payload
    -> [diff against current inventory (reverse_current, reverse_diff)]
    -> partial: batches of skus, each acknowledged batch journaled (reverse_send, reverse_journal)
    -> full: one request with the complete list (the API zeroes everything not listed)

Nothing is sent before the whole input validated. A failed partial load can be re-run with
the same input: batches that the journal records as acknowledged are skipped.

The modules, by job: `reverse_input` (read a frame, file or query), `reverse_validate`
(validate, payload), `reverse_current` (current inventory, read through the `inventory` stream
definition; baseline skus), `reverse_diff` (the diff and its counts), `reverse_journal` (the
journal and its lock), `reverse_send` (partial batches, full update), `reverse_report`
(`LoadReport`), `reverse_cli` (the command); this one runs a load.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .client import SqquidClient
from .errors import ConfigError
from .reverse_current import baseline_skus, fetch_current
from .reverse_diff import compute_diff
from .reverse_report import LoadReport
from .reverse_send import send_full, send_partial
from .reverse_validate import build_payload, prepare_inventory
from .settings import DEFAULT_BURST, DEFAULT_RATE

MODES = ("partial", "full")


def load_inventory(
    data: Any,
    *,
    mode: str,
    client: SqquidClient | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    dry_run: bool = False,
    confirm: bool = False,
    batch_size: int = 500,
    journal: str | Path | None = None,
    baseline: str | Path | None = None,
    zero_threshold: float = 0.05,
    diff_out: str | Path | None = None,
    rate: float | None = DEFAULT_RATE,
    burst: int = DEFAULT_BURST,
) -> LoadReport:
    """Set inventory from `data` (DataFrame, pyarrow Table, or a CSV/Parquet path).

    mode "partial": sets the given (sku, location, bin) records, in batches of `batch_size`
    skus, journaled so that a re-run skips acknowledged batches. mode "full": one request
    with the complete list; every other inventory record of the account becomes 0, so it is
    refused when it would zero more than `zero_threshold` of the records currently above 0,
    unless `confirm`. `dry_run` computes the diff and sends no update.
    """
    started = time.monotonic()
    _check_options(mode, batch_size, zero_threshold)
    prepared = prepare_inventory(data)
    report = LoadReport(mode=mode, dry_run=dry_run, rows_read=prepared.rows_read, records=len(prepared.records),
                        duplicates_collapsed=prepared.duplicates_collapsed, skus=prepared.skus)
    journal = _journal_path(data, mode, journal, report)
    baseline_set = baseline_skus(baseline) if baseline is not None else None

    own_client = client is None
    if client is None:
        client = SqquidClient.from_env(base_url, api_key, username, password, rate=rate, burst=burst)
    requests_before, retries_before = client.stats.requests, client.stats.retries
    try:
        if mode == "partial":
            send_partial(client, prepared, report, batch_size=batch_size, journal=journal, dry_run=dry_run,
                         diff_out=diff_out)
        else:
            send_full(client, prepared, report, confirm=confirm, dry_run=dry_run, baseline=baseline_set,
                      zero_threshold=zero_threshold, diff_out=diff_out)
    finally:
        report.requests = client.stats.requests - requests_before
        report.retries = client.stats.retries - retries_before
        report.duration_seconds = time.monotonic() - started
        if own_client:
            client.close()
    return report


def _check_options(mode: str, batch_size: int, zero_threshold: float) -> None:
    if mode not in MODES:
        raise ConfigError(f"mode must be 'partial' or 'full', not {mode!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, not {batch_size!r}")
    if not 0 <= zero_threshold <= 1:
        raise ConfigError(f"zero_threshold must be between 0 and 1, not {zero_threshold!r}")


def _journal_path(data: Any, mode: str, journal: str | Path | None, report: LoadReport) -> str | Path | None:
    """The journal of a partial load: the one given, else FILE.journal.jsonl beside an input file.
    A full load keeps none (a warning says so when one was given)."""
    if mode == "full":
        if journal is not None:
            report.warnings.append("the journal is for partial loads; a full load is one request and is not journaled")
        return None
    if journal is None and isinstance(data, (str, Path)):
        source = Path(data)
        return source.with_name(source.name + ".journal.jsonl")
    return journal


__all__ = ["LoadReport", "load_inventory", "compute_diff", "fetch_current", "prepare_inventory", "build_payload"]
