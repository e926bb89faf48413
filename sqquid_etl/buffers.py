"""Buffers write-back: make the account's dynamic buffers the ones of a frame.

    read input (reverse_input) -> validate whole input (buffers_validate)
    -> current buffers (buffers_current: the `buffers` stream) -> channels checked
    -> plan (buffers_diff): create the missing, update the changed; mode "full" also deletes the
       buffers the frame does not have, refused above the threshold without confirm
    -> one request per operation, journaled (buffers_send) -> BuffersReport

Nothing is sent before the whole input validated (and its channels were found in the account).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pandas as pd

from .buffers_current import fetch_buffers
from .buffers_diff import plan_buffers, write_plan
from .buffers_report import BuffersReport
from .buffers_send import send_plan
from .buffers_validate import KEY, PreparedBuffers, check_channels, prepare_buffers
from .client import SqquidClient
from .errors import ConfigError, InputError
from .load_session import load_client
from .reverse_current import Progress
from .reverse_input import refuse_overlaps
from .reverse_journal import journal_beside, lock_of
from .settings import DEFAULT_BURST, DEFAULT_RATE

MODES = ("partial", "full")


def load_buffers(
    data: Any,
    *,
    mode: str = "partial",
    client: SqquidClient | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    dry_run: bool = False,
    confirm: bool = False,
    channels: list[int] | None = None,
    journal: str | Path | None = None,
    delete_threshold: float = 0.05,
    diff_out: str | Path | None = None,
    rate: float | None = DEFAULT_RATE,
    burst: int = DEFAULT_BURST,
    progress: Progress | None = None,
) -> BuffersReport:
    """Make the account's buffers those of `data` (DataFrame, pyarrow Table, CSV/Parquet path) with
    columns sku, channel_id, location_external_id (each optional: empty = any) and quantity (or
    qty); see docs/reverse-load.md. "partial" creates and updates; "full" also deletes the
    buffers not in `data`, refused without `confirm` above `delete_threshold` of the account's."""
    started = time.monotonic()
    journal = _check_options(data, mode, delete_threshold, journal, diff_out)
    prepared = prepare_buffers(data)
    if mode == "partial" and prepared.rows_read == 0:
        raise InputError("buffers input has no data rows: nothing to load; nothing was sent")
    report = BuffersReport(mode=mode, dry_run=dry_run, rows_read=prepared.rows_read,
                           journal=None if journal is None else str(journal))
    with load_client(report, client, started, base_url=base_url, api_key=api_key, username=username,
                     password=password, rate=rate, burst=burst) as client:
        plan = _plan(client, prepared, report, mode, channels, progress)
        if diff_out is not None:
            write_plan(plan, diff_out)
            report.diff_out = str(diff_out)
        _guard(report, mode, confirm, dry_run, delete_threshold)
        if not dry_run:
            send_plan(client, plan, report, journal, _load_key(prepared, mode))
    return report


def _plan(client: SqquidClient, prepared: PreparedBuffers, report: BuffersReport, mode: str,
          channels: list[int] | None, progress: Progress | None) -> pd.DataFrame:
    current = fetch_buffers(client, progress)
    known = {int(c) for c in current["channel_id"] if c is not None} | set(channels or ())
    check_channels(prepared, known)
    plan = plan_buffers(prepared.records, current, mode)
    counts = plan["op"].value_counts()
    report.current_buffers = len(current)
    report.creates, report.updates = int(counts.get("create", 0)), int(counts.get("update", 0))
    report.deletes, report.unchanged = int(counts.get("delete", 0)), int(counts.get("unchanged", 0))
    report.duplicates_left = int(counts.get("duplicate", 0))
    report.negative = int((plan["flag"] == "negative").sum())
    report.plan = plan
    if report.duplicates_left:
        ids = plan.loc[plan["op"] == "duplicate", "id"].tolist()
        report.warnings.append(f"{report.duplicates_left} buffer(s) of the account repeat another's (sku, channel, "
                               f"location) (ids {ids[:5]}): left as they are; --mode full deletes them")
    if report.negative:
        report.warnings.append(f"{report.negative} buffer(s) get a negative quantity: sent as given")
    return plan


def _guard(report: BuffersReport, mode: str, confirm: bool, dry_run: bool, threshold: float) -> None:
    if mode != "full" or not report.deletes:
        return
    share = report.deletes / report.current_buffers if report.current_buffers else 0.0
    if share <= threshold:
        return
    message = (f"it would delete {report.deletes} of the account's {report.current_buffers} buffers ({share:.1%}, "
               f"more than the threshold {threshold:.1%})")
    if dry_run:
        report.warnings.append(f"sending it needs --yes (confirm=True): {message}")
    elif not confirm:
        raise ConfigError(f"buffers full load refused: {message}; nothing was sent. Check the plan (--dry-run "
                          "--diff-out plan.csv), then re-run with --yes (confirm=True) or raise --threshold")


def _check_options(data: Any, mode: str, threshold: float, journal: str | Path | None,
                   diff_out: str | Path | None) -> str | Path | None:
    if mode not in MODES:
        raise ConfigError(f"mode must be 'partial' or 'full', not {mode!r}")
    if not 0 <= threshold <= 1:
        raise ConfigError(f"delete_threshold must be between 0 and 1, not {threshold!r}")
    journal = journal_beside(data, journal)
    refuse_overlaps([("input", data)], [("--journal", journal), ("--journal's lock", lock_of(journal)),
                                        ("--diff-out", diff_out)])
    return journal


def _load_key(prepared: PreparedBuffers, mode: str) -> str:
    frame = prepared.records[KEY + ["quantity"]].astype(str)
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(f"buffers:{mode}:".encode() + hashed.tobytes()).hexdigest()
