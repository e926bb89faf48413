"""sqquid-etl: orders (+ order_items) and products (+ product_variants), pacing off.

    python bench/contenders/sqquid.py URL OUT {duckdb|parquet}
"""

import sys

from sqquid_etl.pipeline import extract

url, out, kind = sys.argv[1], sys.argv[2], sys.argv[3]
target = {"duckdb": out} if kind == "duckdb" else {"parquet": out}
result = extract(["orders", "products"], base_url=url, api_key="sandbox-api-key", rate=None, **target)
assert result.ok, [s.message for s in result.streams]
print({s.stream: s.rows for s in result.streams})
