"""The interface every destination implements, and all that callers may use of one.

A destination stores extracted tables, the incremental state of each stream and a record of each
run. Callers (the engine, reconciliation, the pipeline, `state` commands) get one from
`destinations.open_destination` / `open_existing` and use only the methods below: never its
class, connection, directory or private methods. A new destination (Parquet on object storage,
Apache Iceberg, ...) implements these and registers itself in `destinations/__init__.py`.

Guarantees every destination gives:
- Pages a writer is given are invisible until `commit`, which stores them with the stream's new
  state and its run record; a crash at any point leaves the old data and old state, or the new
  data and new state, never new state over old data.
- A corrupt stored state is a StateError naming where it is stored, never read as "no state".
- Records quarantined by a run (`_sqquid_rejected`) are committed with the stream's data and
  state, and the run rows gain columns over versions: a destination made by an older version
  keeps working (its `_sqquid_runs` gains the new columns, as nulls for earlier runs).
- Bound to an account (`open_destination(..., account=NAME)`, where the kind has
  `multi_account`): every table has a leading `account` column the destination stamps (the
  writer's tables do not carry it), every primary key begins with it, and everything below
  (state, run records, the reading methods, what a commit merges, replaces or marks gone) is
  that account's only; other accounts' destinations may be open on the same location at once,
  from other threads. A location is single- or multi-account, never both (`account_scope.py`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import pyarrow as pa

from ..definitions import StreamDefinition
from ..runs import RunRecord
from ..settings import Tuning
from ..state import StreamState


class StreamWriter(Protocol):
    """Stages one stream's pages; nothing is visible until `commit`, which also stores state."""

    evolves: bool  # keeps the undocumented fields of a page (`records.PageTables.extras`) as new columns

    def write(self, tables: dict[str, pa.Table]) -> None:
        """Stage a page: {table name: rows} of the stream's tables (memory bounded by a batch).
        Where the writer `evolves`, the page's `extras` (`evolve.Extra`: undocumented fields
        with their values, row by row) become new nullable columns of their tables at `commit`
        (merged by column name; an existing table may hold such columns of earlier runs), each
        recorded once in `_sqquid_schema_changes` (stream, table, column, type, first run)."""

    def write_rejected(self, rows: pa.Table) -> None:
        """Stage rows of `_sqquid_rejected` (`runs.REJECTED_COLUMNS`, all text): records the run
        quarantined, stored by the same `commit` as the data and state (or dropped with them)."""

    def distinct_keys(self, table: str) -> int:
        """How many distinct primary keys of `table` were staged so far (the count check)."""

    def commit(self, state: StreamState, run: RunRecord) -> None:
        """Merge the staged rows into the tables by primary key (the last version of a key wins; a
        parent fetched again replaces its child rows), store `state` and `run`: all or nothing.
        The staged pages are dropped, whether it succeeds or not."""

    def abort(self) -> None:
        """Drop the staged pages; the tables and state stay as they were (idempotent)."""


class Destination(Protocol):
    """Where an extract is stored; see the module's docstring."""

    @property
    def location(self) -> str:
        """Where it is, for messages (a path, or a URL for remote storage)."""

    # -- state ------------------------------------------------------------------------------------

    def load_states(self) -> dict[str, StreamState]:
        """Every stream's stored state; a StateError naming the store when any is corrupt (an
        entry that does not parse, or a stream stored twice)."""

    def load_state(self, stream: str) -> StreamState | None:
        """One stream's stored state (None: it has none); a StateError when its entry is corrupt
        or the store as a whole cannot be read. Another stream's corrupt entry does not matter."""

    def save_state(self, stream: str, state: StreamState | None) -> None:
        """Store (None: forget) one stream's state, on its own. Only this stream's entry changes,
        even when another stream's entry is corrupt; a StateError when the store as a whole cannot
        be read (then `clear_states` is the fix)."""

    def state_streams(self) -> list[str]:
        """The streams with a stored state, sorted, including those whose state is corrupt (what
        `state reset` forgets); [] when the store as a whole cannot be read."""

    def clear_states(self) -> None:
        """Forget every stream's state, repairing a store that cannot be read at all."""

    def record_run(self, run: RunRecord) -> None:
        """Store a run record on its own (a failed run: its commit never happened; or the final
        word on a run after reconciliation). One record per (run_id, stream): a later one of the
        same run and stream replaces the earlier, as does the record a `commit` stores."""

    # -- reading the stored tables ------------------------------------------------------------------

    def distinct_values(self, table: str, column: str) -> list[Any] | None:
        """The distinct non-null values of a column, sorted (the key source of streams listed by
        key, e.g. inventory by sku); None when the table has not been extracted."""

    def count_since(self, table: str, column: str, since: datetime | None, equals: dict[str, str]) -> int:
        """Rows of `table` with `column >= since` (all when None) and `k = v` for each of `equals`
        (reconciliation compares it with the API's count); 0 when the table does not exist."""

    def counts_since(self, table: str, column: str, times: list[datetime | None], equals: dict[str, str]) -> list[int]:
        """`count_since` at each of `times`, in order, read at once (the count scan's points: one
        scan of the table, not one a point)."""

    def cursor_bounds(self, table: str, column: str, equals: dict[str, str]) -> tuple[Any, Any]:
        """min and max of `column` over the rows matching `equals`; (None, None) when none."""

    def cursor_bounds_each(self, table: str, column: str, by: str | None, values: list) -> list[tuple[Any, Any]]:
        """`cursor_bounds` with `by = value` for each of `values` (`by`: a text column, a stream's
        partition; None: `[None]`, every row), in order, read at once (the count scan's
        partitions: one scan of the table, not one each).
        A destination without a faster way takes `bounds_each`."""

    def counts_since_each(self, table: str, column: str, by: str | None, times: dict[Any, list[datetime | None]]
                          ) -> dict[Any, list[int]]:
        """`counts_since` with `by = value` for each value of `times` at its times (by None: the
        one value None, every row), read at once. A destination without a faster way takes
        `counts_each`."""

    # -- writing ------------------------------------------------------------------------------------

    def begin(self, stream: StreamDefinition, replace: bool) -> StreamWriter:
        """A writer for one stream's pages; `replace`: the commit replaces the stream's tables
        instead of merging into them. An existing table whose columns differ from the stream's is
        a StateError (re-extract it with --full-refresh)."""

    def after_load(self) -> list[str]:
        """Hook for the end of an extract: what the destination derives from its tables (DuckDB:
        the `order_lines` / `available_to_sell` views). Returns the names of what it made."""

    def close(self) -> None:
        """Release the destination (its connection and its lock)."""


def bounds_each(destination: Destination, table: str, column: str, by: str | None, values: list) -> list[tuple[Any, Any]]:
    """`Destination.cursor_bounds_each` one query a value."""
    return [destination.cursor_bounds(table, column, {by: v} if by else {}) for v in values]


def counts_each(destination: Destination, table: str, column: str, by: str | None,
                times: dict[Any, list[datetime | None]]) -> dict[Any, list[int]]:
    """`Destination.counts_since_each` one query a value."""
    return {v: destination.counts_since(table, column, at, {by: v} if by else {}) for v, at in times.items()}


class DestinationKind(Protocol):
    """A kind of destination, as `destinations/__init__.py` registers it (in KINDS): the class,
    whose instances are Destinations. Nothing outside `destinations/` names one."""

    @staticmethod
    def check(location: Any, tuning: Tuning) -> None:
        """A ConfigError when it could not be written at `location` (or `tuning` is unusable),
        before anything is requested or created."""

    @staticmethod
    def missing(location: Any) -> str | None:
        """Why there is no extract at `location` to open (None: there is one): nothing there, or
        something the tool did not make (it carries no mark of an extract), which is never
        written into."""

    def __call__(self, location: Any, tuning: Tuning | None = None, *, read_only: bool = False) -> Destination:
        """Open (creating it when it does not exist) and lock it for this process. `read_only`:
        open an existing one only to look at it (`state show`): nothing is created, changed,
        locked or cleaned, and only the reading methods are used. A kind whose `multi_account`
        is true also takes `account=NAME` (a ConfigError when the location's form is the other)."""
