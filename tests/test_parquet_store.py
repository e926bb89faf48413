"""Parquet on object storage (`--parquet s3://bucket/prefix`), against moto's S3 server on a
loopback port (`tests/s3_server.py`): the destination contract, a full and an incremental
extract equal to the sandbox, SIGKILL then re-run exact with no orphan left, one writer a prefix,
and a prefix that is not an extract left untouched."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time

import boto3
import duckdb
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from sqquid_etl import extract
from sqquid_etl.destinations import open_destination, open_existing
from sqquid_etl.errors import ConfigError, StateError
from sqquid_etl.settings import Tuning
from sqquid_etl.state import StreamState
from tests import test_destinations as contract
from tests.expected import COMPARED, assert_tables_equal, expected_tables
from tests.s3_server import bucket, s3_endpoint  # noqa: F401 (fixtures)
from tests.support import make_client
from tests.test_crash import KILL_POINTS, _env, _extract_cmd, _kill_after_requests


def _objects(name: str, prefix: str = "") -> list[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=name, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _manifest(name: str, prefix: str = "lake") -> dict:
    return json.loads(boto3.client("s3").get_object(Bucket=name, Key=f"{prefix}/_sqquid/manifest.json")["Body"].read())


def s3_tables(name: str, prefix: str = "lake") -> dict[str, list[tuple]]:
    """Every compared table as a plain reader sees it: all the Parquet files under its prefix."""
    fs = pafs.FileSystem.from_uri(f"s3://{name}")[0]  # the endpoint from AWS_ENDPOINT_URL
    out = {}
    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        for table, columns in COMPARED.items():
            data = ds.dataset(f"{name}/{prefix}/{table}", filesystem=fs, format="parquet").to_table()  # noqa: F841
            out[table] = sorted(conn.execute(f"SELECT {columns} FROM data").fetchall(), key=repr)
    return out


def assert_no_orphans(name: str, prefix: str = "lake") -> None:
    """The table and quarantine prefixes hold exactly what the manifest lists."""
    listed = {f"{prefix}/{n}" for names in _manifest(name, prefix)["tables"].values() for n in names}
    listed |= {f"{prefix}/{n}" for n in _manifest(name, prefix)["rejected"]}
    stored = {k for k in _objects(name, prefix + "/") if not k.startswith((f"{prefix}/_sqquid/", f"{prefix}/_sqquid_runs/"))}
    assert stored == listed


@pytest.fixture
def lake(bucket):
    return f"s3://{bucket}/lake"


def test_the_destination_contract_on_s3(lake, bucket):
    destination = open_destination(parquet=lake, tuning=Tuning())
    try:
        assert destination.location == lake
        contract.test_commit_merges_by_key_with_state_and_abort_changes_nothing(("parquet", destination))
        contract.test_state_one_stream_at_a_time_and_cleared(("parquet", destination))
    finally:
        destination.close()
    assert_no_orphans(bucket)
    assert "lake/_sqquid/lock.json" not in _objects(bucket)  # released


def test_extract_to_s3_equals_the_sandbox_and_a_second_run_merges(make_sandbox, lake, bucket):
    sandbox = make_sandbox(orders=600, products=300)
    client = make_client(sandbox)
    assert extract(parquet=lake, client=client).ok
    assert_tables_equal(s3_tables(bucket), expected_tables(sandbox.store))
    sandbox.store.add_orders(30)
    sandbox.store.update_products(5)
    second = extract(["orders", "products"], parquet=lake, client=client)
    assert second.ok and second.stream("orders").rows["orders"] < 600
    tables = ["orders", "order_items", "products", "product_variants"]
    assert_tables_equal(s3_tables(bucket), expected_tables(sandbox.store), tables)
    assert_no_orphans(bucket)
    assert json.loads(json.dumps(_manifest(bucket)["states"]))["orders"]["cursors"]
    destination = open_existing(parquet=lake, tuning=Tuning())
    try:
        assert destination.count_since("orders", "created_at", None, {}) == len(sandbox.store.orders)
    finally:
        destination.close()


def test_sigkill_mid_run_then_rerun_is_exact_and_cleans_orphans(make_sandbox, lake, bucket):
    sandbox = make_sandbox(orders=1500, products=300, latency=0.002)
    args = ["--parquet", lake]
    rng = random.Random("kill-s3")
    kills = 0
    for _ in range(KILL_POINTS):
        process = subprocess.Popen(_extract_cmd(sandbox, args), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kills += _kill_after_requests(process, sandbox, rng.randint(1, 30))
        sandbox.store.add_orders(25)
    assert kills >= KILL_POINTS // 2
    finished = subprocess.run(_extract_cmd(sandbox, args), env=_env(), capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert_tables_equal(s3_tables(bucket), expected_tables(sandbox.store))
    assert_no_orphans(bucket)


def test_one_writer_a_prefix_and_a_dead_holder_is_taken_over(lake, bucket):
    s3 = boto3.client("s3")
    first = open_destination(parquet=lake, tuning=Tuning())
    try:
        with pytest.raises(StateError, match="in use by another process"):
            open_destination(parquet=lake, tuning=Tuning())
        # thought dead and taken over: its commits are refused, never written over its successor's
        s3.put_object(Bucket=bucket, Key="lake/_sqquid/lock.json", Body=b'{"owner": "someone else"}')
        with pytest.raises(StateError, match="lost its lock"):
            first.save_state("orders", StreamState())
    finally:
        first.close()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    body = json.dumps({"owner": "x", "host": socket.gethostname(), "pid": int(dead.stdout), "beat": time.time()})
    s3.put_object(Bucket=bucket, Key="lake/_sqquid/lock.json", Body=body.encode())
    open_destination(parquet=lake, tuning=Tuning()).close()  # its holder is gone: taken over
    assert "lake/_sqquid/lock.json" not in _objects(bucket)


def test_a_prefix_not_made_by_sqquid_etl_is_refused_and_left_untouched(bucket):
    boto3.client("s3").put_object(Bucket=bucket, Key="mine/orders/data.parquet", Body=b"not ours")
    with pytest.raises(ConfigError, match="not made by sqquid-etl"):
        open_destination(parquet=f"s3://{bucket}/mine", tuning=Tuning())
    assert _objects(bucket) == ["mine/orders/data.parquet"]
    with pytest.raises(ConfigError, match="no sqquid-etl extract"):
        open_existing(parquet=f"s3://{bucket}/mine", tuning=Tuning())


def test_an_s3_url_on_the_command_line_never_makes_a_local_directory(s3_endpoint, tmp_path):
    env = dict(os.environ, SQQUID_API_KEY="k")
    for args in (["state", "show", "--parquet", "s3://no-such-bucket/lake"],
                 ["extract", "--streams", "orders", "--base-url", "http://127.0.0.1:9", "--parquet", "s3://no-such-bucket/lake"]):
        done = subprocess.run([sys.executable, "-m", "sqquid_etl.cli", *args], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode != 0 and "Traceback" not in done.stderr and "error:" in done.stderr, done.stderr
        assert list(tmp_path.iterdir()) == []
