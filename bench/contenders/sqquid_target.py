"""sqquid-etl's `extract` command (in this process), pacing off, into any destination given as
its options.

    python bench/contenders/sqquid_target.py URL STREAMS -- --parquet s3://bucket/lake
"""

import sys

from sqquid_etl.cli import main  # first: the CLI chooses Arrow's allocator before pyarrow loads

url, streams = sys.argv[1], sys.argv[2]
target = sys.argv[sys.argv.index("--") + 1:]
args = ["extract", "--streams", streams, *target, "--base-url", url, "--api-key", "sandbox-api-key", "--rate", "0", "-q"]
try:
    main(args, standalone_mode=False)
except SystemExit as exc:  # the command exits with its status
    if exc.code:
        raise
