"""A Singer pipeline into DuckDB: the singer-sdk tap (singer_tap.py) piped into target-duckdb.

    python bench/contenders/singer_to_duckdb.py URL OUT.duckdb TARGET_DUCKDB_EXECUTABLE

target-duckdb (jwills, PyPI) lives in its own venv: `bench/requirements-target.txt`. The two
processes run at the same time, so the pipeline's peak RSS is the sum of their peaks; this
prints it (and their CPU) as a JSON line that bench/overhead.py reads.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

url, out, target = sys.argv[1], sys.argv[2], sys.argv[3]
with tempfile.TemporaryDirectory() as tmp:
    config = Path(tmp) / "config.json"
    config.write_text(json.dumps({"path": out, "default_target_schema": "main"}))
    tap = subprocess.Popen([sys.executable, str(Path(__file__).with_name("singer_tap.py")), url, "-"],
                           stdout=subprocess.PIPE)
    sink = subprocess.Popen([target, "--config", str(config)], stdin=tap.stdout, stdout=subprocess.DEVNULL)
    tap.stdout.close()  # the target holds the pipe's read end
    usage = {}
    for name, proc in (("tap", tap), ("target", sink)):
        _, status, rusage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status):
            sys.exit(f"{name} failed")
        usage[name] = (rusage.ru_utime + rusage.ru_stime, rusage.ru_maxrss / 1024)
print(json.dumps({"cpu_sum": round(sum(c for c, _ in usage.values()), 2),
                  "peak_rss_mb_sum": round(sum(r for _, r in usage.values()), 1),
                  "parts": {k: {"cpu": round(c, 2), "peak_rss_mb": round(r, 1)} for k, (c, r) in usage.items()}}))
