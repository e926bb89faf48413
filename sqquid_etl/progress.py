"""What a run tells the person (or the log collector) watching it.

- On a terminal: one line per stream, redrawn in place on stderr: a bar, records, pages, the
  record rate, the /count total once known (n/a before the stream ends) and the request rate
  the pacing allows. A finished stream keeps its line.
- Not on a terminal (cron, CI, a container): plain log lines, one when a stream starts, one every
  `interval` seconds while it runs, one when it ends.
- `--log-format json`: every log line, progress included, is one JSON object (`event`,
  `stream`, `pages`, `records`, ...), for pipelines.

Logging goes through the `sqquid_etl` logger with the redacting filter; nothing here is global
but the handler `configure_logging` installs (replaced, not added to, on each call).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import datetime, timezone
from typing import Any, Callable, TextIO

from .redaction import RedactingFilter

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
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(logging.NOTSET if verbosity <= 0 else level)
    log.setLevel(logging.INFO if verbosity >= 0 else logging.WARNING)
    if not any(isinstance(f, RedactingFilter) for f in root.filters):
        root.addFilter(RedactingFilter())


def _fmt(n: int | None) -> str:
    return "n/a" if n is None else f"{n:,}"


class ProgressReporter:
    """The engine's `progress(stream, pages, records)` callback plus `stream_done(result)`.

    mode: "bar" (a terminal), "log" (log lines), "off"."""

    def __init__(self, mode: str = "log", *, rate: float | None = None, out: TextIO | None = None,
                 interval: float = 10.0, clock: Callable[[], float] = time.monotonic, width: int = 20):
        self.mode = mode
        self.rate = rate
        self._out = out
        self.interval = interval
        self.clock = clock
        self.width = width
        self._stream: str | None = None
        self._started = 0.0
        self._last_emit = 0.0
        self._pages = 0
        self._records = 0
        self._tick = 0
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
        if self.mode == "log":
            log.info("stream %s: started (%s)", stream, self._pacing(),
                     extra={"event": "stream_start", "stream": stream, "rate_limit": self.rate})

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
                self._draw(done=None)
        elif now - self._last_emit >= self.interval:
            self._last_emit = now
            log.info("stream %s: %s records, %s pages, %.0f records/s, count total n/a until the end",
                     stream, _fmt(records), _fmt(pages), self._rate(now),
                     extra={"event": "progress", "stream": stream, "pages": pages, "records": records})

    def _rate(self, now: float) -> float:
        elapsed = now - self._started
        return self._records / elapsed if elapsed > 0 else 0.0

    def _bar(self, fraction: float | None) -> str:
        if fraction is None:  # total unknown: a block moving back and forth
            self._tick += 1
            span = 2 * (self.width - 4)
            pos = self._tick % span
            pos = pos if pos < self.width - 4 else span - pos
            return "[" + " " * pos + "====" + " " * (self.width - 4 - pos) + "]"
        filled = int(round(min(max(fraction, 0.0), 1.0) * self.width))
        return "[" + "#" * filled + "." * (self.width - filled) + "]"

    def _draw(self, done: Any) -> None:
        total = None
        if done is not None:
            total = done.count_expected
            fraction = 1.0 if done.status != "failed" else (self._records / total if total else 0.0)
            tail = f"{done.status}  {done.seconds:.1f}s"
        else:
            elapsed = self.clock() - self._started
            fraction, tail = None, (f"{self._rate(self.clock()):.0f} rec/s" if elapsed >= 0.5 else "- rec/s")
        text = (f"{self._stream:<15}{self._bar(fraction)} {_fmt(self._records):>9} records {_fmt(self._pages):>6} pages"
                f"  total {_fmt(total)}  {tail}  {self._pacing()}")
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
            self._draw(done=result)
            self._end_line()
        else:
            level = logging.WARNING if result.status == "failed" else logging.INFO
            log.log(level, "stream %s: %s, %s records, %s pages, %d requests, %.1fs, count total %s%s",
                    result.stream, result.status, _fmt(records), _fmt(result.pages), result.requests, result.seconds,
                    _fmt(result.count_expected), f" ({result.message})" if result.message else "",
                    extra={"event": "stream_done", "stream": result.stream, "status": result.status,
                           "rows": dict(result.rows), "pages": result.pages, "requests": result.requests,
                           "seconds": round(result.seconds, 3), "count_expected": result.count_expected,
                           "count_received": result.count_received, "cursor": result.cursor})
        self._stream = None
        self._previous_end = self.clock()

    def close(self) -> None:
        self._end_line()
