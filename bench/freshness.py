"""Freshness: what a default incremental run costs and sees when the account changes between runs.

A sandbox (in this process, no pacing) holds a year of orders and more; the first extract reads
a year (`--start-date` one year before the sandbox's now) of orders, shipments and shipment
items: its requests are the cost of a full refresh. Then, each round, the sandbox makes changes
(`sandbox/changes.py`: `--rounds` rounds of edits to recent orders and shipments, then as many
rounds that also delete and move records of any age) and new orders, and two incremental runs read them, each
from a copy of the same database: the default run (re-read windows, count scan, soft deletes)
and a cursor-only run (`--reread <stream>=0`, no reconciliation). Printed per round: the changes
made to records of the year extracted, how many of them the default run's tables show (checked
record by record against the API), the requests of both runs, and the extra requests of the default run as a share of the
full refresh. `--parquet`: into a Parquet directory instead of a DuckDB file (the same requests:
a destination only answers the stored counts).

    .venv/bin/python bench/freshness.py --orders 100000 --rounds 2 [--parquet]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqquid_etl.client import Credentials, SqquidClient  # noqa: E402
from sqquid_etl.pipeline import extract  # noqa: E402
from sqquid_etl.sandbox import Sandbox, SandboxConfig  # noqa: E402
from sqquid_etl.sandbox.order_records import SCOPES  # noqa: E402
from sqquid_etl.sql_views import attach_parquet  # noqa: E402

STREAMS = ["orders", "shipments", "shipment_items"]
API_KEY = "sandbox-api-key"


def per_round(orders: int, any_age: bool) -> dict[str, int]:
    """Changes a round makes: about 0.1% of the orders edited (recent ones); with `any_age`, as
    many again deleted or moved at any age (records of the whole year and before)."""
    n = max(2, orders // 1000)
    recent = {"edit_orders": n, "edit_shipments": n // 2}
    if not any_age:
        return recent
    return {**recent, "move_items": n // 2, "delete_orders": max(1, n // 4), "delete_shipments": max(1, n // 4),
            "delete_items": max(1, n // 4)}


def run(sandbox: Sandbox, db: Path, **options) -> tuple[int, dict]:
    client = SqquidClient(Credentials(api_key=API_KEY), sandbox.url, rate=None)
    where = {"parquet": db} if db.suffix != ".duckdb" else {"duckdb": db}
    try:
        result = extract(STREAMS, **where, client=client, **options)
    finally:
        client.close()
    assert result.ok, [(s.stream, s.message) for s in result.streams]
    for stream in result.streams:  # a repair that failed after the stream's commit: said, not hidden
        if stream.status != "ok":
            print(f"      {stream.stream}: {stream.status}: {stream.message[:300]}")
    return sum(s.requests for s in result.streams), {s.stream: s for s in result.streams}


def seen(db: Path, store, made: dict) -> tuple[dict[str, int], dict[str, int]]:
    """Per kind of change: how many touched a record the destination holds (the year extracted),
    and how many of those the tables show now (record by record, against the API)."""
    relevant: dict[str, int] = {}
    found: dict[str, int] = {}
    book = store.book
    checks = {  # kind -> (table, how its id is read from what `changes` returns, SQL of the stored value, the API's)
        "edit_orders": ("orders", lambda x: x, "customer_email", lambda i: book.orders.record(i - 1)["customer_email"]),
        "edit_shipments": ("shipments", lambda x: x, "tracking_number",
                           lambda i: book.shipments.record(i - 1)["tracking_number"]),
        "move_items": ("shipment_items", lambda x: x[0], "scope", lambda i: SCOPES[book.scope(i - 1)]),
        "delete_orders": ("orders", lambda x: x, "_sqquid_deleted_at IS NOT NULL", lambda i: True),
        "delete_shipments": ("shipments", lambda x: x, "_sqquid_deleted_at IS NOT NULL", lambda i: True),
        "delete_items": ("shipment_items", lambda x: x, "_sqquid_deleted_at IS NOT NULL", lambda i: True),
    }
    with _connect(db) as conn, store.lock:
        for kind, changes in made.items():
            table, key, column, upstream = checks[kind]
            for change in changes:
                row = conn.execute(f"SELECT {column} FROM {table} WHERE id = ?", [key(change)]).fetchone()
                if row is None:
                    continue  # older than the year extracted
                relevant[kind] = relevant.get(kind, 0) + 1
                found[kind] = found.get(kind, 0) + (row[0] == upstream(key(change)))
    return relevant, found


def _connect(db: Path):
    """A DuckDB connection reading the extract (a Parquet directory through its views)."""
    if db.suffix == ".duckdb":
        return duckdb.connect(str(db), read_only=True)
    conn = duckdb.connect()
    attach_parquet(conn, str(db))
    return conn


def _copy(db: Path, to: Path) -> None:
    shutil.rmtree(to, ignore_errors=True)
    if db.suffix == ".duckdb":
        shutil.copy(db, to)
    else:  # the tables are relative symlinks to their generations: copied as links
        shutil.copytree(db, to, symlinks=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parquet", action="store_true", help="into a Parquet directory instead of a DuckDB file")
    args = parser.parse_args()
    sandbox = Sandbox(SandboxConfig(rate=None, orders=args.orders, products=2000))
    sandbox.start()
    work = Path(tempfile.mkdtemp(prefix="sqquid-freshness-"))
    try:
        now = datetime.fromisoformat(sandbox.store.now.replace("Z", "+00:00")).astimezone(timezone.utc)
        start = (now - timedelta(days=365)).isoformat()
        db = work / ("default" if args.parquet else "default.duckdb")
        began = time.monotonic()
        full, streams = run(sandbox, db, start_date=start)
        print(f"full refresh of a year of orders ({streams['orders'].rows['orders']} orders, "
              f"{streams['shipment_items'].rows['shipment_items']} shipment items): {full} requests, "
              f"{time.monotonic() - began:.1f} s")
        print(f"{'round':>5} {'made':>6} {'seen':>6} {'default':>8} {'cursor-only':>12} {'extra':>6} {'extra/full':>11}")
        for rnd in range(2 * args.rounds):
            any_age = rnd >= args.rounds
            if rnd == 0 or rnd == args.rounds:
                print("edits of recent orders and shipments:" if not any_age else
                      "and deletions and scope moves at any age:")
            made = sandbox.store.apply_changes(per_round(args.orders, any_age), seed=rnd)
            sandbox.store.add_orders(max(1, args.orders // 1000))
            sandbox.store.add_shipments(max(1, args.orders // 2000))
            plain = work / ("cursor-only" if args.parquet else "cursor-only.duckdb")
            _copy(db, plain)
            cursor_only, _ = run(sandbox, plain, start_date=start, reconcile=False,
                                 reread={name: "0" for name in STREAMS})
            default, _ = run(sandbox, db, start_date=start)
            relevant, found = seen(db, sandbox.store, made)
            extra = default - cursor_only
            print(f"{rnd + 1:>5} {sum(relevant.values()):>6} {sum(found.values()):>6} {default:>8} {cursor_only:>12} "
                  f"{extra:>6} {extra / full:>10.1%}")
            missed = {k: n - found.get(k, 0) for k, n in relevant.items() if n != found.get(k, 0)}
            if missed:
                print(f"      not seen: {missed}")
    finally:
        sandbox.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
