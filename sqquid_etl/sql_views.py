"""SQL helpers: DuckDB views created beside the extracted tables.

- `order_lines`: one row per order item, with its order's columns.
- `available_to_sell`: inventory (summed over bins) minus the buffer that applies, by sku,
  location and channel, never below 0.

Which buffer applies: a buffer matches a (sku, location, channel) when each of its sku,
location_external_id and channel_id is either null (any) or equal. Of the matching buffers, the
most granular one applies — the one that names the sku beats one that does not, then the one
that names the location, then the one that names the channel:

    sku+location+channel > sku+location > sku+channel > sku > location+channel > location > channel

(`level` = 4·sku + 2·location + 1·channel, the highest wins). Two buffers at the same level:
the larger quantity applies. Buffers do not add up. The channels are the channel ids that
appear in buffers (the API has no list of channels).

In a multi-account destination (its tables begin with an `account` column) every view begins
with `account` too, and matches rows of one account only: an order's items, the buffers of
an inventory row, a history's versions (`_accounts`).

A view is created only when the tables (and columns) it reads exist; one that cannot be
created (a catalog left out a column it needs) is skipped with a log line, never an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any

log = logging.getLogger(__name__)

ORDER_LINES = """
CREATE OR REPLACE VIEW order_lines AS
SELECT
    [[o]]o.id AS order_id,
    o.external_id AS order_external_id,
    o.created_at AS ordered_at,
    CAST(o.created_at AS DATE) AS order_date,
    o.source,
    o.customer_id,
    o.customer_email,
    i.id AS order_item_id,
    i.sku,
    i.qty,
    i.price,
    i.discount,
    i.tax,
    i.total,
    i.store_id
FROM order_items i
JOIN orders o ON o.id = i.order_id[[o=i]]
{live}
"""

# skus that went out of stock at a location (quantity summed over bins), and when they came back:
# from the type-2 history of inventory (`inventory_history`, kept by every run)
STOCK_OUTS = """
CREATE OR REPLACE VIEW stock_outs AS
WITH points AS (
    SELECT DISTINCT [[]]sku, location_external_id, valid_from AS changed_at FROM inventory_history
    UNION
    SELECT DISTINCT [[]]sku, location_external_id, valid_to FROM inventory_history WHERE valid_to IS NOT NULL
),
levels AS (
    SELECT [[p]]p.sku, p.location_external_id, p.changed_at, coalesce(sum(h.qty_on_hand), 0) AS qty_on_hand
    FROM points p
    LEFT JOIN inventory_history h
      ON h.sku = p.sku AND h.location_external_id = p.location_external_id[[h=p]]
     AND h.valid_from <= p.changed_at AND (h.valid_to IS NULL OR h.valid_to > p.changed_at)
    GROUP BY [[p]]p.sku, p.location_external_id, p.changed_at
),
steps AS (
    SELECT *, lag(qty_on_hand) OVER (PARTITION BY [[]]sku, location_external_id ORDER BY changed_at) AS qty_before
    FROM levels
)
SELECT [[s]]s.sku, s.location_external_id, s.qty_before, s.changed_at AS out_of_stock_at,
       (SELECT min(b.changed_at) FROM steps b WHERE b.sku = s.sku AND b.location_external_id = s.location_external_id[[b=s]]
          AND b.changed_at > s.changed_at AND b.qty_on_hand > 0) AS back_in_stock_at
FROM steps s
WHERE s.qty_on_hand <= 0 AND s.qty_before > 0
"""

AVAILABLE_TO_SELL = """
CREATE OR REPLACE VIEW available_to_sell AS
WITH stock AS (
    SELECT [[]]sku, location_external_id, sum(coalesce(qty_on_hand, 0)) AS qty_on_hand
    FROM inventory
    GROUP BY [[]]sku, location_external_id
),
channels AS (
    SELECT DISTINCT [[]]channel_id FROM buffers WHERE channel_id IS NOT NULL
),
grid AS (
    SELECT [[s]]s.sku, s.location_external_id, c.channel_id, s.qty_on_hand
    FROM stock s {cross} channels c
),
matched AS (
    SELECT [[g]]g.sku, g.location_external_id, g.channel_id, b.id AS buffer_id,
           coalesce(b.qty, 0) AS buffer_qty,
           (CASE WHEN b.sku IS NOT NULL THEN 4 ELSE 0 END
            + CASE WHEN b.location_external_id IS NOT NULL THEN 2 ELSE 0 END
            + CASE WHEN b.channel_id IS NOT NULL THEN 1 ELSE 0 END) AS buffer_level
    FROM grid g
    JOIN buffers b
      ON (b.sku IS NULL OR b.sku = g.sku)[[b=g]]
     AND (b.location_external_id IS NULL OR b.location_external_id = g.location_external_id)
     AND (b.channel_id IS NULL OR b.channel_id = g.channel_id)
),
best AS (
    SELECT * FROM matched
    QUALIFY row_number() OVER (
        PARTITION BY [[]]sku, location_external_id, channel_id
        ORDER BY buffer_level DESC, buffer_qty DESC, buffer_id
    ) = 1
)
SELECT
    [[g]]g.sku,
    g.location_external_id,
    g.channel_id,
    g.qty_on_hand,
    coalesce(b.buffer_qty, 0) AS buffer_qty,
    b.buffer_id,
    CASE b.buffer_level
        WHEN 7 THEN 'sku+location+channel' WHEN 6 THEN 'sku+location' WHEN 5 THEN 'sku+channel'
        WHEN 4 THEN 'sku' WHEN 3 THEN 'location+channel' WHEN 2 THEN 'location'
        WHEN 1 THEN 'channel' WHEN 0 THEN 'all'
    END AS buffer_rule,
    greatest(g.qty_on_hand - coalesce(b.buffer_qty, 0), 0) AS available_to_sell
FROM grid g
LEFT JOIN best b USING ([[]]sku, location_external_id, channel_id)
"""

VIEWS: dict[str, tuple[tuple[str, ...], str]] = {
    "order_lines": (("orders", "order_items"), ORDER_LINES),
    "available_to_sell": (("inventory", "buffers"), AVAILABLE_TO_SELL),
    "stock_outs": (("inventory_history",), STOCK_OUTS),
}
# records marked gone upstream (`_sqquid_deleted_at`) are left out of the views that read them
LIVE = "WHERE o._sqquid_deleted_at IS NULL AND i._sqquid_deleted_at IS NULL"


ACCOUNT = "account"
MARK = "sqquid-etl view "  # a view's comment: what it was made from (`_mark`)

Columns = dict[str, dict[str, str]]  # table -> its columns and their types


def _relations(conn: Any, base_tables: bool) -> tuple[Columns, dict[str, str]]:
    """The database's tables (`base_tables`: not its views) with their columns and types, and its
    views with their comments, read in one query (no join: it runs within the smallest memory limit)."""
    rows = conn.execute(
        "SELECT table_name, column_name, data_type, NULL FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'main' "
        "UNION ALL SELECT view_name, NULL, NULL, coalesce(comment, '') FROM duckdb_views() "
        "WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal"
    ).fetchall()
    tables: Columns = {}
    views: dict[str, str] = {}
    for name, column, kind, comment in rows:
        if column is None:
            views[name] = comment
        else:
            tables.setdefault(name, {})[column] = kind
    if base_tables:
        tables = {name: columns for name, columns in tables.items() if name not in views}
    return tables, views


def _accounts(sql: str, multi: bool) -> str:
    """The view's SQL for a single-account destination, or for a multi-account one: the account
    column first in each select list, grouping and partition, and in every join (`[[x]]`: `x.account, `;
    `[[x=y]]`: ` AND x.account = y.account`; `{cross}`: the grid of each account's channels)."""
    def column(match: re.Match) -> str:
        alias = match.group(1)
        if "=" in alias:
            left, right = alias.split("=")
            return f" AND {left}.{ACCOUNT} = {right}.{ACCOUNT}" if multi else ""
        return (f"{alias}.{ACCOUNT}, " if alias else f"{ACCOUNT}, ") if multi else ""

    sql = sql.replace("{cross}", f"JOIN" if multi else "CROSS JOIN")
    sql = sql.replace("channels c\n", f"channels c ON c.{ACCOUNT} = s.{ACCOUNT}\n") if multi else sql
    return re.sub(r"\[\[([a-z=]*)\]\]", column, sql)


def _view_sql(tables: Columns, name: str, sql: str) -> str:
    """The view's SQL for these tables (multi-account when each it reads has an `account` column;
    order_lines leaves out records marked gone when both its tables mark them)."""
    needs = VIEWS[name][0]
    sql = _accounts(sql, all(ACCOUNT in tables.get(t, ()) for t in needs))
    if name != "order_lines":
        return sql
    marked = all("_sqquid_deleted_at" in tables.get(t, ()) for t in ("orders", "order_items"))
    return sql.replace("{live}", LIVE if marked else "")


def _mark(sql: str, tables: Columns, needs: tuple[str, ...]) -> str:
    """What a view is made from: its SQL and the columns (with types) of the tables it reads."""
    made_of = json.dumps([sql, [sorted(tables[t].items()) for t in needs]])
    return MARK + hashlib.md5(made_of.encode()).hexdigest()


def create_views(conn: Any) -> list[str]:
    """Create (or replace) every view whose tables exist on this DuckDB connection; return their
    names. A view made from the same SQL and the same tables' columns as now is left as it is (its
    comment says what it was made from): a run that changed no table costs one catalog query."""
    from .destinations.duckdb_engine import duckdb

    try:
        tables, views = _relations(conn, base_tables=True)
    except duckdb.Error as exc:  # e.g. a memory limit too small even for the catalog: no view, never an error
        log.info("views not made: %s", str(exc).splitlines()[0])
        return []
    created = []
    for name, (needs, sql) in VIEWS.items():
        if not set(needs) <= tables.keys():
            continue
        text = _view_sql(tables, name, sql)
        mark = _mark(text, tables, needs)
        if views.get(name) != mark:
            try:
                conn.execute(text)
                conn.execute(f"COMMENT ON VIEW {name} IS '{mark}'")
            except duckdb.Error as exc:
                log.info("view %s not created: %s", name, str(exc).splitlines()[0])
                continue
        created.append(name)
    return created


def attach_parquet(conn: Any, root: str) -> list[str]:
    """On any DuckDB connection, define one view per table of a Parquet extract under `root`
    (of a multi-account one: over every account's partition), then the helper views over them.
    Returns the helper views created."""
    from pathlib import Path

    base = Path(root)
    for table_dir in sorted(p for p in base.iterdir() if p.is_symlink() or (p.is_dir() and not p.name.startswith(("_", ".")))):
        files = table_dir / "*.parquet"
        if not list(table_dir.glob("*.parquet")):
            files = table_dir / "account=*" / "*.parquet"  # a multi-account directory: every account's partition
            if table_dir.is_symlink() or not list(table_dir.glob("account=*/*.parquet")):
                continue
        quoted = '"' + table_dir.name.replace('"', '""') + '"'
        # accounts' partitions may differ by the columns their undocumented fields added: read by name
        by_name = ", union_by_name = true" if files.parent.name == "account=*" else ""
        conn.execute(f"CREATE OR REPLACE VIEW {quoted} AS SELECT * FROM read_parquet('{str(files).replace(chr(39), chr(39) * 2)}'{by_name})")
    return _helper_views(conn)


def attach_files(conn: Any, tables: dict[str, list[str]]) -> list[str]:
    """On any DuckDB connection, define one view per table over its Parquet files (columns matched
    by name: a file written before a column was added reads it as null), then the helper views.
    A table without files gets no view. Returns the helper views created."""
    for name, files in sorted(tables.items()):
        if files:
            listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            quoted = '"' + name.replace('"', '""') + '"'
            conn.execute(f"CREATE OR REPLACE VIEW {quoted} AS SELECT * FROM read_parquet([{listed}], union_by_name = true)")
    return _helper_views(conn)


def _helper_views(conn: Any) -> list[str]:
    tables, _ = _relations(conn, base_tables=False)  # the tables here are views over Parquet files
    created = []
    for name, (needs, sql) in VIEWS.items():
        if set(needs) <= tables.keys():
            conn.execute(_view_sql(tables, name, sql))
            created.append(name)
    return created
