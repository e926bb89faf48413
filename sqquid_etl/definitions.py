"""Load and validate stream definitions (`sqquid_etl/streams/*.yaml`) into typed objects.

A definition is data: where to fetch, how to page, what a record looks like, which tables it
fills. The engine runs any definition and knows no stream by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .state import parse_duration

FIELD_TYPES = (
    "integer",
    "number",
    "string",
    "boolean",
    "timestamp",
    "decimal",
    "string_list",
    "attributes",
    "json",
)
PAGINATOR_TYPES = ("page_number", "offset")
SYNC_MODES = ("incremental", "full_refresh")
REREAD_ALL = timedelta.max  # `reread: all`: every run re-reads the stream from its start date


@dataclass(frozen=True)
class Column:
    """One column of a table: its name, type, and where its value comes from in the record."""

    name: str
    type: str
    source: str  # key in the record (or in the parent record, for `parent_fields`)
    nullable: bool = True
    default: Any = None
    from_parent: bool = False
    from_partition: bool = False


@dataclass(frozen=True)
class TableSpec:
    """A destination table filled from a stream's records (or from a nested list in them)."""

    name: str
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...]
    nested_path: str | None = None  # None: one row per record; else one row per item of that list
    parent_link: tuple[str, str] | None = None  # (column in this table, parent primary-key column)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


@dataclass(frozen=True)
class Paginator:
    type: str
    limit: int


@dataclass(frozen=True)
class Cursor:
    field: str  # record field whose maximum becomes the bookmark
    param: str  # request parameter that takes the bookmark
    max_param: str | None = None  # request parameter of an upper bound, where the list and its /count take one


@dataclass(frozen=True)
class Relist:
    """Listing the stored records of a range again by key: `param` takes up to `batch` values of
    the field `field` of the stream's own table (orders: `ids` of `id`; shipments: `order_ids` of
    `order_id`); `counted`: the stream's /count takes `param` too."""

    param: str
    field: str
    batch: int
    counted: bool = False


@dataclass(frozen=True)
class CountEndpoint:
    path: str
    envelope: str


@dataclass(frozen=True)
class Partition:
    """Run the listing once per value of a request parameter (e.g. every shipment-item scope)."""

    param: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class KeysFrom:
    """Fill a request parameter with values read from tables already extracted, in batches."""

    param: str
    sources: tuple[tuple[str, str], ...]  # (table, column)
    max_url_length: int = 2000


@dataclass(frozen=True)
class StreamDefinition:
    name: str
    description: str
    path: str
    envelope: str | None
    params: dict[str, Any]
    paginator: Paginator
    sync: str
    cursor: Cursor | None
    count: CountEndpoint | None
    partition: Partition | None
    keys_from: KeysFrom | None
    depends_on: tuple[str, ...]
    tables: tuple[TableSpec, ...]  # the first is the stream's own table (or its only nested one)
    source_file: str = ""
    schema_contract: str | None = None  # evolve | freeze | discard for undocumented fields (None: the run's)
    reread: timedelta | None = None  # re-read this trailing window every run (REREAD_ALL: everything)
    history: bool = False  # keep a type-2 history of the stream's tables (`<table>_history`)
    relist: Relist | None = None  # how a range behind the cursor is listed again by key (`relist.py`)

    @property
    def table_names(self) -> list[str]:
        return [t.name for t in self.tables]


def _require(raw: dict, key: str, where: str) -> Any:
    if key not in raw or raw[key] in (None, ""):
        raise ConfigError(f"{where}: missing required key {key!r}")
    return raw[key]


def _parse_columns(raw_fields: Any, where: str, primary_key: tuple[str, ...]) -> list[Column]:
    if not isinstance(raw_fields, dict) or not raw_fields:
        raise ConfigError(f"{where}: 'fields' must be a non-empty mapping of column -> type")
    columns = []
    for name, spec in raw_fields.items():
        if isinstance(spec, str):
            spec = {"type": spec}
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: field {name!r} must be a type name or a mapping")
        col_type = spec.get("type")
        if col_type not in FIELD_TYPES:
            raise ConfigError(f"{where}: field {name!r} has type {col_type!r}; expected one of {FIELD_TYPES}")
        columns.append(
            Column(
                name=str(name),
                type=col_type,
                source=str(spec.get("from", name)),
                nullable=str(name) not in primary_key,
                default=spec.get("default"),
            )
        )
    return columns


def _parse_table(raw: dict, where: str, nested_path: str | None, extra: list[Column]) -> TableSpec:
    name = _require(raw, "table", where)
    primary_key = tuple(_require(raw, "primary_key", where))
    columns = extra + _parse_columns(raw.get("fields"), f"{where} table {name!r}", primary_key)
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where} table {name!r}: a column is defined twice: {names}")
    for key in primary_key:
        if key not in names:
            raise ConfigError(f"{where} table {name!r}: primary key column {key!r} is not a field")
    return TableSpec(name=name, primary_key=primary_key, columns=tuple(columns), nested_path=nested_path)


def parse_definition(raw: Any, source_file: str = "<memory>") -> StreamDefinition:
    """Validate one definition (already loaded from YAML) and build its typed form."""
    where = f"stream definition {source_file}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    name = _require(raw, "name", where)
    where = f"stream {name!r} ({source_file})"
    request = _require(raw, "request", where)
    sync = raw.get("sync", "full_refresh")
    if sync not in SYNC_MODES:
        raise ConfigError(f"{where}: sync {sync!r}; expected one of {SYNC_MODES}")
    cursor = None
    if sync == "incremental":
        raw_cursor = _require(raw, "cursor", where)
        cursor = Cursor(field=_require(raw_cursor, "field", where), param=_require(raw_cursor, "param", where),
                        max_param=raw_cursor.get("max_param") or None)
    partition = _parse_partition(raw, where)
    tables = _parse_tables(raw, where, partition)
    parent = tables[0] if tables[0].nested_path is None else None
    if cursor and parent is None:
        raise ConfigError(f"{where}: an incremental stream needs its own table for the cursor field")
    if cursor and cursor.field not in parent.column_names:  # type: ignore[union-attr]
        raise ConfigError(f"{where}: cursor field {cursor.field!r} is not a column of {parent.name!r}")  # type: ignore[union-attr]
    return StreamDefinition(
        name=name,
        description=raw.get("description", "").strip(),
        path=_require(request, "path", where),
        envelope=request.get("envelope"),
        params=dict(request.get("params") or {}),
        paginator=_parse_paginator(raw, where),
        sync=sync,
        cursor=cursor,
        count=_parse_count(raw, where),
        partition=partition,
        keys_from=_parse_keys_from(request, where),
        depends_on=tuple(raw.get("depends_on") or ()),
        tables=tuple(tables),
        source_file=source_file,
        schema_contract=_parse_contract(raw, where),
        reread=parse_reread(raw.get("reread"), f"{where}: reread") if cursor else None,
        history=_parse_history(raw, where, sync),
        relist=_parse_relist(raw, where, parent) if cursor else None,
    )


def parse_reread(value: Any, what: str) -> timedelta | None:
    """`14d`, `36h`, `all` (REREAD_ALL) or none/0 (None): the trailing window re-read every run."""
    if value is None or str(value).strip().lower() in ("none", "0", "off", ""):
        return None
    if str(value).strip().lower() == "all":
        return REREAD_ALL
    return parse_duration(value, what) or None


def _parse_relist(raw: dict, where: str, parent: TableSpec | None) -> Relist | None:
    spec = raw.get("relist")
    if not spec:
        return None
    field, batch = _require(spec, "field", where), spec.get("batch", 250)
    if parent is None or field not in parent.column_names:
        raise ConfigError(f"{where}: relist field {field!r} is not a column of the stream's own table")
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ConfigError(f"{where}: relist batch {batch!r}; expected a positive integer")
    return Relist(param=_require(spec, "param", where), field=field, batch=batch, counted=bool(spec.get("counted", False)))


def _parse_history(raw: dict, where: str, sync: str) -> bool:
    history = raw.get("history", False)
    if not isinstance(history, bool):
        raise ConfigError(f"{where}: history {history!r}; expected true or false")
    if history and sync != "full_refresh":
        raise ConfigError(f"{where}: history is kept for full_refresh streams (snapshots); this one is {sync}")
    return history


def _parse_contract(raw: dict, where: str) -> str | None:
    contract = raw.get("schema_contract")
    if contract is not None and contract not in ("evolve", "freeze", "discard"):
        raise ConfigError(f"{where}: schema_contract {contract!r}; expected evolve, freeze or discard")
    return contract


def _parse_paginator(raw: dict, where: str) -> Paginator:
    pag = _require(raw, "paginator", where)
    if pag.get("type") not in PAGINATOR_TYPES:
        raise ConfigError(f"{where}: paginator type {pag.get('type')!r}; expected one of {PAGINATOR_TYPES}")
    limit = pag.get("limit")
    if not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"{where}: paginator limit must be a positive integer")
    return Paginator(type=pag["type"], limit=limit)


def _parse_count(raw: dict, where: str) -> CountEndpoint | None:
    if not raw.get("count"):
        return None
    return CountEndpoint(path=_require(raw["count"], "path", where), envelope=_require(raw["count"], "envelope", where))


def _parse_partition(raw: dict, where: str) -> Partition | None:
    if not raw.get("partition"):
        return None
    p = raw["partition"]
    return Partition(param=_require(p, "param", where), values=tuple(_require(p, "values", where)))


def _parse_keys_from(request: dict, where: str) -> KeysFrom | None:
    if not request.get("keys_from"):
        return None
    k = request["keys_from"]
    sources = tuple((s["table"], s["column"]) for s in _require(k, "sources", where))
    return KeysFrom(param=_require(k, "param", where), sources=sources, max_url_length=int(k.get("max_url_length", 2000)))


def _parse_tables(raw: dict, where: str, partition: Partition | None) -> list[TableSpec]:
    """The stream's own table (first, when it has one) and its children's."""
    tables: list[TableSpec] = []
    partition_cols = []
    if partition:
        partition_cols = [Column(name=partition.param, type="string", source=partition.param, from_partition=True)]
    parent: TableSpec | None = None
    if raw.get("table"):
        parent = _parse_table(raw, where, None, partition_cols)
        tables.append(parent)
    for child in raw.get("children") or []:
        tables.append(_parse_child(child, f"{where} child {child.get('table')!r}", parent))
    if not tables:
        raise ConfigError(f"{where}: defines no table (give 'table' or 'children')")
    return tables


def _parse_child(child: dict, where: str, parent: TableSpec | None) -> TableSpec:
    """A child table: the records of a nested list, with the parent's key columns."""
    nested = _require(child, "field", where)
    links = child.get("parent_fields") or {}
    parent_cols = [
        Column(name=col, type=typ, source=src, nullable=False, from_parent=True)
        for col, (src, typ) in (
            (c, (s["from"], s["type"]) if isinstance(s, dict) else (s, "integer")) for c, s in links.items()
        )
    ]
    table = _parse_table(child, where, nested, parent_cols)
    link = None
    if parent is not None and parent_cols:
        first = parent_cols[0]
        if first.source not in parent.column_names:
            raise ConfigError(f"{where}: parent field {first.source!r} is not a column of {parent.name!r}")
        link = (first.name, first.source)
    return TableSpec(table.name, table.primary_key, table.columns, nested, link)


def load_definitions(directory: Path | None = None) -> dict[str, StreamDefinition]:
    """Load every `*.yaml` definition (the packaged ones by default: parsed once and kept until a
    file changes, `definitions_cache.py`), ordered so that a stream comes after the streams it
    depends on."""
    if directory is None:
        from .definitions_cache import packaged

        return packaged(_parse_files)
    return _parse_files([(p.name, p.read_text(encoding="utf-8")) for p in Path(directory).glob("*.yaml")])


def _parse_files(files: list[tuple[str, str]]) -> dict[str, StreamDefinition]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's where PyYAML has it (~8x faster)
    definitions: dict[str, StreamDefinition] = {}
    for file_name, text in sorted(files):
        try:
            raw = yaml.load(text, Loader=loader)
        except yaml.YAMLError as exc:
            raise ConfigError(f"stream definition {file_name}: not valid YAML: {exc}") from exc
        definition = parse_definition(raw, file_name)
        if definition.name in definitions:
            raise ConfigError(f"stream {definition.name!r} is defined twice ({file_name})")
        definitions[definition.name] = definition
    all_tables: dict[str, str] = {}
    for d in definitions.values():
        for t in d.table_names:
            if t in all_tables:
                raise ConfigError(f"table {t!r} is produced by both {all_tables[t]!r} and {d.name!r}")
            all_tables[t] = d.name
        for dep in d.depends_on:
            if dep not in definitions:
                raise ConfigError(f"stream {d.name!r} depends on unknown stream {dep!r}")
    return _dependency_order(definitions)


def _dependency_order(definitions: dict[str, StreamDefinition]) -> dict[str, StreamDefinition]:
    ordered: dict[str, StreamDefinition] = {}
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            raise ConfigError(f"stream dependencies form a cycle through {name!r}")
        visiting.add(name)
        for dep in definitions[name].depends_on:
            visit(dep)
        ordered[name] = definitions[name]

    for name in definitions:
        visit(name)
    return ordered


def select_streams(definitions: dict[str, StreamDefinition], names: list[str] | None) -> list[StreamDefinition]:
    """The selected streams in dependency order; unknown names are a ConfigError."""
    if not names:
        return list(definitions.values())
    unknown = [n for n in names if n not in definitions]
    if unknown:
        raise ConfigError(f"unknown stream(s) {', '.join(unknown)}; known streams: {', '.join(definitions)}")
    return [d for n, d in definitions.items() if n in names]


def with_dependencies(definitions: dict[str, StreamDefinition], names: list[str] | None) -> list[StreamDefinition]:
    """The named streams (all when None) and the streams they depend on (inventory: products),
    in dependency order; unknown names are a ConfigError."""
    wanted = {d.name for d in select_streams(definitions, names)}
    wanted |= {dep for name in wanted for dep in definitions[name].depends_on if dep in definitions}
    return [d for name, d in definitions.items() if name in wanted]
