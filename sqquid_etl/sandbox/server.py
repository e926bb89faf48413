"""HTTP side: the server, authentication, throttling, faults and the admin endpoints.

Keep-alive HTTP/1.1; every answer has a Content-Length and goes out in one write (headers and
body together, TCP_NODELAY) so a client never waits on Nagle/delayed-ACK.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .bucket import retry_after_header
from .changes import KINDS as CHANGE_KINDS
from .data import MUTATIONS, dumps
from .faults import DROP, ERROR, STORM, TRUNCATE, FaultConfig
from .params import Reject, bad
from .params import parse_params
from .routes import LIST_ROUTES, ROUTES, json_body, match

NOT_AUTH = "The auth token was not provided or is invalid"
ERROR_CODES = {400: "BadRequest", 401: "NotAuthenticated", 403: "Forbidden", 404: "NotFound",
               405: "MethodNotAllowed", 429: "TooManyRequests", 500: "Fatal", 502: "BadGateway",
               503: "ServiceUnavailable", 504: "GatewayTimeout"}


def _sizes(store) -> dict:
    with store.lock:
        return {"orders": len(store.orders), "products": len(store.products), "shipments": len(store.shipments),
                "shipment_items": len(store.shipment_items), "now": store.now}


def _account_store(app, query: str):
    """The store an admin request changes: ``?account=NAME`` with many accounts, none with one."""
    try:
        return app.store_for(parse_params(query).get("account"))
    except ValueError as e:
        raise bad(str(e)) from None


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # many clients (accounts) connect at once; the default 5 drops SYNs

    def __init__(self, address, app):
        self.app = app
        self._conns: set = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, Handler)

    def handle_error(self, request, client_address):
        """A client that hangs up (killed, timed out) is normal for a test server: no traceback."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def process_request(self, request, client_address):
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SqquidSandbox/1.0"
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PUT(self):
        self._handle("PUT")

    # ---- response writing ------------------------------------------------------------------
    def _send(self, status: int, body: bytes, headers: dict | None = None, *, cut: int | None = None,
              declared: int | None = None) -> None:
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json; charset=utf-8",
                 f"Content-Length: {len(body) if declared is None else declared}"]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if cut is not None:
            body = body[:cut]
        if len(body) < 16384:
            self.wfile.write(head + body)
        else:  # no copy of a big body; TCP_NODELAY is on, so two writes cost no delay
            self.wfile.write(head)
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        self._send(status, dumps({"code": code, "message": message}), headers)

    # ---- request handling ------------------------------------------------------------------
    def _handle(self, method: str) -> None:
        app = self.server.app
        raw_path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if raw_path.startswith("/_sandbox/"):
            return self._admin(app, method, raw_path, query, body)
        try:
            route, args = match(method, raw_path)
        except Reject as r:
            app.stats.count(None)
            return self._error(r.status, r.code, r.message)
        app.stats.count(route)
        if app.config.latency:
            time.sleep(app.config.latency)
        if route == "POST /v1/login":
            return self._login(app, body)
        owner = self._admitted(app)  # whose data: the sandbox (one account) or an ``accounts.Account``
        if owner is None:
            return
        fault = app.faults.decide()
        if fault in (STORM, ERROR):
            return self._fault_answer(app, fault)
        try:
            with owner.store.lock:
                result = ROUTES[route](owner, args, parse_params(query), body)
                out = result if isinstance(result, bytes) else dumps(result)
        except Reject as r:
            return self._error(r.status, r.code, r.message)
        if route in LIST_ROUTES:
            spec = app.faults.page_served()
            if spec:
                app.stats.add("faults_injected", "mutate")
                owner.store.mutate(spec)
        self._deliver(app, out, fault)

    def _admitted(self, app):
        """Whose data a valid token with room in its bucket reads: the sandbox itself (one
        account; a bucket per token) or its account (many; a bucket per account). Otherwise
        answers 401 or 429 and returns None."""
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        valid, account = app.tokens.check(token) if scheme.lower() == "bearer" and token else (False, None)
        if not valid:
            self._error(401, "NotAuthenticated", NOT_AUTH)
            return None
        wait = app.buckets.try_acquire(token if account is None else account)
        if account is not None:
            app.stats.account(account, "requests" if wait is None else "throttled")
        if wait is not None:
            app.stats.add("throttled")
            self._error(429, "TooManyRequests", f"Too many requests: the bucket holds {app.config.burst}, "
                                                f"leaking {app.config.rate}/s",
                        {"Retry-After": retry_after_header(wait), "X-Retry-After-Seconds": f"{wait:.3f}"})
            return None
        return app if account is None else app.accounts[account]

    def _fault_answer(self, app, fault: str) -> None:
        """A storm 429 or an error status instead of the answer."""
        if fault == STORM:
            app.stats.add("throttled")
            app.stats.add("faults_injected", STORM)
            ra = app.faults.config.storm_retry_after
            return self._error(429, "TooManyRequests", "Too many requests (injected storm)",
                               {"Retry-After": ra, "X-Retry-After-Seconds": f"{float(ra):.3f}"})
        app.stats.add("faults_injected", ERROR)
        status = app.faults.config.error_status
        return self._error(status, ERROR_CODES.get(status, "Error"), "Injected fault")

    def _deliver(self, app, out: bytes, fault: str | None) -> None:
        """Send the answer: whole, or cut (DROP: half, then the connection closes; TRUNCATE:
        a complete response whose JSON is cut in half)."""
        if fault == DROP:
            app.stats.add("faults_injected", DROP)
            self.close_connection = True
            self._send(200, out, cut=len(out) // 2, declared=len(out))
            self.wfile.flush()
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if fault == TRUNCATE:
            app.stats.add("faults_injected", TRUNCATE)
            return self._send(200, out[:max(1, len(out) // 2)])
        self._send(200, out)

    def _login(self, app, body: bytes) -> None:
        try:
            data = json_body(body)
        except Reject as r:
            return self._error(r.status, r.code, r.message)
        if not isinstance(data, dict):
            return self._error(400, "BadRequest", "Send {\"api_key\"} or {\"username\", \"password\"}")
        if "api_key" in data:
            key = data["api_key"]
            ok = isinstance(key, str) and key in app.key_accounts
            account, what = app.key_accounts.get(key) if ok else None, "api key"
        elif "username" in data and "password" in data:
            user, pw = data["username"], data["password"]
            entry = app.user_accounts.get(user) if isinstance(user, str) else None
            ok = isinstance(pw, str) and entry is not None and entry[0] == pw
            account, what = entry[1] if ok else None, "username or password"
        else:
            return self._error(400, "BadRequest", "Send {\"api_key\"} or {\"username\", \"password\"}")
        if not ok:
            return self._error(401, "NotAuthenticated", f"Invalid {what}")
        app.stats.add("logins")
        self._send(200, dumps({"token": app.tokens.issue(account)}))

    def _admin(self, app, method: str, raw_path: str, query: str, body: bytes) -> None:
        """The admin endpoints; ``mutate`` and ``changes`` change one account's data: with many
        accounts, the one named by ``?account=NAME``."""
        name = raw_path[len("/_sandbox/"):].strip("/")
        try:
            if name == "faults" and method == "GET":
                return self._send(200, dumps(app.faults.config.to_dict()))
            if name == "faults" and method == "POST":
                try:
                    cfg = FaultConfig.from_dict(json_body(body) or {})
                except (TypeError, ValueError) as e:
                    raise bad(str(e)) from None
                app.set_faults(cfg)
                return self._send(200, dumps(cfg.to_dict()))
            if name == "expire-tokens" and method == "POST":
                return self._send(200, dumps({"expired": app.expire_tokens()}))
            if name == "stats" and method == "GET":
                return self._send(200, dumps(app.stats.to_dict()))
            if name == "stats" and method == "DELETE":
                app.stats.reset()
                return self._send(200, dumps("OK"))
            if name == "mutate" and method == "POST":
                spec = json_body(body) or {}
                if not isinstance(spec, dict) or any(
                        k not in MUTATIONS or not isinstance(v, int) or isinstance(v, bool) or v < 0
                        for k, v in spec.items()):
                    raise bad(f"mutate takes {{name: n}} with names in {', '.join(MUTATIONS)}")
                store = _account_store(app, query)
                store.mutate(spec)
                return self._send(200, dumps(_sizes(store)))
            if name == "changes" and method == "POST":  # edits, scope moves, deletions (``changes.py``)
                spec = json_body(body) or {}
                seed = spec.pop("seed", 0) if isinstance(spec, dict) else None
                if not isinstance(spec, dict) or not isinstance(seed, int) or any(
                        k not in CHANGE_KINDS or not isinstance(v, int) or isinstance(v, bool) or v < 0
                        for k, v in spec.items()):
                    raise bad(f"changes takes {{kind: n, \"seed\": n}} with kinds in {', '.join(CHANGE_KINDS)}")
                return self._send(200, dumps(_account_store(app, query).apply_changes(spec, seed)))
            if name in ("faults", "expire-tokens", "stats", "mutate", "changes"):
                raise Reject(405, "MethodNotAllowed", f"{method} is not allowed on {raw_path}")
            raise Reject(404, "NotFound", f"No such admin endpoint: {raw_path}")
        except Reject as r:
            self._error(r.status, r.code, r.message)
