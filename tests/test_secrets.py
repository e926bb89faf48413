"""No secret (api key, password, token) in any log line, exception, cassette, state file or
output table of a full run."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import pytest

from sqquid_etl import extract, load_inventory
from sqquid_etl.client import Credentials
from sqquid_etl.errors import SqquidError
from sqquid_etl.sandbox import FaultConfig
from tests.support import API_KEY, PASSWORD, USERNAME, make_client


def _all_text_in_duckdb(path: Path) -> str:
    chunks = []
    with duckdb.connect(str(path), read_only=True) as conn:
        for (table,) in conn.execute("SELECT table_name FROM information_schema.tables").fetchall():
            for row in conn.execute(f'SELECT * FROM "{table}"').fetchall():
                chunks.append(repr(row))
    return "\n".join(chunks)


def _all_text_in_dir(root: Path) -> str:
    chunks = []
    for path in root.rglob("*"):
        if path.is_file():
            if path.suffix == ".parquet":
                with duckdb.connect() as conn:
                    chunks.append(repr(conn.execute(f"SELECT * FROM read_parquet('{path}')").fetchall()))
            else:
                chunks.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(chunks)


def test_no_secret_anywhere_after_a_full_run(make_sandbox, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    sandbox = make_sandbox(orders=300, products=80)
    sandbox.set_faults(FaultConfig(error_every=9, truncate_every=13))  # so retries log something
    tokens = []
    errors = []
    api_client = make_client(sandbox)
    user_client = make_client(sandbox, credentials=Credentials(username=USERNAME, password=PASSWORD))
    assert extract(duckdb=tmp_path / "a.duckdb", client=api_client).ok
    assert extract(parquet=tmp_path / "lake", client=user_client).ok
    sandbox.expire_tokens()
    report = load_inventory(
        [{"sku": "secret-test-sku", "qty_on_hand": 3}], mode="partial", client=api_client, journal=tmp_path / "j.jsonl"
    )
    tokens += [api_client._token, user_client._token]
    for bad in (Credentials(api_key=API_KEY[::-1] + "x"), Credentials(username=USERNAME, password=PASSWORD + "x")):
        with pytest.raises(SqquidError) as err:
            make_client(sandbox, credentials=bad).get("/v1/orders")
        errors.append(f"{err.value}\n{err.value!r}")
    secrets = [API_KEY, PASSWORD, API_KEY[::-1] + "x", PASSWORD + "x", *tokens]
    assert all(tokens)
    places = {
        "logs": caplog.text,
        "errors": "\n".join(errors),
        "report": report.summary() + repr(report),
        "reprs": repr(api_client) + repr(user_client),
        "duckdb": _all_text_in_duckdb(tmp_path / "a.duckdb"),
        "parquet dir": _all_text_in_dir(tmp_path / "lake"),
        "journal": (tmp_path / "j.jsonl").read_text(),
        "cassettes": "\n".join(p.read_text() for p in (Path(__file__).parent / "cassettes").glob("*.yaml")),
    }
    assert "retry" in places["logs"]
    for place, text in places.items():
        assert text, f"nothing captured from {place}: the scan would prove nothing"
        for secret in secrets:
            assert secret not in text, f"a secret leaked into {place}"


def test_secrets_are_registered_by_the_client_explicitly_not_by_building_credentials():
    from sqquid_etl.client import SqquidClient
    from sqquid_etl.redaction import SECRETS, SecretRegistry

    Credentials(api_key="built-but-never-used-key")  # a value: building it registers nothing
    assert SECRETS.redact("built-but-never-used-key") == "built-but-never-used-key"
    own = SecretRegistry()
    with SqquidClient(Credentials(api_key="client-owned-key-7"), "https://api.sqquid.com", secrets=own) as client:
        assert client.secrets is own and own.redact("x client-owned-key-7 y") == "x *** y"
    assert SECRETS.redact("client-owned-key-7") == "client-owned-key-7"  # the process registry untouched
