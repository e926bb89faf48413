"""Discovery: a Singer-style catalog generated from the stream definitions (never edited by hand)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .definitions import Column, StreamDefinition, TableSpec, load_definitions

_JSON_TYPES: dict[str, dict[str, Any]] = {
    "integer": {"type": ["integer", "null"]},
    "number": {"type": ["number", "null"]},
    "string": {"type": ["string", "null"]},
    "boolean": {"type": ["boolean", "null"]},
    "timestamp": {"type": ["string", "null"], "format": "date-time"},
    "decimal": {"type": ["string", "number", "null"], "format": "singer.decimal"},
    "string_list": {"type": ["array", "null"], "items": {"type": "string"}},
    "attributes": {
        "type": ["array", "null"],
        "items": {"type": "object", "properties": {"label": {"type": ["string", "null"]}, "value": {"type": ["string", "null"]}}},
    },
    "json": {},
}


def _column_schema(column: Column) -> dict[str, Any]:
    schema = dict(_JSON_TYPES[column.type])
    if not column.nullable and isinstance(schema.get("type"), list):
        schema["type"] = [t for t in schema["type"] if t != "null"]
    return schema


def _table_schema(table: TableSpec, children: list[TableSpec]) -> dict[str, Any]:
    properties = {c.source: _column_schema(c) for c in table.columns if not (c.from_parent or c.from_partition)}
    for child in children:
        properties[child.nested_path] = {"type": ["array", "null"], "items": _table_schema(child, [])}  # type: ignore[index]
    return {"type": "object", "properties": properties}


def stream_entry(stream: StreamDefinition) -> dict[str, Any]:
    own = stream.tables[0] if stream.tables[0].nested_path is None else None
    children = [t for t in stream.tables if t.nested_path is not None]
    if own is not None:
        schema = _table_schema(own, children)
        key_properties = list(own.primary_key)
    else:
        schema = {"type": "object", "properties": {}}
        for child in children:
            for c in child.columns:
                if c.from_parent:
                    schema["properties"][c.source] = _column_schema(c)
            schema["properties"][child.nested_path] = {"type": ["array", "null"], "items": _table_schema(child, [])}
        key_properties = []
    replication_key = stream.cursor.field if stream.cursor else None
    metadata = {
        "selected": True,
        "inclusion": "available",
        "table-key-properties": key_properties,
        "forced-replication-method": "INCREMENTAL" if stream.cursor else "FULL_TABLE",
        "valid-replication-keys": [replication_key] if replication_key else [],
        "sqquid-endpoint": stream.path,
        "sqquid-tables": {t.name: list(t.primary_key) for t in stream.tables},
    }
    return {
        "tap_stream_id": stream.name,
        "stream": stream.name,
        "description": stream.description,
        "key_properties": key_properties,
        "replication_method": metadata["forced-replication-method"],
        "replication_key": replication_key,
        "schema": schema,
        "metadata": [{"breadcrumb": [], "metadata": metadata}],
    }


def build_catalog(definitions: dict[str, StreamDefinition] | None = None) -> dict[str, Any]:
    definitions = definitions or load_definitions()
    return {"streams": [stream_entry(d) for d in sorted(definitions.values(), key=lambda d: d.name)]}


def render_catalog() -> str:
    return json.dumps(build_catalog(), indent=2, ensure_ascii=False) + "\n"


def write_catalog(path: Path) -> Path:
    """Write atomically (temp file + rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_catalog(), encoding="utf-8")
    os.replace(tmp, path)
    return path
