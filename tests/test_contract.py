"""Request-shape tests of the client, as vcrpy cassettes recorded against the sandbox.

These are not contract tests of the real Sqquid API: the cassettes were recorded against our
own sandbox, which implements our reading of the API, so they cannot detect the API drifting
from it. What they do pin down is the shape of what the client sends (methods, paths, query
parameters, login and PATCH bodies, headers) and that it copes with the answers recorded, so a
change to the client that alters its requests shows up here.

Cassettes live in tests/cassettes/. Delete one to record it again (the sandbox is started for
that); otherwise they are replayed and the sandbox receives nothing. Authorization headers,
credentials in login bodies and tokens in login responses are filtered before recording.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import vcr

from sqquid_etl.client import Credentials
from tests.support import API_KEY, PASSWORD, USERNAME, make_client

CASSETTES = Path(__file__).parent / "cassettes"
FILTERED = "FILTERED"


def _scrub_request(request):
    if request.body and request.path.endswith("/v1/login"):
        body = json.loads(request.body)
        request.body = json.dumps({k: FILTERED for k in body}).encode()
    return request


def _scrub_response(response):
    body = response["body"].get("string") or b""
    try:
        data = json.loads(body)
    except ValueError:
        return response
    if isinstance(data, dict) and "token" in data:
        response["body"]["string"] = json.dumps({"token": FILTERED}).encode()
    return response


recorder = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode="once",
    match_on=["method", "path", "query"],  # the sandbox's port differs between runs
    filter_headers=["authorization"],
    before_record_request=_scrub_request,
    before_record_response=_scrub_response,
    decode_compressed_response=True,
)


@pytest.fixture
def contract_sandbox(make_sandbox):
    return make_sandbox(seed=7, orders=60, products=20)


def _replayed(name: str) -> bool:
    return (CASSETTES / name).exists()


def test_contract_login_and_v1_page(contract_sandbox):
    name = "login_and_orders.yaml"
    replay = _replayed(name)
    with recorder.use_cassette(name) as cassette, make_client(contract_sandbox) as client:
        page = json.loads(client.get_body("/v1/orders", {"page": 1, "limit": 50}))  # as list pages are fetched
        count = client.get("/v1/orders/count", {"created_at_min": "2024-01-01T00:00:00+00:00"})
    assert len(page["Orders"]) == 50 and isinstance(page["Orders"][0]["order_items"], list)
    assert count["Orders"] <= 60
    assert [r.method + " " + r.path for r in cassette.requests] == ["POST /v1/login", "GET /v1/orders", "GET /v1/orders/count"]
    if replay:
        assert contract_sandbox.stats.requests == 0 and cassette.play_count == 3


def test_contract_username_login_and_offset_envelopes(contract_sandbox):
    name = "username_login_offset_lists.yaml"
    replay = _replayed(name)
    creds = Credentials(username=USERNAME, password=PASSWORD)
    with recorder.use_cassette(name) as cassette, make_client(contract_sandbox, credentials=creds) as client:
        buffers = client.get("/v1/buffers", {"offset": 0, "limit": 200})
        locations = client.get("/v1/locations", {"offset": 0, "limit": 200})
        sku = "ZZZ-no-such-sku"
        inventory = client.get("/v1/inventory", {"skus": sku, "offset": 0, "limit": 1000})
    for body in (buffers, locations, inventory):
        assert set(body) >= {"total", "limit", "offset", "results"}
    assert inventory["total"] == 0
    assert cassette.requests[0].body == json.dumps({"username": FILTERED, "password": FILTERED}).encode()
    if replay:
        assert contract_sandbox.stats.requests == 0


def test_contract_inventory_partial_patch(contract_sandbox):
    name = "inventory_partial.yaml"
    replay = _replayed(name)
    payload = [{"sku": "contract-sku-1", "inventory": [{"location_external_id": "default", "bin": "default", "qty_on_hand": 5}]}]
    with recorder.use_cassette(name) as cassette, make_client(contract_sandbox) as client:
        answer = client.patch("/v1/inventory/partial", payload)
    assert answer == "OK"
    assert json.loads(cassette.requests[1].body) == payload  # exactly the reference's payload shape
    assert cassette.requests[1].headers["Content-Type"] == "application/json"
    if replay:
        assert contract_sandbox.stats.requests == 0


def test_no_cassette_holds_a_secret():
    files = sorted(CASSETTES.glob("*.yaml"))
    assert len(files) >= 3
    for path in files:
        text = path.read_text(encoding="utf-8")
        for secret in (API_KEY, PASSWORD):
            assert secret not in text, f"{path.name} holds a credential"
        assert "Bearer" not in text and "authorization" not in text.lower(), f"{path.name} holds an auth header"
        assert '"token": "FILTERED"' in text or "/v1/login" not in text
