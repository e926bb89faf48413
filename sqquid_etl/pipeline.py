"""The Python API of an extraction: `extract(...)` -> ExtractResult. The CLI is a thin layer on it.

The flow of one stream is one direction: plan its windows from the state, run them through the
engine (stage, count check, commit with state), ask reconciliation which windows the API still
has more records in, run those too, and record the stream's one run row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterable

from .client import SqquidClient
from .definitions import StreamDefinition, load_definitions, select_streams
from .destinations import Destination, check_destination, open_destination, opened_to_check
from .engine import ProgressCallback, RunOptions, StreamResult, StreamRun, new_run_id, plan_windows, run_windows
from .errors import ConfigError, SqquidError, StateError, unexpected
from .evolve import CONTRACTS, dropped_fields
from .freshness import parse_reread_overrides
from .reconcile import ApiCounts, describe_gaps, describe_surpluses, find_gaps
from .redaction import SECRETS
from .relist import from_start, relist_windows, unfinished
from .scan import describe_changes, find_changed_ranges
from .verify import verify_keys
from .settings import DEFAULT_BURST, DEFAULT_LOOKBACK, DEFAULT_RATE, Tuning, check_pacing
from .state import BEGINNING, NO_PARTITION, StreamState, after_now, parse_duration, parse_timestamp

# a stored cursor later than now by more than this is warned about on every run (the API's clock
# may run a little ahead of this machine's)
FUTURE_SLACK = timedelta(days=1)
PASSES = 5  # count scans a stream's reconciliation runs at most (each after the re-listing of the one before)

log = logging.getLogger(__name__)


@dataclass
class ExtractResult:
    run_id: str
    destination: str
    streams: list[StreamResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.status != "failed" for s in self.streams)

    @property
    def exit_code(self) -> int:
        """0 when every stream succeeded, else the exit code of the first failure."""
        return next((s.exit_code or 1 for s in self.streams if s.status == "failed"), 0)

    def stream(self, name: str) -> StreamResult:
        for result in self.streams:
            if result.stream == name:
                return result
        raise KeyError(f"no stream {name!r} in this run (it ran: {', '.join(s.stream for s in self.streams) or 'none'})")


def _iceberg(location: str | None, account: str | None = None) -> dict:
    """The Iceberg destination and the account as the destination factories take them (none: {})."""
    return {**({"iceberg": location} if location else {}), **({"account": account} if account else {})}


def extract(
    streams: Iterable[str] | None = None,
    *,
    duckdb: str | Path | None = None,
    parquet: str | Path | None = None,
    iceberg: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    start_date: str | datetime | None = None,
    lookback: str = DEFAULT_LOOKBACK,
    full_refresh: bool | Iterable[str] = False,
    strict: bool = False,
    rate: float | None = DEFAULT_RATE, burst: int = DEFAULT_BURST,
    client: SqquidClient | None = None,
    progress: ProgressCallback | None = None,
    stop_on_failure: bool = False, reconcile: bool = True,
    catalog: str | Path | dict | None = None,
    stream_done: Callable[[StreamResult], None] | None = None,
    tuning: Tuning | None = None,
    schema_contract: str | None = None, destination: Destination | None = None,
    reread: str | dict | None = None, hard_delete: bool = False, verify_keys: bool = False,
    account: str | None = None,
) -> ExtractResult:
    """Extract the selected streams (all by default) into DuckDB (default `sqquid.duckdb`) or a
    Parquet directory or URL, or Iceberg tables (`iceberg`: WAREHOUSE[?catalog=URL&namespace=NAME]). Options are validated before anything is requested or written.
    `catalog` (a Singer catalog file or dict) selects the streams and fields; `stream_done` is
    called with each stream's result as it finishes. `tuning` (how destinations use memory)
    defaults to the environment's SQQUID_DUCKDB_MEMORY_LIMIT, SQQUID_DUCKDB_THREADS, SQQUID_FLUSH_ROWS.
    `schema_contract` (evolve | freeze | discard) says what becomes of the fields no definition
    names: by default each stream's `schema_contract`, else evolve (new nullable columns).
    `destination`: an opened one instead of duckdb/parquet/iceberg (`emit.EmittingDestination`).
    `reread` ("orders=30d,products=all"), `hard_delete`: `freshness.py`. `account`: the
    destination is opened bound to that account (many accounts, `accounts_run.py`)."""
    selected, options = _plan(streams, catalog, start_date, lookback, full_refresh, strict, schema_contract, reread)
    options.hard_delete, options.verify_keys = hard_delete, verify_keys
    check_pacing(rate, burst)
    tuning = Tuning.from_env() if tuning is None else tuning
    first = destination is None and opened_to_check(duckdb, parquet, **_iceberg(iceberg))
    if destination is None:
        check_destination(duckdb, parquet, tuning=tuning, look=not first, **_iceberg(iceberg, account))
    own_client = client is None
    if client is None:
        client = SqquidClient.from_env(base_url, api_key, username, password, rate=rate, burst=burst)
    destination = _open(client, own_client, lambda: destination or open_destination(duckdb, parquet, tuning=tuning, **_iceberg(iceberg, account)),
                        first)
    result = ExtractResult(run_id=new_run_id(), destination=destination.location)
    try:
        start = lambda definition: StreamRun(definition, client, destination, options, result.run_id, progress)  # noqa: E731
        _run_streams(result, selected, start, reconcile, stream_done, stop_on_failure)
        destination.after_load()  # DuckDB: the order_lines / available_to_sell views
    finally:
        destination.close()
        if own_client:
            client.close()
    return result


def _run_streams(result: ExtractResult, selected: list[StreamDefinition], start: Callable[[StreamDefinition], StreamRun],
                 reconcile: bool, stream_done: Callable[[StreamResult], None] | None, stop_on_failure: bool) -> None:
    """Each stream in turn, its result into `result`. A stream that depends on one whose state
    could not be read is not run (its keys would come from a table whose state is unknown)."""
    corrupt: set[str] = set()
    for definition in selected:
        run = start(definition)
        parent = next((name for name in definition.depends_on if name in corrupt), None)
        stream_result = _not_run(run, parent) if parent else _extract_stream(run, reconcile)
        if stream_result.exit_code == StateError.exit_code:
            corrupt.add(definition.name)
        result.streams.append(stream_result)
        if stream_done:
            stream_done(stream_result)
        if stream_result.status == "failed" and (stop_on_failure or stream_result.exit_code in (2, 3)):
            break


def _open(client: SqquidClient, own_client: bool, open_: Callable[[], Destination], first: bool) -> Destination:
    """Log in and open the destination. A new one is opened after the login (bad credentials
    create nothing); `first`: one that exists is opened before it, its open being its check
    (`opened_to_check`: the file opened once, not looked at before the login and opened after)."""
    opened = None
    try:
        if first:
            opened = open_()
        client.ensure_token()
        return opened or open_()
    except BaseException:
        if opened is not None:
            opened.close()
        if own_client:
            client.close()
        raise


def check_options(streams: Iterable[str] | None = None, *, catalog: str | Path | dict | None = None,
                  start_date: str | datetime | None = None, lookback: str = DEFAULT_LOOKBACK,
                  full_refresh: bool | Iterable[str] = False, schema_contract: str | None = None,
                  reread: str | dict | None = None, rate: float | None = DEFAULT_RATE, burst: int = DEFAULT_BURST) -> None:
    """Refuse, as `extract` would, options that do not validate (a ConfigError), requesting nothing."""
    _plan(streams, catalog, start_date, lookback, full_refresh, False, schema_contract, reread)
    check_pacing(rate, burst)


def _plan(streams, catalog, start_date, lookback, full_refresh, strict,
          schema_contract=None, reread=None) -> tuple[list[StreamDefinition], RunOptions]:
    """The streams to run, in dependency order, and the run's options; a bad one is a ConfigError."""
    if schema_contract is not None and schema_contract not in CONTRACTS:
        raise ConfigError(f"--schema-contract {schema_contract!r}: expected one of {', '.join(CONTRACTS)}")
    definitions = full = load_definitions()
    if catalog is not None:
        from .catalog import apply_catalog, check_named

        definitions = apply_catalog(catalog, definitions)
        check_named(catalog, full, definitions, list(streams or ()), "--streams")
        if not isinstance(full_refresh, bool):
            check_named(catalog, full, definitions, list(full_refresh), "--full-refresh")
    selected = select_streams(definitions, list(streams) if streams else None)
    deselected = {d.name: dropped_fields(full[d.name], d) for d in selected if d.name in full}
    if isinstance(full_refresh, bool):
        refresh = frozenset(d.name for d in selected) if full_refresh else frozenset()
    else:
        refresh = frozenset(full_refresh)
        select_streams(definitions, list(refresh))  # unknown names are an error
    start = parse_timestamp(start_date, "--start-date") if start_date else None
    if start is not None and after_now(start):
        raise ConfigError(f"--start-date {start_date}: after now; nothing would be read: give a date in the past")
    if start is not None and start < BEGINNING:
        start = None  # the beginning (`state.window_start`)
    if start is not None:
        start = start.replace(microsecond=0)  # what the API's filters take (`state.format_param`)
    options = RunOptions(
        start_date=start,
        lookback=parse_duration(lookback, "--lookback"),
        full_refresh=refresh,
        strict=strict,
        schema_contract=schema_contract,
        deselected={name: fields for name, fields in deselected.items() if fields},
    )
    options.reread = parse_reread_overrides(reread, full)
    return selected, options


def _extract_stream(run: StreamRun, reconcile: bool) -> StreamResult:
    """Plan, run and (optionally) reconcile one stream; an error fails the stream only (one not
    raised on purpose, a bug or the machine's, is said as `errors.unexpected` says it). One
    that comes after the stream's data and cursor were committed (a request of the
    reconciliation) does not undo them: the stream and its run row say both (a warning; under
    --strict a failure)."""
    stream, result = run.stream, run.result
    committed = None  # (status, message, rows) once the data and cursor are committed
    try:
        old_state = StreamState() if run.refresh else _stored_state(run)
        windows = plan_windows(stream, old_state, run.options)
        check = run_windows(run, windows, old_state, replace=run.refresh)
        committed = result.status, result.message, dict(result.rows)
        if reconcile:
            known = {} if check is None else {
                (w.partition, w.since): n for w, n in check.api_counts.items() if w.until is None and w.keys is None
            }
            _reconcile(run, known, windows)
            if run.options.verify_keys:
                verify_keys(run, windows)
    except Exception as exc:  # noqa: BLE001 - a bug or the machine's error fails this stream, not the run
        if not isinstance(exc, SqquidError):
            log.debug("stream %s: the error's traceback", stream.name, exc_info=exc)
            exc = SqquidError(SECRETS.redact(unexpected(exc)))
        if committed is not None:
            _failed_after_commit(run, committed, exc)
        else:
            log.error("stream %s failed: %s", stream.name, exc)
            result.status, result.exit_code, result.message = "failed", exc.exit_code, str(exc)
    run.tally()
    return result


def _failed_after_commit(run: StreamRun, committed: tuple, exc: SqquidError) -> None:
    """The stream's data and cursor are stored; what failed after them is said beside that, in
    its result and in its one run row."""
    result = run.result
    result.status, result.message, result.rows = committed  # rows a failed repair staged were not stored
    rows = sum(result.rows.values())
    result.add_message(f"its data ({rows} rows) and cursor were committed; what came after failed: {exc}")
    if run.options.strict:
        result.status, result.exit_code = "failed", exc.exit_code
        result.message = f"{result.message} (--strict)"
    else:
        result.status, result.exit_code = "warning", 0
    log.log(logging.ERROR if run.options.strict else logging.WARNING, "stream %s: %s", run.stream.name, result.message)
    try:
        run.destination.record_run(run.run_record())
    except SqquidError as again:
        log.error("stream %s: its run row could not be recorded: %s", run.stream.name, again)


def _stored_state(run: StreamRun) -> StreamState:
    """The stream's state (only its own: another stream's corrupt state does not matter here);
    what it says that the user should know is said: no state while the tables hold rows (a
    deleted state: the stream is read again from the start date), a cursor after now."""
    stream = run.stream
    state = run.destination.load_state(stream.name)
    if state is None:
        table = stream.tables[0].name
        rows = run.destination.count_since(table, stream.cursor.field, None, {}) if stream.cursor else 0
        if rows:
            _warn(run, f"no stored state while table {table} holds {rows} rows (reset or deleted?): read again "
                       "from the start date, rows merged by key")
        return StreamState()
    for partition, cursor in sorted(state.cursors.items()):
        if after_now(parse_timestamp(cursor, "cursor"), slack=FUTURE_SLACK):
            where = "" if partition == NO_PARTITION else f" (partition {partition})"
            _warn(run, f"cursor {cursor}{where} is after now: nothing newer is read until then; fix it with "
                       f"'sqquid-etl state set {stream.name} --cursor DATE'")
    return state


def _warn(run: StreamRun, message: str) -> None:
    log.warning("stream %s: %s", run.stream.name, message)
    run.result.add_message(message)
    if run.result.status == "ok":
        run.result.status = "warning"


def _not_run(run: StreamRun, parent: str) -> StreamResult:
    """A stream not run because the state of a stream it depends on cannot be read."""
    result = run.result
    result.status, result.exit_code = "failed", StateError.exit_code
    result.message = f"not run: it depends on stream {parent!r}, whose state cannot be read (see its error)"
    log.error("stream %s failed: %s", run.stream.name, result.message)
    try:
        run.destination.record_run(run.run_record())
    except SqquidError as exc:
        log.error("stream %s: its run row could not be recorded: %s", run.stream.name, exc)
    return result


def _relist(run: StreamRun, changed: list, spent: int) -> None:
    """List the changed ranges again (`relist.py`), merged, records gone proven; ranges that still
    differ (late records a listing by key cannot reach) are listed from their start to now."""
    stream, destination, result = run.stream, run.destination, run.result
    deleted_before = result.records_deleted
    state = destination.load_state(stream.name) or StreamState()
    run_windows(run, relist_windows(stream, destination, changed), state, replace=False)
    late = unfinished(stream, destination, changed)
    if late:
        run_windows(run, from_start(late), destination.load_state(stream.name) or StreamState(), replace=False)
    result.repaired += sum(max(0, c.api - c.stored) for c in changed)  # late records (or moved in) of the ranges
    result.add_message(describe_changes(changed, spent, result.records_deleted - deleted_before))


def _reconcile(run: StreamRun, known_counts: dict, listed: dict) -> None:
    """Ask reconciliation which windows the API has more records in than the destination, and
    where behind the run's windows the records changed in number (deleted, moved to another
    partition); run those (merged, cursors never backwards; a complete re-listing proves which
    stored records are gone); say so in the stream's result and its run row."""
    stream, destination, result = run.stream, run.destination, run.result
    start = run.options.start_date
    counts = ApiCounts(stream, run.client, known_counts)  # `known_counts`: (partition, since) -> this run's counts
    touched, listed_again = False, set()
    for _ in range(PASSES):  # a range listed again can unmask a change another offset: scanned again (its
        changed = find_changed_ranges(stream, counts, destination, start, listed, fine=bool(listed_again))  # counts known: ~free)
        if not changed or listed_again.issuperset(changed):
            break
        listed_again.update(changed)
        _relist(run, changed, counts.requests)
        touched = True
    gaps, surpluses = find_gaps(stream, counts, destination, start, run.quarantined)  # what the ranges left
    if gaps:
        state = destination.load_state(stream.name) or StreamState()
        run_windows(run, {g.partition: g.since for g in gaps}, state, replace=False, count=False)
        result.repaired += sum(g.missing for g in gaps)
        result.add_message(describe_gaps(gaps))
        touched = True
    if touched:
        remaining, surpluses = find_gaps(stream, counts, destination, start, quarantined=run.quarantined)
        if remaining:
            result.add_message(f"still {sum(g.missing for g in remaining)} missing after the repair")
            result.status = "warning"
    if surpluses:
        result.add_message(describe_surpluses(surpluses))
        result.status = "warning"
    if not (touched or surpluses):
        return
    if run.options.strict and result.status == "warning":
        result.status, result.exit_code = "failed", 1
        result.message = f"{result.message} (--strict)"
    destination.record_run(run.run_record())  # the run's one row for the stream, now final
