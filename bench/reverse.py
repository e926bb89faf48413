"""Reverse load: a 1M-record full update against a baseline, as `load-inventory --mode full
--baseline EXTRACT.duckdb --dry-run` runs it (no HTTP): validate the input, read the baseline,
diff, plan the chunks; then build and serialize every chunk as sending would. Prints the CPU
seconds, the peak RSS and the chunk sizes.

    python bench/reverse.py --records 1000000

The baseline (the DuckDB file of an extract: `inventory`, `product_variants`, `_sqquid_runs`) and
the input (a Parquet file) are made in a child process first, so that work is not in this
process's CPU or peak RSS. The account
holds the input's records (a third of them with another quantity) and 10% more skus that the
input leaves out, which the update zeroes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

LOCATIONS = ("default", "store-1", "store-2")


def make_baseline(path: Path, records: int) -> None:
    """An extract's DuckDB file: 3 records a sku, for the input's skus and 10% more."""
    import duckdb

    skus = records // 3 + records // 30
    with duckdb.connect(str(path)) as con:
        con.execute(f"""CREATE TABLE inventory AS SELECT 'SKU-' || lpad(CAST(i // 3 AS VARCHAR), 7, '0') AS sku,
                        ['default', 'store-1', 'store-2'][i % 3 + 1] AS location_external_id,
                        ['default', 'front', 'back'][(i * 7) % 3 + 1] AS bin, CAST((i * 37) % 500 AS BIGINT)
                        AS qty_on_hand FROM range({skus * 3}) t(i)""")
        con.execute("CREATE TABLE product_variants AS SELECT DISTINCT sku FROM inventory")
        con.execute("""CREATE TABLE _sqquid_runs (run_id VARCHAR, stream VARCHAR, started_at TIMESTAMPTZ,
                       finished_at TIMESTAMPTZ, status VARCHAR)""")
        con.execute("INSERT INTO _sqquid_runs VALUES ('bench', 'inventory', now(), now(), 'ok')")


def make_input(path: Path, records: int) -> None:
    """The input, a Parquet file: the first `records` records of the baseline, a third with a new
    quantity, in another order than the baseline's."""
    import numpy as np
    import pandas as pd

    i = np.random.default_rng(1).permutation(records)
    pd.DataFrame({
        "sku": np.char.add("SKU-", np.char.zfill((i // 3).astype(str), 7)),  # pandas' text columns, as read
        "location_external_id": np.array(LOCATIONS)[i % 3],
        "bin": np.array(["default", "front", "back"])[(i * 7) % 3],
        "qty_on_hand": np.where(i % 3 == 0, (i * 37) % 500 + 1, (i * 37) % 500),
    }).to_parquet(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--make-baseline", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.make_baseline:
        make_baseline(Path(a.make_baseline), a.records)
        make_input(Path(a.make_baseline).with_name("input.parquet"), a.records)
        return
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")  # as the load-inventory command does
    from sqquid_etl.client import Credentials, SqquidClient
    from sqquid_etl.reverse import load_inventory
    from sqquid_etl.reverse_chunks import MAX_BODY_BYTES, chunk_payload, plan_chunks
    from sqquid_etl.reverse_full import _plan

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        baseline = Path(tmp) / "extract.duckdb"
        subprocess.run([sys.executable, __file__, "--records", str(a.records), "--make-baseline", str(baseline)],
                       check=True)
        source = Path(tmp) / "input.parquet"
        client = SqquidClient(Credentials(api_key="unused"), "http://127.0.0.1:9")  # never asked: all is local
        cpu, wall = time.process_time(), time.perf_counter()
        report = load_inventory(source, mode="full", client=client, baseline=baseline, dry_run=True, zero_threshold=1,
                                journal=Path(tmp) / "journal.jsonl")
        prepare_cpu, prepare_wall = time.process_time() - cpu, time.perf_counter() - wall
        assert report.requests == 0, "the benchmark must not reach the network"
        print(f"full update of {report.records:,} records against a baseline of {report.current_records_seen:,}: "
              f"{report.changed:,} changed, {report.unchanged:,} unchanged, {report.records_zeroed:,} zeroed")
        print(f"prepare + read baseline + diff + plan chunks: {prepare_cpu:.2f} s CPU ({prepare_wall:.2f} s wall)")
        plan = _plan(report.diff)
        cpu = time.process_time()
        chunks = plan_chunks(plan, 500, MAX_BODY_BYTES)
        sizes, skus = [], []
        for chunk in chunks:
            payload = chunk_payload(plan, chunk)
            sizes.append(len(json.dumps(payload, separators=(",", ":")).encode()))
            skus.append(len(payload))
        print(f"chunks: {len(chunks):,} of <= 500 skus and <= {MAX_BODY_BYTES:,} bytes; body bytes max {max(sizes):,}, "
              f"mean {sum(sizes) // len(sizes):,}; skus max {max(skus)}; {sum(sizes) / 1e6:.1f} MB in all "
              f"(build + serialize every chunk: {time.process_time() - cpu:.2f} s CPU)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MB")


if __name__ == "__main__":
    main()
