"""Many accounts (issue #15): the sandbox serving N accounts, and one process extracting them.

    python bench/accounts.py --sandbox-only --accounts 100

Starts `sqquid-etl sandbox --accounts N` in its own process and prints the time until it
listens with every account's key printed, and its RSS then.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, proc_cpu_seconds, sandbox_cmd  # noqa: E402


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def load_average() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def start_sandbox(accounts: int, orders: int, products: int, *, rate: float = 0.0, burst: int = 40,
                  latency: float = 0.0, spread: float = 0.5, extra: list[str] | None = None):
    """(process, url, {name: (api_key, orders)}, seconds until every account was printed)."""
    args = sandbox_cmd() + ["--port", "0", "--accounts", str(accounts), "--orders", str(orders),
                            "--products", str(products), "--rate", str(rate), "--burst", str(burst),
                            "--latency", str(latency), "--size-spread", str(spread), "--cache-mb", "0"] + (extra or [])
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"sandbox did not start: {line}{proc.stderr.read()}")
    url = next(w for w in line.split() if w.startswith("http"))
    keys = {}
    for _ in range(accounts):
        fields = proc.stdout.readline().split()
        named = dict(zip(fields[::2], fields[1::2]))
        keys[named["account"]] = (named["api_key"], int(named["orders"]))
    return proc, url, keys, time.perf_counter() - started


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def sandbox_only(a) -> None:
    print(f"command: python bench/accounts.py --sandbox-only --accounts {a.accounts} "
          f"--orders {a.orders} --products {a.products}")
    print(f"machine: {machine()}; load average {load_average():.2f}")
    proc, _, keys, ready = start_sandbox(a.accounts, a.orders, a.products)
    try:
        orders = sum(n for _, n in keys.values())
        print(f"sandbox: {len(keys)} accounts ({orders} orders in all) ready in {ready:.2f} s, "
              f"RSS {rss_mb(proc.pid):.0f} MB, CPU {proc_cpu_seconds(proc.pid):.2f} s")
    finally:
        stop(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=100)
    ap.add_argument("--orders", type=int, default=5000, help="--sandbox-only: orders an account (spread 0.5)")
    ap.add_argument("--products", type=int, default=2000, help="--sandbox-only: products an account")
    ap.add_argument("--sandbox-only", action="store_true", help="measure the sandbox's start only")
    a = ap.parse_args()
    if a.sandbox_only:
        return sandbox_only(a)
    raise SystemExit("error: only --sandbox-only so far")


if __name__ == "__main__":
    main()
