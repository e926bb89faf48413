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


class _Silent:
    """Accepts connections and reads what comes, answering only the first `answered` requests
    (each with a small body), then nothing: a hung server. Its sockets receive into small buffers
    (`rcvbuf`), so that a large request fills them."""

    def __init__(self, answered: int = 0, reads: bool = True):
        self.answered, self.reads = answered, reads
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            while self.reads:
                try:
                    data = conn.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                if b"\r\n\r\n" in data and self.answered:
                    self.answered -= 1
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    def close(self) -> None:
        self.listener.close()
        for conn in self.conns:
            conn.close()


def test_a_server_that_does_not_answer_times_out_on_a_new_and_on_a_kept_alive_connection():
    """A read that gets nothing within the read timeout is a TransportError 'TimeoutError: timed
    out' (which the client retries), on a fresh connection and on one kept alive, not taken for a
    connection the server had closed; a request the server does not read, the same. Kept by the
    kernel: the socket itself blocks."""
    server = _Silent(answered=1)
    transport = Transport(server.url, timeout=(1.0, 0.05))
    try:
        assert transport.send("GET", server.url + "/v1/a").content == b"{}"
        sock = transport._idle[0].sock
        assert sock.gettimeout() is None  # blocking: no poll before each read (the old code: 0.05)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16) != bytes(16)
        with pytest.raises(TransportError, match=r"^TimeoutError: timed out$"):
            transport.send("GET", server.url + "/v1/b")  # kept alive, then no answer
        assert transport._idle == []  # the connection that timed out is not kept
        with pytest.raises(TransportError, match=r"^TimeoutError: timed out$"):
            transport.send("GET", server.url + "/v1/c")  # a new connection, no answer
    finally:
        transport.close()
        server.close()
    server = _Silent(reads=False)  # a request whose bytes the server does not take
    transport = Transport(server.url, timeout=(1.0, 0.05))
    try:
        with pytest.raises(TransportError, match=r"^TimeoutError: timed out$"):
            transport.send("POST", server.url + "/v1/a", data=b"x" * (64 << 20))
    finally:
        transport.close()
        server.close()


def test_a_tls_socket_keeps_its_own_timeout():
    """Only a plain socket blocks with the kernel's timeouts: another kind (TLS reads before it
    polls) keeps its timeout."""
    import ssl

    from sqquid_etl.http_wire import answers_within

    plain, other = socket.socketpair()
    wrapped = ssl.create_default_context().wrap_socket(socket.socket(), do_handshake_on_connect=False,
                                                       server_hostname="x")
    try:
        answers_within(plain, 2.5)
        assert plain.gettimeout() is None
        assert plain.getsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, 16)[:8] == (2).to_bytes(8, "little")
        answers_within(wrapped, 2.5)
        assert wrapped.gettimeout() == 2.5
    finally:
        for sock in (plain, other, wrapped):
            sock.close()
