"""sqquid-etl without a destination: read_tables (fetch, decode, convert) for orders and products
(the client-side work this package owns: HTTP, JSON, pagination, Arrow conversion).

    python bench/contenders/sqquid_fetch_arrow.py URL [STREAM ...]
"""

import os
import sys

os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")  # as the CLI does, before pyarrow loads

from sqquid_etl.client import Credentials, SqquidClient
from sqquid_etl.definitions import load_definitions
from sqquid_etl.read import read_tables

url = sys.argv[1]
streams = sys.argv[2:] or ["orders", "products"]
defs = load_definitions()
rows = {}
with SqquidClient(Credentials(api_key="sandbox-api-key"), url, rate=None) as client:
    for name in streams:
        for _, tables in read_tables(defs[name], client, {None: None}):
            for table, data in tables.items():
                rows[table] = rows.get(table, 0) + data.num_rows
print(rows)
