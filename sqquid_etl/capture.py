"""`sqquid-etl capture`: a small, scrubbed recording of a real account, to replay as a test.

One extract of the selected streams, into a throw-away DuckDB file, bounded to the first
`max_pages` pages of every listing, is recorded request by request: the cassette holds exactly
the requests an extract makes and the answers it got, so a replay (`replay`) runs a full
`extract(...)` against it. The bound is applied to the answers the extract sees (and records): a
page past it is empty, an offset list's `total` and a `/count` answer say no more than the
bound, so the capture is a small account that is consistent with itself. The fetch is
sequential (pacing is done here, not by the client), so a replay asks the same requests.

Nothing is written before it is scrubbed: no Authorization header, no api key or password (the
login body), the token replaced by a fake JWT whose `exp` is far away, the base URL replaced by
a placeholder of the same length (the URL length decides the key batches of `inventory`), and
every personal field (a key holding name, email, phone, address, street, city, zip, postal,
company) replaced by a fake derived from a keyed hash of its value: the same value gives the
same fake within a capture (joins still work), and the fakes cannot be reversed by guessing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .client import Credentials, SqquidClient, base_url_from_env
from .definitions import StreamDefinition, load_definitions, with_dependencies
from .pacing import LeakyBucketPacer
from .pipeline import ExtractResult, extract
from .redaction import PERSONAL, is_personal
from .settings import DEFAULT_BURST, DEFAULT_RATE
from .transport import Response, Transport, full_url

FILTERED = "FILTERED"
FAR_EXP = 4102444800  # 2100-01-01: a replay never needs another login
MANIFEST_SUFFIX = ".json"
KEPT_RESPONSE_HEADERS = ("content-type",)  # compared in lower case
KEPT_REQUEST_HEADERS = ("accept", "content-type", "user-agent")


def fake_token() -> str:
    """A JWT-shaped token whose `exp` the client reads as far away (unsigned: nothing checks it)."""
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'sub': 'capture', 'exp': FAR_EXP})}.{FILTERED}"


def placeholder_url(length: int) -> str:
    """An https URL on a `.invalid` host of exactly `length` characters (when it can be)."""
    room = max(1, length - len("https://") - len(".invalid"))
    core = ("capture" + "x" * room)[:room]
    labels = [core[i:i + 60] for i in range(0, len(core), 60)]
    return "https://" + ".".join(labels)[:room] + ".invalid"


@dataclass
class CaptureResult:
    cassette: Path
    manifest: Path
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)  # stream -> records, api_count, status
    requests: int = 0


# -- bounding: the first pages of every listing, and counts that agree with them ------------------

class Bounds:
    """Rewrites the answers of list and /count requests so every listing ends after `max_pages`
    pages; remembers the API's own counts (the real size of the account) for the manifest."""

    def __init__(self, streams: list[StreamDefinition], max_pages: int):
        self.max_pages = max_pages
        self.lists = {s.path: s for s in streams}
        self.counts = {s.count.path: s for s in streams if s.count is not None}
        self._api_counts: dict[tuple[str, str], int] = {}  # (stream, query) -> the API's answer
        self._lock = threading.Lock()

    def api_count(self, stream: str) -> int | None:
        """The API's own count of the stream (its windows' answers added up), None when not asked."""
        with self._lock:
            answers = [n for (name, _), n in self._api_counts.items() if name == stream]
        return sum(answers) if answers else None

    def rewrite(self, path: str, query: dict[str, str], body: bytes) -> bytes:
        stream = self.lists.get(path) or self.counts.get(path)
        if stream is None or not body:
            return body
        try:
            data = json.loads(body)
        except ValueError:
            return body  # the extract will see (and fail on) what the API sent
        bound = self.max_pages * stream.paginator.limit
        if path in self.counts and stream.count is not None:
            value = data.get(stream.count.envelope) if isinstance(data, dict) else None
            if not isinstance(value, int) or isinstance(value, bool):
                return body
            with self._lock:
                self._api_counts[(stream.name, json.dumps(sorted(query.items())))] = value
            data[stream.count.envelope] = min(value, bound)
        else:
            data = _bound_page(stream, query, data, bound)
        return json.dumps(data, ensure_ascii=False).encode()


def _bound_page(stream: StreamDefinition, query: dict[str, str], data: Any, bound: int) -> Any:
    if stream.paginator.type == "page_number":
        before = (_int(query.get("page"), 1) - 1) * _int(query.get("limit"), stream.paginator.limit)
    else:
        before = _int(query.get("offset"), 0)
    records = data.get(stream.envelope) if isinstance(data, dict) else data
    if not isinstance(records, list):
        return data
    kept = records[:max(0, bound - before)]
    if not isinstance(data, dict):
        return kept
    data[stream.envelope] = kept
    if isinstance(data.get("total"), int) and not isinstance(data.get("total"), bool):
        data["total"] = min(data["total"], bound)
    return data


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


# -- scrubbing -------------------------------------------------------------------------------------

class Scrubber:
    """Everything that leaves the process goes through here: secrets out, personal data faked,
    the base URL replaced."""

    def __init__(self, base_url: str, credentials: Credentials):
        self.base_url = base_url.rstrip("/")
        self.placeholder = placeholder_url(len(self.base_url))
        self._salt = secrets.token_bytes(32)  # never written: the fakes cannot be reversed
        self.secrets = {s for s in (credentials.api_key, credentials.password) if s}
        self.username = credentials.username

    def url(self, url: str) -> str:
        return self.placeholder + url[len(self.base_url):] if url.startswith(self.base_url) else url

    def login_body(self) -> bytes:
        body = {"api_key": FILTERED} if not self.username else {"username": self.fake("username", self.username),
                                                               "password": FILTERED}
        return json.dumps(body).encode()

    def login_answer(self, body: bytes) -> bytes:
        try:
            data = json.loads(body)
        except ValueError:
            return b""
        if isinstance(data, dict) and isinstance(data.get("token"), str):
            self.secrets.add(data["token"])
            data["token"] = fake_token()
        return json.dumps(self.value(data)).encode()

    def body(self, body: bytes) -> bytes:
        try:
            data = json.loads(body)
        except ValueError:
            return self.text(body.decode("utf-8", "replace")).encode()
        return json.dumps(self.value(data), ensure_ascii=False).encode()

    def text(self, text: str) -> str:
        """A string that is not a personal field's: no secret, no real base URL or host in it."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, FILTERED)
        host = urlsplit(self.base_url).netloc
        return text.replace(self.base_url, self.placeholder).replace(host, urlsplit(self.placeholder).netloc)

    def value(self, value: Any, personal: str | None = None) -> Any:
        """A JSON value with every personal field faked (`personal`: the key above it that is)."""
        if isinstance(value, dict):
            return {k: self.value(v, personal or (k if is_personal(k) else None)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, personal) for v in value]
        if personal is not None:
            return self.fake(personal, value)
        return self.text(value) if isinstance(value, str) else value

    def fake(self, key: str, value: Any) -> Any:
        """The same type, a stable fake: text stays text (an email an email, digits digits),
        a number a number of as many digits; empty, null and booleans as they are."""
        if value is None or isinstance(value, bool) or value == "":
            return value
        digest = hmac.new(self._salt, f"{type(value).__name__}:{value}".encode(), hashlib.sha256).hexdigest()
        digits = str(int(digest, 16))
        if isinstance(value, (int, float)):
            size = len(str(abs(int(value)))) or 1
            number = int(("1" + digits)[:size])
            return float(number) if isinstance(value, float) else number
        word = next((w for w in PERSONAL if w in key.lower()), "personal")
        if word == "email":
            return f"user-{digest[:10]}@example.com"
        if str(value).replace(" ", "").replace("-", "").replace("+", "").isdigit():
            return ("1" + digits)[:len(str(value))]
        return f"{word}-{digest[:10]}"


# -- recording -------------------------------------------------------------------------------------

class Recorder:
    """The client's transport during a capture (it wraps the client's own): paces, bounds the
    answers the extract sees, and keeps each request with its (bounded, scrubbed) answer."""

    def __init__(self, inner: Transport, base_url: str, bounds: Bounds, scrubber: Scrubber, pacer: LeakyBucketPacer):
        self.inner = inner
        self.base_path = urlsplit(base_url).path.rstrip("/")
        self.bounds, self.scrubber, self.pacer = bounds, scrubber, pacer
        self.interactions: list[tuple[Any, dict]] = []
        self._lock = threading.Lock()

    def send(self, method: str, url: str, params: dict[str, Any] | None = None, data: bytes | None = None,
             headers: dict[str, str] | None = None) -> Response:
        self.pacer.acquire()
        response = self.inner.send(method, url, params, data, headers)
        url = full_url(url, params)
        parts = urlsplit(url)
        path = parts.path[len(self.base_path):] if parts.path.startswith(self.base_path) else parts.path
        login = method == "POST" and path == "/v1/login"
        if method == "GET" and response.status < 300:
            response.content = self.bounds.rewrite(path, dict(parse_qsl(parts.query)), response.content)
        self._keep(method, url, data, headers or {}, response, login)
        return response

    def close(self) -> None:
        self.inner.close()

    def _keep(self, method: str, url: str, data: bytes | None, headers: dict[str, str], response: Response,
              login: bool) -> None:
        from vcr.request import Request

        scrub, content = self.scrubber, response.content
        if login:
            body: bytes | None = scrub.login_body()
            answer = scrub.login_answer(content) if response.status < 300 else scrub.body(content)
        else:
            body = scrub.body(data) if data else None
            answer = scrub.body(content) if content else b""
        kept_request = {k: v for k, v in headers.items() if k.lower() in KEPT_REQUEST_HEADERS}
        recorded = Request(method, scrub.url(url), body, kept_request)
        kept = {k: [v] for k, v in response.headers.items() if k.lower() in KEPT_RESPONSE_HEADERS}
        answer_dict = {"status": {"code": response.status, "message": response.reason or ""},
                       "headers": kept, "body": {"string": answer}}
        with self._lock:
            self.interactions.append((recorded, answer_dict))


def save_cassette(path: Path, interactions: list[tuple[Any, dict]]) -> None:
    from vcr.serialize import serialize
    from vcr.serializers import yamlserializer

    text = serialize({"requests": [r for r, _ in interactions], "responses": [a for _, a in interactions]},
                     yamlserializer)
    path.write_text(text, encoding="utf-8")


# -- the capture and its replay --------------------------------------------------------------------

def capture(
    directory: str | Path,
    *,
    name: str | None = None,
    streams: list[str] | None = None,
    max_pages: int = 2,
    base_url: str | None = None,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    rate: float | None = DEFAULT_RATE,
    burst: int = DEFAULT_BURST,
) -> CaptureResult:
    """Record one extract of the selected streams, bounded to `max_pages` pages a listing, into
    DIR/NAME.yaml (the cassette) and DIR/NAME.json (the manifest), then replay it to prove it
    complete. Nothing unscrubbed is written."""
    if max_pages < 1:
        from .errors import ConfigError

        raise ConfigError(f"--max-pages {max_pages}: must be at least 1")
    credentials = Credentials.from_env(api_key, username, password)
    url = base_url_from_env(base_url)
    definitions = load_definitions()
    selected = with_dependencies(definitions, streams)
    stamp = datetime.now(timezone.utc).replace(microsecond=0)
    name = name or f"capture-{stamp.strftime('%Y%m%dT%H%M%SZ')}"
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    bounds = Bounds(selected, max_pages)
    with SqquidClient(credentials, url, rate=None) as client:  # sequential fetch: a replay asks the same
        scrubber = Scrubber(client.base_url, credentials)
        recorder = Recorder(client.transport, client.base_url, bounds, scrubber,
                            LeakyBucketPacer(rate=rate or None, burst=burst))
        client.transport = recorder
        with tempfile.TemporaryDirectory(prefix="sqquid-capture-") as tmp:
            result = extract([s.name for s in selected], duckdb=Path(tmp) / "capture.duckdb", client=client,
                             reconcile=False)
    cassette, manifest = directory / f"{name}.yaml", directory / f"{name}{MANIFEST_SUFFIX}"
    save_cassette(cassette, recorder.interactions)
    out = CaptureResult(cassette, manifest, requests=len(recorder.interactions))
    for s in result.streams:
        out.streams[s.stream] = {"status": s.status, "records": s.records_stored + s.records_quarantined,
                                 "records_quarantined": s.records_quarantined,
                                 "api_count": bounds.api_count(s.stream)}
    manifest.write_text(json.dumps({
        "cassette": cassette.name, "created_at": stamp.isoformat(), "host": urlsplit(client.base_url).hostname,
        "base_url": scrubber.placeholder, "max_pages": max_pages, "requests": out.requests,
        "streams": out.streams,
    }, indent=2) + "\n", encoding="utf-8")
    return out


def read_manifest(cassette: str | Path) -> dict[str, Any]:
    path = Path(cassette).with_suffix(MANIFEST_SUFFIX)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def replay(cassette: str | Path, duckdb: str | Path, streams: list[str] | None = None) -> ExtractResult:
    """A full `extract(...)` of the cassette's streams into `duckdb`, every answer from the
    cassette (matched on method, path and query; a request it does not hold is an error)."""
    import vcr

    manifest = read_manifest(cassette)
    names = streams or list(manifest.get("streams", {})) or None
    base_url = manifest.get("base_url") or placeholder_url(22)
    recorder = vcr.VCR(record_mode="none", match_on=["method", "path", "query"], decode_compressed_response=False)
    with recorder.use_cassette(str(cassette)):
        with SqquidClient(Credentials(api_key=FILTERED), base_url, rate=None, backoff_base=0.001) as client:
            return extract(names, duckdb=duckdb, client=client, reconcile=False)
