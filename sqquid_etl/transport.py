"""HTTP/1.1 over the standard library: what the client needs and nothing else.

Keep-alive connections shared by the client's threads (a small pool), the proxy for the API's
host and the CA bundle read from the environment once, gzip/deflate answers decoded, a connect
and a read timeout (kept by the kernel on a plain socket: `http_wire.answers_within`). A connection is made by `http.client` (TCP, TLS, a proxy's tunnel); its
requests and answers go through `http_wire` (a leaner reading of the answer), unless a recorder
replaced http.client's connection classes (vcrpy), which then exchanges them itself. A transport failure (refused, reset, timed out, a body cut short) is a
`TransportError`, which the client retries; an HTTP status is never an error here.

Why not requests: importing it costs ~0.05 s of CPU and each request ~0.5 ms more, on every
scheduled run (bench/startup.py); the client uses none of its features beyond these.
"""

from __future__ import annotations

import base64
import http.client
import os
import threading
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import unquote, urlencode, urlsplit

from .http_wire import Wire, answers_within, host_header

if TYPE_CHECKING:
    from .body_buffers import BodyBuffers

# a connection that the server closed while it was idle fails like this when it is used again
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class TransportError(Exception):
    """The request got no complete answer (connection refused or reset, timeout, body cut short)."""


@dataclass
class Response:
    status: int
    reason: str
    headers: Mapping[str, str]  # case-insensitive (http_wire.Headers, or an http.client message)
    content: bytes  # (or a bytearray: a body read into one of the `body_buffers`)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


def full_url(url: str, params: Mapping[str, Any] | None) -> str:
    """`url` with `params` as its query, encoded as requests does (a list repeats its key, None is left out)."""
    if not params:
        return url
    query = urlencode([(k, v) for k, v in params.items() if v is not None], doseq=True)
    return f"{url}{'&' if '?' in url else '?'}{query}" if query else url


class Transport:
    """Connections to one API host (scheme, host, port of `base_url`), shared between threads."""

    def __init__(self, base_url: str, timeout: tuple[float, float] = (10.0, 60.0), pool_size: int = 8):
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.connect_timeout, self.read_timeout = timeout
        self.pool_size = max(1, pool_size)
        self.proxy = proxy_for(base_url)
        self.host_header = host_header(self.host, self.port, self.https)
        self.ca_bundle = ca_bundle()
        self._ssl_context: Any = None
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        # large bodies read into buffers used again (the list pages of many accounts: `page_body.BodyBuffers`)
        self.body_buffers: BodyBuffers | None = None

    def send(self, method: str, url: str, params: Mapping[str, Any] | None = None, data: bytes | None = None,
             headers: Mapping[str, str] | None = None) -> Response:
        """One request, its whole answer. A kept-alive connection the server had closed is
        replaced once, at once (the request never reached it)."""
        target = full_url(url, params)
        headers = {"Accept-Encoding": "gzip, deflate", **(headers or {})}
        conn, reused = self._take()
        try:
            return self._exchange(conn, method, target, data, headers)
        except _STALE:
            _close(conn)
            if not reused:
                raise TransportError("the server closed the connection without answering") from None
        except (OSError, http.client.HTTPException, zlib.error) as exc:
            _close(conn)
            raise TransportError(f"{type(exc).__name__}: {exc}") from None
        conn = self._connect()
        try:
            return self._exchange(conn, method, target, data, headers)
        except (OSError, http.client.HTTPException, zlib.error) as exc:
            _close(conn)
            raise TransportError(f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)

    # -- connections --------------------------------------------------------------------------

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._connect(), False

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self.pool_size:
                self._idle.append(conn)
                return
        _close(conn)

    def _connect(self) -> http.client.HTTPConnection:
        """A new connection (to the proxy when one is set for the host; through it for https).
        `http.client` is looked up here, on every call, so that a recorder patching it (vcrpy) is used."""
        host, port = (self.proxy.host, self.proxy.port) if self.proxy else (self.host, self.port)
        if self.https:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=self.connect_timeout, context=self._context())
            if self.proxy:
                conn.set_tunnel(self.host, self.port, headers=self.proxy.headers)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.connect_timeout)
        return conn

    def _context(self) -> Any:
        if self._ssl_context is None:
            import ssl  # only for https (~0.01 s)

            bundle = self.ca_bundle
            folder = bundle is not None and os.path.isdir(bundle)  # a directory of certificates, as requests allows
            self._ssl_context = ssl.create_default_context(cafile=None if folder else bundle, capath=bundle if folder else None)
        return self._ssl_context

    def _exchange(self, conn: http.client.HTTPConnection, method: str, target: str, data: bytes | None,
                  headers: dict[str, str]) -> Response:
        if getattr(conn, "sock", None) is None:
            conn.connect()
            sock = getattr(conn, "sock", None)
            if sock is not None and hasattr(sock, "settimeout"):  # connected in connect_timeout; answers within read_timeout
                if type(conn).__module__ == "http.client":  # (read by http_wire: a plain socket blocks, the kernel's timeouts)
                    answers_within(sock, self.read_timeout)
                else:  # (a recorder's connection, read by http.client)
                    sock.settimeout(self.read_timeout)
        if self.proxy and not self.https:
            headers = {**headers, **self.proxy.headers}  # a plain-http request goes to the proxy whole
        else:
            target = _path_and_query(target)
        wire = _wire(conn)
        if wire is None:  # (a recorder's connection: it answers)
            return self._recorded_exchange(conn, method, target, data, headers)
        answer = wire.exchange(method, target, self.host_header, headers, data, self.body_buffers)
        content = _decoded(answer.body, answer.headers.get("Content-Encoding"))
        if answer.will_close:
            _close(conn)
        else:
            self._give_back(conn)
        return Response(answer.status, answer.reason, answer.headers, content)

    def _recorded_exchange(self, conn: http.client.HTTPConnection, method: str, target: str, data: bytes | None,
                           headers: dict[str, str]) -> Response:
        conn.request(method, target, body=data, headers=headers)
        answer = conn.getresponse()
        content = _decoded(answer.read(), answer.getheader("Content-Encoding"))
        if getattr(answer, "will_close", True):
            conn.close()
        else:
            self._give_back(conn)
        return Response(answer.status, answer.reason or "", answer.headers if answer.headers is not None else {}, content)


def _wire(conn: http.client.HTTPConnection) -> Wire | None:
    """The connection's wire (made once it is connected), or None for a connection not of http.client
    (a recorder's, e.g. vcrpy's, which must see the request go through http.client)."""
    if type(conn).__module__ != "http.client" or getattr(conn, "sock", None) is None:
        return None
    wire = getattr(conn, "_sqquid_wire", None)
    if wire is None or wire.sock is not conn.sock:
        if wire is not None:
            wire.close()  # (the reader of a socket the connection no longer has)
        wire = conn._sqquid_wire = Wire(conn.sock)  # type: ignore[attr-defined]
    return wire


def _close(conn: http.client.HTTPConnection) -> None:
    wire = getattr(conn, "_sqquid_wire", None)
    if wire is not None:
        wire.close()
        conn._sqquid_wire = None  # type: ignore[attr-defined]
    conn.close()


def ca_bundle() -> str | None:
    """The certificates an https connection trusts, as requests chose them: REQUESTS_CA_BUNDLE or
    CURL_CA_BUNDLE (or SSL_CERT_FILE) when set, else certifi's bundle where it is installed (a slim
    image may have no system store), else the system's."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        if os.environ.get(name):
            return os.environ[name]
    try:
        import certifi
    except ImportError:  # pragma: no cover - requests brings it
        return None
    return certifi.where()


@dataclass(frozen=True)
class Proxy:
    host: str
    port: int
    headers: dict[str, str]  # Proxy-Authorization when the proxy URL holds a user


def proxy_for(base_url: str) -> Proxy | None:
    """The proxy the environment sets for `base_url`'s scheme (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY),
    unless NO_PROXY exempts its host; read once, as the client is made."""
    parts = urlsplit(base_url)
    proxies = _environ_proxies()
    url = proxies.get(parts.scheme) or proxies.get("all")
    if not url or _exempt(parts.hostname or "", parts.port, proxies.get("no", "")):
        return None
    proxy = urlsplit(url if "://" in url else f"http://{url}")
    headers = {}
    if proxy.username is not None:
        user = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}".encode()
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(user).decode()
    return Proxy(proxy.hostname or "", proxy.port or 8080, headers)


def _environ_proxies() -> dict[str, str]:
    """{"https": url, "no": hosts, ...} from the *_PROXY variables, a lower-case name winning over
    its upper-case one (as urllib.request reads them; not imported: it costs ~0.01 s of CPU)."""
    proxies: dict[str, str] = {}
    for lower_case in (False, True):
        for name, value in os.environ.items():
            if value and name.lower().endswith("_proxy") and (name == name.lower()) == lower_case:
                proxies[name.lower()[:-len("_proxy")]] = value
    return proxies


def _exempt(host: str, port: int | None, no_proxy: str) -> bool:
    """NO_PROXY holds `host` (itself, a parent domain, `*`, or host:port)."""
    host = host.lower()
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, entry_port = entry.partition(":")
        if entry_port and port is not None and entry_port != str(port):
            continue
        name = name.lstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False


def _path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _decoded(content: bytes, encoding: str | None) -> bytes:
    encoding = (encoding or "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompress(content, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        try:
            return zlib.decompress(content)
        except zlib.error:  # raw deflate, as some servers send it
            return zlib.decompress(content, -zlib.MAX_WBITS)
    return content
