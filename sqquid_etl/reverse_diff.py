"""Reverse load: the diff of an input against current inventory, counted into the report and
optionally written as CSV.

`change` per record: `new` (not in the account), `changed`, `unchanged`, and in a full update,
for a current record the input does not list: `zeroed` (set to 0 from another quantity),
`unchanged` (already 0) or `kept` (`--zero unlisted-skus`: another location or bin of a sku the
input lists, which the update leaves as it is). `flag` is `negative` for a new quantity below 0
(oversold stock: accepted, shown)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ConfigError
from .reverse_report import LoadReport
from .reverse_validate import KEY

DIFF_COLUMNS = ["sku", "location_external_id", "bin", "current_qty", "new_qty", "change", "flag"]
ZERO_CHOICES = ("unlisted-skus", "unlisted-records")


def compute_diff(records: pd.DataFrame, current: pd.DataFrame, mode: str, zero: str = "unlisted-skus") -> pd.DataFrame:
    """Per record: current_qty, new_qty, change and flag (see the module). Partial mode leaves
    the current records the input does not list out (it does not touch them)."""
    new = records[KEY + ["qty_on_hand"]].rename(columns={"qty_on_hand": "new_qty"})
    how = "outer" if mode == "full" else "left"
    diff = new.merge(current[KEY + ["current_qty"]], on=KEY, how=how, indicator=True, sort=False)
    merge = diff["_merge"].to_numpy()
    only_current = merge == "right_only"
    diff["new_qty"] = diff["new_qty"].fillna(0).astype("int64")
    diff["current_qty"] = diff["current_qty"].astype("Int64")
    same = (diff["current_qty"] == diff["new_qty"]).fillna(False).to_numpy(dtype=bool)
    change = np.full(len(diff), "changed", dtype=object)
    change[same] = "unchanged"
    change[merge == "left_only"] = "new"
    change[only_current & ~same] = "zeroed"
    if mode == "full" and zero == "unlisted-skus":
        listed = diff["sku"].isin(new["sku"].unique()).to_numpy(dtype=bool)
        change[only_current & listed] = "kept"
        diff.loc[only_current & listed, "new_qty"] = diff.loc[only_current & listed, "current_qty"].astype("int64")
    diff["change"] = change
    diff["flag"] = np.where(diff["new_qty"].to_numpy() < 0, "negative", "")
    return diff[DIFF_COLUMNS].sort_values(KEY, kind="stable", ignore_index=True)


def count_diff(diff: pd.DataFrame, report: LoadReport, mode: str, current_records: int) -> None:
    counts = diff["change"].value_counts()
    report.changed = int(counts.get("changed", 0))
    report.unchanged = int(counts.get("unchanged", 0))
    report.new = int(counts.get("new", 0))
    report.records_zeroed = int(counts.get("zeroed", 0)) if mode == "full" else None
    report.kept = int(counts.get("kept", 0)) if mode == "full" else None
    report.negative = int((diff["flag"] == "negative").sum())
    report.current_records_seen = current_records
    report.diff = diff
    if report.negative:
        report.warnings.append(f"{report.negative} record(s) get a negative quantity (oversold stock): sent as "
                               "given; the diff flags them")


def write_diff(diff: pd.DataFrame, path: str | Path, report: LoadReport) -> None:
    """The diff as CSV, written whole or not at all (a temporary file renamed over `path`)."""
    path = Path(path)
    partial = path.with_name(path.name + ".part")
    try:
        diff.to_csv(partial, index=False, columns=DIFF_COLUMNS)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ConfigError(f"--diff-out {str(path)!r} cannot be written ({exc.strerror}); nothing was sent") from exc
    report.diff_out = str(path)
