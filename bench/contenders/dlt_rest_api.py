"""dlt's rest_api source for the same endpoints, into DuckDB (nested lists become child tables).

    python bench/contenders/dlt_rest_api.py URL OUT.duckdb PIPELINES_DIR
"""

import sys

import dlt
import requests
from dlt.sources.rest_api import rest_api_source

url, out, pipelines_dir = sys.argv[1], sys.argv[2], sys.argv[3]
token = requests.post(url + "/v1/login", json={"api_key": "sandbox-api-key"}).json()["token"]


def resource(name, path, envelope):
    return {
        "name": name,
        "endpoint": {
            "path": path,
            "data_selector": envelope,
            "params": {"limit": 250},
            "paginator": {"type": "page_number", "page_param": "page", "base_page": 1, "total_path": None},
        },
    }


source = rest_api_source({
    "client": {"base_url": url, "auth": {"type": "bearer", "token": token}},
    "resource_defaults": {"write_disposition": "replace", "primary_key": "id"},
    "resources": [resource("orders", "v1/orders", "Orders"), resource("products", "v1/products", "Products")],
})
pipeline = dlt.pipeline(pipeline_name="sqquid_bench", destination=dlt.destinations.duckdb(out),
                        dataset_name="sqquid", pipelines_dir=pipelines_dir)
info = pipeline.run(source)
print(pipeline.last_trace.last_normalize_info)
