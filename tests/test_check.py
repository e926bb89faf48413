"""`sqquid-etl check`: one page of every stream against its definition, differences named, exit
0 only when an extract would store everything as sent; never a secret or personal data."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sqquid_etl.cli import main
from sqquid_etl.sandbox import DriftProfile
from tests.support import API_KEY

EXTRA_FIELDS = ("sync_status", "priority", "score", "is_test", "legacy_ref", "sync_note", "metadata", "tags",
                "custom_fields", "links")


def _check(sandbox, *args):
    env = {"SQQUID_BASE_URL": sandbox.url, "SQQUID_API_KEY": API_KEY}
    return CliRunner().invoke(main, ["check", "--rate", "0", *args], env=env)


def test_check_of_a_conforming_server_says_everything_would_be_stored(make_sandbox):
    sandbox = make_sandbox(orders=200, products=60)
    result = _check(sandbox, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] and len(report["streams"]) == 7
    assert all(s["records"] > 0 and s["error"] is None for s in report["streams"])
    assert not any(d["kind"] in ("lossy", "undefined") for s in report["streams"] for d in s["differences"])
    assert report["requests"] <= 12  # one page a stream, the login, nothing more


def test_check_of_a_drifting_server_names_each_difference_and_exits_1(make_sandbox):
    sandbox = make_sandbox(orders=300, products=80, drift=DriftProfile(lossy=0.05))
    result = _check(sandbox, "--json", "--streams", "orders,shipments")
    assert result.exit_code == 1, result.output
    streams = {s["stream"]: s for s in json.loads(result.output)["streams"]}
    kinds = {(d["table"], d["field"], d["kind"]) for s in streams.values() for d in s["differences"]}
    undefined = {f for table, f, kind in kinds if kind == "undefined" and table == "orders"}
    assert undefined and undefined <= set(EXTRA_FIELDS)  # the drift's undocumented fields, nothing else
    assert any(kind == "coerced" for _, _, kind in kinds) and any(kind == "lossy" for _, _, kind in kinds)
    assert ("shipments", "tracking_urls", "coerced") in kinds
    assert sum(d["count"] for d in streams["orders"]["differences"] if d["kind"] == "undefined") > 0
    lossy = next(d for s in streams.values() for d in s["differences"] if d["kind"] == "lossy")
    assert lossy["reason"] and lossy["example"] is not None


def test_check_of_lossless_drift_passes_under_evolve_and_fails_under_discard(make_sandbox):
    sandbox = make_sandbox(orders=120, products=40, drift=True)
    evolve = _check(sandbox, "--json")
    assert evolve.exit_code == 0, evolve.output  # every difference coerced or kept as a new column
    kinds = {d["kind"] for s in json.loads(evolve.output)["streams"] for d in s["differences"]}
    assert {"undefined", "coerced"} <= kinds and "lossy" not in kinds
    assert _check(sandbox, "--schema-contract", "discard").exit_code == 1  # undefined fields would be dropped


def test_check_never_prints_a_secret_or_personal_data(make_sandbox):
    sandbox = make_sandbox(orders=100, products=30, drift=True)
    result = _check(sandbox, "--schema-contract", "freeze")
    assert result.exit_code == 1 and "would not be stored as sent" in result.output
    assert API_KEY not in result.output
    personal = set()
    for order in sandbox.store.orders:
        for key, value in order.items():
            if any(word in key for word in ("name", "email", "phone", "address")) and isinstance(value, str) and len(value) > 3:
                personal.add(value)
    assert personal and not any(value in result.output for value in personal)


def test_check_with_bad_credentials_is_a_clear_error(make_sandbox):
    sandbox = make_sandbox(orders=10, products=5)
    result = CliRunner().invoke(main, ["check", "--rate", "0"], env={"SQQUID_BASE_URL": sandbox.url, "SQQUID_API_KEY": "wrong-key-123"})
    assert result.exit_code not in (0, 1) and "error:" in result.output and "wrong-key-123" not in result.output
