"""`sqquid-etl check`: one page of every selected stream, compared with its definition.

For each stream: the fields the API sent that the definition does not list, the fields it lists
that never came, values of another type than the column's (coerced without loss, or lossy: the
record would be quarantined), and the envelope's fields and paging metadata. A few requests,
paced by the client like any other. Example values are redacted: never a secret, never a
customer's personal data (names, emails, phones, addresses are shown by their kind only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .client import SqquidClient
from .columns import convert_column
from .decode import page_records
from .definitions import StreamDefinition, TableSpec, with_dependencies
from .errors import SqquidError
from .evolve import known_fields
from .keys import batch_keys
from .listing import window_params
from .paginate import make_paginator
from .redaction import is_personal

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
                  definitions: dict[str, StreamDefinition] | None = None, contract: str | None = None) -> list[StreamCheck]:
    """One page of each stream, compared with its definition; the pages of the streams a stream
    lists its keys from (in `definitions`, e.g. products for inventory) are read first when needed.
    `contract`: the run's schema contract (None: each stream's, else evolve), as an extract's."""
    seen: dict[tuple[str, str], set[str]] = {}
    checks = []
    wanted = {s.name for s in streams}
    reading = with_dependencies(definitions, sorted(wanted)) if definitions else streams
    for stream in reading:
        result = check_stream(client, stream, seen)
        result.contract = contract or stream.schema_contract or "evolve"
        if stream.name in wanted:
            checks.append(result)
    return checks


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
    if stream.tables[0].nested_path is not None:  # no table of its own: its records' own fields
        result.differences.extend(_undefined(stream.name, records, known_fields(stream, None), client))
    for table in stream.tables:
        rows = _rows(records, table)
        _remember(seen, table, rows)
        result.differences.extend(_undefined(table.name, rows, known_fields(stream, table), client))
        result.differences.extend(_types(table, rows, client))
    result.differences.sort(key=lambda d: (d.kind, d.table, d.field))
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


def _remember(seen: dict, table: TableSpec, rows: list[dict]) -> None:
    for column in table.columns:
        if not column.from_partition and not column.from_parent:
            seen.setdefault((table.name, column.name), set()).update(
                str(r[column.source]) for r in rows if r.get(column.source) is not None
            )


def _undefined(table: str, rows: list[dict], known: frozenset, client: SqquidClient) -> list[Difference]:
    """The fields the rows hold that the definition does not read (`evolve.known_fields`, as an extract)."""
    out: dict[tuple[str, str], Difference] = {}
    for row in rows:
        for name, value in row.items():
            if name not in known:
                _note(out, table, name, "undefined", value, client)
    return list(out.values())


def _types(table: TableSpec, rows: list[dict], client: SqquidClient) -> list[Difference]:
    """Each column's values through the extract's own conversion (`columns.convert_column`):
    values coerced, values lossy (their record would be quarantined), columns never sent."""
    out: dict[tuple[str, str], Difference] = {}
    for column in table.columns:
        if column.from_parent or column.from_partition or not rows:
            continue
        if not any(column.source in row for row in rows):
            out[(column.source, "never_seen")] = Difference(table.name, column.source, "never_seen")
            continue
        values = [row.get(column.source) for row in rows]
        converted = convert_column(values, column)
        for index in converted.coerced:
            reason = f"{_kind(values[index])} where the definition says {column.type}"
            _note(out, table.name, column.source, "coerced", values[index], client, reason)
        for index, why in converted.bad.items():
            _note(out, table.name, column.source, "lossy", values[index], client, why)
    return list(out.values())


def _note(out: dict, table: str, name: str, kind: str, value: Any, client: SqquidClient, reason: str | None = None) -> None:
    entry = out.setdefault((name, kind), Difference(table, name, kind, 0, _example(name, value, client), reason))
    entry.count += 1


def _example(name: str, value: Any, client: SqquidClient) -> str:
    if is_personal(name):
        return f"<{_kind(value)}, personal: not shown>"
    text = client.secrets.redact(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "text", list: "array", dict: "object"}.get(
        type(value), type(value).__name__)
