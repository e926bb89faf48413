"""Reverse load: the account's current inventory, read through the stream definitions (the same
listing, paginator, key batching and conversion an extract uses): the skus from the `products`
stream (products and variants), their records from the `inventory` stream; or, with `--baseline`,
from the DuckDB file of a recent extract."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
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
PRODUCTS_STREAM = "products"
SKU_TABLES = ("products", "product_variants")  # the tables of the products stream that hold skus
# the inventory table's columns -> the columns of the current-inventory frame
CURRENT_COLUMNS = {"sku": "sku", "location_external_id": "location_external_id", "bin": "bin",
                   "qty_on_hand": "current_qty"}
RUNS_TABLE = "_sqquid_runs"

Progress = Callable[[str, int, int], None]  # (stream, pages, records), as an extract's


@dataclass
class Current:
    """What is known of the account's inventory: its records, the skus known to exist, and what
    cannot be seen (skus that cannot be listed, products quarantined with their skus)."""

    records: pd.DataFrame
    skus: pd.Index  # every sku known to exist (of the records, the products, the variants)
    unlistable: list[str] = field(default_factory=list)
    products_unreadable: int = 0
    source: str = "the API"


def definition(name: str, table: str) -> StreamDefinition:
    found = load_definitions().get(name)
    if found is None or table not in found.table_names:
        raise ConfigError(f"the stream definition {name!r} must exist and hold table {table!r}")
    return found


def inventory_definition() -> StreamDefinition:
    """The `inventory` stream: listed by sku (`keys_from`), one table of (sku, location, bin, qty)."""
    found = definition(INVENTORY_STREAM, INVENTORY_TABLE)
    if found.keys_from is None:
        raise ConfigError(f"the stream definition {INVENTORY_STREAM!r} must list table {INVENTORY_TABLE!r} by key")
    return found


def account_skus(client: SqquidClient, progress: Progress | None = None) -> tuple[set[str], int]:
    """Every sku of the account's products and variants (the `products` stream, all pages), and
    how many product records could not be read (their skus, and inventory, are unknown)."""
    stream = definition(PRODUCTS_STREAM, SKU_TABLES[0])
    skus: set[str] = set()
    unreadable = pages = 0
    for _, page in read_tables(stream, client, {None: None}):
        unreadable += len(page.rejected)
        for table in SKU_TABLES:
            if table in page:
                skus.update(s for s in page[table].column("sku").to_pylist() if s)
        pages += 1
        if progress is not None:
            progress(PRODUCTS_STREAM, pages, len(skus))
    return skus, unreadable


def fetch_current(client: SqquidClient, skus: Iterable[str],
                  progress: Progress | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Current inventory records of the given skus (columns sku, location_external_id, bin,
    current_qty) and the skus that could not be listed (sorted)."""
    stream = inventory_definition()
    keys = batch_keys(stream.keys_from, stream.path, skus, client.base_url)  # type: ignore[arg-type]
    tables = []
    records = 0
    for _, page in read_tables(stream, client, {None: None}, keys.batches):
        if page.rejected:  # a record an extract would quarantine: its current inventory is unknown
            bad = page.rejected[0]
            raise SchemaError(
                f"current inventory of sku {bad.key} cannot be read exactly: field {bad.field!r}: {bad.reason} "
                f"({len(page.rejected)} such record(s) on the page); nothing was sent"
            )
        tables.append(page[INVENTORY_TABLE])
        records += page[INVENTORY_TABLE].num_rows
        if progress is not None:
            progress(INVENTORY_STREAM, len(tables), records)
    return current_frame(tables), sorted(keys.unlistable)


def read_account(client: SqquidClient, input_skus: set[str], progress: Progress | None = None) -> Current:
    """The account's inventory as the API lists it: every product's and variant's sku, and the input's."""
    skus, unreadable = account_skus(client, progress)
    skus |= input_skus
    records, unlistable = fetch_current(client, skus, progress)
    return Current(records, pd.Index(sorted(skus), dtype="str"), unlistable, unreadable)


def current_frame(tables: Iterable[pa.Table]) -> pd.DataFrame:
    """The inventory table's pages as the frame the diff needs: one row per (sku, location, bin)
    (the last one read wins; text columns as categoricals), an empty location or bin meaning
    "default", a null quantity 0."""
    columns = list(CURRENT_COLUMNS.values())
    encoded = [_encoded(t.select(list(CURRENT_COLUMNS)).rename_columns(columns)) for t in tables]
    if not encoded:
        encoded = [_encoded(pa.table({c: pa.array([], pa.int64() if c == "current_qty" else pa.string())
                                      for c in columns}))]
    frame = pa.concat_tables(encoded).unify_dictionaries().to_pandas()
    frame["current_qty"] = frame["current_qty"].fillna(0).astype("int64")
    codes = [frame[c].cat.codes.to_numpy().astype(np.int64) for c in KEY]
    sizes = [len(frame[c].cat.categories) + 1 for c in KEY]
    combined = (codes[0] * sizes[1] + codes[1]) * sizes[2] + codes[2]
    order = np.argsort(combined, kind="stable")
    repeated = combined[order][1:] == combined[order][:-1]
    if not repeated.any():  # the usual case: no copy
        return frame
    keep = np.ones(len(frame), dtype=bool)
    keep[order[:-1][repeated]] = False  # of a repeated key, the last record read is kept
    return frame[keep].reset_index(drop=True)


def _encoded(table: pa.Table) -> pa.Table:
    """Key columns dictionary-encoded (each distinct text held once), location and bin defaulted."""
    import pyarrow.compute as pc

    for name in KEY:
        column = pc.cast(table[name], pa.string())
        if name != "sku":
            filled = pc.fill_null(column, "")
            column = pc.if_else(pc.equal(filled, ""), DEFAULT, filled)
        table = table.set_column(table.schema.get_field_index(name), name, pc.dictionary_encode(column))
    # a copy: the quantities alone would keep the page's (or DuckDB batch's) whole buffers alive
    quantity = np.array(table["current_qty"].to_numpy(zero_copy_only=False), copy=True)
    mask = table["current_qty"].is_null().to_numpy(zero_copy_only=False)
    return table.set_column(table.schema.get_field_index("current_qty"), "current_qty",
                            pa.array(quantity, pa.int64(), mask=mask if mask.any() else None))


# -- the baseline: the DuckDB file of a recent extract ------------------------------------------


def read_baseline(path: str | Path, max_age: float, now: float | None = None) -> Current:
    """The inventory an extract stored (its `inventory` table, and the skus of its `products` and
    `product_variants`), refused when that extract read inventory more than `max_age` seconds ago."""
    import duckdb

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"baseline DuckDB file {str(path)!r} does not exist")
    try:
        with duckdb.connect(str(path), read_only=True, config={"threads": 1, "memory_limit": "64MB"}) as con:
            tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            missing = sorted({INVENTORY_TABLE, RUNS_TABLE} - tables)
            if missing:
                raise ConfigError(f"baseline {str(path)!r} has no table {', '.join(missing)}: give the DuckDB file of "
                                  "an extract that read the inventory stream")
            _check_age(con, path, max_age, time.time() if now is None else now)
            reader = con.sql(f'SELECT {", ".join(CURRENT_COLUMNS)} FROM "{INVENTORY_TABLE}"').to_arrow_reader(100_000)
            records = current_frame(pa.Table.from_batches([batch]) for batch in reader)
            skus = records["sku"].cat.categories
            for table in SKU_TABLES:
                if table in tables:
                    found = con.sql(f'SELECT DISTINCT CAST(sku AS VARCHAR) AS sku FROM "{table}" WHERE sku <> \'\'')
                    skus = skus.union(pd.Index(found.to_arrow_table().column("sku").to_pandas()))
    except duckdb.Error as exc:
        raise ConfigError(f"baseline {str(path)!r} could not be read: {exc}") from exc
    return Current(records, skus, source=f"the baseline {path.name}")


def _check_age(con, path: Path, max_age: float, now: float) -> None:
    row = con.execute(f"SELECT epoch(max(started_at)) FROM {RUNS_TABLE} WHERE stream = ? AND status IN ('ok', 'warning')",
                      [INVENTORY_STREAM]).fetchall()
    started = row[0][0] if row else None
    if started is None:
        raise ConfigError(f"baseline {str(path)!r} holds no completed run of the inventory stream: its age is unknown")
    age = now - float(started)
    if age > max_age:
        raise ConfigError(f"baseline {str(path)!r} read inventory {_span(age)} ago, more than --baseline-max-age "
                          f"{_span(max_age)}: run an extract first, or raise --baseline-max-age; nothing was sent")


def _span(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def release_memory() -> None:
    """Hand the heap's freed memory back to the system (glibc keeps it otherwise): called between
    the phases of a large load, so one phase's temporaries do not add to the next one's peak."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def parse_age(text: str | float | int) -> float:
    """`--baseline-max-age`: seconds, or a number with s, m, h or d ("90s", "30m", "1h", "2d")."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        raw = str(text).strip().lower()
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        factor = units.get(raw[-1:], None)
        try:
            value = float(raw[:-1] if factor else raw) * (factor or 1)
        except ValueError:
            raise ConfigError(f"--baseline-max-age must be seconds or a number with s, m, h, d (e.g. 1h), "
                              f"not {text!r}") from None
    if not 0 <= value < 10 * 365 * 86400:
        raise ConfigError(f"--baseline-max-age must be between 0 and 10 years, not {text!r}")
    return value
