"""Reading an Iceberg table in bounded memory: its rows a data file at a time, and the data
files its snapshots list.

pyiceberg's own readers hold more than they hand out: `scan().to_arrow()` the whole result, and
`to_arrow_batch_reader()` too in effect (it submits every data file to its thread pool at once and
keeps each file's batches until they are read). A merge that reaches a whole table (a stream
re-read in full each run) would hold the table; here a file is read only when the previous one
has been consumed. `inspect.all_files()` builds an Arrow row with every statistic of every file
of every snapshot; the orphan clean-up only needs the paths.
"""

from __future__ import annotations

from typing import Any, Iterator

import pyarrow as pa


def scan_reader(table: Any, row_filter: Any = None, columns: list[str] | None = None) -> pa.RecordBatchReader:
    """The rows of `table` that `row_filter` (a pyiceberg expression; None: all) keeps, only
    `columns` (None: all), as a reader that reads one data file at a time."""
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan, schema_to_pyarrow

    options: dict[str, Any] = {"row_filter": AlwaysTrue() if row_filter is None else row_filter}
    if columns is not None:
        options["selected_fields"] = tuple(dict.fromkeys(columns))
    scan = table.scan(**options)
    projection = scan.projection()
    schema = schema_to_pyarrow(projection, include_field_ids=False)

    def batches() -> Iterator[pa.RecordBatch]:
        for task in scan.plan_files():
            reader = ArrowScan(scan.table_metadata, scan.io, projection, scan.row_filter, scan.case_sensitive)
            for batch in reader.to_record_batches([task]):
                yield batch.cast(schema)  # a file may give large_string where the table says string

    return pa.RecordBatchReader.from_batches(schema, batches())


def current_files(table: Any) -> list[str]:
    """The paths of the data files of the table's current snapshot."""
    return [task.file.file_path for task in table.scan().plan_files()]


def listed_files(table: Any) -> set[str]:
    """The paths of the data files any of the table's snapshots holds (each manifest read once;
    as `inspect.all_files()`: a manifest's entries of files deleted by its snapshot are not held)."""
    manifests = {m.manifest_path: m for snapshot in table.snapshots() for m in snapshot.manifests(table.io)}
    return {entry.data_file.file_path for manifest in manifests.values() for entry in manifest.fetch_manifest_entry(table.io)}
