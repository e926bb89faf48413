"""Reverse load: the account's current inventory, read through the `inventory` stream definition
(the same listing, key batching and conversion an extract uses), and the skus an extract knows
(`--baseline`)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd
import pyarrow as pa

from .client import SqquidClient
from .definitions import StreamDefinition, load_definitions
from .errors import ConfigError, SchemaError
from .keys import batch_keys
from .read import read_tables
from .reverse_validate import DEFAULT, KEY

INVENTORY_STREAM = "inventory"
INVENTORY_TABLE = "inventory"
# the inventory table's columns -> the columns of the current-inventory frame
CURRENT_COLUMNS = {"sku": "sku", "location_external_id": "location_external_id", "bin": "bin",
                   "qty_on_hand": "current_qty"}
BASELINE_TABLES = ("inventory", "products", "product_variants")


def inventory_definition() -> StreamDefinition:
    """The `inventory` stream: listed by sku (`keys_from`), one table of (sku, location, bin, qty)."""
    definition = load_definitions().get(INVENTORY_STREAM)
    if definition is None or definition.keys_from is None or INVENTORY_TABLE not in definition.table_names:
        raise ConfigError(f"the stream definition {INVENTORY_STREAM!r} must list table {INVENTORY_TABLE!r} by key")
    return definition


def fetch_current(client: SqquidClient, skus: Iterable[str]) -> tuple[pd.DataFrame, list[str]]:
    """Current inventory records of the given skus (columns sku, location_external_id, bin,
    current_qty) and the skus that could not be listed (sorted)."""
    definition = inventory_definition()
    keys = batch_keys(definition.keys_from, definition.path, skus, client.base_url)  # type: ignore[arg-type]
    tables = []
    for _, page in read_tables(definition, client, {None: None}, keys.batches):
        if page.rejected:  # a record an extract would quarantine: its current inventory is unknown
            bad = page.rejected[0]
            raise SchemaError(
                f"current inventory of sku {bad.key} cannot be read exactly: field {bad.field!r}: {bad.reason} "
                f"({len(page.rejected)} such record(s) on the page); nothing was sent"
            )
        tables.append(page[INVENTORY_TABLE])
    return current_frame(tables), sorted(keys.unlistable)


def current_frame(tables: list[pa.Table]) -> pd.DataFrame:
    """The inventory table's pages as the frame the diff needs: one row per (sku, location, bin)
    (the last one read wins), an empty location or bin meaning "default", a null quantity 0."""
    columns = list(CURRENT_COLUMNS.values())
    if not tables:
        frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    else:
        table = pa.concat_tables(tables).select(list(CURRENT_COLUMNS)).rename_columns(columns)
        frame = table.to_pandas()
    for column in ("location_external_id", "bin"):
        frame[column] = frame[column].astype(object).where(frame[column].notna() & (frame[column] != ""), DEFAULT)
    frame["sku"] = frame["sku"].astype(object)
    frame["current_qty"] = frame["current_qty"].fillna(0).astype("int64")
    return frame.drop_duplicates(KEY, keep="last").reset_index(drop=True)


def baseline_skus(path: str | Path) -> set[str]:
    """Skus known to an extract: tables inventory, products and product_variants."""
    import duckdb

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"baseline DuckDB file {str(path)!r} does not exist")
    skus: set[str] = set()
    found = []
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            for table in BASELINE_TABLES:
                if table in tables:
                    found.append(table)
                    rows = con.execute(f'SELECT DISTINCT CAST(sku AS VARCHAR) FROM "{table}" WHERE sku IS NOT NULL').fetchall()
                    skus.update(r[0] for r in rows if r[0] != "")
    except duckdb.Error as exc:
        raise ConfigError(f"baseline {str(path)!r} could not be read: {exc}") from exc
    if not found:
        raise ConfigError(f"baseline {str(path)!r} has none of the tables inventory, products, product_variants: "
                          "give the DuckDB file of an extract")
    return skus
