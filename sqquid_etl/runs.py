"""The run record: one row of `_sqquid_runs`, what one stream did in one run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

RUN_COLUMNS = (
    "run_id", "stream", "started_at", "finished_at", "status", "rows", "pages", "requests",
    "window_start", "cursor", "count_expected", "count_received", "count_check", "message",
    "records_stored", "values_coerced", "records_quarantined",
    "records_new", "records_changed", "records_unchanged", "records_deleted",
)
# the integer columns (the others are text); columns added after the first version come last, so
# a destination made by an older version gains them (DuckDB: ALTER TABLE; Parquet: files read by name)
CHANGE_COLUMNS = ("records_new", "records_changed", "records_unchanged", "records_deleted")
RUN_INTEGERS = ("rows", "pages", "requests", "count_expected", "count_received", "records_stored",
                "values_coerced", "records_quarantined") + CHANGE_COLUMNS
ADDED_RUN_COLUMNS = ("records_stored", "values_coerced", "records_quarantined") + CHANGE_COLUMNS


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
    records_stored: int = 0  # records received and stored (their values coerced where they drifted)
    values_coerced: int = 0  # values stored in another form than they were sent in, without loss
    records_quarantined: int = 0  # records received and stored in `_sqquid_rejected` instead
    # by record of the stream's own table, where the destination compares content hashes
    # (`_sqquid_hash`): received and not stored before / stored with other content / the same;
    # and records proven gone upstream (`_sqquid_deleted_at` set, or removed by --hard-delete)
    records_new: int = 0
    records_changed: int = 0
    records_unchanged: int = 0
    records_deleted: int = 0

    def as_row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in RUN_COLUMNS}


# records quarantined by a run: one row each, stored in the commit of the stream's data and state
REJECTED_TABLE = "_sqquid_rejected"
REJECTED_COLUMNS = ("run_id", "stream", "table", "key", "field", "reason", "record")  # all text


def rejected_rows(run_id: str, stream: str, rejected: list) -> "pa.Table":
    """The rows of `_sqquid_rejected` for records a run quarantined (`records.Rejected`)."""
    import pyarrow as pa

    columns = {
        "run_id": [run_id] * len(rejected), "stream": [stream] * len(rejected),
        **{name: [getattr(r, name) for r in rejected] for name in REJECTED_COLUMNS[2:]},
    }
    return pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})
