"""sqquid-etl's dlt source (`sqquid_etl.dlt.sqquid_source`) into dlt's DuckDB destination, pacing off.

    python bench/contenders/sqquid_dlt_source.py URL OUT.duckdb PIPELINES_DIR [STREAMS]

STREAMS: comma-separated, default orders,products (with their children), as dlt_rest_api.py.
"""

import sys

import dlt

from sqquid_etl.dlt import sqquid_source

url, out, pipelines_dir = sys.argv[1], sys.argv[2], sys.argv[3]
streams = (sys.argv[4] if len(sys.argv) > 4 else "orders,products").split(",")
pipeline = dlt.pipeline(pipeline_name="sqquid_bench_source", destination=dlt.destinations.duckdb(out),
                        dataset_name="sqquid", pipelines_dir=pipelines_dir)
pipeline.run(sqquid_source(streams, base_url=url, api_key="sandbox-api-key", rate=0))
print(pipeline.last_trace.last_normalize_info)
