"""A drifted page is converted without importing pyarrow.compute (issue #12 item 8): its
coercions (timestamps in other forms, values coerced counted for child rows) call Arrow's compute
functions by name (`arrow_compute.py`), as a clean page does; importing pyarrow.compute's ~600
wrappers cost a drifted run ~0.04 s of CPU that a clean run does not pay."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = """
import json, sys
from sqquid_etl.no_pandas import refuse_pandas
refuse_pandas()  # as `sqquid-etl extract` does while it runs
from sqquid_etl.decode import PageDecoder
from sqquid_etl.definitions import load_definitions
from sqquid_etl.records import page_tables

stream = load_definitions()["orders"]
decoder = PageDecoder(stream)

def order(n, **fields):
    items = [{"id": n * 10 + i, "qty": 1, "sku": "S", "price": 2.5 if i else "2.00", "store_id": "4" if i else 4,
              "tags": ["a"]} for i in range(2)]
    return {"id": str(n) if n % 2 else n, "created_at": "2024-01-01 00:00:00" if n % 3 else "2024-01-01T00:00:00.000Z",
            "updated_at": "2024-01-01T00:00:00+00:00", "total": 1.5 if n % 2 else "1.50", "order_items": items,
            "rank": n, "meta": {"n": n}, **fields}

coerced = 0
for page in range(4):
    body = json.dumps({"Orders": [order(page * 10 + n) for n in range(10)]}).encode()
    tables = page_tables(stream, decoder.decode(body))
    coerced += tables.coerced
    assert tables.rejected == [] and {e.field for e in tables.extras} >= {"rank", "meta", "tags"}
print("coerced:", coerced, "read by Arrow:", decoder.decode(body).read_by_arrow,
      "pyarrow.compute loaded:", "pyarrow.compute" in sys.modules)
"""


def test_a_drifted_page_is_converted_without_importing_pyarrow_compute():
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    coerced = int(done.stdout.split("coerced:")[1].split()[0])
    assert coerced > 40  # ids as text, prices as numbers, timestamps in other forms: the coercions ran
    assert "read by Arrow: True" in done.stdout
    assert "pyarrow.compute loaded: False" in done.stdout
