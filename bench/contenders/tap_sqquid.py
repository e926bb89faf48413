"""tap-sqquid (sqquid-etl's Singer tap) as Meltano runs it, pacing off; its Singer messages
written to a file (a target would read them from the pipe).

    python bench/contenders/tap_sqquid.py URL OUT.jsonl [STREAMS]

STREAMS: comma-separated, default orders,products (with their children), as singer_tap.py.
"""

import json
import sys
import tempfile
from pathlib import Path

from sqquid_etl.singer_cli import main

url, out = sys.argv[1], sys.argv[2]
streams = (sys.argv[3] if len(sys.argv) > 3 else "orders,products").split(",")
config = Path(tempfile.mkdtemp()) / "config.json"
config.write_text(json.dumps({"api_key": "sandbox-api-key", "base_url": url, "rate": 0, "streams": streams}))
with open(out, "w", encoding="utf-8") as sys.stdout:
    try:
        main(["--config", str(config)], standalone_mode=False)
    except SystemExit as exc:  # the command exits with its status
        if exc.code:
            raise
