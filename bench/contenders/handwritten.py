"""What a user would write by hand: requests + pandas.json_normalize + DuckDB.

    python bench/contenders/handwritten.py URL OUT.duckdb
"""

import sys

import duckdb
import pandas as pd
import requests

url, out = sys.argv[1], sys.argv[2]
s = requests.Session()
token = s.post(url + "/v1/login", json={"api_key": "sandbox-api-key"}).json()["token"]
s.headers["Authorization"] = f"Bearer {token}"


def fetch_all(path, envelope):
    records, page = [], 1
    while True:
        batch = s.get(url + path, params={"page": page, "limit": 250}).json()[envelope]
        records.extend(batch)
        if len(batch) < 250:
            return records
        page += 1


con = duckdb.connect(out)
orders = fetch_all("/v1/orders", "Orders")
orders_df = pd.json_normalize(orders).drop(columns=["order_items"])
items_df = pd.json_normalize(orders, record_path="order_items", meta=[["id"]], meta_prefix="order_")
del orders
con.execute("CREATE TABLE orders AS SELECT * FROM orders_df")
con.execute("CREATE TABLE order_items AS SELECT * FROM items_df")
del orders_df, items_df
products = fetch_all("/v1/products", "Products")
products_df = pd.json_normalize(products).drop(columns=["Child_Products", "Attributes", "Categories"])
variants_df = pd.json_normalize(products, record_path="Child_Products", meta=[["id"]], meta_prefix="parent_")
variants_df = variants_df.drop(columns=["Attributes"])
con.execute("CREATE TABLE products AS SELECT * FROM products_df")
con.execute("CREATE TABLE product_variants AS SELECT * FROM variants_df")
print({t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
       for t in ("orders", "order_items", "products", "product_variants")})
