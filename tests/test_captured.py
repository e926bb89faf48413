"""Captures (`sqquid-etl capture`): every cassette under tests/cassettes/captured/ replays through a
full extract that stores or quarantines every record it holds; a capture holds no secret and no
personal value of the account it was made from; its listings end at the bound, consistently.

A capture sent with a report of a difference goes into tests/cassettes/captured/ (cassette and
manifest) and is a test from then on.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import pytest
from click.testing import CliRunner

from sqquid_etl.capture import capture, fake_token, read_manifest, replay
from sqquid_etl.cli import main
from sqquid_etl.definitions import StreamDefinition, load_definitions
from sqquid_etl.records import record_key

CAPTURED = Path(__file__).parent / "cassettes" / "captured"
CASSETTES = sorted(CAPTURED.glob("*.yaml"))
PERSONAL = re.compile("name|email|phone|address|street|city|zip|postal|company", re.I)


def _interactions(cassette: Path) -> list[tuple[str, str, int, bytes]]:
    from vcr.serialize import deserialize
    from vcr.serializers import yamlserializer

    requests, responses = deserialize(cassette.read_text(encoding="utf-8"), yamlserializer)[:2]
    return [(r.method, urlsplit(r.uri).path, a["status"]["code"], a["body"]["string"]) for r, a in zip(requests, responses)]


def _sent_records(cassette: Path, stream: StreamDefinition) -> list[dict]:
    """Every record of the stream's list answers in the cassette."""
    out = []
    for method, path, status, body in _interactions(cassette):
        if method == "GET" and path == stream.path and status == 200 and body:
            data = json.loads(body)
            records = data.get(stream.envelope) if isinstance(data, dict) else data
            out.extend(r for r in records or [] if isinstance(r, dict))
    return out


def _keys(table, record: dict, item: dict | None = None) -> tuple:
    """A row's primary key as text (sent "27" and stored 27 read the same), defaults applied."""
    values = []
    for column in table.columns:
        if column.name in table.primary_key and not column.from_partition:
            value = record.get(column.source) if (column.from_parent or item is None) else item.get(column.source)
            values.append(str(column.default if value is None else value))
    return tuple(values)


def _stored(con, table) -> set[tuple]:
    columns = [c.name for c in table.columns if c.name in table.primary_key and not c.from_partition]
    rows = con.execute(f'SELECT DISTINCT {", ".join(columns)} FROM "{table.name}"').fetchall()
    return {tuple(str(v) for v in row) for row in rows}


def _rejected(con, stream: str) -> list:
    if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = '_sqquid_rejected'").fetchone()[0]:
        return []
    return [row[0] for row in con.execute("SELECT key FROM _sqquid_rejected WHERE stream = ?", [stream]).fetchall()]


def assert_nothing_lost(cassette: Path, database: Path, streams: list[str]) -> dict[str, int]:
    """Every record (and child row) the cassette sent is stored, or its record quarantined."""
    definitions = load_definitions()
    seen = {}
    with duckdb.connect(str(database), read_only=True) as con:
        for name in streams:
            stream = definitions[name]
            records = _sent_records(cassette, stream)
            rejected = _rejected(con, name)
            quarantined = set(rejected)
            kept = [r for r in records if record_key(stream, r) not in quarantined]
            assert sum(record_key(stream, r) is None for r in records) <= rejected.count(None), name
            for table in stream.tables:
                if table.nested_path is None:
                    sent = {_keys(table, r) for r in kept}
                else:
                    sent = {_keys(table, r, item) for r in kept for item in r.get(table.nested_path) or []
                            if isinstance(item, dict)}
                missing = sent - _stored(con, table)
                assert not missing, f"{cassette.name}: {name}.{table.name} lost {len(missing)}, e.g. {sorted(missing)[:3]}"
            seen[name] = len(records)
    return seen


@pytest.mark.parametrize("cassette", CASSETTES, ids=[c.stem for c in CASSETTES])
def test_every_capture_replays_and_stores_every_record(cassette, tmp_path):
    manifest = read_manifest(cassette)
    result = replay(cassette, tmp_path / "replay.duckdb")
    assert [s.stream for s in result.streams] == list(manifest["streams"])
    assert all(s.status != "failed" for s in result.streams), [(s.stream, s.message) for s in result.streams]
    seen = assert_nothing_lost(cassette, tmp_path / "replay.duckdb", list(manifest["streams"]))
    for s in result.streams:  # records in = records stored + records quarantined, as captured
        assert s.records_stored + s.records_quarantined == manifest["streams"][s.stream]["records"], s.stream
        assert seen[s.stream] >= manifest["streams"][s.stream]["records"] > 0 or s.stream == "inventory"


def test_the_shipped_capture_is_small_and_drifted():
    assert CASSETTES, "the repo ships a capture made from the drift sandbox"
    for cassette in CASSETTES:
        assert cassette.stat().st_size < 400_000, cassette.name
    manifest = read_manifest(CAPTURED / "sandbox-drift.yaml")
    assert set(manifest["streams"]) == set(load_definitions())
    assert any(s["records_quarantined"] for s in manifest["streams"].values())  # lossy drift too
    text = (CAPTURED / "sandbox-drift.yaml").read_text(encoding="utf-8")
    assert "tracking_urls" in text and "127.0.0.1" not in text and "sandbox-api-key" not in text


@pytest.fixture(scope="module")
def drift_sandbox():
    from sqquid_etl.sandbox import Sandbox, SandboxConfig
    from sqquid_etl.sandbox.drift import DriftProfile

    sandbox = Sandbox(SandboxConfig(drift=DriftProfile(lossy=0.05), orders=300, products=60, rate=None))
    sandbox.start()
    yield sandbox
    sandbox.stop()


def _personal_values(value, under: bool = False) -> set[str]:
    if isinstance(value, dict):
        return set().union(set(), *(_personal_values(v, under or bool(PERSONAL.search(k))) for k, v in value.items()))
    if isinstance(value, list):
        return set().union(set(), *(_personal_values(v, under) for v in value))
    return {str(value)} if under and value is not None and len(str(value)) >= 6 else set()


def test_a_capture_holds_no_secret_and_no_personal_value(drift_sandbox, tmp_path):
    from sqquid_etl.client import Credentials, SqquidClient

    made = capture(tmp_path, name="scrubbed", streams=["orders", "shipments", "locations"], max_pages=1,
                   base_url=drift_sandbox.url, username="demo@sqquid.test", password="sandbox-password", rate=None)
    text = made.cassette.read_text(encoding="utf-8") + made.manifest.read_text(encoding="utf-8")
    with SqquidClient(Credentials(username="demo@sqquid.test", password="sandbox-password"), drift_sandbox.url,
                      rate=None) as client:
        client.ensure_token()
        token = client._token
        personal = set()
        for path in ("/v1/orders", "/v1/shipments", "/v1/locations"):
            personal |= _personal_values(client.get(path, {"page": 1, "limit": 250} if "v1/l" not in path else {}))
    assert len(personal) > 100  # names, emails, phones, addresses, cities, zip codes
    for secret in ("sandbox-password", "demo@sqquid.test", token, "Bearer", "Authorization",
                   drift_sandbox.url, f"127.0.0.1:{drift_sandbox.port}"):
        assert secret not in text
    leaked = {v for v in personal if v in text or json.dumps(v)[1:-1] in text}
    assert not leaked, sorted(leaked)[:5]
    assert set(re.findall(r"eyJ[\w-]+\.[\w-]+\.\w+", text)) == {fake_token()}
    # stable fakes: one customer's orders still share one (fake) email
    orders = _sent_records(made.cassette, load_definitions()["orders"])
    emails = [o["customer_email"] for o in orders if o.get("customer_email")]
    assert all(e.endswith("@example.com") and e.startswith("user-") for e in emails)
    assert len(set(emails)) < len(emails)


def test_a_capture_ends_every_listing_at_the_bound_and_replays(drift_sandbox, tmp_path):
    made = capture(tmp_path, name="bounded", streams=["orders", "inventory"], max_pages=1,
                   base_url=drift_sandbox.url, api_key="sandbox-api-key", rate=None)
    manifest = read_manifest(made.cassette)
    assert manifest["streams"]["orders"]["records"] == 250 and manifest["streams"]["orders"]["api_count"] == 300
    assert manifest["streams"]["products"]["records"] == 60 and manifest["host"] == "127.0.0.1"
    assert len(manifest["base_url"]) == len(drift_sandbox.url)  # same URL length: same key batches
    paths = [(m, p) for m, p, _, _ in _interactions(made.cassette)]
    assert ("GET", "/v1/orders/count") in paths and ("GET", "/v1/inventory") in paths
    result = replay(made.cassette, tmp_path / "replay.duckdb")
    assert result.stream("orders").records_stored + result.stream("orders").records_quarantined == 250
    assert_nothing_lost(made.cassette, tmp_path / "replay.duckdb", ["products", "inventory", "orders"])


def test_capture_command(drift_sandbox, tmp_path):
    out = CliRunner().invoke(main, ["capture", str(tmp_path / "c"), "--streams", "locations,buffers", "--name", "x",
                                    "--base-url", drift_sandbox.url, "--api-key", "sandbox-api-key", "--rate", "0"])
    assert out.exit_code == 0, out.output
    assert "replayed offline through a full extract" in out.output
    assert (tmp_path / "c" / "x.yaml").exists() and (tmp_path / "c" / "x.json").exists()
    bad = CliRunner().invoke(main, ["capture", str(tmp_path / "d"), "--base-url", drift_sandbox.url,
                                    "--api-key", "wrong-key", "--rate", "0"])
    assert bad.exit_code == 3 and "wrong-key" not in bad.output
