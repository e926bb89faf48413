"""Reverse load: time to validate 1M inventory rows and build the payload (no HTTP).

    python bench/reverse.py --rows 1000000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

from sqquid_etl.reverse_validate import prepare_inventory  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    rng = np.random.default_rng(1)
    n = a.rows
    skus = np.array([f"SKU-{i:07d}" for i in range(n // 3 + 1)])
    frame = pd.DataFrame({
        "sku": skus[np.arange(n) // 3],
        "location_external_id": np.array(["default", "store-1", "store-2"])[np.arange(n) % 3],
        "bin": np.array(["default", "front", "back"])[rng.integers(0, 3, n)],
        "qty_on_hand": rng.integers(0, 500, n),
    })
    frame = frame.drop_duplicates(["sku", "location_external_id", "bin"])
    print(f"machine: {machine()}")
    best = None
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        prepared = prepare_inventory(frame)
        t1 = time.perf_counter()
        payload = prepared.payload()
        t2 = time.perf_counter()
        total = t2 - t0
        best = total if best is None else min(best, total)
        print(f"rows {len(frame):,}: validate {t1 - t0:.2f} s + payload {t2 - t1:.2f} s = {total:.2f} s "
              f"({len(payload):,} skus)", flush=True)
    print(f"best of {a.repeat}: {best:.2f} s")


if __name__ == "__main__":
    main()
