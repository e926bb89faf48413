"""The transport's own reading of HTTP/1.1 answers (http_wire.py): bodies by Content-Length,
chunked or up to the close, headers case-insensitive, kept-alive connections reused only when the
answer allows it, answers cut short as TransportError, requests written as http.client wrote them."""

from __future__ import annotations

import http.client
import os
import socket
import threading

import pytest

from sqquid_etl.http_wire import Headers, host_header, request_bytes
from sqquid_etl.transport import Transport, TransportError


class ScriptedServer:
    """Answers each request with the next scripted bytes; `close` after an answer drops the
    connection. Notes every request (its raw head and body) and the connection it came on."""

    def __init__(self, answers: list[tuple[bytes, bool]]):
        self.answers = list(answers)
        self.requests: list[tuple[int, bytes]] = []  # (connection number, raw request)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        number = 0
        while self.answers:
            conn, _ = self.listener.accept()
            number += 1
            with conn:
                while self.answers:
                    request = self._request(conn)
                    if request is None:
                        break
                    self.requests.append((number, request))
                    answer, close = self.answers.pop(0)
                    conn.sendall(answer)
                    if close:
                        break

    @staticmethod
    def _request(conn: socket.socket) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            body += conn.recv(65536)
        return head + b"\r\n\r\n" + body

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


def ok(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body


@pytest.fixture
def scripted():
    made: list[ScriptedServer] = []

    def make(*answers: tuple[bytes, bool]) -> ScriptedServer:
        made.append(ScriptedServer(list(answers)))
        return made[-1]
    yield make
    for server in made:
        server.close()


def test_a_chunked_answer_with_extensions_and_trailers_then_the_connection_reused(scripted):
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Thing: a\r\n\r\n"
               b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
    server = scripted((chunked, False), (ok(b"second"), False))
    transport = Transport(server.url)
    first = transport.send("GET", server.url + "/a")
    second = transport.send("GET", server.url + "/b")
    transport.close()
    assert first.status == 200 and first.content == b"hello world"
    assert second.content == b"second"
    assert [number for number, _ in server.requests] == [1, 1]  # one kept-alive connection


def test_headers_are_case_insensitive_folded_lines_joined_and_the_first_of_a_repeat_kept(scripted):
    answer = (b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\nX-Long: one\r\n  two\r\n"
              b"X-Twice: first\r\nX-Twice: second\r\nContent-Length: 2\r\n\r\n{}")
    server = scripted((answer, False))
    transport = Transport(server.url)
    response = transport.send("GET", server.url + "/")
    transport.close()
    assert response.status == 429 and response.reason == "Too Many Requests"
    assert response.headers.get("Retry-After") == "7" and response.headers["RETRY-AFTER"] == "7"
    assert "retry-after" in response.headers and "Missing" not in response.headers
    assert response.headers.get("x-long") == "one two"
    assert response.headers.get("X-Twice") == "first"


@pytest.mark.parametrize("answer", [
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",  # HTTP/1.0 without keep-alive
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\n\r\nok",  # no length: the body ends with the connection
])
def test_an_answer_that_ends_its_connection_is_not_reused(scripted, answer):
    server = scripted((answer, True), (ok(b"again"), False))
    transport = Transport(server.url)
    first = transport.send("GET", server.url + "/")
    second = transport.send("GET", server.url + "/")
    transport.close()
    assert first.content == b"ok" and second.content == b"again"
    assert [number for number, _ in server.requests] == [1, 2]


def test_a_body_cut_short_is_a_transport_error(scripted):
    server = scripted((b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"Orders\": [", True))
    transport = Transport(server.url)
    with pytest.raises(TransportError, match="IncompleteRead"):
        transport.send("GET", server.url + "/")
    assert not transport._idle  # the connection was dropped, not pooled


def test_no_body_for_204_and_a_kept_alive_connection_the_server_closed_is_replaced(scripted):
    server = scripted((b"HTTP/1.1 204 No Content\r\n\r\n", True), (ok(b"fresh"), False))
    transport = Transport(server.url)
    assert transport.send("DELETE", server.url + "/x").content == b""
    answer = transport.send("GET", server.url + "/y")  # the pooled connection is closed: a new one, at once
    transport.close()
    assert answer.content == b"fresh"
    assert [number for number, _ in server.requests] == [1, 2]


def test_requests_are_written_as_http_client_wrote_them(scripted):
    server = scripted((ok(b"{}"), False), (ok(b"{}"), False))
    transport = Transport(server.url)
    transport.send("POST", server.url + "/v1/login", data=b'{"a":1}', headers={"Content-Type": "application/json"})
    transport.send("PATCH", server.url + "/v1/inventory", params={"sku": "a b", "n": [1, 2]})
    transport.close()
    post, patch = (raw for _, raw in server.requests)
    port = server.url.rsplit(":", 1)[1]
    assert post.startswith(b"POST /v1/login HTTP/1.1\r\nHost: 127.0.0.1:" + port.encode() + b"\r\n")
    assert b"Content-Type: application/json\r\n" in post and b"Content-Length: 7\r\n" in post
    assert post.endswith(b'\r\n\r\n{"a":1}') and b"Accept-Encoding: gzip, deflate\r\n" in post
    assert patch.startswith(b"PATCH /v1/inventory?sku=a+b&n=1&n=2 HTTP/1.1\r\n")
    assert b"Content-Length: 0\r\n" in patch  # a PATCH without a body says so


def test_a_header_value_that_would_start_another_header_is_refused():
    with pytest.raises(ValueError, match="Authorization"):
        request_bytes("GET", "/v1/orders", "api", {"Authorization": "Bearer x\r\nX-Evil: 1"}, None)
    with pytest.raises(http.client.InvalidURL):  # (as http.client refuses it)
        request_bytes("GET", "/v1/orders x", "api", {}, None)  # a space in the target


def test_the_host_header():
    assert host_header("api.sqquid.com", 443, https=True) == "api.sqquid.com"
    assert host_header("127.0.0.1", 8080, https=False) == "127.0.0.1:8080"
    assert host_header("::1", 80, https=False) == "[::1]"
    assert Headers({"a": "1"}).get("A") == "1"


def _open_sockets() -> set[str]:
    """The sockets this process has open (their inodes), from /proc."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads the process's open files in /proc")
def test_closing_the_transport_closes_its_sockets(scripted):
    """A connection's socket stays open while a reader of it is open: the transport closes both."""
    server = scripted((ok(b"x"), False), (ok(b"y"), False))
    transport = Transport(server.url)
    transport.send("GET", server.url + "/")
    first = f"socket:[{os.fstat(transport._idle[0].sock.fileno()).st_ino}]"
    transport._idle[0].sock.close()  # (as if dropped: the next send replaces it)
    transport.close()
    assert first not in _open_sockets()
    transport.send("GET", server.url + "/")
    second = f"socket:[{os.fstat(transport._idle[0].sock.fileno()).st_ino}]"
    assert second in _open_sockets()
    transport.close()
    assert second not in _open_sockets()


def test_large_bodies_read_into_the_transports_buffers_small_ones_as_bytes(scripted):
    """A transport given `BodyBuffers` (many accounts) reads a body of `LEAST` bytes or more into
    one of them, whole; a smaller one, or a chunked one, as bytes; a large body cut short is an
    IncompleteRead (a TransportError) as before."""
    from sqquid_etl.body_buffers import BodyBuffers

    large = b"[" + b"1," * 50_000 + b"1]"
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    server = scripted((ok(large), False), (ok(b"{}"), False), (chunked, False), (ok(large), False),
                      (b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + large[:1000], True))
    transport = Transport(server.url)
    transport.body_buffers = buffers = BodyBuffers()
    first = transport.send("GET", server.url + "/a").content
    assert type(first) is bytearray and first == large
    small = transport.send("GET", server.url + "/b").content
    assert type(small) is bytes and small == b"{}"
    assert transport.send("GET", server.url + "/c").content == b"abc"
    kept = buffers.give_back(first, held_by_caller=1)
    assert kept is True
    again = transport.send("GET", server.url + "/d").content
    assert again == large and buffers.reused == 1 and buffers.made == 1
    with pytest.raises(TransportError, match="IncompleteRead"):
        transport.send("GET", server.url + "/e")
    transport.close()
