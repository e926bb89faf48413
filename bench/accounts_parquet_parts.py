"""Accounts' first loads into one Parquet directory (issue #15): their commits' CPU with parts
(`destinations/parquet_parts.py`) and without, and Arrow's memory at its peak.

    python bench/accounts_parquet_parts.py --accounts 1 --orders 90000 --repeat 2
    python bench/accounts_parquet_parts.py --accounts 4 --orders 60000

The sandbox in this process, unpaced (rate 0), `--accounts` accounts of `--orders` orders each;
the accounts run as `sqquid-etl extract --all-accounts --parquet DIR --streams orders` runs them
(`accounts_run.run_accounts`), SQQUID_FLUSH_ROWS=1000 as at 100 accounts. Each setting in turn,
`--repeat` times: "one commit" (parts off: `ParquetStreamWriter.parts_allowed = False`) and
"parts" (asked for after every page, as `commit_parts.PartCommits` does once 10 s passed: a part
when `parquet_parts.PART_ROWS` rows are staged). Printed: the CPU of the accounts' commits
(`time.thread_time` in `_commit`, parts included), the process's CPU (the sandbox's too), Arrow's
bytes at most (sampled every 50 ms) and the peak RSS (the sandbox's data too). BENCH_DUCKDB_SET="a=b;c=d":
DuckDB settings set after the destination's own (e.g. its allocator's, process-wide).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

ONE = """
import os, sys, tempfile, threading, time
import pyarrow as pa
from sqquid_etl import commit_parts
from sqquid_etl.accounts import Account
from sqquid_etl.accounts_run import AccountJob, run_accounts
from sqquid_etl.credentials import Credentials
from sqquid_etl.destinations import parquet
from sqquid_etl.sandbox.app import Sandbox, SandboxConfig

accounts, orders, parts = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "parts"
pa.set_memory_pool(pa.system_memory_pool())
if parts:
    commit_parts.PartCommits.page_staged = lambda self: self.enabled and self.commit(wait=False)
else:
    parquet.ParquetStreamWriter.parts_allowed = False
spent = [0.0]
real = parquet.ParquetStreamWriter._commit

def timed(self, state, run):
    began = time.thread_time()
    try:
        return real(self, state, run)
    finally:
        spent[0] += time.thread_time() - began

parquet.ParquetStreamWriter._commit = timed
if os.environ.get("BENCH_DUCKDB_SET"):  # DuckDB's allocator settings (process-wide), e.g. "allocator_background_threads=true"
    from sqquid_etl.destinations import duckdb_tuning
    tune = duckdb_tuning.tune

    def tuned(conn, *args, **kwargs):
        tune(conn, *args, **kwargs)
        for setting in os.environ["BENCH_DUCKDB_SET"].split(";"):
            conn.execute("SET " + setting)

    duckdb_tuning.tune = tuned
    from sqquid_etl.destinations import parquet_sql
    parquet_sql.tune = tuned
sandbox = Sandbox(SandboxConfig(accounts=accounts, orders=orders, products=50, rate=None, size_spread=0.0, cache_mb=0))
sandbox.start()
peak, stop = [0], threading.Event()

def watch():
    while not stop.wait(0.05):
        peak[0] = max(peak[0], pa.total_allocated_bytes())

threading.Thread(target=watch, daemon=True).start()
jobs = [AccountJob(Account(name=name, base_url=sandbox.url, api_key_env="X", rate=None, streams=("orders",)),
                   Credentials(api_key=key)) for name, key in sandbox.api_keys.items()]
cpu, began = time.process_time(), time.perf_counter()
done = run_accounts(jobs, {"parquet": tempfile.mkdtemp()}, {})
stop.set()
assert done.ok, done.failed
print(f"{'parts' if parts else 'one commit'}: commits {spent[0]:.2f} s of CPU, process {time.process_time() - cpu:.2f} s, "
      f"wall {time.perf_counter() - began:.2f} s, Arrow at most {peak[0] / 2**20:.1f} MB, "
      f"records {sum(s.rows.get('orders', 0) for a in done.accounts for s in a.streams)}, "
      f"peak RSS {__import__('resource').getrusage(__import__('resource').RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=1)
    ap.add_argument("--orders", type=int, default=90_000)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    print(f"command: python bench/accounts_parquet_parts.py --accounts {a.accounts} --orders {a.orders} --repeat {a.repeat}")
    env = {**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "system", "SQQUID_FLUSH_ROWS": "1000"}
    with open("/proc/loadavg") as f:
        print(f"load average before: {f.read().split()[0]}")
    for _ in range(a.repeat):
        for setting in ("one", "parts"):
            out = subprocess.run([sys.executable, "-c", ONE, str(a.accounts), str(a.orders), setting], env=env,
                                 capture_output=True, text=True, check=True)
            print("  " + out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
