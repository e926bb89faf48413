"""The decoding and conversion of drifted pages against clean ones, offline (issue #12 item 8):
the list bodies of an extract (orders + products) against a clean sandbox and a `--drift` one
are captured once, then decoded (`decode.PageDecoder`) and converted (`records.page_tables`) in
this process, rounds interleaved, with the cyclic GC paused as `read.py` does.

    python bench/drift_pages.py --orders 40000 --products 20000 --repeat 5 [--profile FILE]

What it prints: CPU (`time.process_time`) of decode and of convert per mode, medians; the
drift/clean ratio of each. No HTTP, no destination: the part of the drift run that grows with
the drifted values, measured without the noise of the other phases."""

from __future__ import annotations

import argparse
import gc
import pickle
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import API_KEY, sandbox_process  # noqa: E402

from sqquid_etl import decode  # noqa: E402
from sqquid_etl.cli import main as cli  # noqa: E402
from sqquid_etl.definitions import load_definitions  # noqa: E402
from sqquid_etl.records import page_tables  # noqa: E402

STREAMS = ("orders", "products")


def capture(url: str) -> list[tuple[str, bytes]]:
    """(stream, body) of every list page an extract reads, in the order decoded."""
    bodies: list[tuple[str, bytes]] = []
    original = decode.PageDecoder.decode

    def keep(self, body):
        bodies.append((self.stream.name, body))
        return original(self, body)

    decode.PageDecoder.decode = keep
    tmp = Path(tempfile.mkdtemp(prefix="sqquid-drift-pages-"))
    try:
        cli(["extract", "--streams", ",".join(STREAMS), "--duckdb", str(tmp / "s.duckdb"), "--base-url", url,
             "--api-key", API_KEY, "--rate", "0", "-q"], standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            raise
    finally:
        decode.PageDecoder.decode = original
        shutil.rmtree(tmp, ignore_errors=True)
    return bodies


def one_pass(bodies: list[tuple[str, bytes]], streams: dict) -> dict:
    decoders = {name: decode.PageDecoder(stream) for name, stream in streams.items()}
    spent = {"decode": 0.0, "convert": 0.0}
    coerced = rows = 0
    for name, body in bodies:
        t0 = time.process_time()
        page = decoders[name].decode(body)
        t1 = time.process_time()
        gc.disable()
        try:
            tables = page_tables(streams[name], page)
        finally:
            gc.enable()
        t2 = time.process_time()
        spent["decode"] += t1 - t0
        spent["convert"] += t2 - t1
        coerced += tables.coerced
        rows += sum(t.num_rows for t in tables.values())
    return {**spent, "coerced": coerced, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=40_000)
    ap.add_argument("--products", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cache", help="keep the captured bodies in this file (reused when it exists)")
    ap.add_argument("--profile", help="cProfile the drift passes into this file")
    ap.add_argument("--only", choices=("clean", "drift"), help="one mode only")
    a = ap.parse_args()
    if a.cache and Path(a.cache).exists():
        captured = pickle.loads(Path(a.cache).read_bytes())
    else:
        captured = {}
        for mode, drift in (("clean", False), ("drift", True)):
            with sandbox_process(orders=a.orders, products=a.products, drift=drift) as (url, _):
                captured[mode] = capture(url)
        if a.cache:
            Path(a.cache).write_bytes(pickle.dumps(captured))
    definitions = load_definitions()
    streams = {name: definitions[name] for name in STREAMS}
    modes = [a.only] if a.only else ["clean", "drift"]
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    profiler = None
    if a.profile:
        import cProfile

        profiler = cProfile.Profile()
    for i in range(a.repeat):
        for mode in modes:
            if profiler is not None and mode == "drift":
                profiler.enable()
            runs[mode].append(one_pass(captured[mode], streams))
            if profiler is not None and mode == "drift":
                profiler.disable()
            r = runs[mode][-1]
            print(f"round {i + 1} {mode}: decode {r['decode']:.3f} s  convert {r['convert']:.3f} s  "
                  f"rows {r['rows']}  coerced {r['coerced']}", flush=True)
    med = {m: {k: statistics.median(r[k] for r in rs) for k in ("decode", "convert")} for m, rs in runs.items()}
    for mode, m in med.items():
        print(f"{mode:6s} decode {m['decode']:.3f} s  convert {m['convert']:.3f} s  both {m['decode'] + m['convert']:.3f} s")
    if len(med) == 2:
        c, d = med["clean"], med["drift"]
        print(f"drift - clean: decode {d['decode'] - c['decode']:+.3f} s  convert {d['convert'] - c['convert']:+.3f} s")
    if profiler is not None:
        profiler.dump_stats(a.profile)


if __name__ == "__main__":
    main()
