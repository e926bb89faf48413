"""What a run of many accounts tells the person watching it: accounts done / running / failed.

- On a terminal: one line on stderr, redrawn in place by tqdm's meter: the accounts finished of
  those selected, the bar, elapsed and left, then how many run and how many failed, and the
  records stored so far with their rate.
- Not on a terminal: a log line when an account starts and when it ends (its error, if it
  failed, is logged by `accounts_run` as it happens), and every `interval` seconds the same counts as the terminal's line.
- `--log-format json`: those lines as JSON objects (`event`: account_start, account_done,
  accounts_progress).

Called from every account's thread at once: one lock guards the counts and the line.
"""

from __future__ import annotations

import logging
import shutil
import sys
import threading
import time
from typing import Any, Callable, TextIO

log = logging.getLogger("sqquid_etl.progress")


class AccountsProgress:
    """mode: "bar" (a terminal), "log" (log lines), "off"."""

    def __init__(self, total: int, mode: str = "log", *, out: TextIO | None = None, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, width: int | None = None):
        self.total, self.mode, self._out, self.interval = total, mode, out, interval
        self.clock, self.width = clock, width
        self.running: set[str] = set()
        self.done: list[str] = []
        self.failed: list[str] = []
        self._records: dict[str, int] = {}  # account -> records of its streams finished
        self._current: dict[tuple[str, str], int] = {}  # (account, stream) -> records so far
        self._lock = threading.Lock()
        self._started = self._last = clock()
        self._line_open = False

    @classmethod
    def for_terminal(cls, total: int, enabled: bool, json_logs: bool, stream: TextIO | None = None) -> "AccountsProgress":
        """A line on an interactive stderr (text logs), else log lines; `enabled=False` for -q."""
        stream = stream or sys.stderr
        if not enabled:
            return cls(total, "off")
        interactive = hasattr(stream, "isatty") and stream.isatty()
        return cls(total, "bar" if interactive and not json_logs else "log")

    @property
    def out(self) -> TextIO:
        return self._out or sys.stderr

    @property
    def records(self) -> int:
        return sum(self._records.values()) + sum(self._current.values())

    # -- called by the accounts' threads ---------------------------------------------------------

    def account_started(self, account: str) -> None:
        with self._lock:
            self.running.add(account)
            if self.mode == "log":
                log.info("account %s: started", account, extra={"event": "account_start", "account": account})
            self._show(force=True)

    def account_done(self, result: Any) -> None:
        """`result`: the account's `accounts_run.AccountResult`, finished (ok, warning or failed)."""
        with self._lock:
            self.running.discard(result.account)
            (self.done if result.ok else self.failed).append(result.account)
            self._current = {k: v for k, v in self._current.items() if k[0] != result.account}
            self._records[result.account] = sum(next(iter(s.rows.values()), 0) for s in result.streams)
            if self.mode == "log":  # a failure's error is logged by the runner as it happens
                log.info("account %s: %s in %.1fs", result.account, result.status, result.seconds,
                        extra={"event": "account_done", "account": result.account, "status": result.status,
                               "exit_code": result.exit_code, "seconds": round(result.seconds, 3)})
            self._show(force=True)

    def feed(self, account: str) -> "_Feed":
        """The pipeline's `progress(stream, pages, records)` callback for one account."""
        return _Feed(self, account)

    def stream_done(self, account: str, stream: Any) -> None:
        with self._lock:
            records = next(iter(stream.rows.values()), 0) if stream.rows else 0
            self._current.pop((account, stream.stream), None)
            self._records[account] = self._records.get(account, 0) + records
            self._show()

    def records_so_far(self, account: str, stream: str, records: int) -> None:
        with self._lock:
            self._current[(account, stream)] = records
            self._show()

    def close(self) -> None:
        with self._lock:
            if self._line_open:
                self.out.write("\n")
                self.out.flush()
                self._line_open = False

    # -- the line --------------------------------------------------------------------------------

    def counts(self) -> str:
        elapsed = max(self.clock() - self._started, 1e-9)
        records = self.records
        return (f"{len(self.done)} done, {len(self.running)} running, {len(self.failed)} failed of {self.total} "
                f"accounts; {records:,} records, {records / elapsed:.0f} records/s")

    def _show(self, force: bool = False) -> None:
        """Under the lock: redraw the line (at most every 0.1 s), or log the counts every `interval`."""
        if self.mode == "off":
            return
        now = self.clock()
        if self.mode == "bar":
            if force or now - self._last >= 0.1:
                self._last = now
                self._draw(now)
        elif now - self._last >= self.interval:
            self._last = now
            log.info("accounts: %s", self.counts(),
                     extra={"event": "accounts_progress", "done": len(self.done), "running": len(self.running),
                            "failed": len(self.failed), "total": self.total, "records": self.records})

    def _draw(self, now: float) -> None:
        from tqdm import tqdm

        width = self.width or shutil.get_terminal_size((100, 20)).columns
        finished = len(self.done) + len(self.failed)
        tail = f"{len(self.running)} running, {len(self.failed)} failed, {self.records:,} records"
        text = tqdm.format_meter(finished, self.total, max(now - self._started, 0.0), ncols=width - 1,
                                 prefix="accounts", unit=" acct", postfix=tail)
        self.out.write("\r" + text + "\x1b[K")
        self.out.flush()
        self._line_open = True


class _Feed:
    """One account's progress callback, as the pipeline calls it (`expect` is not needed here)."""

    def __init__(self, progress: AccountsProgress, account: str):
        self.progress, self.account = progress, account

    def __call__(self, stream: str, pages: int, records: int) -> None:
        self.progress.records_so_far(self.account, stream, records)
