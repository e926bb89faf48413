"""Many accounts (issue #15): one process keeping N accounts at their API ceiling.

    python bench/accounts.py --accounts 100 --seconds 180 --latency 0.3
    python bench/accounts.py --accounts 1 --seconds 60 --latency 0.3
    python bench/accounts.py --sandbox-only --accounts 100

The sandbox (`sqquid-etl sandbox --accounts N`, its own process) throttles each account at
--rate/--burst and sleeps --latency before each answer; every account has the same number of
orders (`--size-spread 0`, each its own data), sized so that an account at its ceiling lasts
--seconds: burst + rate x seconds pages of 250, the last one half full. The client is
`sqquid-etl extract --all-accounts --streams orders` (its own process; a config file with an
[accounts.NAME] table an account, keys in the environment) into one DuckDB file; with
`--into file-per-account`, the same accounts run (`accounts_run.run_accounts`) in one process
each into its own DuckDB file (no commit waits for another account's); `--into parquet`:
`extract --all-accounts --parquet DIR` (account=NAME/ partitions, committed on their own).

One account's ceiling (records/s) = (burst + rate x T) x 250 / T, T = the client's wall time
(process start to exit): the most records its bucket lets through in T. Printed: aggregate
records/s against N x that ceiling, the 429s the sandbox answered, the client's CPU (user+sys,
`os.wait4`) over T and its peak RSS, accounts per fully used core (records / (client CPU s x
rate x 250): an account at its ceiling brings rate x 250 records/s), the sandbox's CPU over T,
when every page had been answered (what follows is commits), and the load average (1 minute)
before, during and after. `--profile FILE`: the client under `py-spy record` (raw stacks).
`--sandbox-only`: the sandbox's start alone (time until every account is printed, RSS).
`--sandbox-load`: the sandbox alone, N accounts each read at --rate pages/s by a client that
only reads the bodies (--in-flight connections an account, 3 as the connector): its answer
times against --latency, its CPU a request and a record (is it a bottleneck?).
`--sandbox-pages`: the same pages made in this process (no HTTP, no threads) for --seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, proc_cpu_seconds, sandbox_cmd, sandbox_stats  # noqa: E402
from memory_probe import describe  # noqa: E402

PAGE = 250


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def load_average() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def start_sandbox(accounts: int, orders: int, products: int, *, rate: float = 0.0, burst: int = 40,
                  latency: float = 0.0, spread: float = 0.5):
    """(process, url, {name: (api_key, orders)}, seconds until every account was printed)."""
    args = sandbox_cmd() + ["--port", "0", "--accounts", str(accounts), "--orders", str(orders),
                            "--products", str(products), "--rate", str(rate), "--burst", str(burst),
                            "--latency", str(latency), "--size-spread", str(spread), "--cache-mb", "0"]
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"sandbox did not start: {line}{proc.stderr.read()}")
    url = next(w for w in line.split() if w.startswith("http"))
    keys = {}
    for _ in range(accounts):
        fields = proc.stdout.readline().split()
        named = dict(zip(fields[::2], fields[1::2]))
        keys[named["account"]] = (named["api_key"], int(named["orders"]))
    return proc, url, keys, time.perf_counter() - started


def proc_cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a running process (from /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def sandbox_only(a) -> None:
    print(f"command: python bench/accounts.py --sandbox-only --accounts {a.accounts} "
          f"--orders {a.orders} --products {a.products}")
    print(f"machine: {machine()}; load average {load_average():.2f}")
    proc, _, keys, ready = start_sandbox(a.accounts, a.orders, a.products)
    try:
        orders = sum(n for _, n in keys.values())
        print(f"sandbox: {len(keys)} accounts ({orders} orders in all) ready in {ready:.2f} s, "
              f"RSS {rss_mb(proc.pid):.0f} MB, CPU {proc_cpu_seconds(proc.pid):.2f} s")
    finally:
        stop(proc)


def light_client(url: str, key: str, seconds: float, rate: float, pages: int, latencies: list,
                 connections: int = 1, own: int = 0) -> None:
    """One account read by a client doing nothing else: log in, then GET a page of orders every
    1/rate s (the body read, not parsed) for `seconds`; each answer's time kept. With several
    `connections` (as the connector keeps requests in flight), this is connection `own` of them:
    every `connections`-th request, its own pages in turn."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    conn.request("POST", "/v1/login", json.dumps({"api_key": key}), {"Content-Type": "application/json"})
    token = json.loads(conn.getresponse().read())["token"]
    headers = {"Authorization": f"Bearer {token}"}
    started = time.monotonic()
    for n in range(own, int(seconds * rate), connections):
        time.sleep(max(0.0, started + n / rate - time.monotonic()))
        sent = time.monotonic()
        conn.request("GET", f"/v1/orders?limit={PAGE}&page={n % pages + 1}", headers=headers)
        response = conn.getresponse()
        response.read()
        latencies.append((time.monotonic() - sent, response.status))
    conn.close()


def sandbox_pages(a) -> None:
    """The sandbox's work a page without HTTP: N accounts' data in this process, pages of 250
    orders made in turn (an account's next page after every other account's), its CPU."""
    from sqquid_etl.sandbox import views
    from sqquid_etl.sandbox.accounts import make_accounts

    print(f"command: python bench/accounts.py --sandbox-pages --accounts {a.accounts} --seconds {a.seconds:g}")
    print(f"machine: {machine()}; load average {load_average():.2f}")
    pages = 40
    stores = [account.store for account in make_accounts(a.accounts, seed=1, orders=pages * PAGE, products=50,
                                                        spread=0.0, cache_bytes=0, drift=None).values()]
    made, started, cpu = 0, time.monotonic(), time.process_time()
    while time.monotonic() - started < a.seconds:
        for store in stores:
            views.v1_list(store, "/v1/orders", {"limit": str(PAGE), "page": str(made // len(stores) % pages + 1)})
            made += 1
    cpu = time.process_time() - cpu
    print(f"sandbox pages: {made} pages of {PAGE} orders ({a.accounts} accounts in turn): {1000 * cpu / made:.2f} ms "
          f"a page, {1e6 * cpu / (made * PAGE):.2f} us a record; load average {load_average():.2f} after")


def sandbox_load(a) -> None:
    """The sandbox alone under N accounts x rate requests/s (a client that only reads bodies):
    whether it answers within its latency, and its CPU."""
    print(f"command: python bench/accounts.py --sandbox-load --accounts {a.accounts} --seconds {a.seconds:g} "
          f"--latency {a.latency:g} --rate {a.rate:g} --in-flight {a.in_flight}")
    print(f"machine: {machine()}")
    pages = 40
    proc, url, keys, ready = start_sandbox(a.accounts, pages * PAGE, 50, rate=a.rate, burst=a.burst,
                                           latency=a.latency, spread=0.0)
    try:
        latencies: list = []
        load = load_average()
        cpu_before = proc_cpu_split(proc.pid)
        started = time.monotonic()
        threads = [threading.Thread(target=light_client,
                                    args=(url, key, a.seconds, a.rate, pages, latencies, a.in_flight, own))
                   for key, _ in keys.values() for own in range(a.in_flight)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - started
        user, system = (after - before for after, before in zip(proc_cpu_split(proc.pid), cpu_before))
        cpu = user + system
        throttled = sandbox_stats(url)["throttled"]
        rss = rss_mb(proc.pid)
    finally:
        stop(proc)
    times = sorted(t for t, _ in latencies)
    ok = sum(1 for _, status in latencies if status == 200)
    quantile = lambda q: times[min(len(times) - 1, int(q * len(times)))]  # noqa: E731
    print(f"sandbox: {len(latencies)} pages of {PAGE} orders in {wall:.1f} s = {len(latencies) / wall:.0f} requests/s "
          f"({ok} answered 200, {throttled} 429s); sandbox RSS {rss:.0f} MB")
    print(f"  answer time: median {quantile(0.5):.3f} s, p99 {quantile(0.99):.3f} s, max {times[-1]:.3f} s "
          f"(latency {a.latency:g} s)")
    served = max(1, len(latencies))
    print(f"  sandbox CPU {cpu:.1f} s = {cpu / wall:.2f} cores, {1000 * cpu / served:.2f} ms a request "
          f"(user {1000 * user / served:.2f}, system {1000 * system / served:.2f}) = "
          f"{1e6 * cpu / (served * PAGE):.1f} us a record; load average {load:.2f} before, {load_average():.2f} after")


class LoadSampler:
    """The 1-minute load average, sampled every few seconds while a run lasts; and when the
    sandbox had answered `pages` list requests (the fetching done: what follows is commits)."""

    def __init__(self, url: str, pages: int, every: float = 2.0):
        self.samples = [load_average()]
        self.url, self.pages, self.started = url, pages, time.monotonic()
        self.fetched_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.samples.append(load_average())
            if self.fetched_at is None and \
                    sandbox_stats(self.url)["by_route"].get("GET /v1/orders", 0) >= self.pages:
                self.fetched_at = time.monotonic() - self.started

    def stop(self) -> tuple[float, float, float]:
        """(before, mean during, after)."""
        self._stop.set()
        self._thread.join()
        after = load_average()
        return self.samples[0], sum(self.samples) / len(self.samples), after


def write_config(folder: Path, url: str, keys: dict[str, tuple[str, int]], rate: float, burst: int) -> tuple[Path, dict]:
    """sqquid.toml with an [accounts.NAME] table an account, and the environment holding their keys."""
    env = dict(os.environ)
    lines = []
    for name, (key, _) in keys.items():
        variable = f"BENCH_KEY_{name.upper()}"
        env[variable] = key
        lines += [f"[accounts.{name}]", f'base_url = "{url}"', f'api_key_env = "{variable}"',
                  f"rate = {rate}", f"burst = {burst}", ""]
    config = folder / "sqquid.toml"
    config.write_text("\n".join(lines), encoding="utf-8")
    return config, env


CPU_SLOTS: int | None = None  # --cpu-slots N: the CPU gate's slots of the program (accounts_run.CPU_SLOTS)


def client_args(config: Path, duckdb: Path, into: str, probe: Path | None = None) -> list[str]:
    """The client's command: `sqquid-etl extract --all-accounts` into one DuckDB file, or this
    script's `--client-per-file` (the same accounts run, `accounts_run.run_accounts`, a DuckDB
    file an account). `probe`: the program run by `memory_probe.py` (its memory at its peak of
    RSS written to that file)."""
    if into == "file-per-account":
        return [sys.executable, __file__, "--client-per-file", str(config), str(duckdb.parent / "files")]
    target = ["--parquet", str(duckdb.parent / "lake")] if into == "parquet" else ["--duckdb", str(duckdb)]
    python = [sys.executable] if probe is None else [sys.executable, str(Path(__file__).parent / "memory_probe.py"), str(probe)]
    program = ["-m", "sqquid_etl.cli"]
    if CPU_SLOTS is not None:  # --cpu-slots: the program with accounts_run.CPU_SLOTS set first (an experiment)
        program = ["-c", f"import sqquid_etl.accounts_run as r; r.CPU_SLOTS = {CPU_SLOTS}; "
                         "from sqquid_etl.cli import run; run()"]
    return [*python, *program, "extract", "--all-accounts", "--config", str(config),
            *target, "--streams", "orders", "--log-format", "json", "--no-progress"]


def client_per_file(config: str, folder: str) -> None:
    """Every account of `config` at once, in this process, each into its own DuckDB file."""
    from sqquid_etl.accounts import load_accounts, resolve_credentials
    from sqquid_etl.accounts_run import plan_jobs, run_accounts

    accounts = list(load_accounts(config).values())
    jobs = plan_jobs(accounts, resolve_credentials(accounts), streams=["orders"])
    Path(folder).mkdir(parents=True, exist_ok=True)
    done = run_accounts(jobs, {}, {}, location_for=lambda name: {"duckdb": str(Path(folder) / f"{name}.duckdb")})
    print(json.dumps(done.summary()))


def run_client(config: Path, env: dict, duckdb: Path, into: str, profile: str | None = None,
               probe: Path | None = None) -> tuple[float, float, float, dict, str]:
    """The client in its own process: (wall s, CPU s, peak RSS MB, summary, stderr). Its output
    goes to files, so that `os.wait4` reaps it (its rusage). `profile`: run it under `py-spy
    record` into that file (its figures are then py-spy's too)."""
    spy = ["py-spy", "record", "-r", "50", "-f", "raw", "-o", profile, "--"] if profile else []
    args = spy + client_args(config, duckdb, into, probe)
    out_path, err_path = duckdb.with_suffix(".out"), duckdb.with_suffix(".err")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        started = time.monotonic()
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=err, text=True)
        _, _, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        proc.returncode = 0  # reaped above
    lines = out_path.read_text().splitlines()
    summary = next((json.loads(line) for line in lines if line.startswith("{")), {})
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, summary, err_path.read_text()


def extract_bench(a) -> None:
    pages = int(a.burst + a.rate * a.seconds)
    orders = pages * PAGE - PAGE // 2
    print(f"command: python bench/accounts.py --accounts {a.accounts} --seconds {a.seconds:g} --latency {a.latency:g}"
          f" --rate {a.rate:g} --burst {a.burst} --into {a.into}{' --probe' if a.probe else ''}"
          f"{f' --cpu-slots {a.cpu_slots}' if a.cpu_slots is not None else ''}")
    print(f"machine: {machine()}")
    proc, url, keys, ready = start_sandbox(a.accounts, orders, 50, rate=a.rate, burst=a.burst,
                                           latency=a.latency, spread=0.0)
    try:
        print(f"sandbox: {a.accounts} accounts x {orders} orders ready in {ready:.1f} s, RSS {rss_mb(proc.pid):.0f} MB")
        with tempfile.TemporaryDirectory() as tmp:
            config, env = write_config(Path(tmp), url, keys, a.rate, a.burst)
            sandbox_stats(url, reset=True)
            cpu_before = proc_cpu_seconds(proc.pid)
            load = LoadSampler(url, a.accounts * pages)
            probe = Path(tmp) / "probe.json" if a.probe else None
            wall, cpu, peak, summary, err = run_client(config, env, Path(tmp) / "accounts.duckdb", a.into, a.profile, probe)
            if probe is not None and probe.exists():
                seen = json.loads(probe.read_text())
                print("client memory at its peak of RSS (memory_probe.py): " + describe(seen["peak"]))
                print("  RSS MB at most, every 5 s: " + " ".join(f"{v:.0f}" for v in seen["timeline"]))
                print("  every 20 s, RSS/C heap in use/free/mapped/Arrow MB: " + seen.get("parts", ""))
            before, during, after = load.stop()
            answered = f"{load.fetched_at:.1f} s" if load.fetched_at is not None else "(within the last 2 s sample)"
            print(f"every page answered after {answered} of the client's {wall:.1f} s")
            sandbox_cpu = proc_cpu_seconds(proc.pid) - cpu_before
            stats = sandbox_stats(url)
            sandbox_rss = rss_mb(proc.pid)
    finally:
        stop(proc)
    report(a, orders, wall, cpu, peak, summary, err, stats, sandbox_cpu, sandbox_rss, (before, during, after))


def report(a, orders: int, wall: float, cpu: float, peak: float, summary: dict, err: str, stats: dict,
           sandbox_cpu: float, sandbox_rss: float, load: tuple) -> None:
    accounts = summary.get("accounts", [])
    records = sum(sum(s["rows"].get("orders", 0) for s in acc["streams"]) for acc in accounts)
    failed = [acc["account"] for acc in accounts if acc["status"] == "failed"]
    ceiling = (a.burst + a.rate * wall) * PAGE / wall
    efficiency = records / wall / (a.accounts * ceiling)
    cores = cpu / wall
    slowest = max((acc["seconds"] for acc in accounts), default=0.0)
    fastest = min((acc["seconds"] for acc in accounts), default=0.0)
    print(f"client: {len(accounts)} accounts, {len(failed)} failed{' ' + str(failed[:5]) if failed else ''}; "
          f"wall {wall:.2f} s (accounts {fastest:.1f}-{slowest:.1f} s); {records} records of {a.accounts * orders}")
    print(f"  aggregate {records / wall:.0f} records/s; ceiling {a.accounts} x {ceiling:.1f} = "
          f"{a.accounts * ceiling:.0f} records/s -> {100 * efficiency:.1f}%")
    print(f"  429s: {stats['throttled']}; requests: {stats['by_route']}")
    print(f"  client CPU {cpu:.1f} s = {cores:.2f} cores on average; peak RSS {peak:.0f} MB")
    # an account at its ceiling brings rate x 250 records/s; the client's CPU a record says how many a core keeps there
    print(f"  accounts per fully used core: {records / (cpu * a.rate * PAGE):.0f} "
          f"(records / (CPU s x {a.rate:g} x {PAGE}))" if cpu else "")
    print(f"  sandbox CPU {sandbox_cpu:.1f} s = {sandbox_cpu / wall:.2f} cores on average; RSS {sandbox_rss:.0f} MB")
    print(f"  load average (1 min): {load[0]:.2f} before, {load[1]:.2f} during, {load[2]:.2f} after")
    if failed or not accounts:
        print(err[-2000:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=180.0, help="an account's duration at its ceiling")
    ap.add_argument("--latency", type=float, default=0.3)
    ap.add_argument("--rate", type=float, default=2.0)
    ap.add_argument("--burst", type=int, default=40)
    ap.add_argument("--orders", type=int, default=5000, help="--sandbox-only: orders an account (spread 0.5)")
    ap.add_argument("--products", type=int, default=2000, help="--sandbox-only: products an account")
    ap.add_argument("--sandbox-only", action="store_true", help="measure the sandbox's start only")
    ap.add_argument("--sandbox-load", action="store_true",
                    help="the sandbox alone under N accounts at --rate, read by a client that only reads bodies")
    ap.add_argument("--sandbox-pages", action="store_true",
                    help="the sandbox's pages made in this process for --seconds (no HTTP): its CPU a page")
    ap.add_argument("--in-flight", type=int, default=3,
                    help="--sandbox-load: connections an account, each with every Nth request (the connector keeps "
                         "3 in flight at 2/s and 0.3 s)")
    ap.add_argument("--into", choices=["one-file", "parquet", "file-per-account"], default="one-file",
                    help="one DuckDB file for all accounts or one Parquet directory (account=NAME/ partitions), "
                         "both by extract --all-accounts; or a DuckDB file an account")
    ap.add_argument("--cpu-slots", type=int, help="the client's CPU gate of N slots (accounts_run.CPU_SLOTS; "
                    "default: the cores; 0: none), an experiment")
    ap.add_argument("--profile", help="record the client with py-spy into this file (raw format)")
    ap.add_argument("--probe", action="store_true",
                    help="the client run by bench/memory_probe.py: its memory at its peak of RSS, by kind")
    ap.add_argument("--client-per-file", nargs=2, metavar=("CONFIG", "FOLDER"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    global CPU_SLOTS
    CPU_SLOTS = a.cpu_slots
    if a.client_per_file:
        return client_per_file(*a.client_per_file)
    if a.sandbox_only:
        return sandbox_only(a)
    if a.sandbox_load:
        return sandbox_load(a)
    if a.sandbox_pages:
        return sandbox_pages(a)
    extract_bench(a)


if __name__ == "__main__":
    main()
