"""Kill a chunked full update (SIGKILL) midway: the re-run sends only the chunks the journal does
not acknowledge, and the account ends exactly as the file says."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.support import API_KEY

PARTIAL = "PATCH /v1/inventory/partial"


def _env():
    env = dict(os.environ, SQQUID_API_KEY=API_KEY)
    env.pop("SQQUID_USERNAME", None)
    return env


def _acknowledged(journal) -> int:
    if not journal.exists():
        return 0
    return sum(1 for line in journal.read_text().splitlines() if '"event":"batch"' in line)


def test_sigkill_during_a_chunked_full_update_then_rerun_is_exact(make_sandbox, tmp_path):
    sandbox = make_sandbox(orders=10, products=60, latency=0.01)
    before = {k: v["qty_on_hand"] for k, v in sandbox.store.inventory.items()}
    seen = {k: q for k, q in before.items() if not k[0].startswith("ORPHAN")}
    skus = sorted({k[0] for k in seen})
    dropped = set(skus[::4])  # a quarter of the skus are not in the file: their records are zeroed
    target = {k: (q * 7 + 3) % 50 - 5 for k, q in seen.items() if k[0] not in dropped}  # some negative
    target.update({(f"NEW-{i}", "default", "default"): i for i in range(20)})
    source = tmp_path / "inventory.csv"
    source.write_text("sku,location_external_id,bin,qty_on_hand\n"
                      + "".join(f"{s},{loc},{b},{q}\n" for (s, loc, b), q in target.items()))
    journal = tmp_path / "inventory.csv.journal.jsonl"
    cmd = [sys.executable, "-m", "sqquid_etl.cli", "load-inventory", str(source), "--mode", "full", "--yes",
           "--batch-size", "4", "--base-url", sandbox.url, "--rate", "0", "--no-progress"]

    process = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while sandbox.stats.by_route[PARTIAL] < 6 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    acknowledged = _acknowledged(journal)
    assert acknowledged >= 4, "the load was not killed mid-way (or acknowledged nothing)"
    assert not any('"event":"complete"' in line for line in journal.read_text().splitlines())

    sandbox.stats.reset()
    rerun = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    total = int(next(line for line in rerun.stdout.splitlines() if "chunks sent:" in line).split()[-1])
    assert total > acknowledged + 1
    assert sandbox.stats.by_route[PARTIAL] == total - acknowledged  # no acknowledged chunk sent again
    assert f"chunks skipped:     {acknowledged} " in rerun.stdout

    after = {k: v["qty_on_hand"] for k, v in sandbox.store.inventory.items()}
    expected = {k: (0 if k[0] in dropped else q) for k, q in before.items() if not k[0].startswith("ORPHAN")}
    expected.update(target)
    assert {k: q for k, q in after.items() if not k[0].startswith("ORPHAN")} == expected
    events = [json.loads(line)["event"] for line in journal.read_text().splitlines()]
    assert events.count("complete") == 1 and events.count("batch") == total
