"""Buffers write-back: the report of what a load did (or, with dry_run, would do)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class BuffersReport:
    """What `load_buffers` did (or, with dry_run, would do)."""

    mode: str
    dry_run: bool
    rows_read: int = 0
    current_buffers: int | None = None  # the account's, before the load
    creates: int = 0
    updates: int = 0
    deletes: int = 0
    unchanged: int = 0
    duplicates_left: int = 0  # partial: extra buffers of one tuple in the account, left as they are
    negative: int = 0  # buffers given a quantity below 0
    operations_sent: int = 0
    already_gone: int = 0  # deletes answered 404: someone deleted the buffer first
    acknowledged_before: int = 0  # operations an earlier run of this load journaled
    requests: int = 0
    retries: int = 0
    journal: str | None = None
    diff_out: str | None = None
    duration_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    plan: pd.DataFrame | None = field(default=None, repr=False)

    def summary(self) -> str:
        lines = [f"load-buffers ({self.mode}{', dry run: nothing sent' if self.dry_run else ''})",
                 f"  rows read:          {self.rows_read}",
                 f"  current buffers:    {self.current_buffers}",
                 f"  plan:               {self.creates} to create, {self.updates} to update, {self.deletes} to delete, "
                 f"{self.unchanged} unchanged"]
        if not self.dry_run:
            lines.append(f"  operations sent:    {self.operations_sent}"
                         + (f" ({self.already_gone} deletes found the buffer already gone)" if self.already_gone else ""))
        if self.acknowledged_before:
            lines.append(f"  journal:            {self.acknowledged_before} operation(s) done by an earlier run of this "
                         "load; the rest compared again against the account")
        if self.negative:
            lines.append(f"  negative:           {self.negative} buffer(s) below 0 (flagged in the plan)")
        lines.append(f"  requests:           {self.requests} ({self.retries} retries)")
        if self.journal:
            lines.append(f"  journal file:       {self.journal}")
        if self.diff_out:
            lines.append(f"  plan written to:    {self.diff_out}")
        lines.append(f"  duration:           {self.duration_seconds:.2f}s")
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)
