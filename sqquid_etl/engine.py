"""Run one set of windows of a stream: pages -> Arrow -> staged -> committed with state.

The engine knows no stream by name; everything particular to a stream is in its definition.
It is called by the pipeline, once for the windows the state plans (`plan_windows`) and once
more for any windows reconciliation asks to repair; it never calls back.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from .client import SqquidClient
from .commit_parts import PartCommits
from .count_check import CountCheck, check_count
from .cpu_gate import UNGATED
from .cursors import CursorTracker
from .definitions import REREAD_ALL, StreamDefinition
from .destinations import Destination
from .errors import ConfigError, SchemaError, SqquidError
from .evolve import DEFAULT_CONTRACT
from .fetch import FetchStats
from .keys import batch_keys
from .listing import Window, as_windows
from .read import read_tables
from .records import PageTables
from .runs import CHANGE_COLUMNS, REJECTED_TABLE, RunRecord, rejected_rows
from .state import NO_PARTITION, StreamState, format_timestamp, window_start

log = logging.getLogger(__name__)

Windows = dict  # partition (None: the stream has none) -> where its window starts (None: from the beginning)
# run_windows also takes a list of `listing.Window` (ranges bounded above, key batches: `relist.py`)
ProgressCallback = Callable[[str, int, int], None]  # stream, pages, records


@dataclass
class StreamResult:
    """What a stream did in a run (all its window sets together): the summary line and run row."""

    stream: str
    status: str = "ok"  # ok | warning | failed
    rows: dict[str, int] = field(default_factory=dict)
    pages: int = 0
    requests: int = 0
    seconds: float = 0.0
    window_start: str | None = None
    cursor: str | None = None
    count_expected: int | None = None
    count_received: int | None = None
    message: str | None = None
    exit_code: int = 0
    repaired: int = 0  # records found missing behind the cursor and re-fetched
    started_at: str = ""
    records_stored: int = 0  # records received and staged (values coerced where they drifted)
    values_coerced: int = 0  # values stored in another form than sent, without loss
    records_quarantined: int = 0  # records received and stored in `_sqquid_rejected` instead
    records_new: int = 0  # by content hash, where the destination keeps one (`runs.RunRecord`)
    records_changed: int = 0
    records_unchanged: int = 0
    records_deleted: int = 0  # proven gone upstream: marked `_sqquid_deleted_at` (or removed)

    @property
    def count_check(self) -> str:
        if self.count_expected is None:
            return "n/a"
        return "ok" if self.count_expected == self.count_received else "mismatch"

    def add_message(self, message: str) -> None:
        self.message = f"{self.message}; {message}" if self.message else message


@dataclass
class RunOptions:
    start_date: datetime | None = None
    lookback: timedelta = timedelta(seconds=1)
    full_refresh: frozenset[str] = frozenset()
    strict: bool = False
    prefetch_pages: int = 2
    schema_contract: str | None = None  # evolve | freeze | discard; None: each stream's (else evolve)
    deselected: dict = field(default_factory=dict)  # stream -> (table, field) a catalog deselected
    reread: dict = field(default_factory=dict)  # stream -> its re-read window for this run (None: none)
    hard_delete: bool = False  # records proven gone are removed, not marked `_sqquid_deleted_at`
    verify_keys: bool = False  # compare the stored keys with the API's, range by range (`verify.py`)
    commit_seconds: float | None = None  # a first load committed in parts this often (None: COMMIT_SECONDS, inf: never)

    def reread_of(self, stream: StreamDefinition) -> timedelta | None:
        """The trailing window the stream re-reads every run: the run's override, else its definition's."""
        return self.reread[stream.name] if stream.name in self.reread else stream.reread


@dataclass
class StreamRun:
    """One stream's part of a run: what it runs against, and what it has done so far (`result`)."""

    stream: StreamDefinition
    client: SqquidClient
    destination: Destination
    options: RunOptions
    run_id: str
    progress: ProgressCallback | None = None
    result: StreamResult = field(init=False)
    quarantined: list = field(default_factory=list)  # (partition, cursor or None) of each record quarantined
    undocumented: set = field(default_factory=set)  # (table, field) of the undocumented fields said so far
    commits: int = 0  # commits of the stream so far in this run (its windows, then repairs)
    verified: dict | None = None  # where `--verify-keys` resumes, as the next commit stores it (None: as stored)
    _requests_before: int = field(init=False)
    _started: float = field(init=False)

    def __post_init__(self) -> None:
        self.result = StreamResult(stream=self.stream.name, started_at=_now())
        self._requests_before = self.client.stats.requests
        self._started = time.monotonic()

    @property
    def contract(self) -> str:
        """What is done with an undocumented field: the run's contract, else the stream's, else evolve."""
        return self.options.schema_contract or self.stream.schema_contract or DEFAULT_CONTRACT

    @property
    def refresh(self) -> bool:
        """Replace the stream's tables (a full-refresh stream, or --full-refresh of it)."""
        return self.stream.sync == "full_refresh" or self.stream.name in self.options.full_refresh

    def tally(self) -> None:
        """Requests and seconds of the stream so far, into its result."""
        self.result.requests = self.client.stats.requests - self._requests_before
        self.result.seconds = time.monotonic() - self._started

    def run_record(self, status: str | None = None) -> RunRecord:
        """The stream's one row of `_sqquid_runs` for this run (a later commit of the run replaces it)."""
        self.tally()
        r = self.result
        return RunRecord(
            run_id=self.run_id, stream=self.stream.name, started_at=r.started_at, finished_at=_now(),
            status=status or r.status, rows=sum(r.rows.values()), pages=r.pages, requests=r.requests,
            window_start=r.window_start, cursor=r.cursor, count_expected=r.count_expected,
            count_received=r.count_received, count_check=r.count_check, message=r.message,
            records_stored=r.records_stored, values_coerced=r.values_coerced, records_quarantined=r.records_quarantined,
            **{name: getattr(r, name) for name in CHANGE_COLUMNS},
        )


def plan_windows(stream: StreamDefinition, state: StreamState, options: RunOptions) -> Windows:
    """Where each partition's window starts: the stored cursor less the lookback, or less the
    stream's re-read window when that is longer (REREAD_ALL: the start date), else the start date."""
    windows: Windows = {}
    reread = options.reread_of(stream)
    back = max(options.lookback, reread) if reread and reread != REREAD_ALL else options.lookback
    for partition in stream.partition.values if stream.partition else [None]:
        cursor = state.cursors.get(partition or NO_PARTITION)
        if stream.cursor is None:
            windows[partition] = None
        elif reread == REREAD_ALL:
            windows[partition] = options.start_date
        else:
            windows[partition] = window_start(cursor, back, options.start_date)
    return windows


def run_windows(run: StreamRun, windows: Windows | list[Window], old_state: StreamState, *, replace: bool,
                count: bool = True) -> CountCheck | None:
    """Read the windows, stage their pages and commit them with the advanced state and the run
    row, in one commit; `run.result` accumulates. On failure nothing is stored, the run row says
    so, and the error is raised. Returns the count check (None: not asked, or no /count)."""
    stream, spans = run.stream, as_windows(windows)
    writer = run.destination.begin(stream, replace=replace)
    if hasattr(writer, "hard_delete"):
        writer.hard_delete = run.options.hard_delete  # child rows a parent no longer has: removed, not marked
    try:
        tracker = CursorTracker(stream)
        rejected_keys: set = set()
        quarantined_before = run.result.records_quarantined
        parts = PartCommits(run, writer, old_state, run.options.commit_seconds)
        stats = _stage_pages(run, spans, writer, tracker, rejected_keys, parts)
        check, whole = None, count and _bounded(spans, stats)
        if count and stream.count and not whole:
            # a record quarantined was received too: rows in = rows stored + rows quarantined
            received = writer.distinct_keys(stream.tables[0].name) + len(rejected_keys)
            check = _check_count(run, spans, stats, received)
        # complete: the count agreed, or bounded windows each listed in one short page (nothing could
        # shift between pages), or key batches no /count takes (a listing by key is paged to its end)
        complete = check.ok if check is not None else whole or count and bool(spans) and all(w.keys is not None for w in spans)
        if complete and not rejected_keys and hasattr(writer, "prove_gone"):
            _prove_gone(stream, spans, writer, run.options.hard_delete)
        cursors = tracker.advance(old_state.cursors)
        _note_windows(run.result, spans, cursors)
        quarantined = run.result.records_quarantined - quarantined_before
        if quarantined:
            if run.result.status == "ok":
                run.result.status = "warning"
            run.result.add_message(f"{quarantined} record(s) quarantined in {REJECTED_TABLE}")
        record = run.run_record()
        writer.commit(_new_state(run, cursors, old_state), record)
        unchanged = run.result.records_unchanged
        for name in CHANGE_COLUMNS:  # the writer counted this commit's records into the run row
            setattr(run.result, name, getattr(record, name))
        if run.commits:  # a repair re-reads records the run's first commit counted: unchanged once
            run.result.records_unchanged = unchanged
        run.commits += 1
    except BaseException as exc:
        writer.abort()
        _record_failure(run, exc)
        raise
    return check


def _bounded(windows: list[Window], stats: FetchStats) -> bool:
    """Whether every window is a bounded range or key batch whose listing took one page: the
    answer holds all its records (a short page), so it needs no /count to be known complete."""
    return bool(windows) and all(w.until is not None or w.keys is not None for w in windows) and not stats.paged & set(windows)


def _prove_gone(stream: StreamDefinition, windows: list[Window], writer, hard: bool) -> None:
    """The windows were listed completely: a stored record of a window that the listing did not
    return is gone upstream. The writer marks it at commit. A window's lower bound is read as the
    name `created_at_min` says (included); its upper bound (`until`) is proven only before it (the
    reference says "before" of `created_at_max`, the sandbox includes it: docs/api-notes.md)."""
    if stream.cursor is None:
        return
    for window in windows:
        equals = {stream.partition.param: window.partition} if stream.partition and window.partition else {}
        if window.keys is not None and stream.relist:
            writer.prove_gone(stream.cursor.field, None, equals, hard=hard, key=(stream.relist.field, window.keys))
        else:
            writer.prove_gone(stream.cursor.field, window.since, equals, hard=hard, until=window.until)


def _stage_pages(run: StreamRun, windows: list[Window], writer, tracker: CursorTracker, rejected_keys: set,
                 parts: PartCommits) -> FetchStats:
    stream, result = run.stream, run.result
    stats = FetchStats()
    key_batches = list_key_batches(stream, run.destination, run.client.base_url)
    pages = read_tables(stream, run.client, windows, key_batches, prefetch=run.options.prefetch_pages, stats=stats)
    gate = getattr(run.client, "cpu_gate", UNGATED)
    for partition, tables in pages:
        _tally_page(run, writer, partition, tables, rejected_keys)
        if tables.extras:
            tables.extras = undocumented_fields(run, writer, tables.extras)
        with gate.held(first=True):  # the CPU shared with the other accounts of the process (cpu_gate.py)
            writer.write(tables)
        tracker.observe(partition, tables)
        result.pages += 1
        for name, table in tables.items():
            result.rows[name] = result.rows.get(name, 0) + table.num_rows
        if run.progress:
            if stats.counts and hasattr(run.progress, "expect"):  # the /count asked to plan the pages
                run.progress.expect(stream.name, sum(stats.counts.values()))
            run.progress(stream.name, result.pages, result.rows.get(stream.tables[0].name, 0))
        parts.page_staged()
    return stats


def _tally_page(run: StreamRun, writer, partition: str | None, tables: PageTables, rejected_keys: set) -> None:
    """A page's records stored, values coerced and records quarantined (staged to be stored in
    `_sqquid_rejected` by the same commit); under --strict a record quarantined fails the stream."""
    result, rejected = run.result, tables.rejected
    result.values_coerced += tables.coerced
    result.records_stored += tables.records - len(rejected)
    if not rejected:
        return
    if run.options.strict or run.contract == "freeze":
        first = rejected[0]
        why = "--strict" if run.options.strict else "schema contract freeze"
        raise SchemaError(
            f"stream {run.stream.name!r}: record {first.key!r} cannot be stored without loss: table {first.table!r}, "
            f"field {first.field!r}: {first.reason} ({why}: nothing of the stream was stored)"
        )
    result.records_quarantined += len(rejected)
    writer.write_rejected(rejected_rows(run.run_id, run.stream.name, rejected))
    for index, record in enumerate(rejected):
        rejected_keys.add((partition, record.key if record.key is not None else f"#{result.pages}.{index}"))
        run.quarantined.append((partition, datetime.fromisoformat(record.cursor) if record.cursor else None))
    if result.records_quarantined == len(rejected):  # the first of the run: said once
        first = rejected[0]
        log.warning("stream %s: record %r cannot be stored without loss (%s.%s: %s): quarantined in %s, the run goes on",
                    run.stream.name, first.key, first.table, first.field, first.reason, REJECTED_TABLE)


def undocumented_fields(run: StreamRun, writer, extras: list) -> list:
    """A page's undocumented fields under the stream's schema contract: those to keep as new
    columns (`evolve`, where the destination can); each field said once a run (a warning);
    under `freeze` the first one fails the stream. Fields a catalog deselected stay dropped."""
    stream, contract = run.stream, run.contract
    deselected = run.options.deselected.get(stream.name, ())
    extras = [e for e in extras if (e.table, e.field) not in deselected]
    if extras and contract == "freeze":
        first = extras[0]
        raise SchemaError(
            f"stream {stream.name!r}: record {first.record!r} holds the undocumented field {first.field!r} "
            f"(table {first.table!r}) (schema contract freeze: nothing of the stream was stored)"
        )
    evolves = contract == "evolve" and writer.evolves
    kept = extras if evolves else []
    new_columns: dict[str, list[str]] = {}  # table -> columns first seen on this page: one line a table
    for extra in extras:
        if (extra.table, extra.field) in run.undocumented:
            continue
        run.undocumented.add((extra.table, extra.field))
        if evolves:
            new_columns.setdefault(extra.table, []).append(extra.column)
        else:
            why = ("schema contract discard" if contract == "discard" else
                   f"{run.destination.location} cannot keep undocumented fields yet")
            log.warning("stream %s: undocumented field %r of table %s dropped (%s)", stream.name, extra.field,
                        extra.table, why)
    for table, columns in new_columns.items():
        log.warning("stream %s: %d undocumented field(s) kept as new columns of %s: %s", stream.name, len(columns),
                    table, ", ".join(sorted(columns)))
    return kept


def _check_count(run: StreamRun, windows: list[Window], stats: FetchStats, received: int) -> CountCheck | None:
    """The API's /count against the distinct keys staged: a mismatch is a warning (--strict: an
    error). None: the stream's /count does not take the windows' params (key batches)."""
    check = check_count(run.stream, run.client, windows, stats.counts, received)
    if check is None:
        return None
    result = run.result
    result.count_expected, result.count_received = check.expected, check.received
    if not check.ok:
        message = f"count check: /count says {check.expected} records for this window, {check.received} received"
        if run.options.strict:
            raise SqquidError(f"stream {run.stream.name!r}: {message} (--strict)")
        result.status = "warning"
        result.add_message(message)
        log.warning("stream %s: %s", run.stream.name, message)
    return check


def _note_windows(result: StreamResult, windows: list[Window], cursors: dict[str, str]) -> None:
    """The first window start of the run (a repair never moves it) and the cursor reached."""
    if result.window_start is None:
        first = next((w.since for w in windows if w.since is not None), None)
        result.window_start = format_timestamp(first) if first else None
    result.cursor = max(cursors.values(), default=None)


def _new_state(run: StreamRun, cursors: dict[str, str], old: StreamState) -> StreamState:
    """The stream's state after this commit: cursors only move forward (`CursorTracker.advance`)."""
    return StreamState(
        cursors=cursors,
        last_run_at=_now(),
        last_run_id=run.run_id,
        rows_last_run=sum(run.result.rows.values()),
        verified=dict(old.verified if run.verified is None else run.verified),
    )


def _record_failure(run: StreamRun, exc: BaseException) -> None:
    result = run.result
    result.status = "failed"
    result.message = str(exc) if isinstance(exc, SqquidError) else f"{type(exc).__name__}: {exc}"
    try:
        run.destination.record_run(run.run_record("failed"))
    except Exception:  # noqa: BLE001 - recording a failure must not hide it
        log.debug("could not record the failed run", exc_info=True)


def list_key_batches(stream: StreamDefinition, destination: Destination, base_url: str) -> list[str] | None:
    """For a stream that lists by key (inventory by sku): the batches of keys, read from the tables
    the definition names; None for other streams."""
    spec = stream.keys_from
    if spec is None:
        return None
    values: set[str] = set()
    for table, column in spec.sources:
        found = destination.distinct_values(table, column)
        if found is None:
            raise ConfigError(
                f"stream {stream.name!r} lists by {spec.param} taken from table {table!r}, which has not been "
                f"extracted yet: run it together with {', '.join(stream.depends_on) or table!r} first"
            )
        values.update(str(v) for v in found)
    keys = batch_keys(spec, stream.path, values, base_url)
    if keys.unlistable:
        log.warning("stream %s: %d keys cannot be listed: %s", stream.name, len(keys.unlistable),
                    [f"{k!r} {why}" for k, why in list(keys.unlistable.items())[:5]])
    return keys.batches


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
