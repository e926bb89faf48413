"""What a run tells the person (or the log collector) watching it.

- On a terminal: one line per stream, redrawn in place on stderr by tqdm's meter: records done
  of the total the API's /count gave before the pages were fetched (the engine calls `expect`),
  the percentage and bar, the record rate and the time left; pages and the pacing after it. A
  stream without /count (inventory, buffers, locations) shows its records and rate only. A
  finished stream keeps its line.
- Not on a terminal (cron, CI, a container): plain log lines, one when a stream starts, one every
  `interval` seconds while it runs (done/total, percentage, rate, ETA), one when it ends.
- `--log-format json`: every log line, progress included, is one JSON object (`event`,
  `stream`, `pages`, `records`, ...), for pipelines.

Logging goes through the `sqquid_etl` logger with the redacting filter; nothing here is global
but the handler `configure_logging` installs (replaced, not added to, on each call).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from datetime import datetime, timezone
from typing import Any, Callable, TextIO

from .redaction import RedactingFilter
from .threads import current_account

log = logging.getLogger("sqquid_etl.progress")

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (so a test runner's capture sees it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, message and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class _Threshold(logging.Filter):
    """Pass records at or above `level`, and progress records unless quiet."""

    def __init__(self, level: int, progress: bool):
        super().__init__()
        self.level, self.progress = level, progress

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.level:
            return True
        return self.progress and record.name == log.name and record.levelno >= logging.INFO


class AccountTag(logging.Filter):
    """A line logged by an account's threads (many accounts at once) says which account: an
    `account` field (JSON) and `[NAME] ` before the message; one that names it already is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        account = current_account()
        if account is not None and not hasattr(record, "account"):
            record.account = account
            record.msg, record.args = f"[{account}] {record.getMessage()}", None
        return True


def configure_logging(verbosity: int = 0, log_format: str = "text") -> None:
    """verbosity: -1 quiet (warnings and errors only), 0 default (+ progress lines), 1 info, 2 debug.

    Installs one stderr handler on the `sqquid_etl` logger (replacing the one a previous call
    installed). Logger levels are only raised for -v/-vv, so an embedding application's own
    logging configuration is left alone otherwise."""
    root = logging.getLogger("sqquid_etl")
    for handler in list(root.handlers):
        if getattr(handler, "_sqquid", False):
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler._sqquid = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(_TEXT_FORMAT))
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler.addFilter(_Threshold(level, progress=verbosity >= 0))
    handler.addFilter(AccountTag())
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(logging.NOTSET if verbosity <= 0 else level)
    log.setLevel(logging.INFO if verbosity >= 0 else logging.WARNING)
    if not any(isinstance(f, RedactingFilter) for f in root.filters):
        root.addFilter(RedactingFilter())


def _fmt(n: int | None) -> str:
    return "n/a" if n is None else f"{n:,}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class ProgressReporter:
    """The engine's `progress(stream, pages, records)` callback, `expect(stream, total)` (the
    /count total) and `stream_done(result)`.

    mode: "bar" (a terminal), "log" (log lines), "off"."""

    def __init__(self, mode: str = "log", *, rate: float | None = None, out: TextIO | None = None,
                 interval: float = 10.0, clock: Callable[[], float] = time.monotonic, width: int | None = None):
        self.mode = mode
        self.rate = rate
        self._out = out
        self.interval = interval
        self.clock = clock
        self.width = width  # the meter's columns (None: the terminal's)
        self._stream: str | None = None
        self._started = 0.0
        self._last_emit = 0.0
        self._pages = 0
        self._records = 0
        self._total: int | None = None
        self._line_open = False
        self._previous_end = clock()  # streams run one after another: one starts when the last ends

    @classmethod
    def for_terminal(cls, enabled: bool, json_logs: bool, rate: float | None, stream: TextIO | None = None) -> "ProgressReporter":
        """A bar on an interactive stderr (text logs), else log lines; `enabled=False` for -q."""
        stream = stream or sys.stderr
        if not enabled:
            return cls("off", rate=rate)
        interactive = hasattr(stream, "isatty") and stream.isatty()
        return cls("bar" if interactive and not json_logs else "log", rate=rate)

    @property
    def out(self) -> TextIO:
        return self._out or sys.stderr

    def _pacing(self) -> str:
        return f"pacing {self.rate:g} req/s" if self.rate else "pacing off"

    def _begin(self, stream: str) -> None:
        self._end_line()
        self._stream, self._started, self._last_emit = stream, self._previous_end, self.clock()
        self._pages = self._records = 0
        self._total = None
        if self.mode == "log":
            log.info("stream %s: started (%s)", stream, self._pacing(),
                     extra={"event": "stream_start", "stream": stream, "rate_limit": self.rate})

    def expect(self, stream: str, total: int) -> None:
        """The records the stream will bring, from the API's /count (asked before its pages)."""
        if self.mode == "off":
            return
        if stream != self._stream:
            self._begin(stream)
        self._total = total

    def __call__(self, stream: str, pages: int, records: int) -> None:
        if self.mode == "off":
            return
        if stream != self._stream:
            self._begin(stream)
        self._pages, self._records = pages, records
        now = self.clock()
        if self.mode == "bar":
            if now - self._last_emit >= 0.1 or pages == 1:
                self._last_emit = now
                self._draw(self._records, self._total, f"{_fmt(pages)} pages, {self._pacing()}")
        elif now - self._last_emit >= self.interval:
            self._last_emit = now
            self._log_progress(stream, pages, records, now)

    def _log_progress(self, stream: str, pages: int, records: int, now: float) -> None:
        rate, total = self._rate(now), self._total
        if total:
            left = max(total - records, 0)
            eta = left / rate if rate > 0 else None
            done = (f"{_fmt(records)}/{_fmt(total)} records ({100 * records / total:.0f}%)"
                    f", ETA {_duration(eta) if eta is not None else 'n/a'}")
        else:
            eta, done = None, f"{_fmt(records)} records (total n/a: no /count for this stream)"
        log.info("stream %s: %s, %s pages, %.0f records/s", stream, done, _fmt(pages), rate,
                 extra={"event": "progress", "stream": stream, "pages": pages, "records": records, "total": total,
                        "records_per_second": round(rate, 1), "eta_seconds": None if eta is None else round(eta, 1)})

    def _rate(self, now: float) -> float:
        elapsed = now - self._started
        return self._records / elapsed if elapsed > 0 else 0.0

    def _draw(self, records: int, total: int | None, tail: str) -> None:
        """One line by tqdm's meter: done/total, %, bar, elapsed<left, rate, then `tail`."""
        from tqdm import tqdm

        width = self.width or shutil.get_terminal_size((100, 20)).columns
        elapsed = max(self.clock() - self._started, 0.0)
        total = total if total and total >= records else None  # a late record past the count: no bar
        text = tqdm.format_meter(records, total, elapsed, ncols=width - 1, prefix=f"{self._stream:<15}", unit=" rec",
                                 postfix=tail)
        self.out.write("\r" + text + "\x1b[K")
        self.out.flush()
        self._line_open = True

    def _end_line(self) -> None:
        if self._line_open:
            self.out.write("\n")
            self.out.flush()
            self._line_open = False

    def stream_done(self, result: Any) -> None:
        """Called by the pipeline as each stream finishes (ok, warning or failed)."""
        if self.mode == "off":
            return
        if result.stream != self._stream:
            self._begin(result.stream)
        records = next(iter(result.rows.values()), self._records) if result.rows else self._records
        self._records, self._pages = records, result.pages
        if self.mode == "bar":
            total = result.count_expected or self._total
            if result.status != "failed":
                total = max(total or 0, records) or None  # the stream is done: a full bar
            self._draw(records, total, f"{_fmt(result.pages)} pages, {result.status}, {result.seconds:.1f}s")
            self._end_line()
        else:
            self._log_done(result, records)
        self._stream = None
        self._previous_end = self.clock()

    def _log_done(self, result: Any, records: int) -> None:
        level = logging.WARNING if result.status == "failed" else logging.INFO
        log.log(level, "stream %s: %s, %s records, %s pages, %d requests, %.1fs, count total %s%s",
                result.stream, result.status, _fmt(records), _fmt(result.pages), result.requests, result.seconds,
                _fmt(result.count_expected), f" ({result.message})" if result.message else "",
                extra={"event": "stream_done", "stream": result.stream, "status": result.status,
                       "rows": dict(result.rows), "pages": result.pages, "requests": result.requests,
                       "seconds": round(result.seconds, 3), "count_expected": result.count_expected,
                       "count_received": result.count_received, "cursor": result.cursor})

    def close(self) -> None:
        self._end_line()
