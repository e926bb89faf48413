"""The connector as a dlt source: `from sqquid_etl.dlt import sqquid_source`, then any of dlt's
destinations (DuckDB, Postgres, Snowflake, BigQuery, ClickHouse, ...) receives the data.

    import dlt
    from sqquid_etl.dlt import sqquid_source

    pipeline = dlt.pipeline("sqquid", destination="duckdb", dataset_name="sqquid")
    pipeline.run(sqquid_source(["orders", "products", "inventory"]))   # again later: incremental

One dlt resource per table (`orders`, `order_items`, ...), yielding Arrow tables (dlt skips its
normalize stage for them), each with its primary key; tables of incremental streams are merged
(`write_disposition="merge"`), snapshots replaced. The source runs the same engine as
`sqquid-etl extract` (pacing, tolerant reading, the /count check) into `emit.EmittingDestination`:
the first resource dlt asks for runs the streams of the resources dlt selected
(`source.with_resources(...)`) and those they depend on, its commits spooled to Parquet files
(memory stays bounded), which each resource then yields. The bookmarks (and the skus inventory is
listed by) live in dlt's source state, which dlt stores with the data it loads: a load that fails
leaves the previous state. Settings resolve as for `extract(...)` (arguments, environment,
sqquid.toml, defaults). Needs `pip install 'sqquid-etl[dlt]'`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import weakref
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable, Iterator

import pyarrow as pa

try:
    import dlt
except ImportError as exc:  # pragma: no cover - the core install has no dlt
    raise ImportError("sqquid_etl.dlt needs dlt: pip install 'sqquid-etl[dlt]'") from exc

from .emit import Commit, EmittingDestination
from .errors import SqquidError
from .definitions import StreamDefinition, with_dependencies
from .state import StreamState

STATE_KEY = "sqquid"  # dlt source state: {"bookmarks": {stream: StreamState}, "keys": {table.column: [...]}}


class _Run:
    """One extraction for one dlt extract, spooled per table: the streams of the resources dlt
    selected (`source.with_resources(...)`) and the streams they depend on."""

    def __init__(self, definitions: dict[str, StreamDefinition], streams: list[str], kwargs: dict[str, Any], client: Any):
        self.definitions, self.streams, self.kwargs, self.client = definitions, streams, kwargs, client
        self.loaded: set[str] = set(streams)  # the streams whose every table dlt loads: their bookmarks move
        self.spool = Path(tempfile.mkdtemp(prefix="sqquid-dlt-"))
        self.files: dict[str, list[Path]] | None = None
        weakref.finalize(self, shutil.rmtree, self.spool, True)

    def batches(self, table: str) -> Iterator[pa.Table]:
        if self.files is None:
            self._extract()
        import pyarrow.parquet as pq

        for path in self.files.pop(table, []):  # type: ignore[union-attr]
            for batch in pq.ParquetFile(path).iter_batches():
                yield pa.Table.from_batches([batch])
            path.unlink()

    def _extract(self) -> None:
        from .pipeline import extract

        self.files = {}
        self._select(set(dlt.current.source().resources.selected))
        saved = dlt.current.source_state().setdefault(STATE_KEY, {})
        states = {name: StreamState.from_json(json.dumps(value), f"dlt source state, stream {name!r}")
                  for name, value in saved.get("bookmarks", {}).items()}
        destination = EmittingDestination(on_commit=self._commit, states=states, keys=dict(saved.get("keys", {})),
                                          label="dlt source", tuning=self.kwargs["tuning"])
        result = extract(self.streams, destination=destination, client=self.client, reconcile=False, **self.kwargs)
        failed = [s for s in result.streams if s.status == "failed"]
        if failed:
            raise SqquidError("; ".join(f"stream {s.stream} failed: {s.message}" for s in failed))

    def _select(self, tables: set[str]) -> None:
        """Run only the streams of the selected resources (and what they depend on: inventory is
        listed by the skus of products). A stream run for another's sake, or with a table dlt does
        not load, keeps its bookmark: its rows were not all loaded, so the next run reads them again."""
        wanted = [name for name in self.streams if tables & {t.name for t in self.definitions[name].tables}]
        self.loaded = {name for name in wanted if {t.name for t in self.definitions[name].tables} <= tables}
        self.streams = [d.name for d in with_dependencies(self.definitions, wanted)] if wanted else []

    def _commit(self, commit: Commit) -> None:
        import pyarrow.parquet as pq

        from .records import arrow_schema

        for spec in commit.stream.tables:
            schema = arrow_schema(spec)  # the definition's nullability: keys are NOT NULL for dlt too
            name = spec.name
            path = self.spool / f"{name}.{len(self.files.get(name, []))}.parquet"  # type: ignore[union-attr]
            with pq.ParquetWriter(path, schema) as writer:
                for batch in commit.tables[name]:
                    writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
            self.files.setdefault(name, []).append(path)  # type: ignore[union-attr]
        saved = dlt.current.source_state().setdefault(STATE_KEY, {})
        if commit.stream.name in self.loaded:
            saved.setdefault("bookmarks", {})[commit.stream.name] = asdict(commit.state)
        saved["keys"] = commit.keys


@dlt.source(name="sqquid", max_table_nesting=0)
def sqquid_source(
    streams: Iterable[str] | str | None = None,
    *,
    config: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    start_date: str | None = None,
    lookback: str | None = None,
    rate: float | None = None,
    burst: int | None = None,
    catalog: str | dict | None = None,
    strict: bool | None = None,
    client: Any = None,
) -> Any:
    """One dlt resource per table of the selected streams (all by default, or the config file's,
    or the catalog's), each an Arrow table stream with its primary key; merge for incremental
    streams, replace for snapshots. Arguments mean what they mean for `extract(...)`."""
    from .api import resolve_settings
    from .catalog import apply_catalog
    from .definitions import load_definitions

    resolved = resolve_settings(config, streams=streams, base_url=base_url, api_key=api_key, username=username,
                                password=password, start_date=start_date, lookback=lookback, rate=rate, burst=burst,
                                catalog=catalog, strict=strict)
    definitions = apply_catalog(resolved.catalog) if resolved.catalog else load_definitions()
    selected = with_dependencies(definitions, resolved.streams)
    kwargs = {k: v for k, v in resolved.pipeline_kwargs().items() if k not in ("duckdb", "parquet", "iceberg", "full_refresh")}
    kwargs["schema_contract"] = kwargs["schema_contract"] or "discard"  # no table here to add columns to
    run = _Run(definitions, [d.name for d in selected], kwargs, client)
    resources = []
    for definition in selected:
        merge = definition.sync != "full_refresh"
        for table in definition.tables:
            resources.append(dlt.resource(
                _table_batches(run, table.name), name=table.name, primary_key=list(table.primary_key),
                write_disposition="merge" if merge else "replace",
            ))
    return resources


def _table_batches(run: _Run, table: str):
    def batches() -> Iterator[pa.Table]:
        yield from run.batches(table)

    batches.__name__ = table
    return batches
