"""Reverse load: cutting what is sent into requests. A chunk is a run of records (sorted by sku,
location, bin) of at most `batch_size` skus and `max_bytes` of JSON body; a sku with more records
than one body holds is split over several chunks (a partial update sets exactly the records it
lists, so that is the same). The sizes are exact upper bounds, computed without building the
payload; each chunk's payload is built only when it is sent."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .reverse_validate import build_payload

MAX_BODY_BYTES = 2 << 20  # no request body over 2 MiB
# {"sku":,"inventory":[]} and {"location_external_id":,"bin":,"qty_on_hand":} with separators
SKU_OVERHEAD = len('{"sku":,"inventory":[]},')
RECORD_OVERHEAD = len('{"location_external_id":,"bin":,"qty_on_hand":},')
_PLAIN = r'[\x20\x21\x23-\x5b\x5d-\x7e]*'  # characters JSON writes as they are


def text_bytes(values: pd.Series) -> np.ndarray:
    """An upper bound of each string's JSON size, quotes included (exact for plain ASCII; any
    other character counted as the 12 bytes of a surrogate pair escape). A categorical is
    measured once per category."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        per_category = text_bytes(pd.Series(values.cat.categories, dtype=object))
        return per_category[values.cat.codes.to_numpy()]
    text = values.astype(str)
    lengths = text.str.len().to_numpy(dtype=np.int64)
    plain = text.str.fullmatch(_PLAIN).to_numpy(dtype=bool)
    return np.where(plain, lengths, 12 * lengths) + 2


def digits(numbers: np.ndarray) -> np.ndarray:
    """Characters of each integer written out (its sign included)."""
    size = np.ones(len(numbers), dtype=np.int64) + (numbers < 0)
    magnitude = np.abs(numbers)
    for power in range(1, 19):
        size += magnitude >= 10**power
    return size


def record_bytes(frame: pd.DataFrame) -> np.ndarray:
    qty = frame["qty_on_hand"].to_numpy(dtype=np.int64)
    return (RECORD_OVERHEAD + text_bytes(frame["location_external_id"]) + text_bytes(frame["bin"]) + digits(qty))


def plan_chunks(frame: pd.DataFrame, batch_size: int, max_bytes: int = MAX_BODY_BYTES) -> list[tuple[int, int]]:
    """Row ranges [start, end) of `frame` (sorted by sku): each at most `batch_size` skus and
    `max_bytes` of body."""
    if frame.empty:
        return []
    skus = frame["sku"]
    sku = skus.cat.codes.to_numpy() if isinstance(skus.dtype, pd.CategoricalDtype) else skus.to_numpy()
    starts = np.flatnonzero(np.r_[True, sku[1:] != sku[:-1]])  # first row of each sku
    sku_cost = SKU_OVERHEAD + text_bytes(skus.iloc[starts])
    rows = record_bytes(frame)
    group_bytes = np.add.reduceat(rows, starts) + sku_cost
    ends = np.r_[starts[1:], len(frame)]
    chunks: list[tuple[int, int]] = []
    begin, size, skus = 0, 2, 0  # the body's brackets
    for i in range(len(starts)):
        cost = int(group_bytes[i])
        if skus and (skus == batch_size or size + cost > max_bytes):
            chunks.append((begin, int(starts[i])))
            begin, size, skus = int(starts[i]), 2, 0
        if 2 + cost > max_bytes:  # one sku alone is too big: its records over several chunks
            chunks.extend(_split_sku(int(starts[i]), int(ends[i]), rows, int(sku_cost[i]), max_bytes))
            begin = int(ends[i])
            continue
        size += cost
        skus += 1
    if skus:
        chunks.append((begin, len(frame)))
    return chunks


def _split_sku(start: int, end: int, rows: np.ndarray, sku_cost: int, max_bytes: int) -> list[tuple[int, int]]:
    out = []
    begin, size = start, 2 + sku_cost
    for r in range(start, end):
        if r > begin and size + rows[r] > max_bytes:
            out.append((begin, r))
            begin, size = r, 2 + sku_cost
        size += int(rows[r])
    out.append((begin, end))
    return out


def chunk_payload(frame: pd.DataFrame, chunk: tuple[int, int]) -> list[dict]:
    return build_payload(frame.iloc[chunk[0]:chunk[1]])
