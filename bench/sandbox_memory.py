"""The sandbox at scale: time to ready, resident memory, and page/count speed.

    python bench/sandbox_memory.py --orders 1000000 --products 200000

Starts `sqquid-etl sandbox` in its own process (throttling off), measures the time until it
listens and its RSS then (/proc), pages through the first pages of every list endpoint and asks
/count with filters, then its RSS again (steady) and, after SIGTERM, its peak RSS (os.wait4).
Prints one line per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import API_KEY, machine, proc_cpu_seconds, sandbox_cmd  # noqa: E402

LISTS = ["/v1/orders?limit=250", "/v1/products?limit=250", "/v1/shipments?limit=250",
         "/v1/shipmentitems?limit=250&scope=toship", "/v2/products?limit=200&variants=true"]
COUNTS = ["/v1/orders/count?created_at_min=2025-06-01T00:00:00Z",
          "/v1/products/count?updated_at_min=2026-01-01T00:00:00Z",
          "/v1/shipments/count?created_at_min=2026-01-01T00:00:00Z",
          "/v1/shipmentitems/count?scope=shipped&created_at_min=2025-01-01T00:00:00Z"
          "&created_at_max=2025-12-31T23:59:59Z"]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def get(url: str, token: str) -> bytes:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req) as r:
        return r.read()


def login(url: str) -> str:
    req = urllib.request.Request(url + "/v1/login", data=json.dumps({"api_key": API_KEY}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())["token"]


def page_through(url: str, token: str, path: str, pages: int) -> tuple[float, int, int]:
    """Seconds, records and bytes for the first ``pages`` pages of a list."""
    started, records, size = time.perf_counter(), 0, 0
    for page in range(pages):
        sep = "&" if "?" in path else "?"
        if path.startswith("/v2/"):
            body = get(f"{url}{path}{sep}offset={page * 200}", token)
            batch = json.loads(body)["results"]
        else:
            body = get(f"{url}{path}{sep}page={page + 1}", token)
            batch = next(iter(json.loads(body).values()))
        records += len(batch)
        size += len(body)
    return time.perf_counter() - started, records, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--products", type=int, default=200_000)
    ap.add_argument("--pages", type=int, default=40, help="pages read from each list")
    a = ap.parse_args()
    cmd = sandbox_cmd() + ["--port", "0", "--orders", str(a.orders), "--products", str(a.products), "--rate", "0"]
    print("command:", " ".join(["python", "bench/sandbox_memory.py", "--orders", str(a.orders),
                                "--products", str(a.products), "--pages", str(a.pages)]))
    print("machine:", machine())
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise SystemExit(f"sandbox did not start: {line}{proc.stderr.read()}")
        url = line.strip().rsplit(" ", 1)[-1]
        print(f"ready: {time.monotonic() - started:.2f} s ({a.orders} orders, {a.products} products)")
        print(f"rss at ready: {rss_mb(proc.pid):.0f} MB")
        token = login(url)
        cpu_before = proc_cpu_seconds(proc.pid)
        for path in LISTS:
            seconds, records, size = page_through(url, token, path, a.pages)
            print(f"pages {path.split('?')[0]}: {a.pages} pages, {records} records, {size / 2**20:.1f} MiB "
                  f"in {seconds:.2f} s ({records / seconds:,.0f} records/s)")
        for path in COUNTS:
            t0 = time.perf_counter()
            body = get(url + path, token)
            print(f"count {path}: {json.loads(body)} in {time.perf_counter() - t0:.3f} s")
        print(f"sandbox cpu while paging and counting: {proc_cpu_seconds(proc.pid) - cpu_before:.2f} s")
        print(f"rss steady (after paging): {rss_mb(proc.pid):.0f} MB")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    print(f"peak rss: {usage.ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
