"""Reverse load: the diff of an input against current inventory, counted into the report and
optionally written as CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .client import SqquidClient
from .reverse_current import fetch_current, inventory_definition
from .reverse_report import LoadReport
from .reverse_validate import KEY, PreparedInventory

DIFF_COLUMNS = ["sku", "location_external_id", "bin", "current_qty", "new_qty", "change"]


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


def write_diff(diff: pd.DataFrame, path: str | Path) -> None:
    diff.to_csv(path, index=False, columns=DIFF_COLUMNS)


def diff_into_report(client: SqquidClient, prepared: PreparedInventory, report: LoadReport, mode: str,
                     extra_skus: set[str] | None, diff_out: str | Path | None) -> pd.DataFrame:
    """Read the current inventory of the input's skus (and `extra_skus`), diff the input against
    it, count the diff into `report` (and write it to `diff_out`); the current inventory read."""
    skus = set(prepared.records["sku"].tolist())
    if extra_skus:
        skus |= extra_skus
    current, unlistable = fetch_current(client, skus)
    if unlistable:
        report.warnings.append(
            f"{len(unlistable)} sku(s) contain a comma or are too long to be listed by GET "
            f"{inventory_definition().path}; their current inventory was not seen (e.g. {unlistable[:3]})")
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
