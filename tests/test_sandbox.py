"""The sandbox over real HTTP (requests against a Sandbox on a free loopback port)."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
import requests

from sqquid_etl.sandbox import FaultConfig, Sandbox, SandboxConfig

API_KEY = "sandbox-api-key"


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def small(**kw) -> SandboxConfig:
    base = dict(seed=3, orders=700, products=150, rate=None)
    base.update(kw)
    return SandboxConfig(**base)


def session(sb: Sandbox) -> requests.Session:
    s = requests.Session()
    r = s.post(sb.url + "/v1/login", json={"api_key": API_KEY})
    assert r.status_code == 200
    s.headers["Authorization"] = "Bearer " + r.json()["token"]
    return s


@pytest.fixture(scope="module")
def shared():
    with Sandbox(small()) as sb:
        yield sb, session(sb)


@pytest.fixture
def fresh():
    with Sandbox(small()) as sb:
        yield sb, session(sb)


def all_pages(s, url, limit=250, **params):
    out, page = [], 1
    while True:
        r = s.get(url, params={**params, "page": page, "limit": limit})
        assert r.status_code == 200, r.text
        batch = next(iter(r.json().values()))
        out.extend(batch)
        if len(batch) < limit:
            return out
        page += 1


# ---- authentication --------------------------------------------------------------------------
def test_login_both_ways_and_bad_credentials(shared):
    sb, _ = shared
    r = requests.post(sb.url + "/v1/login", json={"username": "demo@sqquid.test", "password": "sandbox-password"})
    assert r.status_code == 200 and len(r.json()["token"]) > 20
    r = requests.post(sb.url + "/v1/login", json={"api_key": "nope"})
    assert r.status_code == 401 and r.json()["code"] == "NotAuthenticated"
    r = requests.post(sb.url + "/v1/login", json={"username": "demo@sqquid.test", "password": "bad"})
    assert r.status_code == 401
    r = requests.post(sb.url + "/v1/login", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "BadRequest"
    assert requests.post(sb.url + "/v1/login", json={"password": "x"}).status_code == 400


def test_401_without_or_with_bogus_token(shared):
    sb, _ = shared
    for headers in ({}, {"Authorization": "Bearer bogus"}, {"Authorization": "Basic abc"}):
        r = requests.get(sb.url + "/v1/orders", headers=headers)
        assert r.status_code == 401
        assert r.json() == {"code": "NotAuthenticated", "message": "The auth token was not provided or is invalid"}


def test_token_expiry_with_fake_clock_and_expire_tokens():
    clock = FakeClock()
    with Sandbox(small(token_ttl=10.0, clock=clock)) as sb:
        s = session(sb)
        assert s.get(sb.url + "/v1/orders/count").status_code == 200
        clock.advance(9.9)
        assert s.get(sb.url + "/v1/orders/count").status_code == 200
        clock.advance(0.2)
        assert s.get(sb.url + "/v1/orders/count").status_code == 401
        s = session(sb)
        assert s.get(sb.url + "/v1/orders/count").status_code == 200
        sb.expire_tokens()
        assert s.get(sb.url + "/v1/orders/count").status_code == 401
        s = session(sb)
        assert requests.post(sb.url + "/_sandbox/expire-tokens").json()["expired"] >= 1
        assert s.get(sb.url + "/v1/orders/count").status_code == 401


# ---- throttling -------------------------------------------------------------------------------
def test_leaky_bucket_burst_then_one_429_then_allowed_after_leak():
    clock = FakeClock()
    with Sandbox(small(rate=2.0, burst=5, clock=clock)) as sb:
        s = session(sb)
        codes = [s.get(sb.url + "/v1/orders/count") for _ in range(6)]
        assert [r.status_code for r in codes] == [200] * 5 + [429]
        assert codes[-1].headers["Retry-After"] == "1"
        assert float(codes[-1].headers["X-Retry-After-Seconds"]) == pytest.approx(0.5)
        assert codes[-1].json()["code"] == "TooManyRequests"
        # a rejected request did not fill the bucket: half a second frees exactly one slot
        clock.advance(0.5)
        assert s.get(sb.url + "/v1/orders/count").status_code == 200
        assert s.get(sb.url + "/v1/orders/count").status_code == 429
        assert sb.stats.throttled == 2
        # login is never throttled, and a new token has its own bucket
        s2 = session(sb)
        assert s2.get(sb.url + "/v1/orders/count").status_code == 200


# ---- v1 lists ---------------------------------------------------------------------------------
def test_orders_paging_returns_each_order_once_and_caps_limit(shared):
    sb, s = shared
    orders = all_pages(s, sb.url + "/v1/orders")
    ids = [o["id"] for o in orders]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == len(sb.store.orders)
    assert orders == sb.store.orders
    r = s.get(sb.url + "/v1/orders", params={"limit": 1000})
    assert len(r.json()["Orders"]) == 250
    assert len(s.get(sb.url + "/v1/orders").json()["Orders"]) == 50
    assert s.get(sb.url + "/v1/orders", params={"page": 99}).json() == {"Orders": []}
    assert s.get(sb.url + "/v1/orders", params={"limit": "x"}).status_code == 400
    assert s.get(sb.url + "/v1/orders/count").json() == {"Orders": len(sb.store.orders)}


def test_created_at_min_is_inclusive_and_counts_match_lists(shared):
    sb, s = shared
    store = sb.store
    stamp = store.orders[len(store.orders) // 2]["created_at"]
    expected = [o["id"] for o in store.orders if o["created_at"] >= stamp]
    for value in (stamp, stamp.replace(".000Z", "+00:00"), "2025-06-01T00:00:00-04:00"):
        listed = all_pages(s, sb.url + "/v1/orders", created_at_min=value)
        count = s.get(sb.url + "/v1/orders/count", params={"created_at_min": value}).json()["Orders"]
        assert count == len(listed)
    listed = all_pages(s, sb.url + "/v1/orders", created_at_min=stamp)
    assert [o["id"] for o in listed] == expected
    assert any(o["created_at"] == stamp for o in listed)
    # products by updated_at_min; shipment items by scope and an inclusive max
    p_stamp = sorted(p["updated_at"] for p in store.products)[100]
    products = all_pages(s, sb.url + "/v1/products", updated_at_min=p_stamp)
    assert len(products) == s.get(sb.url + "/v1/products/count", params={"updated_at_min": p_stamp}).json()["Products"]
    assert len(products) == sum(p["updated_at"] >= p_stamp for p in store.products)
    for scope in ("toship", "shipped", "cancelled", "flagged"):
        items = all_pages(s, sb.url + "/v1/shipmentitems", scope=scope, created_at_max=stamp)
        n = s.get(sb.url + "/v1/shipmentitems/count", params={"scope": scope, "created_at_max": stamp}).json()
        assert n == {"shipmentitems": len(items)}
        assert len(items) == sum(1 for i in store.shipment_items
                                 if store.shipment_item_scope[i["id"]] == scope and i["created_at"] <= stamp)
    assert s.get(sb.url + "/v1/shipmentitems", params={"scope": "lost"}).status_code == 400
    shipments = all_pages(s, sb.url + "/v1/shipments", catalog_integration_id=98)
    assert shipments and all(x["catalog_integration_id"] == 98 for x in shipments)
    assert s.get(sb.url + "/v1/orders", params={"created_at_min": "yesterday"}).status_code == 400


# ---- offset/limit envelopes -------------------------------------------------------------------
@pytest.mark.parametrize("path,maximum,total_of", [
    ("/v2/products", 200, lambda st: len(st.products)),
    ("/v1/buffers", 200, lambda st: len(st.buffers)),
    ("/v1/locations", 200, lambda st: len(st.locations)),
])
def test_offset_limit_envelopes(shared, path, maximum, total_of):
    sb, s = shared
    body = s.get(sb.url + path).json()
    assert set(body) == {"total", "limit", "offset", "results"}
    assert body["limit"] == 20 and body["offset"] == 0 and body["total"] == total_of(sb.store)
    body = s.get(sb.url + path, params={"limit": 5000, "offset": 3}).json()
    assert body["limit"] == maximum and body["offset"] == 3
    assert len(body["results"]) == min(maximum, body["total"] - 3)


def test_v2_products_filters_sort_and_variants(shared):
    sb, s = shared
    seen = []
    offset = 0
    while True:
        body = s.get(sb.url + "/v2/products", params={"offset": offset, "limit": 200, "sort": "sku",
                                                        "sort_direction": "desc", "variants": "true"}).json()
        seen.extend(body["results"])
        offset += 200
        if offset >= body["total"]:
            break
    assert [p["sku"] for p in seen] == sorted((p["sku"] for p in sb.store.products), reverse=True)
    assert all("variants" in p for p in seen)
    assert "variants" not in s.get(sb.url + "/v2/products").json()["results"][0]
    brand = seen[0]["brand"]
    body = s.get(sb.url + "/v2/products", params={"brand": brand, "limit": 200}).json()
    assert body["total"] == sum(p["brand"] == brand for p in seen) and all(p["brand"] == brand for p in body["results"])
    assert s.get(sb.url + "/v2/products", params={"sort": "price"}).status_code == 400


def test_inventory_list_requires_skus_and_groups_per_sku(shared):
    sb, s = shared
    assert s.get(sb.url + "/v1/inventory").status_code == 400
    skus = list(dict.fromkeys(sku for sku, _, _ in sb.store.inventory))[:30]
    body = s.get(sb.url + "/v1/inventory", params={"skus": ",".join(skus), "limit": 25}).json()
    assert body["total"] == 30 and body["limit"] == 25 and len(body["results"]) == 25
    first = body["results"][0]
    assert first["sku"] == skus[0]
    assert len(first["inventory"]) == len(sb.store.inventory_of(skus[0]))
    body = s.get(sb.url + "/v1/inventory", params={"skus": ",".join(skus), "bin": "front", "limit": 5000}).json()
    assert body["limit"] == 1000
    assert all(rec["bin"] == "front" for r in body["results"] for rec in r["inventory"])


# ---- inventory writes -------------------------------------------------------------------------
def test_inventory_partial_changes_only_listed_keys(fresh):
    sb, s = fresh
    before = {k: dict(v) for k, v in sb.store.inventory.items()}
    (sku, loc, bin_), rec = next(iter(sb.store.inventory.items()))
    body = [{"sku": sku, "inventory": [{"location_external_id": loc, "bin": bin_, "qty_on_hand": rec["qty_on_hand"] + 7}]},
            {"sku": "BRAND NEW/1", "inventory": [{"qty_on_hand": 3}]}]
    r = s.patch(sb.url + "/v1/inventory/partial", json=body)
    assert r.status_code == 200 and r.json() == "OK"
    after = sb.store.inventory
    assert after[(sku, loc, bin_)]["qty_on_hand"] == before[(sku, loc, bin_)]["qty_on_hand"] + 7
    assert after[("BRAND NEW/1", "default", "default")]["qty_on_hand"] == 3
    changed = [k for k in before if after[k] != before[k]]
    assert changed == [(sku, loc, bin_)]
    got = s.get(sb.url + "/v1/inventory/" + quote("BRAND NEW/1", safe="")).json()
    assert got == [{"id": after[("BRAND NEW/1", "default", "default")]["id"], "qty_on_hand": 3,
                    "location_external_id": "default", "bin": "default"}]


def test_inventory_full_zeroes_unlisted_skus_and_keeps_other_records_of_listed_ones(fresh):
    sb, s = fresh
    keys = list(sb.store.inventory)
    before = {k: v["qty_on_hand"] for k, v in sb.store.inventory.items()}
    (sku, loc, bin_) = keys[0]
    r = s.patch(sb.url + "/v1/inventory/full",
                json=[{"sku": sku, "inventory": [{"location_external_id": loc, "bin": bin_, "qty_on_hand": 42}]}])
    assert r.status_code == 200 and r.json() == "OK"
    assert sb.store.inventory[(sku, loc, bin_)]["qty_on_hand"] == 42
    # the reference's sentence: records of skus not in the call are zeroed; a listed sku keeps its others
    assert all(v["qty_on_hand"] == (before[k] if k[0] == sku else 0)
               for k, v in sb.store.inventory.items() if k != (sku, loc, bin_))
    assert set(sb.store.inventory) == set(keys)  # kept, not deleted


def test_inventory_accepts_negative_quantities(fresh):
    sb, s = fresh
    (sku, loc, bin_) = next(iter(sb.store.inventory))
    body = [{"sku": sku, "inventory": [{"location_external_id": loc, "bin": bin_, "qty_on_hand": -5}]}]
    assert s.patch(sb.url + "/v1/inventory/partial", json=body).status_code == 200
    assert sb.store.inventory[(sku, loc, bin_)]["qty_on_hand"] == -5  # oversold, not deleted
    listed = s.get(sb.url + "/v1/inventory", params={"skus": sku}).json()["results"][0]["inventory"]
    assert {"location_external_id": loc, "bin": bin_, "qty_on_hand": -5}.items() <= next(
        r for r in listed if r["location_external_id"] == loc and r["bin"] == bin_).items()
    too_low = [{"sku": sku, "inventory": [{"qty_on_hand": -(2**31)}]}]
    assert s.patch(sb.url + "/v1/inventory/partial", json=too_low).status_code == 400


@pytest.mark.parametrize("body", [
    {"sku": "x"},
    [{"sku": "A", "inventory": [{"qty_on_hand": 1}]}, {"sku": "B", "inventory": [{"qty_on_hand": True}]}],
    [{"sku": "A", "inventory": [{"qty_on_hand": 2**31}]}],
    [{"sku": "A", "inventory": [{"qty_on_hand": "3"}]}],
    [{"sku": "A", "inventory": [{"qty_on_hand": 1.5}]}],
    [{"sku": "A"}],
    [{"inventory": [{"qty_on_hand": 1}]}],
    [{"sku": "A", "inventory": [{"qty_on_hand": 1, "bin": 7}]}],
])
def test_invalid_inventory_body_is_400_and_changes_nothing(fresh, body):
    sb, s = fresh
    before = {k: dict(v) for k, v in sb.store.inventory.items()}
    for path in ("/v1/inventory/partial", "/v1/inventory/full"):
        r = s.patch(sb.url + path, json=body)
        assert r.status_code == 400 and r.json()["code"] == "BadRequest"
    assert {k: dict(v) for k, v in sb.store.inventory.items()} == before


def test_inventory_sku_endpoints_with_slash_and_space(fresh):
    sb, s = fresh
    sku = next(sku for sku, _, _ in sb.store.inventory if "/" in sku and " " in sku)
    url = sb.url + "/v1/inventory/" + quote(sku, safe="")
    recs = s.get(url).json()
    assert recs and len(recs) == len(sb.store.inventory_of(sku))
    r = s.patch(url, json={"qty_on_hand": "9", "location_external_id": "50", "bin": "aisle-5"})
    assert r.status_code == 200 and r.json()["qty_on_hand"] == 9
    assert sb.store.inventory[(sku, "50", "aisle-5")]["qty_on_hand"] == 9
    assert s.delete(url + "/" + str(r.json()["id"])).status_code == 200
    assert (sku, "50", "aisle-5") not in sb.store.inventory
    assert s.delete(url + "/999999999").status_code == 404
    assert s.delete(url).json() == "OK" and s.get(url).json() == []


# ---- other endpoints --------------------------------------------------------------------------
def test_v2_product_and_variant_lifecycle_with_encoded_sku(fresh):
    sb, s = fresh
    parent = next(p for p in sb.store.products if "/" in p["sku"] and p["Child_Products"])
    url = sb.url + "/v2/products/" + quote(parent["sku"], safe="")
    r = s.patch(url, json={"price": 12.5, "brand": "Zeta", "data": {"weight": 2, "color_code": "R"}})
    assert r.status_code == 200, r.text
    assert r.json()["price"] == 12.5 and r.json()["brand"] == "Zeta" and r.json()["data"]["color_code"] == "R"
    parent = sb.store.product_by_sku(parent["sku"])
    assert parent["price"] == "12.5000" and parent["weight"] == "2.0000"
    variants = s.get(url + "/variants").json()
    assert [v["sku"] for v in variants] == [c["sku"] for c in parent["Child_Products"]]
    r = s.post(url + "/variants", json={"sku": "V NEW/1", "price": 3, "attributes": {"size": "XXL"}})
    assert r.status_code == 200 and r.json()["attributes"]["size"] == "XXL"
    vurl = url + "/variants/" + quote("V NEW/1", safe="")
    assert s.patch(vurl, json={"name": "Renamed"}).json()["name"] == "Renamed"
    assert s.delete(vurl).json() == "OK"
    assert s.delete(vurl).status_code == 404
    r = s.post(sb.url + "/v2/products", json={"sku": "NEW-P", "price": 9.99, "name": "Thé"})
    assert r.status_code == 200 and sb.store.product_by_sku("NEW-P")["price"] == "9.9900"
    assert s.post(sb.url + "/v2/products", json={"price": 1}).status_code == 400
    assert s.delete(sb.url + "/v2/products/NEW-P").json() == "OK"
    assert s.patch(sb.url + "/v2/products/NEW-P", json={}).status_code == 404


def test_buffers_locations_returns_shipments(fresh):
    sb, s = fresh
    r = s.post(sb.url + "/v1/buffers", json={"sku": "00933321", "channel_id": 3, "qty": 10})
    bid = r.json()["id"]
    assert s.patch(sb.url + f"/v1/buffers/{bid}/add", json={"qty": -4}).json()["qty"] == 6
    assert s.patch(sb.url + f"/v1/buffers/{bid}", json={"qty": 2}).json()["qty"] == 2
    assert s.post(sb.url + "/v1/buffers", json={"channel_id": 99, "qty": 1}).status_code == 403
    assert s.patch(sb.url + "/v1/buffers/abc", json={"qty": 1}).status_code == 400
    assert s.delete(sb.url + f"/v1/buffers/{bid}").json() == "OK"
    assert s.delete(sb.url + f"/v1/buffers/{bid}").status_code == 404
    loc = s.post(sb.url + "/v1/locations", json={"store_id": "S9", "type_id": 0, "zip": "90210"}).json()
    assert loc["type_id"] == 0 and loc["enabled"] is True
    assert s.post(sb.url + "/v1/locations", json={"store_id": "S9"}).status_code == 400
    assert s.post(sb.url + "/v1/locations", json={"store_id": "S10", "type_id": 0, "zip": "x"}).status_code == 400
    assert s.patch(sb.url + f"/v1/locations/{loc['id']}", json={"enabled": False}).json()["enabled"] is False
    assert s.delete(sb.url + f"/v1/locations/{loc['id']}").json() == "OK"
    order = sb.store.orders[0]
    item = order["order_items"][0]
    before = s.get(sb.url + f"/v2/orders/{order['id']}/returns").json()
    assert isinstance(before, list)
    r = s.post(sb.url + f"/v2/orders/{order['id']}/returns",
               json={"adjustment": -2.34, "items": [{"sku": item["sku"], "store_id_return": "50", "qty": 1}]})
    assert r.status_code == 200 and r.json()["adjustment"] == "-2.34"
    assert len(s.get(sb.url + f"/v2/orders/{order['id']}/returns").json()) == len(before) + 1
    unshipped = next(o for o in sb.store.orders if not sb.store.shipments_of(o["id"]))
    n = s.get(sb.url + "/v1/shipments/count").json()["Shipments"]
    assert s.post(sb.url + f"/v1/order/{unshipped['id']}/shipments", json={"tracking_number": "T1"}).json() == {"message": "success"}
    again = s.post(sb.url + f"/v1/order/{unshipped['id']}/shipments", json={})
    assert again.status_code == 400 and "fully shipped" in again.json()["message"]
    assert s.get(sb.url + "/v1/shipments/count").json()["Shipments"] == n + 1
    toship = next(i for i, sc in sb.store.shipment_item_scope.items() if sc == "toship")
    assert s.patch(sb.url + f"/v1/shipmentitems/{toship}/cancel").json() == "OK"
    assert sb.store.shipment_item_scope[toship] == "cancelled"


def test_unknown_path_404_and_wrong_method_405(shared):
    sb, s = shared
    r = s.get(sb.url + "/v1/nothing")
    assert r.status_code == 404 and r.json()["code"] == "NotFound"
    r = s.delete(sb.url + "/v1/orders")
    assert r.status_code == 405 and set(r.json()) == {"code", "message"}


# ---- faults -----------------------------------------------------------------------------------
def test_each_fault_kind(fresh):
    sb, s = fresh
    url = sb.url + "/v1/orders/count"
    sb.set_faults(FaultConfig(error_every=2, error_status=503))
    assert s.get(url).status_code == 200
    r = s.get(url)
    assert r.status_code == 503 and r.json()["code"] == "ServiceUnavailable"
    sb.set_faults(FaultConfig(drop_every=1))
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        s.get(sb.url + "/v1/orders", params={"limit": 100})
    sb.set_faults(FaultConfig(truncate_every=1))
    r = s.get(sb.url + "/v1/orders", params={"limit": 100})
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)
    sb.set_faults(FaultConfig(storm_429=2, storm_retry_after=0))
    codes = [s.get(url) for _ in range(3)]
    assert [r.status_code for r in codes] == [429, 429, 200] and codes[0].headers["Retry-After"] == "0"
    assert sb.stats.faults_injected == 5
    assert sb.stats.faults_by_kind == {"error": 1, "drop": 1, "truncate": 1, "storm_429": 2}
    # login is never faulted; the admin endpoint switches faults off
    sb.set_faults(FaultConfig(error_every=1))
    assert requests.post(sb.url + "/v1/login", json={"api_key": API_KEY}).status_code == 200
    assert requests.post(sb.url + "/_sandbox/faults", json={"unknown": 1}).status_code == 400
    assert requests.post(sb.url + "/_sandbox/faults", json={}).status_code == 200
    assert s.get(url).status_code == 200


def test_mutate_every_inserts_while_paging(fresh):
    sb, s = fresh
    n0 = len(sb.store.orders)
    sb.set_faults(FaultConfig(mutate_every=1, mutate={"add_orders": 3, "update_products": 2}))
    orders = all_pages(s, sb.url + "/v1/orders")
    assert len(sb.store.orders) > n0
    assert len({o["id"] for o in orders}) == len(orders)
    assert sb.stats.faults_by_kind["mutate"] >= 3
    sb.set_faults(FaultConfig())
    count = s.get(sb.url + "/v1/orders/count").json()["Orders"]
    assert count == len(sb.store.orders) > len(orders) > n0  # the pager saw some inserts, not the last
    inserted = [o for o in orders if o["id"] > n0]
    assert inserted and all(o["created_at"] > "2026-10-31T23:59:59.999Z" for o in inserted)
    bumped = s.get(sb.url + "/v1/products/count", params={"updated_at_min": inserted[0]["created_at"]}).json()
    assert bumped["Products"] >= 2


def test_store_mutations_and_admin_endpoint(fresh):
    sb, s = fresh
    store = sb.store
    now0 = store.now
    late = store.add_orders(2, created_at="2024-03-01T10:00:00-05:00")
    assert all(o["created_at"] == "2024-03-01T15:00:00.000Z" for o in late)
    assert store.now > now0
    changed = store.update_products(3)
    assert all(p["updated_at"] == store.now for p in changed)
    r = s.get(sb.url + "/v1/products/count", params={"updated_at_min": store.now})
    assert r.json()["Products"] == 3
    r = requests.post(sb.url + "/_sandbox/mutate", json={"add_shipments": 2, "add_products": 1, "add_shipment_items": 4})
    assert r.status_code == 200 and r.json()["products"] == 151
    assert requests.post(sb.url + "/_sandbox/mutate", json={"drop_db": 1}).status_code == 400
    stats = requests.get(sb.url + "/_sandbox/stats").json()
    assert stats["logins"] == 1 and stats["by_route"]["GET /v1/products/count"] == 1


def test_same_seed_same_bytes_other_seed_differs():
    pages = []
    for seed in (7, 7, 8):
        with Sandbox(small(seed=seed)) as sb:
            s = session(sb)
            pages.append(b"".join(s.get(sb.url + path).content for path in (
                "/v1/orders?limit=250&page=2", "/v1/products?limit=50", "/v1/shipmentitems?scope=flagged",
                "/v2/products?variants=true&limit=30")))
    assert pages[0] == pages[1]
    assert pages[0] != pages[2]


def test_generated_records_are_made_again_identically_and_serve_canonical_json():
    from sqquid_etl.sandbox.data import Store, dumps

    one, two = Store(seed=5, orders=300, products=80), Store(seed=5, orders=300, products=80)
    for a, b in ((one.book.orders, two.book.orders), (one.catalog.table, two.catalog.table)):
        for key in a.keys():
            data = a.json_bytes(key)
            assert data == b.json_bytes(key)  # a pure function of (seed, key)
            assert dumps(json.loads(data)) == data  # the text templates emit what the encoder would
    assert list(one.shipment_items) == list(two.shipment_items)
    empty = Store(seed=1, orders=0, products=0)
    assert len(empty.orders) == len(empty.products) == 0 and len(empty.buffers) == 50


# ---- the drift profile (--drift) ------------------------------------------------------------
from datetime import datetime, timezone  # noqa: E402
from decimal import Decimal  # noqa: E402

from sqquid_etl.sandbox import DriftProfile, Store  # noqa: E402
from sqquid_etl.sandbox.drift import CHILDREN, MONEY, NULLABLE, TIMES  # noqa: E402
from sqquid_etl.sandbox.drift_views import VIEWS, undrifted  # noqa: E402

IS_ID = staticmethod(lambda name: name == "id" or name.endswith("_id"))


def _instant(text: str) -> datetime:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _compare(kind: str, u: dict, c: dict, s: dict, n) -> None:
    """u undrifted, c canonical, s served (one record); counts into ``n``; asserts what never varies."""
    extra = [k for k in s if k not in u]
    assert list(c) == list(s) and len(extra) == 2, (kind, extra)
    assert not isinstance(s[extra[0]], (dict, list)) and isinstance(s[extra[1]], (dict, list))
    n["records"] += 1
    for name, uv in u.items():
        cv, sv = c[name], s[name]
        if name in CHILDREN and isinstance(uv, list):
            assert len(uv) == len(cv) == len(sv)
            for a, b, d in zip(uv, cv, sv):
                _compare(f"{kind}.{name}", a, b, d, n)
            continue
        if name == "tracking_urls":
            assert sv == cv and (cv is None or isinstance(cv, list))  # an array (or nulled by the drift)
            assert cv in ([], None) or c.get("tracking_number")
            continue
        if name in NULLABLE.get(kind, ()) and uv is not None:
            n["nullable"] += 1
            n["nulled"] += cv is None
            if cv is None:
                assert sv is None
                continue
        assert cv == uv, (kind, name)  # canonical: the undrifted value, unless the drift nulled it
        if type(uv) is int and IS_ID(name):
            n["ids"] += 1
            n["string_ids"] += isinstance(sv, str)
            assert int(sv) == uv and type(sv) in (int, str)
        elif name in MONEY and isinstance(uv, str):
            n["money"] += 1
            n["numbers"] += not isinstance(sv, str)
            assert Decimal(str(sv)) == Decimal(uv) and type(sv) in (str, int, float)
        elif name in TIMES and isinstance(uv, str):
            n["times"] += 1
            n["other_times"] += sv != uv
            assert _instant(sv) == _instant(uv)
        else:
            assert sv == uv, (kind, name, sv, uv)


@pytest.fixture(scope="module")
def drifting():
    return Store(seed=11, orders=3000, products=600, drift=DriftProfile())


def test_drift_mix_rates_within_tolerance_and_lossless(drifting):
    from collections import Counter

    n = Counter()
    for view in VIEWS:
        pairs = list(undrifted(drifting, view))
        for (_, u), c, s in zip(pairs, drifting.canonical(view), drifting.served(view), strict=True):
            _compare(view, u, c, s, n)
    assert n["records"] > 30_000 and n["ids"] > 30_000 and n["money"] > 30_000 and n["times"] > 10_000, n
    assert abs(n["string_ids"] / n["ids"] - 0.05) < 0.01, n
    assert abs(n["numbers"] / n["money"] - 0.30) < 0.02, n
    assert abs(n["nulled"] / n["nullable"] - 0.10) < 0.015, n
    assert abs(n["other_times"] / n["times"] - 0.10) < 0.015, n
    tracked = [s for s in drifting.served("shipments") if s["tracking_number"] and s["tracking_urls"] is not None]
    assert len(tracked) > 500 and all(s["tracking_urls"][0].endswith(s["tracking_number"]) for s in tracked)
    assert drifting.lossy("orders") == {}  # lossy is off by default


def test_drift_profile_knobs_and_buffers_text_ids():
    quiet = Store(seed=11, orders=200, products=50, drift=DriftProfile(
        extra_fields=False, string_ids=0, number_prices=0, nulls=0, tracking_urls=False, dates=0))
    for view in VIEWS:
        assert quiet.served(view) == [rec for _, rec in undrifted(quiet, view)]
    loud = Store(seed=11, orders=10, products=5, drift=DriftProfile(string_ids=1.0))
    sent = [b["location_external_id"] for b in loud.served("buffers") if "location_external_id" in b]
    assert any(isinstance(v, int) for v in sent)  # "50" as the reference shows it: 50
    assert all(isinstance(v, int) or not v.isdigit() for v in sent)
    with pytest.raises(ValueError):
        DriftProfile(nulls=1.5)


def test_drift_lossy_knob_marks_records_that_cannot_be_stored():
    store = Store(seed=11, orders=2000, products=100, drift=DriftProfile(lossy=0.2))
    marked = store.lossy("orders")
    assert 0.16 < len(marked) / 2000 < 0.24
    served = {o["id"] if isinstance(o["id"], int) else int(o["id"]): o for o in store.served("orders")}
    for oid, path in marked.items():
        value = served[oid]
        for part in path.split("."):
            value = value[int(part)] if part.isdigit() else value[part]
        assert value in (1.5, "abc", "N/A", "not a date"), (oid, path, value)
    clean = [o for i, o in served.items() if i not in marked]
    assert all(isinstance(o["total"], (int, float)) or Decimal(o["total"]) >= 0 for o in clean)


def test_drift_same_seed_same_bytes_cached_or_not():
    paths = ("/v1/orders?limit=250&page=2", "/v1/products?limit=100", "/v1/shipments?limit=100",
             "/v1/shipmentitems?scope=shipped&limit=100", "/v2/products?variants=true&limit=30",
             "/v1/buffers", "/v1/locations", "/v1/inventory?skus=645507-001-XS,645507-001-S")
    bodies = []
    for seed, cache_mb in ((7, 256), (7, 0), (8, 256)):
        with Sandbox(small(seed=seed, drift=True, cache_mb=cache_mb)) as sb:
            s = session(sb)
            first = [s.get(sb.url + p).content for p in paths]
            assert first == [s.get(sb.url + p).content for p in paths]  # served again: the same bytes
            bodies.append(b"".join(first))
    assert bodies[0] == bodies[1] and bodies[0] != bodies[2]
    assert b'"tracking_urls":["' in bodies[0]


def _ids(records) -> list[int]:
    return [int(r["id"]) for r in records]


def test_drift_filters_and_counts_equal_with_and_without_drift():
    cases = [("/v1/orders", {"created_at_min": "2025-06-01T00:00:00Z"}), ("/v1/orders", {"ids": "3,5,700,9"}),
             ("/v1/products", {"updated_at_min": "2026-01-01T00:00:00+02:00"}),
             ("/v1/shipments", {"order_ids": "1,2,3,4,5,6"}), ("/v1/shipments", {"catalog_integration_id": 100}),
             ("/v1/shipmentitems", {"scope": "cancelled", "created_at_min": "2025-01-01T00:00:00Z",
                                    "created_at_max": "2026-01-01T00:00:00Z"})]
    seen = []
    for drift in (None, True):
        with Sandbox(small(drift=drift)) as sb:
            s = session(sb)
            got = []
            for path, params in cases:
                got.append(_ids(all_pages(s, sb.url + path, **params)))
                got.append(s.get(sb.url + path + "/count", params=params).json())
            for path, params in (("/v1/buffers", {"channel_id": 2}), ("/v1/locations", {"enabled": "true"}),
                                 ("/v2/products", {"brand": "Acme", "limit": 200})):
                body = s.get(sb.url + path, params=params).json()
                got.append((body["total"], sorted(r.get("id", r.get("sku")) for r in body["results"])))
            seen.append(got)
    assert seen[0] == seen[1]
    assert all(x for x in seen[0])


def test_undrifted_default_serves_the_reference_shapes(shared):
    sb, _ = shared
    assert SandboxConfig().drift is None and sb.store.drift is None
    for view in VIEWS:
        records = [rec for _, rec in undrifted(sb.store, view)]
        assert sb.store.served(view) == sb.store.canonical(view) == records
    order = sb.store.served("orders")[0]
    assert type(order["id"]) is int and isinstance(order["total"], str) and order["created_at"].endswith(".000Z")
    assert sb.store.served("shipments")[0]["tracking_urls"] is None
