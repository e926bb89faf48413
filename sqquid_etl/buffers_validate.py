"""Buffers write-back, first half: validate every row of a buffers input (read by `reverse_input`).

A buffer is the tuple (sku, channel_id, location_external_id), each part optional (empty = the
buffer applies to every sku, channel or location), and a quantity. Input columns: `sku`,
`channel_id`, `location_external_id` (each optional, absent = empty) and `quantity` (or the API's
name, `qty`). Ids are never needed: a buffer is found by its tuple. Nothing here talks to the API;
the channels an input may name are checked against the account's in `check_channels`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError
from .reverse_input import to_frame
from .reverse_validate import Problems, quantities, texts, value_kinds

KEY = ["sku", "channel_id", "location_external_id"]
QUANTITY_NAMES = ("quantity", "qty")


@dataclass
class PreparedBuffers:
    """A validated input: `records` has one row per buffer tuple (columns sku, channel_id,
    location_external_id as objects, None for "any"; quantity int64; row, 1-based)."""

    records: pd.DataFrame
    rows_read: int


def _quantity_column(frame: pd.DataFrame) -> str:
    given = [name for name in QUANTITY_NAMES if name in frame.columns]
    if len(given) != 1:
        found = ", ".join(map(str, frame.columns)) or "none"
        what = "both quantity and qty: give one" if given else "no quantity column (quantity, or qty)"
        raise InputError(f"buffers input has {what} (columns found: {found}); nothing was sent")
    return given[0]


def _channels(series: pd.Series, problems: Problems) -> np.ndarray:
    """Channel ids as Python ints, None where empty; each must be a whole number >= 1."""
    kinds = value_kinds(series)
    empty = np.zeros(len(series), dtype=bool)
    empty[kinds.get("null", [])] = True
    strings = kinds.get("str", np.array([], dtype=np.int64))
    if len(strings):
        empty[strings[(series.iloc[strings].astype(str).str.strip() == "").to_numpy()]] = True
    out = np.full(len(series), None, dtype=object)
    given = np.flatnonzero(~empty)
    if len(given):
        local = Problems()
        values = quantities(series.iloc[given].reset_index(drop=True), local, "channel_id")
        for part in local.parts:
            problems.add(given[part["pos"].to_numpy()], "channel_id", part["reason"].iloc[0])
        bad = np.zeros(len(given), dtype=bool)
        for part in local.parts:
            bad[part["pos"].to_numpy()] = True
        problems.add(given[~bad & (values < 1)], "channel_id", "not a channel id (a whole number >= 1)")
        ok = ~bad & (values >= 1)
        out[given[ok]] = values[ok].tolist()
    return out


def prepare_buffers(data: Any) -> PreparedBuffers:
    """Validate a buffers input; raise InputError listing every bad row, else normalize it."""
    frame = to_frame(data, "buffers")
    duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if duplicated:
        raise InputError(f"buffers input has duplicate column(s) {', '.join(duplicated)}; nothing was sent")
    quantity = _quantity_column(frame)
    n = len(frame)
    frame = frame.reset_index(drop=True)
    problems = Problems()
    none = pd.Series([None] * n, dtype=object)
    records = pd.DataFrame({
        "sku": texts(frame["sku"] if "sku" in frame else none, "sku", problems, required=False, empty=None),
        "channel_id": _channels(frame["channel_id"] if "channel_id" in frame else none, problems),
        "location_external_id": texts(frame["location_external_id"] if "location_external_id" in frame else none,
                                      "location_external_id", problems, required=False, empty=None),
        "quantity": quantities(frame[quantity], problems, quantity),
        "row": np.arange(1, n + 1),
    })
    for column in KEY:  # None for "any", whatever pandas made of it
        records[column] = records[column].astype(object).where(records[column].notna(), None)
    _duplicates(records, problems, quantity)
    problems.raise_if_any(frame, n)
    return PreparedBuffers(records=records.reset_index(drop=True), rows_read=n)


def tuple_key(records: pd.DataFrame) -> pd.Series:
    """One hashable text per buffer tuple (None and a value never collide; channel 3 and 3.0 do)."""
    def part(value: Any) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
            return "\x00"
        return f"={int(value)}" if isinstance(value, (float, np.floating)) else f"={value}"

    parts = [records[c].map(part).astype(object) for c in KEY]
    return parts[0] + "\x01" + parts[1] + "\x01" + parts[2]


def _duplicates(records: pd.DataFrame, problems: Problems, quantity: str) -> None:
    """Two rows for one buffer tuple: both named (even with the same quantity: which one is meant?)."""
    key = tuple_key(records)
    repeated = key.duplicated(keep=False).to_numpy()
    if not repeated.any():
        return
    rows = records.loc[repeated, "row"].groupby(key[repeated]).agg(list)
    for positions in rows:
        others = ", ".join(map(str, positions))
        first = records.iloc[positions[0] - 1]
        label = describe(first["sku"], first["channel_id"], first["location_external_id"])
        problems.add(np.array(positions[1:]) - 1, quantity, f"duplicate of buffer {label}: rows {others}")


def describe(sku: Any, channel: Any, location: Any) -> str:
    show = lambda v: "any" if v is None else repr(v)  # noqa: E731
    return f"(sku {show(sku)}, channel {show(channel)}, location {show(location)})"


def check_channels(prepared: PreparedBuffers, known: set[int]) -> None:
    """Refuse (InputError, nothing sent) rows naming a channel the account is not known to have."""
    channels = prepared.records["channel_id"]
    unknown = channels.map(lambda c: c is not None and c not in known).to_numpy(dtype=bool)
    if not unknown.any():
        return
    problems = Problems()
    problems.add(np.flatnonzero(unknown), "channel_id",
                 f"unknown channel: the account's channels are {sorted(known) or 'none known'} (those of its buffers "
                 "and --channels); name another channel with --channels (channels=) if it exists")
    problems.raise_if_any(prepared.records, prepared.rows_read)
