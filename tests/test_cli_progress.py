"""Progress: a bar per stream on a terminal, log lines otherwise, JSON lines with --log-format
json, nothing with -q; the final summary table."""

from __future__ import annotations

import io
import json
import logging

import pytest
from click.testing import CliRunner

from sqquid_etl.cli import main
from sqquid_etl.engine import StreamResult
from sqquid_etl.progress import ProgressReporter, configure_logging
from tests.support import API_KEY


@pytest.fixture(autouse=True)
def restore_logging():
    """The CLI configures the `sqquid_etl` loggers; put them back for the tests that follow."""
    loggers = [logging.getLogger("sqquid_etl"), logging.getLogger("sqquid_etl.progress")]
    saved = [(lg, lg.level, list(lg.handlers)) for lg in loggers]
    yield
    for lg, level, handlers in saved:
        lg.setLevel(level)
        lg.handlers[:] = handlers


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_bar_on_a_terminal_redraws_one_line_per_stream():
    term = FakeTerminal()
    assert ProgressReporter.for_terminal(True, False, 2.0, stream=term).mode == "bar"
    assert ProgressReporter.for_terminal(True, True, 2.0, stream=term).mode == "log"  # json logs: no bar
    assert ProgressReporter.for_terminal(True, False, 2.0, stream=io.StringIO()).mode == "log"
    assert ProgressReporter.for_terminal(False, False, 2.0, stream=term).mode == "off"
    clock = Clock()
    bar = ProgressReporter("bar", rate=2.0, out=term, clock=clock, width=120)
    bar.expect("orders", 1000)  # the /count asked before the pages
    for page in (1, 2, 3):
        clock.now += 1
        bar("orders", page, page * 250)
    running = term.getvalue()
    assert running.count("\r") == 3 and "\n" not in running
    last = running.split("\r")[-1]
    assert "750/1000" in last and "75%" in last and "3 pages" in last and "pacing 2 req/s" in last
    assert "250.00 rec/s" in last  # 750 records in 3 s
    assert "00:03<00:01" in last  # elapsed < time left at this rate: 250 records, 1 s
    bar.stream_done(StreamResult(stream="orders", rows={"orders": 1000, "order_items": 2000}, pages=4,
                                 requests=5, seconds=3.5, count_expected=1000, count_received=1000))
    last = term.getvalue().split("\r")[-1]
    assert last.endswith("\n") and "orders" in last and "1000/1000" in last and "100%" in last and "ok" in last
    clock.now += 1
    bar("locations", 1, 8)  # no /count: records and rate, no total
    line = term.getvalue().split("\n")[-1]
    assert line.startswith("\rlocations") and "8 rec" in line and "%" not in line


def test_log_lines_when_not_a_terminal(caplog):
    caplog.set_level(logging.INFO, logger="sqquid_etl.progress")
    clock = Clock()
    reporter = ProgressReporter("log", rate=2.0, clock=clock, interval=10)
    reporter.expect("orders", 1000)
    reporter("orders", 1, 250)
    clock.now += 5
    reporter("orders", 2, 500)  # within the interval: no line
    clock.now += 6
    reporter("orders", 3, 750)
    reporter.stream_done(StreamResult(stream="orders", rows={"orders": 750}, pages=3, requests=4, seconds=11))
    reporter("locations", 1, 8)
    clock.now += 11
    reporter("locations", 2, 16)
    records = [r for r in caplog.records if r.name == "sqquid_etl.progress"]
    assert [r.event for r in records] == ["stream_start", "progress", "stream_done", "stream_start", "progress"]
    progress = records[1]
    assert "750/1,000 records (75%)" in progress.getMessage() and "68 records/s" in progress.getMessage()
    assert progress.total == 1000 and progress.eta_seconds == pytest.approx(250 / (750 / 11), abs=0.1)
    assert "ETA 4s" in progress.getMessage()
    assert "count total n/a" in records[2].getMessage() and "ok" in records[2].getMessage()
    assert "16 records (total n/a" in records[4].getMessage() and records[4].total is None


def _env(sandbox):
    return {"SQQUID_BASE_URL": sandbox.url, "SQQUID_API_KEY": API_KEY}


def test_cli_json_logs_and_summary(make_sandbox, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sandbox = make_sandbox(orders=40, products=10)
    out = CliRunner().invoke(main, ["extract", "--streams", "orders,locations", "--duckdb", "s.duckdb", "--rate", "0",
                                    "--log-format", "json"], env=_env(sandbox))
    assert out.exit_code == 0, out.output
    lines = [json.loads(line) for line in out.stderr.splitlines()]  # every stderr line is JSON
    done = {e["stream"]: e for e in lines if e.get("event") == "stream_done"}
    assert set(done) == {"orders", "locations"}
    assert done["orders"]["rows"]["orders"] == 40 and done["orders"]["count_expected"] == 40
    assert done["locations"]["count_expected"] is None
    summary = json.loads(out.stdout)
    assert summary["ok"] and [s["stream"] for s in summary["streams"]] == ["locations", "orders"]


def test_cli_text_summary_log_lines_and_quiet(make_sandbox, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sandbox = make_sandbox(orders=40, products=10)
    args = ["extract", "--streams", "orders", "--duckdb", "s.duckdb", "--rate", "0"]
    out = CliRunner().invoke(main, args, env=_env(sandbox))
    assert out.exit_code == 0, out.output
    assert "stream orders: started" in out.stderr and "stream orders: ok, 40 records" in out.stderr
    header, rule, row = out.stdout.splitlines()[1:4]
    assert "count total" in header and row.split()[:3] == ["orders", "ok", str(40 + sum(
        len(o.get("order_items") or []) for o in sandbox.store.orders))]
    assert "40" in row and "ok (40/40)" in row
    assert "1 streams" in out.stdout

    quiet = CliRunner().invoke(main, ["-q", *args], env=_env(sandbox))
    assert quiet.exit_code == 0 and quiet.stdout == "" and quiet.stderr == ""
    quiet = CliRunner().invoke(main, [*args, "-q"], env=_env(sandbox))
    assert quiet.exit_code == 0 and quiet.stdout == "" and quiet.stderr == ""

    verbose = CliRunner().invoke(main, ["-vv", *args], env=_env(sandbox))
    assert verbose.exit_code == 0 and "DEBUG" in verbose.stderr
    assert API_KEY not in verbose.stderr  # the redacting filter is on the handler


def test_failure_prints_error_even_when_quiet(make_sandbox, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sandbox = make_sandbox(orders=10, products=5)
    out = CliRunner().invoke(main, ["-q", "extract", "--streams", "orders", "--duckdb", "s.duckdb", "--rate", "0"],
                             env={"SQQUID_BASE_URL": sandbox.url, "SQQUID_API_KEY": "wrong-key"})
    assert out.exit_code == 3 and "error:" in out.stderr and "wrong-key" not in out.stderr


def test_configure_logging_replaces_its_handler():
    configure_logging(0, "text")
    configure_logging(1, "json")
    ours = [h for h in logging.getLogger("sqquid_etl").handlers if getattr(h, "_sqquid", False)]
    assert len(ours) == 1


def test_the_engine_gives_the_count_total_with_the_pages(make_sandbox, tmp_path):
    from sqquid_etl.pipeline import extract
    from tests.support import make_client

    sandbox = make_sandbox(orders=900, products=10)
    seen = []

    class Recorder:
        def __call__(self, stream, pages, records):
            seen.append(("page", stream, records))

        def expect(self, stream, total):
            seen.append(("total", stream, total))

    # paced (as against the API): pages are fetched concurrently, planned by the /count asked first
    with make_client(sandbox, rate=1000.0, burst=1000) as client:
        assert extract(["orders"], duckdb=tmp_path / "p.duckdb", client=client, progress=Recorder()).ok
    totals = [e for e in seen if e[0] == "total"]
    assert totals and set(totals) == {("total", "orders", 900)}  # the /count, before the last page at least
    assert seen.index(totals[0]) < len(seen) - 1
    assert seen[-1] == ("page", "orders", 900)
