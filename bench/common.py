"""Shared helpers of the benchmarks: a sandbox in its own process, its counters, the machine."""

from __future__ import annotations

import functools
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

API_KEY = "sandbox-api-key"
ROOT = Path(__file__).resolve().parent.parent


def sandbox_cmd(python: str = sys.executable) -> list[str]:
    return [python, "-m", "sqquid_etl.cli", "sandbox"]


@contextmanager
def sandbox_process(*, orders: int, products: int, rate: float = 0.0, burst: int = 40,
                    latency: float = 0.0, prewarm: bool = True, cache_mb: int = 1024, python: str = sys.executable,
                    timeout: float = 600.0, drift: bool = False, drift_lossy: float = 0.0):
    """Start `sqquid-etl sandbox` on a free port in its own process; yield (url, pid).

    ``drift`` serves the drift profile (`--drift`), ``drift_lossy`` its lossy fraction (`--drift-lossy`)."""
    args = sandbox_cmd(python) + [
        "--port", "0", "--orders", str(orders), "--products", str(products),
        "--rate", str(rate), "--burst", str(burst), "--latency", str(latency),
        "--prewarm" if prewarm else "--no-prewarm", "--cache-mb", str(cache_mb),
    ]
    if drift:
        args.append("--drift")
        if drift_lossy:
            args += ["--drift-lossy", str(drift_lossy)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        url = None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"sandbox exited: {proc.stderr.read()}")
            if "listening on" in line:
                url = next(w for w in line.split() if w.startswith("http"))  # --drift adds " (drift profile)"
                break
        if url is None:
            raise RuntimeError("sandbox did not start in time")
        yield url, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def sandbox_stats(url: str, reset: bool = False) -> dict:
    with urllib.request.urlopen(url + "/_sandbox/stats") as r:
        stats = json.loads(r.read())
    if reset:
        req = urllib.request.Request(url + "/_sandbox/stats", method="DELETE")
        urllib.request.urlopen(req).read()
    return stats


def proc_cpu_seconds(pid: int) -> float:
    """user+sys CPU seconds of a running process (from /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}, {platform.system()}"


_SPENT_LOCK = threading.Lock()


def thread_timed(owner, name: str, label: str, spent: dict) -> None:
    """Wrap `owner.name` so that the CPU of the thread calling it is added to `spent[label]`
    (a Counter; every thread adds under one lock)."""
    inner = getattr(owner, name)

    @functools.wraps(inner)
    def wrapper(*args, **kwargs):
        started = time.thread_time()
        try:
            return inner(*args, **kwargs)
        finally:
            with _SPENT_LOCK:
                spent[label] += time.thread_time() - started

    setattr(owner, name, wrapper)
