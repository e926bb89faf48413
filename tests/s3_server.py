"""An S3-compatible server for the object-storage tests: moto's standalone server (`moto[server]`,
on PyPI), started as a separate process on a free loopback port, once a test session. Chosen
because it speaks the S3 REST API (conditional writes included) over real HTTP, so pyarrow's
S3 client, boto3 and pyiceberg talk to it exactly as to S3; it needs no binary download."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

# the environment of every process that talks to the server: no real credentials, loopback only
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
          "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with {process.returncode}")
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)  # the server's start, not the test's clock
    raise RuntimeError("moto server did not start within 30 s")


@pytest.fixture(scope="session")
def s3_endpoint():
    """The server's URL; the AWS variables of this process point at it while the session runs."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    saved = {k: os.environ.get(k) for k in [*S3_ENV, "AWS_ENDPOINT_URL"]}
    try:
        _wait_until_up(url, process)
        os.environ.update(S3_ENV, AWS_ENDPOINT_URL=url)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def bucket(s3_endpoint):
    """A new, empty bucket: its name."""
    import boto3

    name = f"t-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name
