"""Shared-storage destinations on the engine-overhead benchmark (pacing off): the same orders
(+ items) and products (+ variants) extracted into local DuckDB (the reference), Parquet on S3,
Iceberg on local disk and Iceberg on S3, one after the other, from one sandbox in its own process.

    .venv/bin/python bench/shared_storage.py --orders 200000 --products 100000 --rounds 3

`--rounds N`: the destinations N times over, interleaved (DuckDB, Parquet on S3, Iceberg, ...
then again), each round into new locations, so that a busy machine weighs on all alike; the
summary gives each destination's median CPU over the rounds against DuckDB's median, and its
largest peak RSS. The load average is printed before and after.

S3 is moto's standalone server (`moto[server]`) on a free loopback port, in its own process:
its CPU is not the extract's and is shown apart. Each extract runs as a subprocess; CPU time
(user+sys) and peak RSS from `os.wait4`, as in `bench/overhead.py`. A second, incremental run
(nothing new) of each is measured too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from common import machine, proc_cpu_seconds, sandbox_process  # noqa: E402
from overhead import run_wait4  # noqa: E402

from tests.s3_server import S3_ENV, _free_port, _wait_until_up  # noqa: E402


def _targets(tmp: Path, bucket: str, round_: int) -> dict[str, list[str]]:
    tmp = tmp / f"round-{round_}"
    tmp.mkdir()
    return {
        "DuckDB (local file)": ["--duckdb", str(tmp / "s.duckdb")],
        "Parquet on S3": ["--parquet", f"s3://{bucket}/{round_}/lake"],
        "Iceberg (local warehouse)": ["--iceberg", str(tmp / "warehouse")],
        "Iceberg on S3": ["--iceberg", f"s3://{bucket}/{round_}/warehouse?catalog=sqlite:///{tmp}/catalog.db"],
    }


def _summary(results: dict[tuple[str, str], list[dict]]) -> None:
    print("\nsummary (median CPU over the rounds, against DuckDB's median of the same run; largest peak RSS):")
    for (name, run), rows in results.items():
        cpu = statistics.median(r["cpu"] for r in rows)
        reference = statistics.median(r["cpu"] for r in results[("DuckDB (local file)", run)])
        print(f"  {name:27s} {run:5s} cpu {cpu:6.2f} s  {cpu / reference:4.2f}x DuckDB  "
              f"peak RSS {max(r['peak_rss_mb'] for r in rows):6.1f} MB  ({len(rows)} rounds)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=200_000)
    ap.add_argument("--products", type=int, default=100_000)
    ap.add_argument("--streams", default="orders,products")
    ap.add_argument("--only", action="append", help="run only destinations whose name contains this (DuckDB always runs)")
    ap.add_argument("--rounds", type=int, default=1, help="the destinations this many times over, interleaved")
    a = ap.parse_args()
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tmp = Path(tempfile.mkdtemp(prefix="sqquid-bench-shared-"))
    try:
        _wait_until_up(endpoint, moto)
        env = dict(os.environ, **S3_ENV, AWS_ENDPOINT_URL=endpoint, PYTHONPATH=str(HERE.parent))
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=bucket)
        print(f"machine: {machine()}")
        results: dict[tuple[str, str], list[dict]] = {}
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        with sandbox_process(orders=a.orders, products=a.products, rate=0) as (url, pid):
            print(f"sandbox: {a.orders} orders, {a.products} products; S3: moto server at {endpoint}")
            for round_ in range(a.rounds):
                for name, target in _targets(tmp, bucket, round_).items():
                    if a.only and name != "DuckDB (local file)" and not any(o.lower() in name.lower() for o in a.only):
                        continue
                    for run in ("first", "again"):
                        moto_before = proc_cpu_seconds(moto.pid)
                        r = run_wait4([sys.executable, HERE / "contenders" / "sqquid_target.py", url, a.streams, "--", *target], env, pid)
                        moto_cpu = proc_cpu_seconds(moto.pid) - moto_before
                        results.setdefault((name, run), []).append(r)
                        reference = results[("DuckDB (local file)", run)][-1]["cpu"]
                        status = "ok" if r["rc"] == 0 else f"FAILED rc={r['rc']}: {r['stderr'][-600:]}"
                        print(f"{name:27s} {run:5s} cpu {r['cpu']:7.2f} s ({r['cpu'] / reference:4.2f}x DuckDB)  wall {r['wall']:7.2f} s  "
                              f"peak RSS {r['peak_rss_mb']:6.1f} MB  S3 server cpu {moto_cpu:6.2f} s  {status}", flush=True)
        _summary(results)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        moto.terminate()
        moto.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
