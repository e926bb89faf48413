"""Reverse load: set Sqquid inventory from a DataFrame, CSV or Parquet file.

    validate whole input (reverse_validate) -> payload -> [diff against current inventory]
    -> partial: batches of skus, each acknowledged batch journaled
    -> full: one request with the complete list (the API zeroes everything not listed)

Nothing is sent before the whole input validated. A failed partial load can be re-run with
the same input: batches that the journal records as acknowledged are skipped.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import quote

import pandas as pd

from .client import Credentials, SqquidClient
from .errors import ApiError, ConfigError, SqquidError, StateError
from .reverse_validate import (
    DEFAULT,
    KEY,
    PreparedInventory,
    build_payload,
    payload_hash,
    prepare_inventory,
    to_frame,
)

log = logging.getLogger(__name__)

PARTIAL_PATH = "/v1/inventory/partial"
FULL_PATH = "/v1/inventory/full"
LIST_PATH = "/v1/inventory"
LIST_LIMIT = 1000
MAX_URL_LENGTH = 2000
DIFF_COLUMNS = ["sku", "location_external_id", "bin", "current_qty", "new_qty", "change"]
MODES = ("partial", "full")


@dataclass
class LoadReport:
    """What a reverse load did (or, with dry_run, would do)."""

    mode: str
    dry_run: bool
    rows_read: int = 0
    records: int = 0  # distinct (sku, location, bin) after collapsing identical duplicates
    duplicates_collapsed: int = 0
    skus: int = 0  # distinct skus in the input
    skus_sent: int = 0
    batches_total: int = 0
    batches_sent: int = 0
    batches_skipped: int = 0  # acknowledged in the journal by an earlier run
    already_applied: bool = False
    requests: int = 0
    retries: int = 0
    changed: int | None = None
    unchanged: int | None = None
    new: int | None = None
    records_zeroed: int | None = None  # full: records currently above 0 that the update sets to 0
    current_records_seen: int | None = None
    journal: str | None = None
    diff_out: str | None = None
    duration_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    diff: pd.DataFrame | None = field(default=None, repr=False)

    def summary(self) -> str:
        head = f"load-inventory ({self.mode}{', dry run: nothing sent' if self.dry_run else ''})"
        lines = [head, f"  rows read:          {self.rows_read} ({self.records} records, "
                       f"{self.duplicates_collapsed} identical duplicate rows collapsed, {self.skus} skus)"]
        if self.already_applied:
            lines.append(f"  already applied: the journal {self.journal} marks this exact input as complete; "
                         "nothing sent (delete the journal or give another --journal to apply it again)")
        if not self.dry_run:
            lines.append(f"  skus sent:          {self.skus_sent}")
            lines.append(f"  batches sent:       {self.batches_sent} of {self.batches_total}")
            lines.append(f"  batches skipped:    {self.batches_skipped} (acknowledged in the journal)")
        elif self.mode == "partial" and self.batches_skipped:
            lines.append(f"  journal:            {self.batches_skipped} of {self.batches_total} batches already acknowledged")
        if self.changed is not None:
            lines.append(f"  diff:               {self.changed} changed, {self.unchanged} unchanged, {self.new} new"
                         + (f", {self.records_zeroed} set to zero" if self.mode == "full" else "")
                         + f" ({self.current_records_seen} current records seen)")
        if self.mode == "full" and self.records_zeroed is not None and not self.dry_run:
            lines.append(f"  records zeroed:     {self.records_zeroed} (among the records that could be seen)")
        lines.append(f"  requests:           {self.requests} ({self.retries} retries)")
        if self.journal and not self.already_applied:
            lines.append(f"  journal:            {self.journal}")
        if self.diff_out:
            lines.append(f"  diff written to:    {self.diff_out}")
        lines.append(f"  duration:           {self.duration_seconds:.2f}s")
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)


# -- current inventory and the diff -------------------------------------------------------


def sku_batches(skus: Iterable[str], base_url: str, max_url_length: int = MAX_URL_LENGTH) -> tuple[list[list[str]], list[str]]:
    """Skus grouped so that each `GET /v1/inventory?skus=...` URL stays under the limit.
    Skus holding a comma cannot be listed (the API splits on commas): returned apart."""
    budget = max_url_length - len(base_url) - len(LIST_PATH) - 80
    batches: list[list[str]] = []
    current: list[str] = []
    size = 0
    unlistable = []
    for sku in sorted(set(skus)):
        if "," in sku:
            unlistable.append(sku)
            continue
        cost = len(quote(sku, safe="")) + 3  # the comma, encoded as %2C
        if cost > budget:
            unlistable.append(sku)
            continue
        if current and size + cost > budget:
            batches.append(current)
            current, size = [], 0
        current.append(sku)
        size += cost
    if current:
        batches.append(current)
    return batches, unlistable


def fetch_current(client: SqquidClient, skus: Iterable[str]) -> tuple[pd.DataFrame, list[str]]:
    """Current inventory records of the given skus (columns sku, location_external_id, bin,
    current_qty) and the skus that could not be listed."""
    batches, unlistable = sku_batches(skus, client.base_url)
    rows: dict[tuple[str, str, str], int] = {}
    for batch in batches:
        offset = 0
        while True:
            body = client.get(LIST_PATH, {"skus": ",".join(batch), "offset": offset, "limit": LIST_LIMIT})
            results = body.get("results") if isinstance(body, dict) else None
            if not isinstance(results, list):
                raise ApiError(f"GET {LIST_PATH} answered without a 'results' list", endpoint=f"GET {LIST_PATH}")
            for item in results:
                sku = str(item.get("sku"))
                for rec in item.get("inventory") or []:
                    key = (sku, str(rec.get("location_external_id") or DEFAULT), str(rec.get("bin") or DEFAULT))
                    rows[key] = int(rec.get("qty_on_hand") or 0)
            offset += len(results)
            total = body.get("total")
            if not results or (isinstance(total, int) and offset >= total) or (not isinstance(total, int) and len(results) < LIST_LIMIT):
                break
    frame = pd.DataFrame(
        [(*k, q) for k, q in rows.items()], columns=KEY + ["current_qty"]
    ).astype({"sku": object, "location_external_id": object, "bin": object, "current_qty": "int64"})
    return frame, unlistable


def compute_diff(records: pd.DataFrame, current: pd.DataFrame, mode: str) -> pd.DataFrame:
    """Per record: current_qty, new_qty and change in {changed, unchanged, new, zeroed}.
    Full mode adds every current record missing from the input (new_qty 0: "zeroed" if it
    was above 0, else "unchanged"); partial mode leaves those out (it does not touch them)."""
    new = records[KEY + ["qty_on_hand"]].rename(columns={"qty_on_hand": "new_qty"})
    how = "outer" if mode == "full" else "left"
    diff = new.merge(current, on=KEY, how=how, indicator=True)
    only_current = (diff["_merge"] == "right_only").to_numpy()
    diff["new_qty"] = diff["new_qty"].fillna(0).astype("int64")
    diff["current_qty"] = diff["current_qty"].astype("Int64")
    change = pd.Series("changed", index=diff.index, dtype=object)
    same = (diff["current_qty"] == diff["new_qty"]).fillna(False).to_numpy(dtype=bool)
    change[same] = "unchanged"
    change[(diff["_merge"] == "left_only").to_numpy()] = "new"
    change[only_current & ~same] = "zeroed"
    diff["change"] = change
    return diff[DIFF_COLUMNS].sort_values(KEY, kind="stable").reset_index(drop=True)


def baseline_skus(path: str | Path) -> set[str]:
    """Skus known to an extract: tables inventory, products and product_variants."""
    import duckdb

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"baseline DuckDB file {str(path)!r} does not exist")
    skus: set[str] = set()
    found = []
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            for table in ("inventory", "products", "product_variants"):
                if table in tables:
                    found.append(table)
                    rows = con.execute(f'SELECT DISTINCT CAST(sku AS VARCHAR) FROM "{table}" WHERE sku IS NOT NULL').fetchall()
                    skus.update(r[0] for r in rows if r[0] != "")
    except duckdb.Error as exc:
        raise ConfigError(f"baseline {str(path)!r} could not be read: {exc}") from exc
    if not found:
        raise ConfigError(f"baseline {str(path)!r} has none of the tables inventory, products, product_variants: "
                          "give the DuckDB file of an extract")
    return skus


def write_diff(diff: pd.DataFrame, path: str | Path) -> None:
    diff.to_csv(path, index=False, columns=DIFF_COLUMNS)


# -- the journal --------------------------------------------------------------------------


class Journal:
    """JSON lines: one line per acknowledged batch, one line when a load completed.

    Lines belong to an input by its hash, so one journal may hold several inputs; a line cut
    short by a crash is ignored."""

    def __init__(self, path: Path, input_hash: str):
        self.path = path
        self.input_hash = input_hash
        self.acknowledged: set[str] = set()
        self.complete = False
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(entry, dict) or entry.get("input") != input_hash:
                    continue
                if entry.get("event") == "batch":
                    self.acknowledged.add(str(entry.get("batch")))
                elif entry.get("event") == "complete":
                    self.complete = True

    def _append(self, entry: dict[str, Any]) -> None:
        entry = {**entry, "input": self.input_hash, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, separators=(",", ":")) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def check_writable(self) -> None:
        """Fail before anything is sent if the journal cannot be written."""
        try:
            with open(self.path, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise ConfigError(f"journal {str(self.path)!r} cannot be written ({exc.strerror}); nothing was sent") from exc

    def record_batch(self, batch_hash: str, index: int, skus: int) -> None:
        self._append({"event": "batch", "batch": batch_hash, "index": index, "skus": skus})
        self.acknowledged.add(batch_hash)

    def record_complete(self, batches: int, records: int) -> None:
        self._append({"event": "complete", "batches": batches, "records": records})
        self.complete = True


@contextmanager
def journal_lock(path: Path) -> Iterator[None]:
    """Hold the journal for one load: two loads sharing it would both send the batches neither
    had acknowledged yet. A second load is refused (StateError) before anything is sent."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        handle = open(lock_path, "a")
    except OSError as exc:
        raise ConfigError(f"journal {str(path)!r} cannot be locked ({exc.strerror}); nothing was sent") from exc
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateError(f"journal {str(path)!r} is in use by another load (still running?); nothing was sent; "
                             "wait for it to finish") from None
        yield  # the lock file stays: removing it would race a load about to lock it


# -- the load -----------------------------------------------------------------------------


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
    rate: float | None = 2.0,
    burst: int = 40,
) -> LoadReport:
    """Set inventory from `data` (DataFrame, pyarrow Table, or a CSV/Parquet path).

    mode "partial": sets the given (sku, location, bin) records, in batches of `batch_size`
    skus, journaled so that a re-run skips acknowledged batches. mode "full": one request
    with the complete list; every other inventory record of the account becomes 0, so it is
    refused when it would zero more than `zero_threshold` of the records currently above 0,
    unless `confirm`. `dry_run` computes the diff and sends no update.
    """
    started = time.monotonic()
    if mode not in MODES:
        raise ConfigError(f"mode must be 'partial' or 'full', not {mode!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, not {batch_size!r}")
    if not 0 <= zero_threshold <= 1:
        raise ConfigError(f"zero_threshold must be between 0 and 1, not {zero_threshold!r}")
    source = Path(data) if isinstance(data, (str, Path)) else None
    prepared = prepare_inventory(to_frame(data))
    report = LoadReport(mode=mode, dry_run=dry_run, rows_read=prepared.rows_read, records=len(prepared.records),
                        duplicates_collapsed=prepared.duplicates_collapsed, skus=prepared.skus)
    if journal is None and source is not None and mode == "partial":
        journal = source.with_name(source.name + ".journal.jsonl")
    if journal is not None and mode == "full":
        report.warnings.append("the journal is for partial loads; a full load is one request and is not journaled")
        journal = None
    baseline_set = baseline_skus(baseline) if baseline is not None else None

    own_client = client is None
    if client is None:
        client = SqquidClient(Credentials.from_env(api_key, username, password), base_url, rate=rate, burst=burst)
    requests_before, retries_before = client.stats.requests, client.stats.retries
    try:
        if mode == "partial":
            _partial(client, prepared, report, batch_size=batch_size, journal=journal, dry_run=dry_run,
                     diff_out=diff_out)
        else:
            _full(client, prepared, report, confirm=confirm, dry_run=dry_run, baseline=baseline_set,
                  zero_threshold=zero_threshold, diff_out=diff_out)
    finally:
        report.requests = client.stats.requests - requests_before
        report.retries = client.stats.retries - retries_before
        report.duration_seconds = time.monotonic() - started
        if own_client:
            client.close()
    return report


def _diff(client: SqquidClient, prepared: PreparedInventory, report: LoadReport, mode: str,
          extra_skus: set[str] | None, diff_out: str | Path | None) -> pd.DataFrame:
    skus = set(prepared.records["sku"].tolist())
    if extra_skus:
        skus |= extra_skus
    current, unlistable = fetch_current(client, skus)
    if unlistable:
        report.warnings.append(
            f"{len(unlistable)} sku(s) contain a comma or are too long to be listed by GET {LIST_PATH}; their current "
            f"inventory was not seen (e.g. {unlistable[:3]})")
    diff = compute_diff(prepared.records, current, mode)
    counts = diff["change"].value_counts()
    report.changed = int(counts.get("changed", 0))
    report.unchanged = int(counts.get("unchanged", 0))
    report.new = int(counts.get("new", 0))
    report.records_zeroed = int(counts.get("zeroed", 0)) if mode == "full" else None
    report.current_records_seen = len(current)
    report.diff = diff
    if diff_out is not None:
        write_diff(diff, diff_out)
        report.diff_out = str(diff_out)
    return current


def _partial(client: SqquidClient, prepared: PreparedInventory, report: LoadReport, *, batch_size: int,
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
        _diff(client, prepared, report, "partial", None, diff_out)
        return
    if diff_out is not None:
        _diff(client, prepared, report, "partial", None, diff_out)
    if book is not None and book.complete:
        report.already_applied = True
        report.batches_skipped = len(batches)
        return
    if book is not None:
        book.check_writable()
    for index, batch in enumerate(batches, start=1):
        digest = payload_hash(batch)
        if book is not None and digest in book.acknowledged:
            report.batches_skipped += 1
            continue
        try:
            client.patch(PARTIAL_PATH, batch)
        except SqquidError as exc:
            done = report.batches_sent + report.batches_skipped
            resume = (f"{done} of {len(batches)} batches are acknowledged in the journal {report.journal}: re-run with "
                      "the same input to send only the rest" if book is not None else
                      f"{done} of {len(batches)} batches were applied; no journal was kept, so a re-run sends every "
                      "batch again (harmless for a partial update)")
            raise type(exc)(f"partial load stopped at batch {index} of {len(batches)}: {exc}. {resume}",
                            **_error_kwargs(exc)) from exc
        if book is not None:
            book.record_batch(digest, index, len(batch))
        report.batches_sent += 1
        report.skus_sent += len(batch)
    if book is not None:
        book.record_complete(len(batches), len(prepared.records))


def _error_kwargs(exc: SqquidError) -> dict[str, Any]:
    if isinstance(exc, ApiError):
        return {"status": exc.status, "endpoint": exc.endpoint}
    return {}


def _full(client: SqquidClient, prepared: PreparedInventory, report: LoadReport, *, confirm: bool, dry_run: bool,
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
    current = _diff(client, prepared, report, "full", baseline, diff_out)
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


__all__ = ["LoadReport", "load_inventory", "compute_diff", "fetch_current", "prepare_inventory", "build_payload"]
