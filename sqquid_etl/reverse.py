"""Reverse load: set Sqquid inventory from a DataFrame, CSV or Parquet file.

    read input (reverse_input) -> validate whole input (reverse_validate) -> records
    -> partial: the records, in chunks, each acknowledged chunk journaled (reverse_send)
    -> full: current inventory first (reverse_current: --baseline, or the products and inventory
       streams), the diff and its guard (reverse_diff, reverse_full), then by default the records
       and a 0 for every record the update zeroes, as chunked partial updates journaled like a
       partial load; or one PATCH /v1/inventory/full (via="full-endpoint")

Nothing is sent before the whole input validated, and no full update is sent whose effect was not
counted. A load stopped midway is re-run with the same input: chunks the journal acknowledges
are skipped.

The modules, by job: `reverse_input` (read a frame, file or query; refuse overlapping paths),
`reverse_validate` (validate, payload), `reverse_current` (current inventory, baseline),
`reverse_diff` (the diff and its counts), `reverse_chunks` (cutting records into requests),
`reverse_journal` (the journal and its lock), `reverse_send` (chunked partial updates),
`reverse_full` (a full update), `reverse_report` (`LoadReport`), `reverse_cli` (the command);
this one runs a load.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .client import SqquidClient
from .errors import ConfigError
from .load_session import load_client
from .reverse_current import Current, Progress, parse_age, read_baseline, release_memory
from .reverse_diff import ZERO_CHOICES, compute_diff
from .reverse_full import VIA_CHOICES, FullOptions, send_full
from .reverse_input import refuse_overlaps
from .reverse_journal import journal_beside, lock_of
from .reverse_report import LoadReport
from .reverse_send import send_partial
from .reverse_validate import build_payload, prepare_inventory
from .settings import DEFAULT_BURST, DEFAULT_RATE

MODES = ("partial", "full")
DEFAULT_BASELINE_MAX_AGE = 3600.0


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
    baseline_max_age: float | str = DEFAULT_BASELINE_MAX_AGE,
    zero: str = "unlisted-skus",
    via: str = "chunks",
    zero_threshold: float = 0.05,
    diff_out: str | Path | None = None,
    rate: float | None = DEFAULT_RATE,
    burst: int = DEFAULT_BURST,
    progress: Progress | None = None,
) -> LoadReport:
    """Set inventory from `data` (DataFrame, pyarrow Table, or a CSV/Parquet path); see
    docs/reverse-load.md. "partial" sets the given records; "full" also zeroes what `zero` says,
    after counting it against the account's inventory (`baseline`, else the API), refused
    without `confirm` above `zero_threshold` or when it touches what cannot be seen; sent
    `via` chunked partial updates (journaled) or one PATCH /v1/inventory/full."""
    started = time.monotonic()
    journal = _check_options(data, mode, batch_size, zero_threshold, zero, via, journal, baseline, diff_out)
    max_age = parse_age(baseline_max_age)
    prepared = prepare_inventory(data)
    release_memory()
    report = LoadReport(mode=mode, dry_run=dry_run, rows_read=prepared.rows_read, records=len(prepared.records),
                        duplicates_collapsed=prepared.duplicates_collapsed, skus=prepared.skus)
    current = _baseline(mode, baseline, max_age, report)

    options = FullOptions(zero=zero, via=via, confirm=confirm, dry_run=dry_run, zero_threshold=zero_threshold,
                          batch_size=batch_size, journal=journal, diff_out=diff_out)
    with load_client(report, client, started, base_url=base_url, api_key=api_key, username=username,
                     password=password, rate=rate, burst=burst) as client:
        if mode == "partial":
            send_partial(client, prepared, report, batch_size=batch_size, journal=journal, dry_run=dry_run,
                         diff_out=diff_out)
        else:
            report.via, report.zero = via, zero
            report.current_source = current.source if current is not None else "the API"
            send_full(client, prepared, report, options, current, progress)
    return report


def _baseline(mode: str, baseline: str | Path | None, max_age: float, report: LoadReport) -> Current | None:
    """A full update's current inventory from `--baseline`, read before any login."""
    if baseline is None:
        return None
    if mode == "partial":
        report.warnings.append("--baseline is for full updates; a partial load reads the input's skus itself")
        return None
    current = read_baseline(baseline, max_age)
    release_memory()
    return current


def _check_options(data: Any, mode: str, batch_size: int, zero_threshold: float, zero: str, via: str,
                   journal: str | Path | None, baseline: str | Path | None, diff_out: str | Path | None,
                   ) -> str | Path | None:
    """Refuse bad options before anything is read or sent; the journal the load keeps."""
    if mode not in MODES:
        raise ConfigError(f"mode must be 'partial' or 'full', not {mode!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, not {batch_size!r}")
    if not 0 <= zero_threshold <= 1:
        raise ConfigError(f"zero_threshold must be between 0 and 1, not {zero_threshold!r}")
    if zero not in ZERO_CHOICES:
        raise ConfigError(f"zero must be one of {', '.join(ZERO_CHOICES)}, not {zero!r}")
    if via not in VIA_CHOICES:
        raise ConfigError(f"via must be one of {', '.join(VIA_CHOICES)}, not {via!r}")
    journal = _journal_path(data, mode, via, journal)
    refuse_overlaps([("input", data), ("baseline", baseline)],
                    [("--journal", journal), ("--journal's lock", lock_of(journal)), ("--diff-out", diff_out)])
    return journal


def _journal_path(data: Any, mode: str, via: str, journal: str | Path | None) -> str | Path | None:
    """The journal of a chunked load: the one given, else FILE.journal.jsonl beside an input file.
    A full update sent as one request keeps none."""
    if mode == "full" and via == "full-endpoint":
        if journal is not None:
            raise ConfigError("--journal is for chunked loads; --via full-endpoint is one request and keeps none")
        return None
    return journal_beside(data, journal)


__all__ = ["LoadReport", "load_inventory", "compute_diff", "prepare_inventory", "build_payload"]
