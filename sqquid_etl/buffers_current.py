"""Buffers write-back: the account's current buffers, read through the `buffers` stream
definition (the same listing, paginator and conversion an extract uses)."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from .client import SqquidClient
from .errors import SchemaError
from .read import read_tables
from .reverse_current import Progress, definition

BUFFERS_STREAM = "buffers"
BUFFERS_TABLE = "buffers"
COLUMNS = ["id", "sku", "channel_id", "location_external_id", "qty"]


def fetch_buffers(client: SqquidClient, progress: Progress | None = None) -> pd.DataFrame:
    """Every buffer of the account: id, sku, channel_id, location_external_id (None for "any"),
    qty, sorted by id."""
    stream = definition(BUFFERS_STREAM, BUFFERS_TABLE)
    tables = []
    records = 0
    for _, page in read_tables(stream, client, {None: None}):
        if page.rejected:  # a buffer that cannot be read exactly cannot be compared, nor kept
            bad = page.rejected[0]
            raise SchemaError(f"buffer {bad.key} cannot be read exactly: field {bad.field!r}: {bad.reason}; "
                              "nothing was sent")
        tables.append(page[BUFFERS_TABLE].select(COLUMNS))
        records += tables[-1].num_rows
        if progress is not None:
            progress(BUFFERS_STREAM, len(tables), records)
    return buffers_frame(tables)


def buffers_frame(tables: list[pa.Table]) -> pd.DataFrame:
    if not tables:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in COLUMNS})
    frame = pa.concat_tables(tables).to_pandas()
    for column in ("sku", "location_external_id", "channel_id"):  # None for "any"
        frame[column] = pd.Series([None if v is None or v == "" or pd.isna(v) else v for v in frame[column]],
                                  dtype=object, index=frame.index)
    frame["channel_id"] = pd.Series([None if v is None else int(v) for v in frame["channel_id"]], dtype=object,
                                    index=frame.index)
    frame["qty"] = frame["qty"].fillna(0).astype("int64")
    return frame.sort_values("id", kind="stable", ignore_index=True)
