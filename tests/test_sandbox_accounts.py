"""The sandbox serving many accounts (issue #15, item 4): `SandboxConfig(accounts=N)` and
`sqquid-etl sandbox --accounts N`. Each account has its own key and login, its own data (seeded
per account, sized differently), its own tokens and its own bucket; one account's token never
reads another's data; `POST /_sandbox/changes?account=NAME` changes one account only."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest
import requests

from sqquid_etl.sandbox import Sandbox, SandboxConfig
from sqquid_etl.sandbox.accounts import account_key


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def many(**kw) -> SandboxConfig:
    base = dict(seed=5, orders=400, products=80, rate=None, accounts=3)
    base.update(kw)
    return SandboxConfig(**base)


def login(sb: Sandbox, **credentials) -> requests.Session:
    s = requests.Session()
    r = s.post(sb.url + "/v1/login", json=credentials)
    assert r.status_code == 200, r.text
    s.headers["Authorization"] = "Bearer " + r.json()["token"]
    return s


def every_order(s: requests.Session, url: str) -> list[dict]:
    out, page = [], 1
    while True:
        batch = s.get(url + "/v1/orders", params={"page": page, "limit": 250}).json()["Orders"]
        out.extend(batch)
        if len(batch) < 250:
            return out
        page += 1


@pytest.fixture(scope="module")
def three():
    with Sandbox(many()) as sb:
        yield sb, {name: login(sb, api_key=key) for name, key in sb.api_keys.items()}


def test_accounts_are_named_with_a_key_each_and_sized_differently(three):
    sb, _ = three
    assert list(sb.api_keys) == ["acct1", "acct2", "acct3"]
    assert len(set(sb.api_keys.values())) == 3
    sizes = [a.sizes for a in sb.accounts.values()]
    assert len({s["orders"] for s in sizes}) == 3 and len({s["products"] for s in sizes}) == 3
    assert all(200 <= s["orders"] <= 600 and 40 <= s["products"] <= 120 for s in sizes)  # spread 0.5
    assert sb.store is None


def test_each_token_reads_its_own_accounts_data(three):
    sb, sessions = three
    served = {name: every_order(s, sb.url) for name, s in sessions.items()}
    for name, orders in served.items():
        assert orders == list(sb.accounts[name].store.orders)
        count = sessions[name].get(sb.url + "/v1/orders/count").json()["Orders"]
        assert count == len(orders) == sb.accounts[name].sizes["orders"]
    assert served["acct1"][0] != served["acct2"][0] != served["acct3"][0]


def test_data_depends_on_seed_and_account_only():
    with Sandbox(many(accounts=2)) as a, Sandbox(many(accounts=3)) as b, Sandbox(many(seed=6, accounts=2)) as c:
        assert a.api_keys == {k: v for k, v in b.api_keys.items() if k in a.api_keys}
        assert list(a.accounts["acct2"].store.orders) == list(b.accounts["acct2"].store.orders)
        assert set(c.api_keys.values()).isdisjoint(a.api_keys.values())
        assert list(c.accounts["acct2"].store.orders) != list(a.accounts["acct2"].store.orders)
    assert account_key(5, 2) == a.api_keys["acct2"]


def test_login_by_username_and_the_one_account_key_refused():
    with Sandbox(many(accounts=2)) as sb:
        acct2 = sb.accounts["acct2"]
        s = login(sb, username=acct2.username, password=acct2.password)
        assert s.get(sb.url + "/v1/orders/count").json()["Orders"] == acct2.sizes["orders"]
        for wrong in ({"api_key": "sandbox-api-key"},
                      {"username": acct2.username, "password": sb.accounts["acct1"].password}):
            assert requests.post(sb.url + "/v1/login", json=wrong).status_code == 401


def test_changes_are_addressed_to_one_account():
    with Sandbox(many()) as sb:
        sessions = {name: login(sb, api_key=key) for name, key in sb.api_keys.items()}
        before = {name: s.get(sb.url + "/v1/orders/count").json()["Orders"] for name, s in sessions.items()}
        r = requests.post(sb.url + "/_sandbox/changes", json={"delete_orders": 5})
        assert r.status_code == 400 and "?account=" in r.json()["message"] and "acct3" in r.json()["message"]
        r = requests.post(sb.url + "/_sandbox/changes?account=acct9", json={"delete_orders": 5})
        assert r.status_code == 400 and "acct9" in r.json()["message"]
        r = requests.post(sb.url + "/_sandbox/changes?account=acct2", json={"delete_orders": 5, "seed": 1})
        assert r.status_code == 200 and len(r.json()["delete_orders"]) == 5
        r = requests.post(sb.url + "/_sandbox/mutate?account=acct3", json={"add_orders": 7})
        assert r.status_code == 200 and r.json()["orders"] == before["acct3"] + 7
        after = {name: s.get(sb.url + "/v1/orders/count").json()["Orders"] for name, s in sessions.items()}
        assert after == {"acct1": before["acct1"], "acct2": before["acct2"] - 5, "acct3": before["acct3"] + 7}


def test_the_one_account_sandbox_refuses_an_account_name():
    with Sandbox(SandboxConfig(seed=5, orders=50, products=10, rate=None)) as sb:
        r = requests.post(sb.url + "/_sandbox/changes?account=acct1", json={"delete_orders": 1})
        assert r.status_code == 400 and "one account" in r.json()["message"]
        assert requests.post(sb.url + "/_sandbox/changes", json={"delete_orders": 1}).status_code == 200
        assert sb.api_keys == {} and sb.accounts == {}


def test_each_account_has_its_own_bucket_shared_by_its_tokens():
    with Sandbox(many(rate=1.0, burst=2, clock=FakeClock())) as sb:
        acct1, acct1_again, acct2 = (login(sb, api_key=sb.api_keys[n]) for n in ("acct1", "acct1", "acct2"))
        assert [acct1.get(sb.url + "/v1/orders/count").status_code for _ in range(3)] == [200, 200, 429]
        assert acct1_again.get(sb.url + "/v1/orders/count").status_code == 429  # a new token: the same bucket
        assert [acct2.get(sb.url + "/v1/orders/count").status_code for _ in range(3)] == [200, 200, 429]
        stats = requests.get(sb.url + "/_sandbox/stats").json()
        assert stats["throttled"] == 3
        assert stats["by_account"] == {"acct1": {"requests": 2, "throttled": 2}, "acct2": {"requests": 2, "throttled": 1}}


def test_one_account_keeps_a_bucket_per_token_and_no_account_counters():
    with Sandbox(SandboxConfig(seed=5, orders=50, products=10, rate=1.0, burst=1, clock=FakeClock())) as sb:
        first, second = login(sb, api_key="sandbox-api-key"), login(sb, api_key="sandbox-api-key")
        assert [first.get(sb.url + "/v1/orders/count").status_code for _ in range(2)] == [200, 429]
        assert second.get(sb.url + "/v1/orders/count").status_code == 200
        assert "by_account" not in requests.get(sb.url + "/_sandbox/stats").json()


def test_a_hundred_modest_accounts_fit():
    with Sandbox(SandboxConfig(seed=1, orders=500, products=100, rate=None, accounts=100)) as sb:
        assert len(sb.api_keys) == 100 and list(sb.api_keys)[-1] == "acct100"
        s = login(sb, api_key=sb.api_keys["acct100"])
        assert s.get(sb.url + "/v1/orders/count").json()["Orders"] == sb.accounts["acct100"].sizes["orders"]


def test_bad_account_settings_are_refused():
    with pytest.raises(ValueError, match="accounts"):
        Sandbox(SandboxConfig(accounts=0))
    with pytest.raises(ValueError, match="size_spread"):
        Sandbox(SandboxConfig(accounts=2, size_spread=1.0))


def test_sandbox_command_prints_each_account_and_its_key_logs_in():
    process = subprocess.Popen(
        [sys.executable, "-m", "sqquid_etl.cli", "sandbox", "--port", "0", "--orders", "60", "--products", "20",
         "--rate", "0", "--accounts", "3", "--seed", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+", process.stdout.readline()).group(0)
        lines = [process.stdout.readline().split() for _ in range(3)]
        assert [line[1] for line in lines] == ["acct1", "acct2", "acct3"]
        for line in lines:
            fields = dict(zip(line[::2], line[1::2]))
            token = requests.post(url + "/v1/login", json={"api_key": fields["api_key"]}, timeout=5).json()["token"]
            count = requests.get(url + "/v1/orders/count", headers={"Authorization": f"Bearer {token}"}, timeout=5)
            assert count.json()["Orders"] == int(fields["orders"])
        assert fields["api_key"] == account_key(4, 3)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) is not None
