"""Reverse load, first half: validate every row of an inventory input (read by
`reverse_input`), build the payload.

Nothing here talks to the API. Validation is vectorized (pandas): each column is split by
the Python type of its values and every kind is checked as a whole, so a million rows take
well under a second. The result is a `PreparedInventory`: one row per
(sku, location_external_id, bin), sorted, with integer quantities, and the payload in the
shape of `PATCH /v1/inventory/partial|full`.
"""

from __future__ import annotations

import gc
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError
from .reverse_input import to_frame

KEY = ["sku", "location_external_id", "bin"]
REQUIRED = ["sku", "qty_on_hand"]
DEFAULT = "default"
MAX_QTY = 2**31 - 1
MIN_QTY = -MAX_QTY  # oversold stock is negative; the range is symmetric
SHOWN_PROBLEMS = 20

_INT_TYPES = (int, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)
_FLOAT_TYPES = (float, np.float16, np.float32, np.float64, Decimal)
_STR_TYPES = (str, np.str_)
_BOOL_TYPES = (bool, np.bool_)


@dataclass
class PreparedInventory:
    """A validated input: `records` has one row per key (columns sku, location_external_id,
    bin as categoricals with sorted categories, qty_on_hand as int64), sorted by key; `row`
    holds each record's first 1-based data row."""

    records: pd.DataFrame
    rows_read: int
    duplicates_collapsed: int

    @property
    def skus(self) -> int:
        return int(self.records["sku"].nunique())

    def payload(self) -> list[dict[str, Any]]:
        return build_payload(self.records)

    def input_hash(self) -> str:
        """A hash of the validated content (independent of row order and duplicates)."""
        frame = self.records[KEY + ["qty_on_hand"]]
        hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        digest = hashlib.sha256(hashed.tobytes())
        digest.update(str(len(frame)).encode())
        return digest.hexdigest()


# -- validation ---------------------------------------------------------------------------


class Problems:
    """Bad cells found so far: positions (0-based), column, reason."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def add(self, positions: np.ndarray, column: str, reason: str) -> None:
        if len(positions):
            self.parts.append(pd.DataFrame({"pos": np.asarray(positions, dtype=np.int64), "column": column, "reason": reason}))

    def add_frame(self, frame: pd.DataFrame) -> None:
        if len(frame):
            self.parts.append(frame[["pos", "column", "reason"]])

    def raise_if_any(self, frame: pd.DataFrame, total_rows: int) -> None:
        if not self.parts:
            return
        order = {c: i for i, c in enumerate(frame.columns)}
        found = pd.concat(self.parts, ignore_index=True)
        found["col_order"] = found["column"].map(order).fillna(len(order))
        found = found.sort_values(["pos", "col_order"], kind="stable")
        bad_rows = found["pos"].nunique()
        lines = []
        for pos, column, reason in found[["pos", "column", "reason"]].head(SHOWN_PROBLEMS).itertuples(index=False):
            value = frame[column].iloc[pos] if column in frame.columns else None
            lines.append(f"  row {pos + 1}, column {column}, value {_show(value)}: {reason}")
        rest = len(found) - len(lines)
        if rest > 0:
            lines.append(f"  ... and {rest} more problem(s) not shown")
        raise InputError(
            f"input does not validate: {len(found)} problem(s) in {bad_rows} of {total_rows} data row(s); "
            "nothing was sent. Row numbers count data rows from 1 (the CSV header is not counted).\n"
            + "\n".join(lines)
        )


def _show(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return "<null>"
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 40 else text[:37] + "..."


def value_kinds(series: pd.Series) -> dict[str, np.ndarray]:
    """Positions of the values of each kind: null, str, int, float, bool, other."""
    n = len(series)
    nulls = series.isna().to_numpy()
    dtype = series.dtype
    everything = np.arange(n)
    if isinstance(dtype, pd.CategoricalDtype):
        series = series.astype(object)
        dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return {"null": everything[nulls], "bool": everything[~nulls]}
    if pd.api.types.is_integer_dtype(dtype):
        return {"null": everything[nulls], "int": everything[~nulls]}
    if pd.api.types.is_float_dtype(dtype):
        return {"null": everything[nulls], "float": everything[~nulls]}
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return {"null": everything[nulls], "str": everything[~nulls]}
    if pd.api.types.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred in ("string", "empty"):
            return {"null": everything[nulls], "str": everything[~nulls]}
        types = series.map(type).to_numpy()
        out = {"null": everything[nulls]}
        taken = nulls.copy()
        for kind, members in (("bool", _BOOL_TYPES), ("str", _STR_TYPES), ("int", _INT_TYPES), ("float", _FLOAT_TYPES)):
            mask = np.isin(types, np.array(members, dtype=object)) & ~taken
            out[kind] = everything[mask]
            taken |= mask
        out["other"] = everything[~taken]
        return out
    return {"null": everything[nulls], "other": everything[~nulls]}


def quantities(series: pd.Series, problems: Problems, column: str = "qty_on_hand") -> np.ndarray:
    """int64 integers (-1 where invalid); every bad cell is reported to `problems` under `column`."""
    out = np.full(len(series), -1, dtype=np.int64)
    kinds = value_kinds(series)
    problems.add(kinds.get("null", []), column, "missing (null or NaN)")
    problems.add(kinds.get("bool", []), column, "a boolean, not a quantity")
    problems.add(kinds.get("other", []), column, "not a number")
    none = np.array([], dtype=np.int64)
    for kind, read in (("int", _int_quantities), ("float", _float_quantities), ("str", _text_quantities)):
        pos = kinds.get(kind, none)
        if len(pos):
            read(series, pos, out, problems, column)
    return out


def _int_quantities(series: pd.Series, pos: np.ndarray, out: np.ndarray, problems: Problems, column: str) -> None:
    values = series.to_numpy(dtype=object) if series.dtype == object else series
    sub = values[pos] if isinstance(values, np.ndarray) else series.iloc[pos].to_numpy()
    sub = np.asarray(sub, dtype=object) if sub.dtype == object else sub
    small = np.asarray(sub < MIN_QTY, dtype=bool)
    big = np.asarray(sub > MAX_QTY, dtype=bool)
    problems.add(pos[small], column, f"smaller than {MIN_QTY}")
    problems.add(pos[big], column, f"larger than {MAX_QTY}")
    ok = ~small & ~big
    out[pos[ok]] = sub[ok].astype(np.int64)


def _float_quantities(series: pd.Series, pos: np.ndarray, out: np.ndarray, problems: Problems, column: str) -> None:
    sub = series.iloc[pos].to_numpy(dtype=np.float64)
    nan = np.isnan(sub)
    inf = np.isinf(sub)
    finite = ~nan & ~inf
    frac = finite & (np.floor(np.where(finite, sub, 0)) != np.where(finite, sub, 0))
    small = finite & ~frac & (sub < MIN_QTY)
    big = finite & ~frac & (sub > MAX_QTY)
    problems.add(pos[nan], column, "missing (null or NaN)")
    problems.add(pos[inf], column, "not finite")
    problems.add(pos[frac], column, "not a whole number")
    problems.add(pos[small], column, f"smaller than {MIN_QTY}")
    problems.add(pos[big], column, f"larger than {MAX_QTY}")
    ok = finite & ~frac & ~small & ~big
    out[pos[ok]] = sub[ok].astype(np.int64)


def _text_quantities(series: pd.Series, pos: np.ndarray, out: np.ndarray, problems: Problems, column: str) -> None:
    text = series.iloc[pos].astype(str).str.strip()
    empty = (text == "").to_numpy()
    integral = text.str.fullmatch(r"-?\d+(?:\.0*)?").to_numpy(dtype=bool)
    number = np.full(len(pos), np.nan)
    odd = ~(integral | empty)
    if odd.any():
        number[odd] = pd.to_numeric(text[odd], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    infinite = np.isinf(number)
    finite = ~np.isnan(number) & ~infinite
    fractional = finite & (np.floor(np.where(finite, number, 0)) != np.where(finite, number, 0))
    notation = finite & ~fractional  # "1e3", "+5": a whole number, but not in digits
    problems.add(pos[empty], column, "missing (empty)")
    problems.add(pos[infinite], column, "not finite")
    problems.add(pos[fractional], column, "not a whole number")
    problems.add(pos[notation], column, "not written as plain digits")
    rest = ~(empty | integral | infinite | finite)
    problems.add(pos[rest], column, "not a number")
    if integral.any():
        parsed = text[integral].astype(np.float64).to_numpy()
        big = parsed > MAX_QTY
        small = parsed < MIN_QTY
        problems.add(pos[integral][big], column, f"larger than {MAX_QTY}")
        problems.add(pos[integral][small], column, f"smaller than {MIN_QTY}")
        out[pos[integral][~big & ~small]] = parsed[~big & ~small].astype(np.int64)


def texts(series: pd.Series, column: str, problems: Problems, *, required: bool, empty: Any = DEFAULT) -> pd.Series:
    """Text values; null/"" become `empty` unless `required` (then a problem). A column of text
    (the usual case) stays in pandas' string storage: no Python object per value."""
    kinds = value_kinds(series)
    none = np.array([], dtype=np.int64)
    problems.add(kinds.get("bool", none), column, "a boolean, not text")
    problems.add(kinds.get("other", none), column, "not text")
    empty_positions = [kinds.get("null", none)]
    pos = kinds.get("str", none)
    if len(pos) == len(series):  # only text: checked where it is
        out = series.reset_index(drop=True).astype("str")
        empty_positions.append(_check_text(out, pos, column, problems))
    else:
        out = pd.Series(np.full(len(series), "", dtype=object))
        if len(pos):
            text = series.iloc[pos].astype("str").reset_index(drop=True)
            empty_positions.append(_check_text(text, pos, column, problems))
            out.iloc[pos] = text.to_numpy(dtype=object)
        empty_positions.append(_numbers_as_text(series, kinds, out, column, problems))
    gone = np.concatenate(empty_positions)
    if required:
        problems.add(gone, column, "missing (null or empty)")
    elif len(gone):
        mask = np.zeros(len(out), dtype=bool)
        mask[gone] = True
        out = out.mask(mask, empty)
    return out


def _check_text(text: pd.Series, pos: np.ndarray, column: str, problems: Problems) -> np.ndarray:
    """Report whitespace-only and padded values; the positions of empty ones."""
    empty = (text == "").to_numpy(dtype=bool)
    blank = ~empty & text.str.fullmatch(r"\s+").to_numpy(dtype=bool)
    padded = ~empty & ~blank & text.str.contains(r"^\s|\s$").to_numpy(dtype=bool)
    problems.add(pos[blank], column, "only whitespace")
    problems.add(pos[padded], column, "leading or trailing whitespace")
    return pos[empty]


def _numbers_as_text(series: pd.Series, kinds: dict[str, np.ndarray], out: pd.Series, column: str,
                     problems: Problems) -> np.ndarray:
    """Whole numbers given where text was expected (a sku stored as a number) written as text;
    the positions of NaN (empty)."""
    pos = kinds.get("int", np.array([], dtype=np.int64))
    if len(pos):
        out.iloc[pos] = [str(int(v)) for v in series.iloc[pos].to_numpy(dtype=object)]
    pos = kinds.get("float", np.array([], dtype=np.int64))
    if not len(pos):
        return pos
    sub = series.iloc[pos].to_numpy(dtype=np.float64)
    nan = np.isnan(sub)
    whole = ~nan & np.isfinite(sub) & (np.floor(np.where(np.isfinite(sub), sub, 0)) == sub)
    problems.add(pos[~nan & ~whole], column, "a number with a fraction, not text")
    out.iloc[pos[whole]] = [str(int(v)) for v in sub[whole]]
    return pos[nan]


def category(values: Any) -> pd.Categorical:
    """Text as a categorical with sorted categories: each distinct value held once (a million
    records of a few hundred thousand skus and a few locations), sorting by code sorts by text."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.reorder_categories(sorted(values.cat.categories)).array
    return pd.Categorical(values)


def prepare_inventory(data: Any) -> PreparedInventory:
    """Validate an inventory input; raise InputError listing every bad row, else normalize it."""
    frame = to_frame(data)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InputError(
            f"input is missing required column(s) {', '.join(missing)} (columns found: "
            f"{', '.join(map(str, frame.columns)) or 'none'}); nothing was sent"
        )
    duplicated_columns = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if duplicated_columns:
        raise InputError(f"input has duplicate column(s) {', '.join(duplicated_columns)}; nothing was sent")
    n = len(frame)
    if n == 0:
        raise InputError("input has no data rows: nothing to load; nothing was sent")
    frame = frame.reset_index(drop=True)
    problems = Problems()
    sku = texts(frame["sku"], "sku", problems, required=True)
    qty = quantities(frame["qty_on_hand"], problems)
    location = (texts(frame["location_external_id"], "location_external_id", problems, required=False)
                if "location_external_id" in frame.columns else pd.Series([DEFAULT] * n, dtype="str"))
    bin_ = (texts(frame["bin"], "bin", problems, required=False)
            if "bin" in frame.columns else pd.Series([DEFAULT] * n, dtype="str"))
    records = pd.DataFrame({"sku": category(sku), "location_external_id": category(location), "bin": category(bin_),
                            "qty_on_hand": qty, "row": np.arange(1, n + 1)})
    del sku, location, bin_
    bad = np.zeros(n, dtype=bool)
    for part in problems.parts:
        bad[part["pos"].to_numpy()] = True
    good = records[~bad]
    unique = good.drop_duplicates(subset=KEY + ["qty_on_hand"])
    conflicting_keys = unique[unique.duplicated(subset=KEY, keep=False)][KEY].drop_duplicates()
    if len(conflicting_keys):
        clash = good.merge(conflicting_keys, on=KEY)
        details = clash.groupby(KEY, sort=False, observed=True).agg(rows=("row", list), qtys=("qty_on_hand", lambda s: sorted(set(s))))
        clash = clash.join(details, on=KEY)
        clash["pos"] = clash["row"] - 1
        clash["column"] = "qty_on_hand"
        clash["reason"] = [
            f"conflicting duplicate of (sku, location_external_id, bin) = ({s!r}, {loc!r}, {b!r}): "
            f"rows {', '.join(map(str, rows[:5]))}{' ...' if len(rows) > 5 else ''} give qty {', '.join(map(str, qtys))}"
            for s, loc, b, rows, qtys in zip(clash["sku"], clash["location_external_id"], clash["bin"], clash["rows"], clash["qtys"])
        ]
        problems.add_frame(clash)
    problems.raise_if_any(frame, n)
    records = unique.sort_values(KEY, kind="stable").reset_index(drop=True)
    records["qty_on_hand"] = records["qty_on_hand"].astype(np.int64)
    return PreparedInventory(records=records, rows_read=n, duplicates_collapsed=n - len(records))


# -- payload ------------------------------------------------------------------------------


def build_payload(records: pd.DataFrame) -> list[dict[str, Any]]:
    """One object per sku with its inventory list, location and bin always explicit.
    `records` must be sorted by sku (as `PreparedInventory.records` is)."""
    payload: list[dict[str, Any]] = []
    was_enabled = gc.isenabled()
    gc.disable()  # a million new dicts: generational collections would only cost time
    try:
        _fill(payload, records)
    finally:
        if was_enabled:
            gc.enable()
    return payload


def _fill(payload: list[dict[str, Any]], records: pd.DataFrame) -> None:
    current: list[dict[str, Any]] = []
    previous = None
    for sku, location, bin_, qty in zip(
        records["sku"].tolist(), records["location_external_id"].tolist(), records["bin"].tolist(),
        records["qty_on_hand"].tolist(),
    ):
        if sku != previous:
            current = []
            payload.append({"sku": sku, "inventory": current})
            previous = sku
        current.append({"location_external_id": location, "bin": bin_, "qty_on_hand": qty})


def payload_hash(batch: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(batch, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()
