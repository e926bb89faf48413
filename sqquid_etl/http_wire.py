"""HTTP/1.1 on a connected socket: one request written, its answer read (the status line, the
headers, the body by Content-Length, chunked, or up to the connection's close).

`transport.py` has http.client's connection classes connect the socket (TCP, TLS, a proxy's
tunnel) and this module exchange the messages on it, without http.client's response machinery:
a file object made for each answer, and its headers parsed by the `email` package, ~0.05-0.1 ms a
request, more in a run of many accounts (docs/benchmarks.md, eleventh session). The errors are
http.client's (`RemoteDisconnected` for a connection the server had closed, `IncompleteRead`,
`LineTooLong`, `BadStatusLine`), so the transport tells them apart as before.

A plain socket waits for its answer blocking, its read timeout kept by the kernel (`answers_within`:
SO_RCVTIMEO, SO_SNDTIMEO), not by CPython: a socket with a timeout polls before every recv and send,
each in its own release of the interpreter's lock, so every read was two hand-overs of the lock
where other threads want it (a hundred accounts' fetch workers: docs/benchmarks.md, fourteenth
session). A read or write that times out is a `TimeoutError("timed out")` either way.
"""

from __future__ import annotations

import http.client
import io
import re
import socket
import struct
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from .body_buffers import BodyBuffers

MAX_LINE = 65536  # as http.client
MAX_HEADERS = 100
BODY_EXPECTED = frozenset({"PATCH", "POST", "PUT"})  # sent with Content-Length: 0 when they have none (as http.client)
_NOT_IN_TARGET = re.compile("[\x00-\x20\x7f]")
_NOT_IN_VALUE = re.compile(r"\n(?![ \t])|\r(?![ \t\n])")  # (http.client's check)
# False: every socket's timeout kept by CPython, as before (to compare: bench/accounts_inside.py BENCH_BLOCKING_SOCKETS=0)
KERNEL_TIMEOUTS = sys.platform.startswith("linux")


def answers_within(sock: socket.socket, seconds: float) -> None:
    """Each read and write of the connected `sock` fails with TimeoutError after `seconds` without
    progress. A plain socket on Linux: blocking, the kernel's timeouts set (a recv is one system
    call, one release of the interpreter's lock); any other (TLS, which reads before it polls): its
    timeout, as before."""
    if KERNEL_TIMEOUTS and type(sock) is socket.socket and seconds > 0:
        whole = int(seconds)
        timeval = struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        except OSError:
            pass
        else:
            sock.settimeout(None)
            return
    sock.settimeout(seconds)


class Headers(dict):
    """An answer's headers by lower-case name, read case-insensitively; a name sent twice keeps
    its first value (as http.client's `headers.get`)."""

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())


@dataclass
class Answer:
    status: int
    reason: str
    headers: Headers
    body: bytes | bytearray  # a bytearray: read into one of the transport's `BodyBuffers`
    will_close: bool  # the connection cannot carry another request


def host_header(host: str, port: int, https: bool) -> str:
    """The Host header of a request to host:port (as http.client writes it)."""
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        host = host.encode("idna").decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    return host if port == (443 if https else 80) else f"{host}:{port}"


def request_bytes(method: str, target: str, host: str, headers: Mapping[str, str], data: bytes | None) -> bytes:
    """The request as sent: the request line, Host, the headers, Content-Length, the body."""
    if _NOT_IN_TARGET.search(target) or _NOT_IN_TARGET.search(method):
        raise http.client.InvalidURL(f"URL can't contain control characters: {target!r}")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if _NOT_IN_VALUE.search(value) or not name or _NOT_IN_TARGET.search(name) or ":" in name:
            raise ValueError(f"invalid header {name!r}")
        lines.append(f"{name}: {value}")
    if data is not None or method in BODY_EXPECTED:
        lines.append(f"Content-Length: {len(data or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + data if data else head


class _Reads(io.RawIOBase):
    """A socket's reads for a buffered reader (as `socket.makefile`'s, without holding the socket
    open: the connection closes it). A blocking socket's receive timeout (SO_RCVTIMEO) running out
    is a TimeoutError, as a socket with a timeout raises it (`socket.SocketIO` would take it for
    the end of a non-blocking read)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        try:
            return self.sock.recv_into(buffer)
        except BlockingIOError:
            raise TimeoutError("timed out") from None


class Wire:
    """One connection's socket and its reader, kept for the answers of a kept-alive connection."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.reader = io.BufferedReader(_Reads(sock))

    def close(self) -> None:
        self.reader.close()  # (the socket closes once its connection and this reader have let it go)

    def exchange(self, method: str, target: str, host: str, headers: Mapping[str, str], data: bytes | None,
                 buffers: "BodyBuffers | None" = None) -> Answer:
        try:
            self.sock.sendall(request_bytes(method, target, host, headers, data))
        except BlockingIOError:  # a blocking socket's send timeout (SO_SNDTIMEO) ran out
            raise TimeoutError("timed out") from None
        return self.answer(method, buffers)

    def answer(self, method: str, buffers: "BodyBuffers | None" = None) -> Answer:
        """The answer; a body of a known length of `buffers.LEAST` bytes or more read into one of
        `buffers` (the list pages of many accounts, `page_body.BodyBuffers`)."""
        while True:
            version, status, reason = self._status_line()
            headers = self._headers()
            if status != 100:  # (100 Continue: the answer follows)
                break
        will_close = _will_close(version, headers)
        chunked = (headers.get("transfer-encoding") or "").lower() == "chunked"
        length = None if chunked else _length(headers)
        if status in (204, 304) or 100 <= status < 200 or method == "HEAD":
            length, chunked = 0, False
        if length is None and not chunked:
            will_close = True  # the body ends with the connection
        if chunked:
            body = self._chunked()
        elif length is not None and buffers is not None and length >= buffers.LEAST:
            body = self._into(buffers.take(length))
        elif length is not None:
            body = self._exactly(length)
        else:
            body = self.reader.read()
        return Answer(status, reason, headers, body, will_close)

    def _line(self, what: str) -> bytes:
        line = self.reader.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise http.client.LineTooLong(what)
        return line

    def _status_line(self) -> tuple[str, int, str]:
        line = self._line("status line")
        if not line:
            raise http.client.RemoteDisconnected("Remote end closed connection without response")
        version, _, rest = line.decode("iso-8859-1").strip().partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise http.client.BadStatusLine(line.decode("iso-8859-1", "replace"))
        return version, int(code), reason.strip()

    def _headers(self) -> Headers:
        headers = Headers()
        name = None
        for _ in range(MAX_HEADERS + 1):
            line = self._line("header line")
            if line in (b"\r\n", b"\n", b""):
                return headers
            text = line.decode("iso-8859-1")
            if text[0] in " \t" and name is not None:  # a folded line continues the header before it
                dict.__setitem__(headers, name, f"{dict.__getitem__(headers, name)} {text.strip()}")
                continue
            field, sep, value = text.partition(":")
            if sep:
                name = field.strip().lower()
                if name not in headers:
                    dict.__setitem__(headers, name, value.strip())
        raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")

    def _exactly(self, length: int) -> bytes:
        body = self.reader.read(length) if length else b""
        if len(body) < length:
            raise http.client.IncompleteRead(body, length - len(body))
        return body

    def _into(self, buffer: bytearray) -> bytearray:
        """The body read into `buffer` (as long as the body)."""
        with memoryview(buffer) as view:
            got = self.reader.readinto(view)
        if got < len(buffer):
            raise http.client.IncompleteRead(bytes(buffer[:got]), len(buffer) - got)
        return buffer

    def _chunked(self) -> bytes:
        parts = []
        while True:
            size_text = self._line("chunk size").split(b";", 1)[0]
            try:
                size = int(size_text, 16)
            except ValueError:
                raise http.client.IncompleteRead(b"".join(parts)) from None
            if size == 0:
                break
            parts.append(self._exactly(size))
            self._exactly(2)  # the chunk's CRLF
        while self._line("trailer line") not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(parts)


def _will_close(version: str, headers: Headers) -> bool:
    connection = (headers.get("connection") or "").lower()
    if version == "HTTP/1.0":
        return "keep-alive" not in connection and headers.get("keep-alive") is None
    return "close" in connection


def _length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        return None
    return length if length >= 0 else None
