"""The floor: the same pages fetched with one requests Session and parsed with json.loads, nothing more.

    python bench/contenders/floor.py URL [orders|products|orders,products]
"""

import json
import sys

import requests

url = sys.argv[1]
wanted = (sys.argv[2] if len(sys.argv) > 2 else "orders,products").split(",")
s = requests.Session()
token = s.post(url + "/v1/login", json={"api_key": "sandbox-api-key"}).json()["token"]
s.headers["Authorization"] = f"Bearer {token}"
counts = {}
for path, envelope in (("/v1/orders", "Orders"), ("/v1/products", "Products")):
    if path.rsplit("/", 1)[1] not in wanted:
        continue
    page, n = 1, 0
    while True:
        records = json.loads(s.get(url + path, params={"page": page, "limit": 250}).content)[envelope]
        n += len(records)
        if len(records) < 250:
            break
        page += 1
    counts[envelope] = n
print(counts)
