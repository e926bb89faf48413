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
        lines.extend(self._batch_lines())
        lines.extend(self._diff_lines())
        lines.append(f"  requests:           {self.requests} ({self.retries} retries)")
        if self.journal and not self.already_applied:
            lines.append(f"  journal:            {self.journal}")
        if self.diff_out:
            lines.append(f"  diff written to:    {self.diff_out}")
        lines.append(f"  duration:           {self.duration_seconds:.2f}s")
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def _batch_lines(self) -> list[str]:
        if not self.dry_run:
            return [f"  skus sent:          {self.skus_sent}",
                    f"  batches sent:       {self.batches_sent} of {self.batches_total}",
                    f"  batches skipped:    {self.batches_skipped} (acknowledged in the journal)"]
        if self.mode == "partial" and self.batches_skipped:
            return [f"  journal:            {self.batches_skipped} of {self.batches_total} batches already acknowledged"]
        return []

    def _diff_lines(self) -> list[str]:
        lines = []
        if self.changed is not None:
            lines.append(f"  diff:               {self.changed} changed, {self.unchanged} unchanged, {self.new} new"
                         + (f", {self.records_zeroed} set to zero" if self.mode == "full" else "")
                         + f" ({self.current_records_seen} current records seen)")
        if self.mode == "full" and self.records_zeroed is not None and not self.dry_run:
            lines.append(f"  records zeroed:     {self.records_zeroed} (among the records that could be seen)")
        return lines
