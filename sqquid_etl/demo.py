"""`sqquid-etl demo`: the sandbox on loopback, every stream extracted into DuckDB, a summary."""

from __future__ import annotations

from pathlib import Path

import click

from .client import Credentials, SqquidClient
from .pipeline import extract
from .settings import DEFAULT_BURST

SAMPLE_QUERY = """
SELECT i.sku, sum(i.qty) AS units, count(DISTINCT i.order_id) AS orders
FROM order_items i
GROUP BY i.sku
ORDER BY units DESC, i.sku
LIMIT 5
""".strip()


def run_demo(duckdb_path: Path, *, orders: int, products: int, rate: float, seed: int = 1, drift: bool = False) -> bool:
    from .sandbox import Sandbox, SandboxConfig

    for leftover in (duckdb_path, duckdb_path.with_name(duckdb_path.name + ".wal")):
        if leftover.exists():
            leftover.unlink()  # the demo starts from an empty database each time
    pace = rate or None  # --rate 0: no throttling, no pacing
    config = SandboxConfig(seed=seed, orders=orders, products=products, rate=pace, burst=DEFAULT_BURST, drift=drift)
    with Sandbox(config) as sandbox:
        click.echo(f"sandbox: {sandbox.url} ({orders} orders, {products} products, {rate:g} requests/s"
                   f"{', drift profile' if drift else ''})")
        key = next(iter(config.api_keys))
        client = SqquidClient(Credentials(api_key=key), sandbox.url, rate=pace, burst=DEFAULT_BURST)
        with client:
            result = extract(duckdb=duckdb_path, client=client)
    from .cli import print_summary

    print_summary(result)
    import duckdb

    with duckdb.connect(str(duckdb_path), read_only=True) as conn:
        click.echo(f"\nsample query (top skus by units sold):\n{SAMPLE_QUERY}\n")
        rows = conn.execute(SAMPLE_QUERY).fetchall()
        for sku, units, n_orders in rows:
            click.echo(f"  {sku:<28} {units:>6} units in {n_orders} orders")
    click.echo(f"\nexplore it: sqquid-etl sql --duckdb {duckdb_path} \"SELECT * FROM available_to_sell LIMIT 10\"\n"
               "  tables: orders, order_items, products, product_variants, shipments, shipment_order_items, "
               "shipment_items, inventory, buffers, locations, _sqquid_runs; views: order_lines, available_to_sell\n"
               "  or open notebooks/explore.ipynb (it reads this database)")
    return result.ok
