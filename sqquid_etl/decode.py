"""Decoding list responses: the one owner that turns a response body into a `Page` (its
records, the envelope's paging metadata, and the immutable plan it was read with).

A body is read by Arrow's JSON reader straight into one struct array typed by the stream's
schema (in C++, without the GIL, no Python object per value) wherever the plan allows it. The
fetch threads decode; the consumer only converts (`records.page_tables`). Fields the schema does
not name are read too, so a page holding any says so (`Page.undocumented`) at no cost to one that
does not; the conversion then finds them (`evolve.py`).

Arrow's reader refuses a field whose values change type (an id sent as `"27"`, a price as a
number): such a page is decoded by Python once, the fields that do not fit are learned, and the
body is read by Arrow again otherwise: a decimal field of numbers and text, or an integer field
of integers and text, as a decimal (Arrow reads both; the values coerced are counted from the
page's dicts); any other without the field, which the conversion then takes from the page's
dicts (decoded when it needs them), coercing only the values that do not fit (`columns.py`).
Undocumented fields seen with one scalar type are learned so too and read by Arrow (`plan.py`).
Numbers in text fields (the API's usual inconsistency) are learned for good. Other drift is
learned while it lasts: one page in `PROBE_EVERY` is first tried without it (less often while
the probes keep failing, up to one in `PROBE_EVERY_MOST`), and a page Arrow reads so ends it
(the pages after it pay nothing for tolerance).

What the decoder learns lives in one place: `PageDecoder._good` and `_drift`, and the plans
built of them (`_base`, without the drift; `_plan`), read and replaced under `PageDecoder._lock`. Each page carries the plan it was read
with, so its conversion never looks at the decoder again.

A stream whose pages no plan reads (records of an unexpected shape) stops paying for the
attempts: after `SLOW_STREAK` pages in a row went to the record-by-record path, a page is read
by Python directly but for one in `PROBE_EVERY`, which tries Arrow again.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import cache, partial
from typing import Any, Callable

import pyarrow as pa
import pyarrow.json as pa_json

from . import arrow_compute as pc
from .definitions import StreamDefinition
from .errors import SchemaError
from .plan import ARROW_ERRORS, ENVELOPE_FIELDS, Learned, Misfits, ReadPlan, build_plan, misfit_fields



SLOW_STREAK = 2  # pages in a row that drifted before the decoder stops trying Arrow on every page
PROBE_EVERY = 8  # while it does (or drift is learned), one page in this many is tried without it
PROBE_EVERY_MOST = 64  # ... the pages between probes doubled after each probe the drift failed, up to this


class BodyNotJSON(ValueError):
    """A list response whose body is not JSON (cut short in transit, or an error page): the
    request is sent again, like any transient failure."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing, decoded. `array` holds its records as one struct array typed by
    `plan` (None where Arrow could not read them: the record-by-record path will);
    `records` holds them as dicts when Python decoded the body (None when Arrow read it whole,
    then `read_dicts` decodes `body` should the conversion need dicts: the fields of
    `plan.by_python`, undocumented fields). `total` and `limit` are the envelope's, when it has
    them (offset lists)."""

    array: pa.StructArray | None
    records: list[dict] | None
    plan: ReadPlan | None
    body: bytes
    total: int | None = None
    limit: int | None = None
    undocumented: bool = False  # read by Arrow: its records hold fields the plan does not read


    def __len__(self) -> int:
        return len(self.array) if self.records is None else len(self.records)  # type: ignore[arg-type]

    @property
    def read_by_arrow(self) -> bool:
        """Read from the body by Arrow's JSON reader, without a Python object per value."""
        return self.records is None


class PageDecoder:
    """Decodes the list responses of one stream into `Page`s; shared by the fetch threads."""

    def __init__(self, stream: StreamDefinition):
        self.stream = stream
        self._lock = threading.Lock()
        self._good = Learned()  # learned for good
        self._drift = (frozenset(), frozenset())  # learned while it lasts: fields read by Python, of them read as decimals
        self._base = self._plan = build_plan(stream)  # _base: with what is learned for good; _plan: and the drift
        self._slow_streak = 0  # pages in a row that only the record-by-record path could read
        self._probe_gap = self._until_probe = PROBE_EVERY  # pages between probes, pages until the next

    @property
    def plan(self) -> ReadPlan | None:
        """The plan the next page is read with (everything learned so far)."""
        with self._lock:
            return self._plan

    def decode(self, body: bytes) -> Page:
        """The page of a list response. Raises BodyNotJSON when the body is not JSON, and
        SchemaError when it holds no list of records under the stream's envelope."""
        plan, probe, try_body = self._next_page()
        envelope = self.stream.envelope
        if try_body:
            page = _read_body(body, probe, envelope) if probe is not None else None
            if probe is not None:
                self._probed(probe, drifted=page is None)  # a page without the drift: read by Arrow whole again
            if page is None:
                page = _read_body(body, plan, envelope)
            if page is not None:
                return self._noted(page, by_body=True)
        decoded = _json(body)
        records = page_records(self.stream, decoded)
        if plan is not None:
            misfits = misfit_fields(plan, records, self.stream)
            if misfits is not None:
                plan = self._learn(misfits)
                page = _read_body(body, plan, envelope) if try_body else None
                if page is not None:
                    return self._noted(page, by_body=True)
        page = Page(_struct(records, plan), records, plan, body, _envelope_int(decoded, "total"),
                    _envelope_int(decoded, "limit"))
        return self._noted(page, by_body=False) if try_body else page

    def _next_page(self) -> tuple[ReadPlan | None, ReadPlan | None, bool]:
        """The plan to read the next page with, the plan without the drift learned when the page
        is to try it first (a probe), and whether to try Arrow's reader on its body."""
        with self._lock:
            self._until_probe -= 1
            due = self._until_probe <= 0
            if due:
                self._until_probe = self._probe_gap
            probe = self._base if due and self._base is not self._plan else None
            return self._plan, probe, self._slow_streak < SLOW_STREAK or due

    def _noted(self, page: Page, by_body: bool) -> Page:
        """The page, counted in the streak of pages Arrow could not read from the body."""
        with self._lock:
            self._slow_streak = 0 if by_body else self._slow_streak + 1
        return page

    def from_records(self, records: list[dict]) -> Page:
        """A page of records already decoded into dicts."""
        plan = self.plan
        misfits = misfit_fields(plan, records, self.stream) if plan is not None else None
        if misfits is not None:
            plan = self._learn(misfits)
        return Page(_struct(records, plan), records, plan, b"")

    def _learn(self, misfits: Misfits) -> ReadPlan | None:
        """Add fields to what was learned: `learn` (and its integers and decimals) and the
        undocumented fields for good, `drifted` until a probe reads a page without them.
        Threads learning at once all count."""
        with self._lock:
            if self._base is None or self._plan is None:
                return self._plan
            good, m = self._good, misfits
            extras = {**good.extras, **{k: v for k, v in m.extras.items() if v is not None}}
            dropped = frozenset(k for k, v in m.extras.items() if v is None)
            for key in dropped:
                extras.pop(key, None)
            good = Learned(good.python | m.learn, (good.integers | (m.integers - good.python)) - (m.learn - m.integers),
                           good.lenient | (m.lenient & m.learn), extras, good.dict_extras | dropped)
            python, lenient = self._drift
            python, lenient = python | m.drifted, (lenient | (m.lenient & m.drifted)) - (m.drifted - m.lenient)
            python, lenient = python - (good.python - good.lenient), lenient - good.python  # (a decimal read may drift)
            self._good, self._drift = good, (python, lenient)
            self._base = self._built(good, self._base)
            drift = Learned(good.python | python, good.integers - python, (good.lenient - python) | lenient,
                            good.extras, good.dict_extras)
            self._plan = self._base if not python else self._built(drift, self._plan)
            return self._plan

    def _built(self, learned: Learned, plan: ReadPlan) -> ReadPlan:
        return plan if plan.knows(learned) else build_plan(self.stream, learned) or plan

    def _probed(self, probe: ReadPlan, drifted: bool) -> None:
        """A probe's outcome: the drift still there (probes less often), or gone (forgotten)."""
        with self._lock:
            if drifted:
                self._probe_gap = self._until_probe = min(self._probe_gap * 2, PROBE_EVERY_MOST)
            elif self._base is probe:
                self._plan = probe
                self._drift = (frozenset(), frozenset())
                self._probe_gap = PROBE_EVERY


def _struct(records: list[dict], plan: ReadPlan | None) -> pa.StructArray | None:
    """The records as one struct array of the plan's fields read by Arrow (its other fields are
    read by Python at conversion); None (the record-by-record path) where even that fails."""
    if plan is None:
        return None
    try:
        return pa.array(records, type=plan.struct)
    except ARROW_ERRORS:
        return None


def page_records(stream: StreamDefinition, body: Any) -> list[dict]:
    """The records of a decoded list response, from its envelope."""
    if stream.envelope is None:
        records = body
    elif isinstance(body, dict) and stream.envelope in body:
        records = body[stream.envelope]
    else:
        found = list(body)[:5] if isinstance(body, dict) else type(body).__name__
        raise SchemaError(f"stream {stream.name!r}: GET {stream.path} answered without the {stream.envelope!r} envelope (got {found})")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise SchemaError(f"stream {stream.name!r}: GET {stream.path} envelope {stream.envelope!r} is not a list of records")
    return records


def read_dicts(stream: StreamDefinition, page: Page) -> tuple[list[dict], bool]:
    """The page's records as dicts (decoding its body again when Arrow read it), and whether
    they hold no NaN or infinity (decoded by msgspec, which reads none)."""
    if page.records is not None:
        return page.records, False
    decoded, finite = _decoded(page.body)
    return page_records(stream, decoded), finite


def _json(body: bytes) -> Any:
    return _decoded(body)[0]


def _decoded(body: bytes) -> tuple[Any, bool]:
    """The body decoded, and whether by msgspec (then it holds no NaN or infinity). msgspec
    gives the objects json.loads gives (integers past 64 bits too) or refuses the body: NaN,
    numbers past a double, lone surrogates, a byte-order mark are read by json.loads (or it
    says why not)."""
    if not body:
        return None, False
    fast = _fast_decoder()
    if fast is not None:
        try:
            return fast(body), True
        except ValueError:  # (msgspec.DecodeError)
            pass
    try:
        return json.loads(body), False
    except ValueError as exc:
        raise BodyNotJSON(f"unparseable JSON ({exc})") from None


@cache
def _fast_decoder() -> Callable[[bytes], Any] | None:
    """msgspec's JSON decoder (as fast as orjson, and exact for integers past 64 bits: no scan of
    the body for them), imported by the first page that needs its dicts: a run of clean pages
    never loads it. Where msgspec is not installed (an environment made before it became a
    dependency), orjson's, for a body without 19 digits in a row (an integer orjson would read
    as a float)."""
    try:
        import msgspec.json
    except ImportError:
        import orjson

        return partial(_orjson_loads, orjson.loads)
    return msgspec.json.Decoder().decode


_DIGITS = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))  # every digit a "0", anything else a space


def _orjson_loads(loads: Callable[[bytes], Any], body: bytes) -> Any:
    if b"0" * 19 in body.translate(_DIGITS):
        raise ValueError("an integer of 19 digits or more: read by json.loads")
    return loads(body)


def _envelope_int(body: Any, name: str) -> int | None:
    value = body.get(name) if isinstance(body, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _read_body(body: bytes, plan: ReadPlan | None, envelope: str | None) -> Page | None:
    """The page read by Arrow's JSON reader, or None where it cannot be (no plan for it, not
    exactly one JSON object, a value of another type than the plan's, no envelope, ...)."""
    if plan is None or plan.json_schema is None or envelope is None:
        return None
    schema = plan.json_schema
    # where the page's dicts are read anyway (fields read by Python, counted, undocumented ones of
    # changing types) the undocumented fields not learned are left to them, else read too
    # (inferred): their presence says the page has undocumented fields
    behavior = "ignore" if plan.reads_dicts else "infer"
    text = body if b"\n" not in body and b"\r" not in body else body.replace(b"\n", b" ").replace(b"\r", b" ")
    try:
        # the streaming reader, one block: `read_json` reads ahead on Arrow's IO pool even without
        # threads, a thread started and handed the body for every page (docs/benchmarks.md, ninth session)
        table = pa_json.open_json(
            pa.BufferReader(text),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=max(1 << 16, len(text) + 1)),
            parse_options=pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior=behavior),
        ).read_all()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if table.num_rows != 1:
        return None
    column = table.column(envelope)
    # (one block, one chunk: taken as it is; `combine_chunks` copies even one chunk, ~0.03 ms a page)
    lists = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    if lists.null_count:
        return None
    total, limit = (table.column(name)[0].as_py() for name in ENVELOPE_FIELDS)
    undocumented = lists.type != schema.field(envelope).type
    return Page(pc.list_flatten(lists), None, plan, body, total, limit, undocumented)
