"""Buffers write-back: what it takes to make the account's buffers equal the input.

Per buffer tuple (sku, channel, location): `create` (not in the account), `update` (another
quantity), `unchanged`; with mode "full", `delete` for a buffer of the account the input does not
have. When the account holds several buffers with one tuple, the lowest id is the one kept; the
others are deleted in full mode and left (`duplicate`) in partial mode. `flag` is `negative` for
a quantity below 0."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .buffers_validate import KEY, tuple_key
from .errors import ConfigError

PLAN_COLUMNS = ["op", "id", "sku", "channel_id", "location_external_id", "current_qty", "new_qty", "flag"]
OP_ORDER = {"create": 0, "update": 1, "delete": 2, "duplicate": 3, "unchanged": 4}  # deletes after the rest


def plan_buffers(records: pd.DataFrame, current: pd.DataFrame, mode: str) -> pd.DataFrame:
    """One row per operation (and per unchanged buffer), in the order they are sent."""
    wanted = records[KEY + ["quantity"]].assign(_key=tuple_key(records))
    have = current.assign(_key=tuple_key(current)) if len(current) else current.assign(_key=pd.Series([], dtype=object))
    first = have.drop_duplicates("_key", keep="first")  # current is sorted by id
    extra = have[have["_key"].duplicated(keep="first")]
    both = wanted.merge(first[["_key", "id", "qty"]], on="_key", how="outer", indicator=True, sort=False)
    both = both.merge(first[["_key"] + KEY], on="_key", how="left", suffixes=("", "_current"))
    for column in KEY:  # a buffer only in the account: its tuple from the account
        both[column] = both[column].where(both["_merge"] != "right_only", both[f"{column}_current"])
    merge = both["_merge"].to_numpy()
    op = np.where(merge == "left_only", "create",
                  np.where(merge == "right_only", "delete" if mode == "full" else "unchanged",
                           np.where(both["quantity"] == both["qty"], "unchanged", "update")))
    plan = pd.DataFrame({"op": op, "id": both["id"], **{c: both[c] for c in KEY},
                         "current_qty": both["qty"], "new_qty": both["quantity"]})
    plan = plan[~((merge == "right_only") & (op == "unchanged"))]  # partial: other buffers are not its business
    dupes = pd.DataFrame({"op": "delete" if mode == "full" else "duplicate", "id": extra["id"],
                          **{c: extra[c] for c in KEY}, "current_qty": extra["qty"], "new_qty": pd.NA})
    plan = pd.concat([plan, dupes], ignore_index=True) if len(dupes) else plan
    for column in KEY:  # None for "any", never NaN (it would go into a request as NaN)
        plan[column] = pd.Series([None if v is None or pd.isna(v) else (int(v) if column == "channel_id" else v)
                                  for v in plan[column]], dtype=object, index=plan.index)
    plan["id"] = plan["id"].astype("Int64")
    plan["current_qty"] = plan["current_qty"].astype("Int64")
    plan["new_qty"] = plan["new_qty"].astype("Int64")
    plan["flag"] = np.where((plan["new_qty"] < 0).fillna(False).to_numpy(dtype=bool), "negative", "")
    plan["_order"] = plan["op"].map(OP_ORDER)
    plan = plan.sort_values(["_order", "id"], kind="stable", na_position="last", ignore_index=True)
    return plan[PLAN_COLUMNS]


def write_plan(plan: pd.DataFrame, path: str | Path) -> None:
    """The plan as CSV, written whole or not at all."""
    path = Path(path)
    partial = path.with_name(path.name + ".part")
    try:
        plan.to_csv(partial, index=False, columns=PLAN_COLUMNS)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ConfigError(f"--diff-out {str(path)!r} cannot be written ({exc.strerror}); nothing was sent") from exc
