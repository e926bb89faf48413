"""Decoding list responses: the one owner that turns a response body into a `Page` (its
records, the envelope's paging metadata, and the immutable plan it was read with).

A body is read by Arrow's JSON reader straight into one struct array typed by the stream's
schema (in C++, without the GIL, no Python object per value) when the plan allows it, else by
`json.loads` into dicts, which Arrow then reads as the same struct array where their values fit.
The fetch threads decode; the consumer only converts (`records.page_tables`). Fields the schema
does not name are read too, so a page holding any says so (`Page.undocumented`) at no cost to
one that does not; the conversion then finds them (`evolve.py`).

What the decoder learns (fields whose values do not fit their Arrow type, the API's numbers
where the schema says text) only ever grows, and lives in one place: `PageDecoder._plan`,
read and replaced under `PageDecoder._lock`. Each page carries the plan it was read with, so
its conversion never looks at the decoder again.

A stream whose pages keep drifting in ways that are not learned (every page of a less tidy
server) stops paying for the attempts: after `SLOW_STREAK` pages in a row went to the
record-by-record path, a page is read by Python directly but for one in `PROBE_EVERY`, which
tries Arrow again (a page that Arrow reads ends the streak).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.json as pa_json

from .definitions import StreamDefinition
from .errors import SchemaError
from .plan import (ARROW_ERRORS, ENVELOPE_FIELDS, ReadPlan, build_plan, floats_in_integers, integer_text_fields,
                   misfit_fields)


SLOW_STREAK = 2  # pages in a row that drifted before the decoder stops trying Arrow on every page
PROBE_EVERY = 8  # while it does, one page in this many is tried by Arrow again


class BodyNotJSON(ValueError):
    """A list response whose body is not JSON (cut short in transit, or an error page): the
    request is sent again, like any transient failure."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing, decoded. `array` holds its records as one struct array typed by
    `plan.struct` (None where Arrow could not read them: the record-by-record path will);
    `records` holds them as dicts when Python decoded the body (None when Arrow read it whole,
    then `page_dicts` decodes `body` again should the conversion need dicts). `total` and
    `limit` are the envelope's, when it has them (offset lists)."""

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
        self._plan = build_plan(stream)
        self._slow_streak = 0  # pages in a row that only the record-by-record path could read
        self._pages = 0

    @property
    def plan(self) -> ReadPlan | None:
        """The plan the next page is read with (everything learned so far)."""
        with self._lock:
            return self._plan

    def decode(self, body: bytes) -> Page:
        """The page of a list response. Raises BodyNotJSON when the body is not JSON, and
        SchemaError when it holds no list of records under the stream's envelope."""
        plan, try_body = self._next_page()
        if try_body:
            page = _read_body(body, plan, self.stream.envelope)
            if page is not None:
                return self._noted(page, by_body=True)
        decoded = _json(body)
        records = page_records(self.stream, decoded)
        if try_body and plan is not None and plan.json_schema is not None:
            # numbers where the schema says text (the API's usual inconsistency): learn them from
            # this page and read it by Arrow again, reading them as integers
            learned = integer_text_fields(plan, records)
            if learned:
                plan = self._learn(learned, learned)
                page = _read_body(body, plan, self.stream.envelope)
                if page is not None:
                    return self._noted(page, by_body=True)
        array, plan = self._read_dicts(records, plan)
        page = Page(array, records, plan, body, _envelope_int(decoded, "total"), _envelope_int(decoded, "limit"))
        return self._noted(page, by_body=False) if try_body else page

    def _next_page(self) -> tuple[ReadPlan | None, bool]:
        """The plan to read the next page with, and whether to try Arrow's reader on its body."""
        with self._lock:
            self._pages += 1
            return self._plan, self._slow_streak < SLOW_STREAK or self._pages % PROBE_EVERY == 0

    def _noted(self, page: Page, by_body: bool) -> Page:
        """The page, counted in the streak of pages Arrow could not read from the body."""
        with self._lock:
            self._slow_streak = 0 if by_body else self._slow_streak + 1
        return page

    def from_records(self, records: list[dict]) -> Page:
        """A page of records already decoded into dicts."""
        array, plan = self._read_dicts(records, self.plan)
        return Page(array, records, plan, b"")

    def _read_dicts(self, records: list[dict], plan: ReadPlan | None) -> tuple[pa.StructArray | None, ReadPlan | None]:
        """The records as one struct array, learning the text fields whose values are numbers
        (those are then read by Python at conversion), with the plan it was read by. Other drift
        is not learned: the page's own plan reads its drifted fields by Python (coerced value by
        value at conversion, `columns.py`), the rest by Arrow; None (the record-by-record path)
        where even that fails."""
        for _ in range(2):
            if plan is None:
                return None, None
            try:
                array = pa.array(records, type=plan.struct)
            except ARROW_ERRORS:
                misfits = misfit_fields(plan, records)
                if misfits is None:
                    return None, plan
                learn, integers, drifted = misfits
                if learn:
                    plan = self._learn(learn, integers)
                if drifted:  # (integers sent as floats too: Arrow would take 2.0 as 2 without a word)
                    return _read_with_own_plan(self.stream, records, plan, drifted | floats_in_integers(plan, records))
                if not learn:
                    return None, plan
                continue
            floats = floats_in_integers(plan, records)
            if floats:
                return _read_with_own_plan(self.stream, records, plan, floats)
            return array, plan
        return None, plan

    def _learn(self, python: frozenset, integers: frozenset) -> ReadPlan | None:
        """Add fields to what was learned (never remove: threads learning at once all count)."""
        with self._lock:
            plan = self._plan
            if plan is not None and not plan.knows(python, integers):
                plan = self._plan = build_plan(self.stream, plan.python | python, plan.integers | integers)
            return plan


def _read_with_own_plan(stream: StreamDefinition, records: list[dict], plan: ReadPlan,
                        drifted: frozenset) -> tuple[pa.StructArray | None, ReadPlan | None]:
    """A page whose `drifted` fields do not fit their Arrow type, read by a plan of its own (never
    learned: the next pages are not affected) that reads those by Python; (None, plan) when even
    that does not read it."""
    own = build_plan(stream, plan.python | drifted, plan.integers)
    if own is None:
        return None, plan
    try:
        return pa.array(records, type=own.struct), own
    except ARROW_ERRORS:
        return None, plan


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


def page_dicts(stream: StreamDefinition, page: Page) -> list[dict]:
    """The page's records as dicts (decoding its body again when Arrow read it)."""
    return page.records if page.records is not None else page_records(stream, _json(page.body))


def _json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError as exc:
        raise BodyNotJSON(f"unparseable JSON ({exc})") from None


def _envelope_int(body: Any, name: str) -> int | None:
    value = body.get(name) if isinstance(body, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _read_body(body: bytes, plan: ReadPlan | None, envelope: str | None) -> Page | None:
    """The page read by Arrow's JSON reader, or None where it cannot be (no plan for it, not
    exactly one JSON object, a value of another type than the plan's, no envelope, ...)."""
    if plan is None or plan.json_schema is None or envelope is None:
        return None
    schema = plan.json_schema
    text = body if b"\n" not in body and b"\r" not in body else body.replace(b"\n", b" ").replace(b"\r", b" ")
    try:
        table = pa_json.read_json(
            pa.BufferReader(text),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=max(1 << 16, len(text) + 1)),
            parse_options=pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer"),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if table.num_rows != 1:
        return None
    lists = table.column(envelope).combine_chunks()
    if lists.null_count:
        return None
    total, limit = (table.column(name)[0].as_py() for name in ENVELOPE_FIELDS)
    # fields the schema does not name are read too (inferred): their presence says the page
    # has undocumented fields, which the conversion then finds in the records (`evolve.py`)
    undocumented = lists.type != schema.field(envelope).type
    return Page(lists.flatten(), None, plan, body, total, limit, undocumented)
