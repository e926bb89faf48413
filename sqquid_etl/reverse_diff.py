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
import pyarrow as pa

from .errors import ConfigError
from .reverse_report import LoadReport
from .reverse_validate import KEY

DIFF_COLUMNS = ["sku", "location_external_id", "bin", "current_qty", "new_qty", "change", "flag"]
ZERO_CHOICES = ("unlisted-skus", "unlisted-records")
CHANGES = ["new", "changed", "unchanged", "zeroed", "kept"]


def compute_diff(records: pd.DataFrame, current: pd.DataFrame, mode: str, zero: str = "unlisted-skus") -> pd.DataFrame:
    """Per record: current_qty, new_qty, change and flag (see the module), sorted by key. Partial
    mode leaves the current records the input does not list out (it does not touch them).

    The key columns become categoricals with the same sorted categories on both sides, and each
    record one int64 (its codes combined, in key order), so the join is a sorted search on integers."""
    categories = {c: _categories(records[c], current[c]) for c in KEY}
    sizes = [len(categories[c]) for c in KEY]
    new_keys = key_codes(records, categories, sizes)
    old_keys = key_codes(current, categories, sizes)
    keys = np.union1d(new_keys, old_keys) if mode == "full" else np.unique(new_keys)
    in_new, new_qty = _place(keys, new_keys, records["qty_on_hand"].to_numpy(dtype=np.int64))
    in_old, old_qty = _place(keys, old_keys, current["current_qty"].to_numpy(dtype=np.int64))
    only_current = in_old & ~in_new
    sku_codes = keys // (sizes[1] * sizes[2])
    same = in_old & (old_qty == new_qty)
    change = np.full(len(keys), 1, dtype=np.int8)  # codes of CHANGES
    change[same] = 2
    change[~in_old] = 0
    change[only_current & ~same] = 3
    if mode == "full" and zero == "unlisted-skus":
        listed = np.zeros(sizes[0], dtype=bool)
        listed[sku_codes[in_new]] = True
        kept = only_current & listed[sku_codes]
        change[kept] = 4
        new_qty[kept] = old_qty[kept]
    return pd.DataFrame({
        "sku": pd.Categorical.from_codes(sku_codes, categories=categories["sku"]),
        "location_external_id": pd.Categorical.from_codes(keys // sizes[2] % sizes[1],
                                                          categories=categories["location_external_id"]),
        "bin": pd.Categorical.from_codes(keys % sizes[2], categories=categories["bin"]),
        "current_qty": pd.arrays.IntegerArray(old_qty, ~in_old),
        "new_qty": new_qty,
        "change": pd.Categorical.from_codes(change, categories=CHANGES),
        "flag": pd.Categorical.from_codes((new_qty < 0).astype(np.int8), categories=["", "negative"]),
    })


def _place(keys: np.ndarray, found: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which of the sorted `keys` are among `found`, and their values (0 elsewhere)."""
    present = np.zeros(len(keys), dtype=bool)
    out = np.zeros(len(keys), dtype=np.int64)
    if len(keys) and len(found):
        pos = np.minimum(np.searchsorted(keys, found), len(keys) - 1)
        hit = keys[pos] == found
        present[pos[hit]] = True
        out[pos[hit]] = values[hit]
    return present, out


def _categories(*columns: pd.Series) -> pd.Index:
    """The sorted distinct values of the columns together (of a categorical: its categories),
    computed by Arrow: no Python object per value."""
    import pyarrow.compute as pc

    parts = [_arrow_text(c.cat.categories if isinstance(c.dtype, pd.CategoricalDtype) else c.dropna().unique())
             for c in columns]
    distinct = pc.unique(pa.chunked_array(parts, pa.string()))
    return pd.Index(distinct.take(pc.sort_indices(distinct)).to_pandas(), dtype="str")


def _arrow_text(values) -> pa.Array:
    if len(values) == 0:
        return pa.array([], pa.string())
    return pa.array(pd.Series(values).astype("str"), pa.string())


def key_codes(frame: pd.DataFrame, categories: dict[str, pd.Index], sizes: list[int]) -> np.ndarray:
    """One int64 per record: its sku, location and bin codes in `categories`, combined."""
    import pyarrow.compute as pc

    codes = []
    for column in KEY:
        values = frame[column]
        wanted = pa.array(categories[column], pa.string())
        if isinstance(values.dtype, pd.CategoricalDtype):
            mapping = pc.index_in(_arrow_text(values.cat.categories), value_set=wanted).to_numpy(zero_copy_only=False)
            code = mapping[values.cat.codes.to_numpy()] if len(mapping) else np.zeros(len(values), np.int64)
        else:
            code = pc.index_in(_arrow_text(values), value_set=wanted).to_numpy(zero_copy_only=False)
        codes.append(np.asarray(code, dtype=np.int64))
    return (codes[0] * sizes[1] + codes[1]) * sizes[2] + codes[2]


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
