"""Listing by key: batches of keys whose request URL stays under the definition's limit."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from sqquid_etl.definitions import KeysFrom
from sqquid_etl.keys import batch_keys, quoted_length


def test_quoted_length_is_that_of_the_quoted_key():
    for value in ["abc", "a b", "645513-007 X", "é~x", "%/?&=+#", "佐藤", "", "A_b.c~d-e"]:
        assert quoted_length(value) == len(quote(value, safe="")), value


def test_batches_stay_under_the_url_limit():
    spec = KeysFrom(param="skus", sources=(("products", "sku"),), max_url_length=300)
    base, path = "http://127.0.0.1:8765", "/v1/inventory"
    values = [f"SKU {i} é" for i in range(200)] + ["has,comma", "x" * 400, "SKU 1 é"]
    keys = batch_keys(spec, path, values, base)
    assert set(keys.unlistable) == {"has,comma", "x" * 400}
    assert sorted(k for batch in keys.batches for k in batch.split(",")) == sorted(set(values) - set(keys.unlistable))
    for batch in keys.batches:
        url = f"{base}{path}?{urlencode({spec.param: batch, 'offset': 10000, 'limit': 250})}"
        assert len(url) <= spec.max_url_length
