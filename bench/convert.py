"""A/B of the per-page work in one process (robust to other load on the machine), body bytes
-> Arrow tables, three ways: json.loads + the record-by-record path, json.loads + one struct
conversion of the dicts (`PageDecoder.from_records`), and Arrow's JSON reader straight from the
body (`PageDecoder.decode`, what an extract does); each page then converted by `page_tables`.

    python bench/convert.py --orders 20000 --products 10000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import API_KEY, machine, sandbox_process  # noqa: E402

from sqquid_etl import records as R  # noqa: E402
from sqquid_etl.decode import PageDecoder  # noqa: E402
from sqquid_etl.definitions import load_definitions  # noqa: E402


def best(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=20000)
    ap.add_argument("--products", type=int, default=10000)
    a = ap.parse_args()
    defs = load_definitions()
    print(f"machine: {machine()}")
    with sandbox_process(orders=a.orders, products=a.products, rate=0) as (url, _):
        s = requests.Session()
        s.headers["Authorization"] = "Bearer " + s.post(url + "/v1/login", json={"api_key": API_KEY}).json()["token"]
        bodies = {}
        for name, path, env in (("orders", "/v1/orders", "Orders"), ("products", "/v1/products", "Products")):
            pages, page = [], 1
            while True:
                content = s.get(url + path, params={"page": page, "limit": 250}).content
                pages.append(content)
                if len(json.loads(content)[env]) < 250:
                    break
                page += 1
            bodies[name] = (pages, env)
    for name, (pages, env) in bodies.items():
        stream = defs[name]
        parsed = [json.loads(c)[env] for c in pages]
        n = sum(len(p) for p in parsed)
        t_json = best(lambda: [json.loads(c) and None for c in pages])  # not held: no GC of a growing list
        t_slow = best(lambda: [R._slow_page(stream, json.loads(c)[env], None) for c in pages], 3)
        dicts = PageDecoder(stream)
        t_dicts = best(lambda: [R.page_tables(stream, dicts.from_records(json.loads(c)[env])) for c in pages], 3)
        arrow = PageDecoder(stream)
        decoded = [arrow.decode(c) for c in pages]  # learns the plan (numbers in text fields) on the first page
        assert all(d.read_by_arrow for d in decoded[1:])
        t_arrow = best(lambda: [R.page_tables(stream, arrow.decode(c)) for c in pages], 3)
        print(f"{name}: {len(pages)} pages, {n} records, {sum(map(len, pages)) / 2**20:.0f} MiB JSON")
        print(f"  json.loads alone {t_json:.2f} s")
        print(f"  body -> Arrow: json.loads + record-by-record {t_slow:.2f} s   json.loads + struct conversion "
              f"{t_dicts:.2f} s   Arrow JSON reader {t_arrow:.2f} s   ({t_dicts / t_arrow:.1f}x)")


if __name__ == "__main__":
    main()
