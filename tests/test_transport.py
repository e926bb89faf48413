"""The client's HTTP transport (http.client): keep-alive, a stale connection replaced, gzip,
the query as requests encoded it, proxies from the environment, failures as TransportError."""

from __future__ import annotations

import gzip
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sqquid_etl.transport import Transport, TransportError, _exempt, ca_bundle, full_url, proxy_for


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def do_GET(self):  # noqa: N802 - http.server's name
        self.server.seen.append((self.path, self.headers.get("Accept-Encoding"), self.client_address[1]))
        body = b'{"ok": true}'
        if self.path.startswith("/gzip"):
            body = gzip.compress(body)
        self.send_response(200)
        if self.path.startswith("/gzip"):
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.path.startswith("/close-after"):
            self.close_connection = True  # the server drops the kept-alive connection silently

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.seen = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _url(httpd) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}"


def test_connections_are_kept_alive_and_gzip_answers_decoded(server):
    transport = Transport(_url(server))
    first = transport.send("GET", _url(server) + "/plain")
    second = transport.send("GET", _url(server) + "/gzip")
    transport.close()
    assert first.status == 200 and first.content == b'{"ok": true}'
    assert second.content == b'{"ok": true}'  # decoded
    assert server.seen[0][1] == "gzip, deflate"
    assert server.seen[0][2] == server.seen[1][2]  # one connection (same client port) for both


def test_a_connection_the_server_closed_while_idle_is_replaced_at_once(server):
    transport = Transport(_url(server))
    transport.send("GET", _url(server) + "/close-after")
    answer = transport.send("GET", _url(server) + "/plain")  # the pooled connection is dead
    transport.close()
    assert answer.status == 200
    assert [path for path, _, _ in server.seen] == ["/close-after", "/plain"]


def test_a_refused_connection_is_a_transport_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed when the block ends: nothing listens there
    transport = Transport(f"http://127.0.0.1:{port}", timeout=(1.0, 1.0))
    with pytest.raises(TransportError, match="ConnectionRefused"):
        transport.send("GET", f"http://127.0.0.1:{port}/v1/orders")


def test_the_query_is_encoded_as_requests_encoded_it():
    assert full_url("http://h/v1/inventory", {"skus": "A 1,B/2", "offset": 0, "cursor": None, "ids": [1, 2]}) == (
        "http://h/v1/inventory?skus=A+1%2CB%2F2&offset=0&ids=1&ids=2")
    assert full_url("http://h/x", None) == "http://h/x"


def test_no_proxy_rules(monkeypatch):
    assert _exempt("api.sqquid.com", 443, "sqquid.com")
    assert _exempt("api.sqquid.com", 443, ".sqquid.com, other")
    assert _exempt("anything", None, "*")
    assert not _exempt("api.sqquid.com", 443, "api.sqquid.com:8443")
    assert not _exempt("notsqquid.com", 443, "sqquid.com")
    monkeypatch.setenv("HTTPS_PROXY", "http://upper:1")
    monkeypatch.setenv("https_proxy", "http://lower:2")
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    proxy = proxy_for("https://api.sqquid.com")
    assert (proxy.host, proxy.port) == ("lower", 2)  # the lower-case name wins, as in urllib
    assert proxy_for("http://api.sqquid.com") is None  # no proxy for plain http


def test_https_trusts_the_bundle_requests_would(monkeypatch, tmp_path):
    import certifi

    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert ca_bundle() == certifi.where()  # a slim image without a system store still verifies
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "corp.pem"))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "requests.pem"))
    assert ca_bundle() == str(tmp_path / "requests.pem")
