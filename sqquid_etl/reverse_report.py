"""Reverse load: the report of what a load did (or, with dry_run, would do)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class LoadReport:
    """What a reverse load did (or, with dry_run, would do)."""

    mode: str
    dry_run: bool
    rows_read: int = 0
    records: int = 0  # distinct (sku, location, bin) after collapsing identical duplicates
    duplicates_collapsed: int = 0
    skus: int = 0  # distinct skus in the input
    via: str | None = None  # full: "chunks" (explicit partial updates) or "full-endpoint"
    zero: str | None = None  # full: "unlisted-skus" or "unlisted-records"
    skus_sent: int = 0
    records_sent: int = 0
    batches_total: int = 0  # chunks (requests) the load is cut into
    batches_sent: int = 0
    batches_skipped: int = 0  # acknowledged in the journal by an earlier run
    already_applied: bool = False
    requests: int = 0
    retries: int = 0
    changed: int | None = None
    unchanged: int | None = None
    new: int | None = None
    records_zeroed: int | None = None  # full: records currently not 0 that the update sets to 0
    kept: int | None = None  # full, --zero unlisted-skus: other records of listed skus, left as they are
    negative: int = 0  # records given a negative quantity (oversold)
    cannot_be_seen: int = 0  # full: skus that cannot be listed and products that could not be read
    current_records_seen: int | None = None
    current_source: str | None = None  # "the API" or "the baseline FILE"
    journal: str | None = None
    diff_out: str | None = None
    duration_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    diff: pd.DataFrame | None = field(default=None, repr=False)

    def summary(self) -> str:
        how = f", {self.via}, zero {self.zero}" if self.mode == "full" else ""
        head = f"load-inventory ({self.mode}{how}{', dry run: nothing sent' if self.dry_run else ''})"
        lines = [head, f"  rows read:          {self.rows_read} ({self.records} records, "
                       f"{self.duplicates_collapsed} identical duplicate rows collapsed, {self.skus} skus)"]
        if self.already_applied:
            lines.append(f"  already applied: the journal {self.journal} marks this exact input as complete; "
                         "nothing sent (delete the journal or give another --journal to apply it again)")
        lines.extend(self._chunk_lines())
        lines.extend(self._diff_lines())
        lines.append(f"  requests:           {self.requests} ({self.retries} retries)")
        if self.journal and not self.already_applied:
            lines.append(f"  journal:            {self.journal}")
        if self.diff_out:
            lines.append(f"  diff written to:    {self.diff_out}")
        lines.append(f"  duration:           {self.duration_seconds:.2f}s")
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def _chunk_lines(self) -> list[str]:
        if not self.dry_run:
            return [f"  records sent:       {self.records_sent} ({self.skus_sent} sku objects)",
                    f"  chunks sent:        {self.batches_sent} of {self.batches_total}",
                    f"  chunks skipped:     {self.batches_skipped} (acknowledged in the journal)"]
        lines = [f"  chunks planned:     {self.batches_total}"] if self.batches_total else []
        if self.batches_skipped:
            lines.append(f"  journal:            {self.batches_skipped} of {self.batches_total} chunks already "
                         "acknowledged")
        return lines

    def _diff_lines(self) -> list[str]:
        lines = []
        if self.changed is not None:
            full = self.mode == "full"
            lines.append(f"  diff:               {self.changed} changed, {self.unchanged} unchanged, {self.new} new"
                         + (f", {self.records_zeroed} set to zero, {self.kept} kept" if full else "")
                         + f" ({self.current_records_seen} current records seen"
                         + (f" in {self.current_source})" if self.current_source else ")"))
        if self.mode == "full" and self.records_zeroed is not None:
            label = "to be zeroed:" if self.dry_run else "records zeroed:"
            lines.append(f"  {label:<20}{self.records_zeroed}")
            lines.append(f"  cannot be seen:     {self.cannot_be_seen} sku(s)/product(s)")
        if self.negative:
            lines.append(f"  negative:           {self.negative} record(s) below 0 (flagged in the diff)")
        return lines
