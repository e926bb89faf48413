"""sqquid-etl as users run it: the `sqquid-etl extract` command (in this process), pacing off.

    python bench/contenders/sqquid.py URL OUT {duckdb|parquet} [STREAMS]

STREAMS: comma-separated, default orders,products (with their children).
"""

import sys

from sqquid_etl.cli import main  # first: the CLI chooses Arrow's allocator before pyarrow loads

url, out, kind = sys.argv[1], sys.argv[2], sys.argv[3]
streams = sys.argv[4] if len(sys.argv) > 4 else "orders,products"
target = ["--duckdb", out] if kind == "duckdb" else ["--parquet", out]
args = ["extract", "--streams", streams, *target, "--base-url", url, "--api-key", "sandbox-api-key", "--rate", "0", "-q"]
try:
    main(args, standalone_mode=False)
except SystemExit as exc:  # the command exits with its status
    if exc.code:
        raise
