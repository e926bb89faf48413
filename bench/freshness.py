"""Freshness: what a default incremental run costs and sees when the account changes between runs.

A sandbox (in this process, no pacing) holds a year of orders and more; the first extract reads
a year (`--start-date` one year before the sandbox's now) of orders, shipments and shipment
items: its requests are the cost of a full refresh. Then, each round, the sandbox makes changes
of every kind (`sandbox/changes.py`) and new orders, and two incremental runs read them, each
from a copy of the same database: the default run (re-read windows, count scan, soft deletes)
and a cursor-only run (`--reread <stream>=0`, no reconciliation). Printed per round: the changes
made, how many of them the default run's tables show (checked record by record against the
API), the requests of both runs, and the extra requests of the default run as a share of the
full refresh.

    .venv/bin/python bench/freshness.py --orders 200000 --rounds 3
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

STREAMS = ["orders", "shipments", "shipment_items"]
API_KEY = "sandbox-api-key"


def per_round(orders: int) -> dict[str, int]:
    """Changes a round makes: about 0.05% of the orders edited, fewer deleted or moved."""
    n = max(2, orders // 2000)
    return {"edit_orders": n, "edit_shipments": n // 2, "move_items": n, "delete_orders": max(1, n // 4),
            "delete_shipments": max(1, n // 4), "delete_items": max(1, n // 4)}


def run(sandbox: Sandbox, db: Path, **options) -> tuple[int, dict]:
    client = SqquidClient(Credentials(api_key=API_KEY), sandbox.url, rate=None)
    try:
        result = extract(STREAMS, duckdb=db, client=client, **options)
    finally:
        client.close()
    assert result.ok, [(s.stream, s.message) for s in result.streams]
    return sum(s.requests for s in result.streams), {s.stream: s for s in result.streams}


def seen(db: Path, store, made: dict) -> dict[str, int]:
    """How many of each kind of change the tables show now (record by record, against the API)."""
    out = {}
    with duckdb.connect(str(db), read_only=True) as conn, store.lock:
        def value(sql, key):
            row = conn.execute(sql, [key]).fetchone()
            return row[0] if row else None
        book = store.book
        out["edit_orders"] = sum(value("SELECT customer_email FROM orders WHERE id = ?", i) ==
                                 book.orders.record(i - 1)["customer_email"] for i in made.get("edit_orders", []))
        out["edit_shipments"] = sum(value("SELECT tracking_number FROM shipments WHERE id = ?", i) ==
                                    book.shipments.record(i - 1)["tracking_number"] for i in made.get("edit_shipments", []))
        out["move_items"] = sum(value("SELECT scope FROM shipment_items WHERE id = ? AND _sqquid_deleted_at IS NULL", i)
                                == SCOPES[book.scope(i - 1)] for i, _, _ in made.get("move_items", [])
                                if book.items.exists(i - 1))
        for kind, table in (("delete_orders", "orders"), ("delete_shipments", "shipments"), ("delete_items", "shipment_items")):
            out[kind] = sum(value(f"SELECT _sqquid_deleted_at IS NOT NULL FROM {table} WHERE id = ?", i) is True
                            for i in made.get(kind, []))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sandbox = Sandbox(SandboxConfig(rate=None, orders=args.orders, products=2000))
    sandbox.start()
    work = Path(tempfile.mkdtemp(prefix="sqquid-freshness-"))
    try:
        now = datetime.fromisoformat(sandbox.store.now.replace("Z", "+00:00")).astimezone(timezone.utc)
        start = (now - timedelta(days=365)).isoformat()
        db = work / "default.duckdb"
        began = time.monotonic()
        full, streams = run(sandbox, db, start_date=start)
        print(f"full refresh of a year of orders ({streams['orders'].rows['orders']} orders, "
              f"{streams['shipment_items'].rows['shipment_items']} shipment items): {full} requests, "
              f"{time.monotonic() - began:.1f} s")
        print(f"{'round':>5} {'made':>6} {'seen':>6} {'default':>8} {'cursor-only':>12} {'extra':>6} {'extra/full':>11}")
        for rnd in range(args.rounds):
            made = sandbox.store.apply_changes(per_round(args.orders), seed=rnd)
            sandbox.store.add_orders(max(1, args.orders // 1000))
            sandbox.store.add_shipments(max(1, args.orders // 2000))
            plain = work / "cursor-only.duckdb"
            shutil.copy(db, plain)
            cursor_only, _ = run(sandbox, plain, start_date=start, reconcile=False,
                                 reread={name: "0" for name in STREAMS})
            default, _ = run(sandbox, db, start_date=start)
            found = seen(db, sandbox.store, made)
            n_made = sum(len(v) for v in made.values())
            extra = default - cursor_only
            print(f"{rnd + 1:>5} {n_made:>6} {sum(found.values()):>6} {default:>8} {cursor_only:>12} {extra:>6} "
                  f"{extra / full:>10.1%}")
            missed = {k: len(made[k]) - found.get(k, 0) for k in made if len(made[k]) != found.get(k, 0)}
            if missed:
                print(f"      not seen: {missed}")
    finally:
        sandbox.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
