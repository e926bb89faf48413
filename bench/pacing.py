"""Pacing efficiency: an orders extract against the sandbox at the API's real limits.

    python bench/pacing.py --latency 0.3 --seconds 60
    python bench/pacing.py --latency 1.0 --seconds 60

The sandbox (own process) throttles at --rate/--burst per token and sleeps --latency before
each answer. The data set is sized so that the extract lasts about --seconds at the ceiling.
Ceiling (records/s) = (burst + rate x T) x page size / T, T = the extract's wall time: the most
records the server's bucket lets through in T. The extract's own fixed costs (login, the
count check, one latency before the first and after the last page) count against it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import API_KEY, machine, sandbox_process, sandbox_stats  # noqa: E402

from sqquid_etl.pipeline import extract  # noqa: E402

PAGE = 250


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.3)
    ap.add_argument("--seconds", type=float, default=60.0, help="target duration at the ceiling")
    ap.add_argument("--rate", type=float, default=2.0)
    ap.add_argument("--burst", type=int, default=40)
    ap.add_argument("--json", action="store_true", help="print one JSON line too")
    a = ap.parse_args()
    pages = int(a.burst + a.rate * a.seconds)
    orders = pages * PAGE - PAGE // 2  # last page short
    with sandbox_process(orders=orders, products=50, rate=a.rate, burst=a.burst, latency=a.latency) as (url, _):
        sandbox_stats(url, reset=True)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.monotonic()
            result = extract(["orders"], duckdb=Path(tmp) / "p.duckdb", base_url=url, api_key=API_KEY,
                             rate=a.rate, burst=a.burst)
            wall = time.monotonic() - t0
        stats = sandbox_stats(url)
    s = result.stream("orders")
    records = s.rows.get("orders", 0)
    ceiling_requests = a.burst + a.rate * wall
    ceiling = ceiling_requests * PAGE / wall
    list_requests = stats["by_route"].get("GET /v1/orders", 0)
    count_requests = stats["by_route"].get("GET /v1/orders/count", 0)
    out = {
        "latency_s": a.latency, "rate": a.rate, "burst": a.burst, "orders": orders, "status": s.status,
        "wall_s": round(wall, 2), "records": records, "records_per_s": round(records / wall, 1),
        "ceiling_records_per_s": round(ceiling, 1), "efficiency": round(records / wall / ceiling, 4),
        "pages": s.pages, "list_requests": list_requests, "count_requests": count_requests,
        "wasted_requests": list_requests - s.pages, "throttled_429": stats["throttled"],
        "throttled_requests_used_of_ceiling": round((list_requests + count_requests) / ceiling_requests, 4),
        "expected_pages": math.ceil((orders + 1) / PAGE),
    }
    print(f"machine: {machine()}")
    print(f"pacing  latency={a.latency}s rate={a.rate}/s burst={a.burst} orders={orders} -> {s.status}")
    print(f"  wall {wall:.2f} s, {records} records, {records / wall:.1f} records/s; ceiling {ceiling:.1f} records/s "
          f"-> {100 * out['efficiency']:.1f}%")
    print(f"  requests: {list_requests} list + {count_requests} count (ceiling {ceiling_requests:.0f} in {wall:.1f} s); "
          f"pages {s.pages}; wasted {out['wasted_requests']}; 429s {stats['throttled']}")
    if a.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
