"""HTTP side: routing, authentication, throttling, faults, and the handlers of every endpoint.

Keep-alive HTTP/1.1; every answer has a Content-Length and goes out in one write (headers and
body together, TCP_NODELAY) so a client never waits on Nagle/delayed-ACK.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from . import crud, views
from .bucket import retry_after_header
from .data import MUTATIONS, dumps
from .faults import DROP, ERROR, STORM, TRUNCATE, FaultConfig
from .views import Reject, bad

NOT_AUTH = "The auth token was not provided or is invalid"
ERROR_CODES = {400: "BadRequest", 401: "NotAuthenticated", 403: "Forbidden", 404: "NotFound",
               405: "MethodNotAllowed", 429: "TooManyRequests", 500: "Fatal", 502: "BadGateway",
               503: "ServiceUnavailable", 504: "GatewayTimeout"}


def _json(body: bytes):
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise bad(crud.INVALID_JSON) from None


def _int_arg(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise bad(f"{what} needs to be an integer") from None


# Each handler: (app, args, params, body bytes) -> bytes or a JSON-able object.
def _v1_list(route):
    return lambda app, a, p, b: views.v1_list(app.store, route, p)


def _v1_count(route):
    return lambda app, a, p, b: views.v1_count(app.store, route, p)


def _order_shipments(app, a, p, b):
    order_id = _int_arg(a[0], "order id")
    recs = sorted(app.store.shipments_by_order.get(order_id, ()), key=lambda s: s["id"])
    return b'{"Shipments":[' + views.page_bytes(app.store, "shipments", recs) + b"]}"


def _returns(app, a, p, b):
    order_id = _int_arg(a[0], "order id")
    if order_id not in app.store.order_by_id:
        raise views.not_found("Order not found")
    return app.store.returns.get(order_id, [])


def _inventory_set(full):
    def handler(app, a, p, b):
        updates = crud.inventory_updates(_json(b))
        app.store.set_inventory(updates, full=full)
        return "OK"
    return handler


def _inventory_delete(app, a, p, b):
    inventory_id = _int_arg(a[1], "inventory id") if len(a) > 1 else None
    if not app.store.delete_inventory(a[0], inventory_id) and inventory_id is not None:
        raise views.not_found("Inventory record not found")
    return "OK"


ROUTES = {
    "POST /v1/login": None,  # answered by Handler._login (no token, no throttle, no faults)
    "GET /v1/orders": _v1_list("/v1/orders"),
    "GET /v1/orders/count": _v1_count("/v1/orders"),
    "GET /v1/products": _v1_list("/v1/products"),
    "GET /v1/products/count": _v1_count("/v1/products"),
    "POST /v1/products/inventory/update": lambda app, a, p, b: crud.legacy_inventory_update(app.store, p),
    "GET /v1/shipments": _v1_list("/v1/shipments"),
    "GET /v1/shipments/count": _v1_count("/v1/shipments"),
    "GET /v1/order/{order_id}/shipments": _order_shipments,
    "POST /v1/order/{order_id}/shipments":
        lambda app, a, p, b: crud.shipment_create(app.store, _int_arg(a[0], "order id"), _json(b)),
    "GET /v1/shipmentitems": _v1_list("/v1/shipmentitems"),
    "GET /v1/shipmentitems/count": _v1_count("/v1/shipmentitems"),
    "PATCH /v1/shipmentitems/{id}/cancel":
        lambda app, a, p, b: crud.shipment_item_cancel(app.store, _int_arg(a[0], "shipment item id")),
    "GET /v2/products": lambda app, a, p, b: views.v2_products(app.store, p),
    "POST /v2/products": lambda app, a, p, b: crud.product_upsert(app.store, _json(b)),
    "PATCH /v2/products/{sku}": lambda app, a, p, b: crud.product_upsert(app.store, _json(b), sku=a[0]),
    "DELETE /v2/products/{sku}": lambda app, a, p, b: crud.product_delete(app.store, a[0]),
    "GET /v2/products/{sku}/variants": lambda app, a, p, b: crud.variants_list(app.store, a[0]),
    "POST /v2/products/{sku}/variants": lambda app, a, p, b: crud.variant_upsert(app.store, a[0], _json(b)),
    "PATCH /v2/products/{sku}/variants/{variant_sku}":
        lambda app, a, p, b: crud.variant_upsert(app.store, a[0], _json(b), variant_sku=a[1]),
    "DELETE /v2/products/{sku}/variants/{variant_sku}":
        lambda app, a, p, b: crud.variant_delete(app.store, a[0], a[1]),
    "GET /v1/inventory": lambda app, a, p, b: views.inventory_list(app.store, p),
    "PATCH /v1/inventory/partial": _inventory_set(full=False),
    "PATCH /v1/inventory/full": _inventory_set(full=True),
    "GET /v1/inventory/{sku}": lambda app, a, p, b: app.store.inventory_of(a[0]),
    "PATCH /v1/inventory/{sku}": lambda app, a, p, b: crud.inventory_patch(app.store, a[0], _json(b)),
    "DELETE /v1/inventory/{sku}": _inventory_delete,
    "DELETE /v1/inventory/{sku}/{inventory_id}": _inventory_delete,
    "GET /v1/buffers": lambda app, a, p, b: views.buffers_list(app.store, p),
    "POST /v1/buffers": lambda app, a, p, b: crud.buffer_create(app.store, _json(b)),
    "PATCH /v1/buffers/{buffer_id}": lambda app, a, p, b: crud.buffer_set(app.store, a[0], _json(b)),
    "PATCH /v1/buffers/{buffer_id}/add": lambda app, a, p, b: crud.buffer_set(app.store, a[0], _json(b), add=True),
    "DELETE /v1/buffers/{buffer_id}": lambda app, a, p, b: crud.buffer_delete(app.store, a[0]),
    "GET /v1/locations": lambda app, a, p, b: views.locations_list(app.store, p),
    "POST /v1/locations": lambda app, a, p, b: crud.location_create(app.store, _json(b)),
    "PATCH /v1/locations/{location_id}": lambda app, a, p, b: crud.location_update(app.store, a[0], _json(b)),
    "DELETE /v1/locations/{location_id}": lambda app, a, p, b: crud.location_delete(app.store, a[0]),
    "GET /v2/orders/{order_id}/returns": _returns,
    "POST /v2/orders/{order_id}/returns":
        lambda app, a, p, b: crud.return_create(app.store, _int_arg(a[0], "order id"), _json(b)),
}
LIST_ROUTES = {"GET /v1/orders", "GET /v1/products", "GET /v1/shipments", "GET /v1/shipmentitems",
               "GET /v2/products", "GET /v1/inventory", "GET /v1/buffers", "GET /v1/locations"}

# (method, segments) with literal segments first so /v1/inventory/partial beats {sku}.
_TEMPLATES = sorted(
    ((key.split(" ", 1)[0], tuple(key.split(" ", 1)[1].strip("/").split("/")), key) for key in ROUTES),
    key=lambda t: sum(s.startswith("{") for s in t[1]))


def match(method: str, raw_path: str) -> tuple[str, list[str]]:
    """Route key and decoded path arguments; Reject 404/405 otherwise. Segments are split on
    the raw path, then percent-decoded (a sku may contain ``%2F``)."""
    segments = [unquote(s) for s in raw_path.strip("/").split("/")]
    allowed = []
    for m, template, key in _TEMPLATES:
        if len(template) != len(segments):
            continue
        args = []
        for t, s in zip(template, segments):
            if t.startswith("{"):
                if s == "":
                    break
                args.append(s)
            elif t != s:
                break
        else:
            if m == method:
                return key, args
            allowed.append(m)
    if allowed:
        raise Reject(405, "MethodNotAllowed", f"{method} is not allowed here (allowed: {', '.join(sorted(set(allowed)))})")
    raise Reject(404, "NotFound", f"No such endpoint: {method} {raw_path}")


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

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
            return self._admin(app, method, raw_path, body)
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
        auth = self.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or not app.tokens.valid(token):
            return self._error(401, "NotAuthenticated", NOT_AUTH)
        wait = app.buckets.try_acquire(token)
        if wait is not None:
            app.stats.add("throttled")
            return self._error(429, "TooManyRequests",
                               f"Too many requests: the bucket holds {app.config.burst}, "
                               f"leaking {app.config.rate}/s", {
                                   "Retry-After": retry_after_header(wait),
                                   "X-Retry-After-Seconds": f"{wait:.3f}"})
        fault = app.faults.decide()
        if fault == STORM:
            app.stats.add("throttled")
            app.stats.add("faults_injected", STORM)
            ra = app.faults.config.storm_retry_after
            return self._error(429, "TooManyRequests", "Too many requests (injected storm)",
                               {"Retry-After": ra, "X-Retry-After-Seconds": f"{float(ra):.3f}"})
        if fault == ERROR:
            app.stats.add("faults_injected", ERROR)
            status = app.faults.config.error_status
            return self._error(status, ERROR_CODES.get(status, "Error"), "Injected fault")
        params = views.parse_params(query)
        try:
            with app.store.lock:
                result = ROUTES[route](app, args, params, body)
                out = result if isinstance(result, bytes) else dumps(result)
        except Reject as r:
            return self._error(r.status, r.code, r.message)
        if route in LIST_ROUTES:
            spec = app.faults.page_served()
            if spec:
                app.stats.add("faults_injected", "mutate")
                app.store.mutate(spec)
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
            data = _json(body)
        except Reject as r:
            return self._error(r.status, r.code, r.message)
        if not isinstance(data, dict):
            return self._error(400, "BadRequest", "Send {\"api_key\"} or {\"username\", \"password\"}")
        if "api_key" in data:
            ok = isinstance(data["api_key"], str) and data["api_key"] in app.config.api_keys
            what = "api key"
        elif "username" in data and "password" in data:
            user, pw = data["username"], data["password"]
            ok = isinstance(user, str) and isinstance(pw, str) and app.config.users.get(user) == pw
            what = "username or password"
        else:
            return self._error(400, "BadRequest", "Send {\"api_key\"} or {\"username\", \"password\"}")
        if not ok:
            return self._error(401, "NotAuthenticated", f"Invalid {what}")
        app.stats.add("logins")
        self._send(200, dumps({"token": app.tokens.issue()}))

    def _admin(self, app, method: str, raw_path: str, body: bytes) -> None:
        name = raw_path[len("/_sandbox/"):].strip("/")
        try:
            if name == "faults" and method == "GET":
                return self._send(200, dumps(app.faults.config.to_dict()))
            if name == "faults" and method == "POST":
                try:
                    cfg = FaultConfig.from_dict(_json(body) or {})
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
                spec = _json(body) or {}
                if not isinstance(spec, dict) or any(
                        k not in MUTATIONS or not isinstance(v, int) or isinstance(v, bool) or v < 0
                        for k, v in spec.items()):
                    raise bad(f"mutate takes {{name: n}} with names in {', '.join(MUTATIONS)}")
                app.store.mutate(spec)
                s = app.store
                return self._send(200, dumps({"orders": len(s.orders), "products": len(s.products),
                                              "shipments": len(s.shipments),
                                              "shipment_items": len(s.shipment_items), "now": s.now}))
            if name in ("faults", "expire-tokens", "stats", "mutate"):
                raise Reject(405, "MethodNotAllowed", f"{method} is not allowed on {raw_path}")
            raise Reject(404, "NotFound", f"No such admin endpoint: {raw_path}")
        except Reject as r:
            self._error(r.status, r.code, r.message)
