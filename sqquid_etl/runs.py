"""The run record: one row of `_sqquid_runs`, what one stream did in one run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RUN_COLUMNS = (
    "run_id", "stream", "started_at", "finished_at", "status", "rows", "pages", "requests",
    "window_start", "cursor", "count_expected", "count_received", "count_check", "message",
)


@dataclass
class RunRecord:
    """One row of `_sqquid_runs`: what one stream did in one run."""

    run_id: str
    stream: str
    started_at: str
    finished_at: str | None = None
    status: str = "running"
    rows: int = 0
    pages: int = 0
    requests: int = 0
    window_start: str | None = None
    cursor: str | None = None
    count_expected: int | None = None
    count_received: int | None = None
    count_check: str | None = None
    message: str | None = None

    def as_row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in RUN_COLUMNS}
