"""`sqquid-etl check`: one page of every selected stream, compared with its definition.

For each stream: the fields the API sent that the definition does not list, the fields it lists
that never came, values of another type than the column's (coerced without loss, or lossy: the
record would be quarantined), and the envelope's fields and paging metadata. A few requests,
paced by the client like any other. Example values are redacted: never a secret, never a
customer's personal data (names, emails, phones, addresses are shown by their kind only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from .client import SqquidClient
from .columns import convert_column
from .decode import page_records
from .definitions import Column, StreamDefinition, TableSpec
from .errors import SqquidError
from .keys import batch_keys
from .listing import window_params
from .paginate import make_paginator

# fields whose values are a customer's personal data: shown by kind, never by value
PERSONAL = ("name", "email", "phone", "address", "street", "city", "zip", "postal", "company")
KEYS_PER_CHECK = 20  # skus asked for a stream listed by key: a page's worth is enough to see its fields


@dataclass
class Difference:
    table: str
    field: str
    kind: str  # undefined | never_seen | coerced | lossy
    count: int = 0
    example: str | None = None
    reason: str | None = None


@dataclass
class StreamCheck:
    stream: str
    records: int = 0
    envelope: list[str] = field(default_factory=list)  # the body's fields besides the records
    paging: dict[str, Any] = field(default_factory=dict)  # total, limit, offset, page as sent
    differences: list[Difference] = field(default_factory=list)
    error: str | None = None
    contract: str = "evolve"  # what an extract does with undefined fields: evolve keeps them as columns

    @property
    def stores_everything(self) -> bool:
        """An extract would store every record and field of this page (coerced at most; undefined
        fields as new columns under the `evolve` contract)."""
        blocking = ("lossy",) if self.contract == "evolve" else ("lossy", "undefined")
        return self.error is None and not any(d.kind in blocking for d in self.differences)


def check_streams(client: SqquidClient, streams: list[StreamDefinition],
                  available: Iterable[StreamDefinition] = (), contract: str | None = None) -> list[StreamCheck]:
    """One page of each stream, compared with its definition; the pages of the streams a stream
    lists its keys from (`available`, e.g. products for inventory) are read first when needed.
    `contract`: the run's schema contract (None: each stream's, else evolve), as an extract's."""
    seen: dict[tuple[str, str], set[str]] = {}
    checks = []
    wanted = {s.name for s in streams}
    for stream in _with_dependencies(streams, available):
        result = check_stream(client, stream, seen)
        result.contract = contract or stream.schema_contract or "evolve"
        if stream.name in wanted:
            checks.append(result)
    return checks


def _with_dependencies(streams: list[StreamDefinition], available: Iterable[StreamDefinition]) -> list[StreamDefinition]:
    by_name = {s.name: s for s in available}
    names = {s.name for s in streams}
    for stream in streams:
        names.update(d for d in stream.depends_on if d in by_name)
    ordered = [s for s in by_name.values() if s.name in names] if by_name else []
    return ordered or list(streams)


def check_stream(client: SqquidClient, stream: StreamDefinition, seen: dict[tuple[str, str], set[str]]) -> StreamCheck:
    """The first page of the stream's first listing, compared with its definition."""
    result = StreamCheck(stream.name)
    try:
        params = _first_page_params(client, stream, seen)
        body = client.get(stream.path, params)
        records = page_records(stream, body)
    except SqquidError as exc:
        result.error = client.secrets.redact(str(exc))
        return result
    result.records = len(records)
    if isinstance(body, dict):
        result.envelope = sorted(k for k in body if k != stream.envelope)
        result.paging = {k: body[k] for k in ("total", "limit", "offset", "page") if k in body}
    for table in stream.tables:
        rows = _rows(records, table)
        _remember(seen, table, rows)
        result.differences.extend(_compare(table, rows, _defined(stream, table), client))
    return result


def _first_page_params(client: SqquidClient, stream: StreamDefinition, seen: dict) -> dict[str, Any]:
    partition = stream.partition.values[0] if stream.partition else None
    params = {**window_params(stream, partition, None), **make_paginator(stream.paginator).params_for(0)}
    if stream.keys_from is not None:
        values = set().union(*(seen.get(source, set()) for source in stream.keys_from.sources))
        keys = batch_keys(stream.keys_from, stream.path, sorted(values)[:KEYS_PER_CHECK], client.base_url)
        if not keys.batches:
            sources = ", ".join(t for t, _ in stream.keys_from.sources)
            raise SqquidError(f"no {stream.keys_from.param} to list by: no rows seen in {sources}")
        params[stream.keys_from.param] = keys.batches[0]
    return params


def _rows(records: list[dict], table: TableSpec) -> list[dict]:
    if table.nested_path is None:
        return records
    return [item for r in records for item in (r.get(table.nested_path) or []) if isinstance(item, dict)]


def _defined(stream: StreamDefinition, table: TableSpec) -> dict[str, Column]:
    """The fields a row of the table may hold: its columns' sources, and the nested lists of the
    stream's other tables (a parent record holds its children)."""
    defined = {c.source: c for c in table.columns if not (c.from_parent or c.from_partition)}
    if table.nested_path is None or table is stream.tables[0]:
        for other in stream.tables:
            if other.nested_path and other is not table:
                defined.setdefault(other.nested_path, Column(other.nested_path, "json", other.nested_path))
    return defined


def _remember(seen: dict, table: TableSpec, rows: list[dict]) -> None:
    for column in table.columns:
        if not column.from_partition and not column.from_parent:
            seen.setdefault((table.name, column.name), set()).update(
                str(r[column.source]) for r in rows if r.get(column.source) is not None
            )


def _compare(table: TableSpec, rows: list[dict], defined: dict[str, Column], client: SqquidClient) -> list[Difference]:
    out: dict[tuple[str, str], Difference] = {}
    present = set()
    for row in rows:
        for name, value in row.items():
            present.add(name)
            column = defined.get(name)
            if column is None:
                _note(out, table.name, name, "undefined", value, client)
            elif value is not None and column.type != "json":
                kind, reason = _classify(value, column)
                if kind != "ok":
                    _note(out, table.name, name, kind, value, client, reason)
    if rows:
        for name in sorted(set(defined) - present):
            out[(name, "never_seen")] = Difference(table.name, name, "never_seen")
    return sorted(out.values(), key=lambda d: (d.kind, d.field))


def _classify(value: Any, column: Column) -> tuple[str, str | None]:
    """ok (stored as sent), coerced (stored exactly after coercion) or lossy (its record would
    be quarantined): the extract's own conversion of the column, on this one value."""
    converted = convert_column([value], column)
    if converted.bad:
        return "lossy", converted.bad[0]
    if converted.coerced:
        return "coerced", f"{_kind(value)} where the definition says {column.type}"
    return "ok", None


def _note(out: dict, table: str, name: str, kind: str, value: Any, client: SqquidClient, reason: str | None = None) -> None:
    entry = out.setdefault((name, kind), Difference(table, name, kind, 0, _example(name, value, client), reason))
    entry.count += 1


def _example(name: str, value: Any, client: SqquidClient) -> str:
    if any(word in name.lower() for word in PERSONAL):
        return f"<{_kind(value)}, personal: not shown>"
    text = client.secrets.redact(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "text", list: "array", dict: "object"}.get(
        type(value), type(value).__name__)
