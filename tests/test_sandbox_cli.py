"""`sqquid-etl sandbox` as a command: prints its URL, serves the reference's envelopes, stops on SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import requests

ENDPOINTS = {
    "/v1/orders": "Orders",
    "/v1/orders/count": "Orders",
    "/v1/products": "Products",
    "/v1/products/count": "Products",
    "/v1/shipments": "Shipments",
    "/v1/shipments/count": "Shipments",
    "/v1/shipmentitems": "shipmentitems",
    "/v1/shipmentitems/count": "shipmentitems",
    "/v2/products": "results",
    "/v1/buffers": "results",
    "/v1/locations": "results",
    "/v1/inventory?skus=a,b": "results",
}


def test_sandbox_command_serves_every_listed_endpoint():
    process = subprocess.Popen(
        [sys.executable, "-m", "sqquid_etl.cli", "sandbox", "--port", "0", "--orders", "40", "--products", "20", "--rate", "1000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, line
        url = match.group(0)
        token = requests.post(url + "/v1/login", json={"api_key": "sandbox-api-key"}, timeout=5).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        for path, envelope in ENDPOINTS.items():
            body = requests.get(url + path, headers=headers, timeout=5).json()
            assert envelope in body, (path, body)
        assert requests.get(url + "/v1/orders", timeout=5).status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) is not None


def test_sandbox_command_drift_flag_serves_the_drift_profile():
    process = subprocess.Popen(
        [sys.executable, "-m", "sqquid_etl.cli", "sandbox", "--port", "0", "--orders", "300", "--products", "20",
         "--rate", "1000", "--drift"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        assert "drift profile" in line, line
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)
        token = requests.post(url + "/v1/login", json={"api_key": "sandbox-api-key"}, timeout=5).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        orders = requests.get(url + "/v1/orders?limit=250", headers=headers, timeout=5).json()["Orders"]
        from sqquid_etl.sandbox import Store

        documented = set(Store(seed=1, orders=1, products=1).orders[0])
        assert all(len(set(o) - documented) == 2 and documented <= set(o) for o in orders)  # two undocumented
        assert any(isinstance(o["id"], str) for o in orders) and any(isinstance(o["total"], float) for o in orders)
        assert requests.get(url + "/v1/orders/count", headers=headers, timeout=5).json() == {"Orders": 300}
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) is not None
