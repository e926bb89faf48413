"""Discovery and selection: a Singer-style catalog generated from the stream definitions (never
edited by hand), and the reverse: a (possibly edited) catalog -> the selected, narrowed
definitions.

Selection follows Singer: a stream is extracted when the metadata of its empty breadcrumb `[]`
says `"selected": true`; a field is kept unless the metadata of its breadcrumb
(`["properties", name]`, or `["properties", child, "items", "properties", name]` for a column of
a nested table) says `"selected": false`. Primary keys, cursor fields, parent links and the
columns another stream reads its keys from are `"inclusion": "automatic"`: always kept.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from .definitions import Column, StreamDefinition, TableSpec, load_definitions
from .errors import ConfigError

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


def _own_table(stream: StreamDefinition) -> TableSpec | None:
    return stream.tables[0] if stream.tables[0].nested_path is None else None


def _children(stream: StreamDefinition) -> list[TableSpec]:
    return [t for t in stream.tables if t.nested_path is not None]


def _key_sources(definitions: dict[str, StreamDefinition]) -> set[tuple[str, str]]:
    """(table, column) pairs that some stream reads its request keys from (products.sku for inventory)."""
    return {source for d in definitions.values() if d.keys_from for source in d.keys_from.sources}


def _required_columns(stream: StreamDefinition, table: TableSpec, key_sources: set[tuple[str, str]]) -> set[str]:
    """Columns a narrowed table always keeps: keys, cursor, parent links, partition, key sources."""
    required = set(table.primary_key)
    required.update(c.name for c in table.columns if c.from_parent or c.from_partition)
    if table.parent_link:
        required.add(table.parent_link[0])
    own = _own_table(stream)
    if table is own:
        if stream.cursor:
            required.add(stream.cursor.field)
        for child in _children(stream):
            if child.parent_link:
                required.add(child.parent_link[1])
    required.update(column for t, column in key_sources if t == table.name)
    return required


def _field_metadata(column: Column, required: set[str]) -> dict[str, Any]:
    if column.name in required:
        return {"inclusion": "automatic", "selected-by-default": True, "sql-datatype": column.type}
    return {"inclusion": "available", "selected-by-default": True, "selected": True, "sql-datatype": column.type}


def stream_entry(stream: StreamDefinition, key_sources: set[tuple[str, str]] | None = None) -> dict[str, Any]:
    key_sources = key_sources or set()
    own = _own_table(stream)
    children = _children(stream)
    field_metadata: list[dict[str, Any]] = []
    if own is not None:
        schema = _table_schema(own, children)
        key_properties = list(own.primary_key)
        required = _required_columns(stream, own, key_sources)
        for c in own.columns:
            if not (c.from_parent or c.from_partition):
                field_metadata.append({"breadcrumb": ["properties", c.source], "metadata": _field_metadata(c, required)})
    else:
        schema = {"type": "object", "properties": {}}
        for child in children:
            for c in child.columns:
                if c.from_parent:
                    schema["properties"][c.source] = _column_schema(c)
                    field_metadata.append(
                        {"breadcrumb": ["properties", c.source], "metadata": _field_metadata(c, {c.name})}
                    )
            schema["properties"][child.nested_path] = {"type": ["array", "null"], "items": _table_schema(child, [])}
        key_properties = []
    for child in children:
        only_table = own is None and len(children) == 1
        field_metadata.append({
            "breadcrumb": ["properties", child.nested_path],
            "metadata": {"inclusion": "automatic" if only_table else "available", "selected-by-default": True,
                         **({} if only_table else {"selected": True}), "sqquid-table": child.name},
        })
        required = _required_columns(stream, child, key_sources)
        for c in child.columns:
            if not c.from_parent:
                field_metadata.append({
                    "breadcrumb": ["properties", child.nested_path, "items", "properties", c.source],
                    "metadata": _field_metadata(c, required),
                })
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
        "metadata": [{"breadcrumb": [], "metadata": metadata}, *field_metadata],
    }


def build_catalog(definitions: dict[str, StreamDefinition] | None = None) -> dict[str, Any]:
    definitions = definitions or load_definitions()
    key_sources = _key_sources(definitions)
    return {"streams": [stream_entry(d, key_sources) for d in sorted(definitions.values(), key=lambda d: d.name)]}


def render_catalog() -> str:
    return json.dumps(build_catalog(), indent=2, ensure_ascii=False) + "\n"


def write_catalog(path: Path) -> Path:
    """Write atomically (temp file + rename). An existing file is replaced only when it is a
    catalog (a JSON object with a `streams` list): anything else is the user's, left as it is."""
    if path.exists() and not _is_catalog(path):
        raise ConfigError(f"--output {path}: exists and is not a catalog; it was left as it is: give another path")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(render_catalog(), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        if tmp.is_file():
            tmp.unlink()
        raise ConfigError(f"--output {path}: cannot be written ({exc.strerror or exc})") from None
    return path


def _is_catalog(path: Path) -> bool:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(raw, dict) and isinstance(raw.get("streams"), list)


# -- selection ------------------------------------------------------------------------------------


def load_catalog(path: str | os.PathLike) -> dict[str, Any]:
    """Read a catalog file; a missing or malformed file is a ConfigError naming it."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--catalog {path}: no such file (write one with 'sqquid-etl discover')") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--catalog {path}: not a readable JSON catalog ({exc})") from None
    _check_shape(raw, str(path))
    return raw


def _check_shape(raw: Any, where: str) -> None:
    """A catalog's shape: a `streams` list of entries, each stream once, each named by a string,
    with a metadata list whose breadcrumbs are each given once and whose `selected` and
    `selected-by-default` are true or false (a string "false" is refused: it would read as true)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("streams"), list):
        raise ConfigError(f"catalog {where}: expected an object with a 'streams' list")
    seen: set[str] = set()
    for i, entry in enumerate(raw["streams"]):
        name = entry.get("tap_stream_id") or entry.get("stream") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            raise ConfigError(f"catalog {where}: streams[{i}] has no 'tap_stream_id'")
        if name in seen:
            raise ConfigError(f"catalog {where}: stream {name!r} is listed more than once (streams[{i}]); keep one entry")
        seen.add(name)
        if not isinstance(entry.get("metadata", []), list):
            raise ConfigError(f"catalog {where}: stream {name!r}: 'metadata' must be a list")
        _check_metadata(entry["metadata"] if "metadata" in entry else [], f"catalog {where}: stream {name!r}")


def _check_metadata(items: list, where: str) -> None:
    crumbs: set[tuple] = set()
    for item in items:
        if not (isinstance(item, dict) and isinstance(item.get("breadcrumb"), list) and isinstance(item.get("metadata"), dict)):
            continue  # not Singer metadata: ignored, as before
        crumb = tuple(str(p) for p in item["breadcrumb"])
        if crumb in crumbs:
            raise ConfigError(f"{where}: breadcrumb {list(crumb)} is given more than once; keep one")
        crumbs.add(crumb)
        for key in ("selected", "selected-by-default"):
            value = item["metadata"].get(key)
            if key in item["metadata"] and not isinstance(value, bool):
                raise ConfigError(f"{where}: breadcrumb {list(crumb)}: {key!r} is {value!r}; expected true or false "
                                  "(JSON booleans, without quotes)")


def check_named(catalog: dict[str, Any] | str | os.PathLike, definitions: dict[str, StreamDefinition],
                selected: dict[str, StreamDefinition], names: list[str], option: str) -> None:
    """Streams named on the command line that the catalog does not select: a ConfigError saying
    so (not "unknown stream")."""
    left_out = [name for name in names if name in definitions and name not in selected]
    if left_out:
        where = "(in memory)" if isinstance(catalog, dict) else str(catalog)
        raise ConfigError(f"{option}: stream(s) {', '.join(left_out)} not selected in catalog {where}; set "
                          "\"selected\": true in the stream's [] breadcrumb, or leave out --catalog")


def _metadata_by_breadcrumb(entry: dict[str, Any]) -> dict[tuple[str, ...], dict[str, Any]]:
    found: dict[tuple[str, ...], dict[str, Any]] = {}
    for item in entry.get("metadata", []):
        if isinstance(item, dict) and isinstance(item.get("breadcrumb"), list) and isinstance(item.get("metadata"), dict):
            found[tuple(str(p) for p in item["breadcrumb"])] = item["metadata"]
    return found


def _is_selected(metadata: dict[str, Any] | None, default: bool) -> bool:
    """Singer's rule: `selected` if given, else `selected-by-default` if given, else the default."""
    if not metadata:
        return default
    if metadata.get("inclusion") == "unsupported":
        return False
    if "selected" in metadata:
        return bool(metadata["selected"])
    if "selected-by-default" in metadata:
        return bool(metadata["selected-by-default"])
    return default


def narrow_definition(stream: StreamDefinition, deselected: set[tuple[str, ...]],
                      key_sources: set[tuple[str, str]] | None = None) -> StreamDefinition:
    """The same definition with fewer columns (and maybe fewer nested tables): a pure function.

    `deselected` holds catalog breadcrumbs without their leading "properties" step, e.g.
    `("total",)`, `("order_items",)` (the whole nested table) or `("order_items", "discount")`.
    Required columns (keys, cursor, parent links, key sources) are kept whatever is asked."""
    key_sources = key_sources or set()
    own = _own_table(stream)
    tables: list[TableSpec] = []
    for table in stream.tables:
        prefix: tuple[str, ...] = () if table is own else (table.nested_path,)  # type: ignore[assignment]
        if table is not own and prefix in deselected:
            if own is None:
                raise ConfigError(
                    f"catalog: stream {stream.name!r} has no table but {table.name!r}; deselect the stream "
                    f"instead of its field {table.nested_path!r}"
                )
            continue
        required = _required_columns(stream, table, key_sources)
        columns = tuple(
            c for c in table.columns
            if c.name in required or (*prefix, c.source) not in deselected
        )
        tables.append(dataclasses.replace(table, columns=columns))
    return dataclasses.replace(stream, tables=tuple(tables))


def _field_path(crumb: tuple[str, ...]) -> tuple[str, ...] | None:
    """["properties", a] -> (a,); ["properties", a, "items", "properties", b] -> (a, b); else None."""
    if len(crumb) == 2 and crumb[0] == "properties":
        return (crumb[1],)
    if len(crumb) == 5 and crumb[0] == "properties" and crumb[2:4] == ("items", "properties"):
        return (crumb[1], crumb[4])
    return None


def _known_breadcrumbs(stream: StreamDefinition) -> set[tuple[str, ...]]:
    own = _own_table(stream)
    known: set[tuple[str, ...]] = set()
    for table in stream.tables:
        if table is own:
            known.update((c.source,) for c in table.columns if not (c.from_parent or c.from_partition))
        else:
            known.add((table.nested_path,))  # type: ignore[arg-type]
            known.update((table.nested_path, c.source) for c in table.columns)  # type: ignore[misc]
            if own is None:
                known.update((c.source,) for c in table.columns if c.from_parent)
    return known


def apply_catalog(catalog: dict[str, Any] | str | os.PathLike,
                  definitions: dict[str, StreamDefinition] | None = None) -> dict[str, StreamDefinition]:
    """The streams a catalog selects, each narrowed to its selected fields, in dependency order.
    Unknown streams or fields are a ConfigError (a typo must not silently extract everything)."""
    where = "(in memory)"
    if not isinstance(catalog, dict):
        where = str(catalog)
        catalog = load_catalog(catalog)
    else:
        _check_shape(catalog, where)
    definitions = definitions or load_definitions()
    key_sources = _key_sources(definitions)
    chosen: dict[str, StreamDefinition] = {}
    for entry in catalog["streams"]:
        name = entry.get("tap_stream_id") or entry.get("stream")
        if name not in definitions:
            raise ConfigError(f"catalog {where}: unknown stream {name!r}; known streams: {', '.join(definitions)}")
        by_crumb = _metadata_by_breadcrumb(entry)
        if not _is_selected(by_crumb.get(()), default=False):
            continue
        known = _known_breadcrumbs(definitions[name])
        deselected: set[tuple[str, ...]] = set()
        for crumb, metadata in by_crumb.items():
            if not crumb:
                continue
            path = _field_path(crumb)
            if path not in known:
                raise ConfigError(f"catalog {where}: stream {name!r} has no field {list(crumb)}")
            if not _is_selected(metadata, default=True):
                deselected.add(path)
        chosen[name] = narrow_definition(definitions[name], deselected, key_sources)
    if not chosen:
        raise ConfigError(f"catalog {where}: selects no stream (set \"selected\": true in a stream's [] breadcrumb)")
    return {n: chosen[n] for n in definitions if n in chosen}
