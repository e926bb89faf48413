"""``sqquid-etl sandbox``: run the loopback Sqquid API until Ctrl-C / SIGTERM."""

from __future__ import annotations

import signal
import threading

import click

from .app import Sandbox, SandboxConfig
from .drift import DriftProfile
from .faults import FaultConfig


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="0 = a free port")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--orders", default=5000, show_default=True, type=click.IntRange(0, 10_000_000))
@click.option("--products", default=2000, show_default=True, type=click.IntRange(0, 10_000_000))
@click.option("--rate", default=2.0, show_default=True, type=click.FloatRange(min=0),
              help="requests/s leaked per token; 0 disables throttling")
@click.option("--burst", default=40, show_default=True, type=click.IntRange(min=1))
@click.option("--token-ttl", default=3600.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="token lifetime, seconds")
@click.option("--latency", default=0.0, show_default=True, type=click.FloatRange(min=0), help="seconds slept before each answer")
@click.option("--api-key", "api_keys", multiple=True, default=("sandbox-api-key",), show_default=True)
@click.option("--username", default="demo@sqquid.test", show_default=True)
@click.option("--password", default="sandbox-password", show_default=True)
@click.option("--fail-every", default=0, type=click.IntRange(min=0), help="every Nth data request fails")
@click.option("--fail-status", default=500, show_default=True, type=click.IntRange(100, 599))
@click.option("--drop-every", default=0, type=click.IntRange(min=0), help="every Nth answer is cut and the connection closed")
@click.option("--truncate-every", default=0, type=click.IntRange(min=0), help="every Nth answer has half its JSON")
@click.option("--prewarm/--no-prewarm", default=False, help="fill the record cache before listening")
@click.option("--cache-mb", default=256, show_default=True, type=click.IntRange(min=0),
              help="serialized records kept in memory; the rest are generated again when asked")
@click.option("--drift/--no-drift", default=False,
              help="serve the drift profile: undocumented fields, string ids, number prices, nulls, "
                   "tracking_urls arrays, other date formats (a mix fixed by the seed)")
@click.option("--drift-lossy", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="with --drift: the fraction of records with one value no connector can store without loss")
@click.option("--accounts", type=click.IntRange(1, 100_000), default=None,
              help="serve N accounts acct1..acctN, each with its own api key and login (printed), its own data "
                   "(seeded per account, sized around --orders/--products) and its own bucket; "
                   "--api-key/--username/--password then do not apply")
@click.option("--size-spread", default=0.5, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="with --accounts: each account's orders and products within this fraction of --orders/--products")
def sandbox_command(host, port, seed, orders, products, rate, burst, token_ttl, latency, api_keys,
                    username, password, fail_every, fail_status, drop_every, truncate_every, prewarm, cache_mb,
                    drift, drift_lossy, accounts, size_spread):
    """Serve a deterministic emulation of the Sqquid API on HOST:PORT."""
    if drift_lossy and not drift:
        raise click.UsageError("--drift-lossy needs --drift")
    faults = FaultConfig(error_every=fail_every, error_status=fail_status, drop_every=drop_every,
                         truncate_every=truncate_every)
    cfg = SandboxConfig(seed=seed, orders=orders, products=products, rate=rate or None, burst=burst,
                        token_ttl=token_ttl, latency=latency, api_keys=tuple(api_keys),
                        users={username: password}, faults=faults, host=host, port=port, prewarm=prewarm,
                        cache_mb=cache_mb, drift=DriftProfile(lossy=drift_lossy) if drift else None,
                        accounts=accounts, size_spread=size_spread)
    sandbox = Sandbox(cfg)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        sandbox.start()
        click.echo(f"Sqquid sandbox listening on {sandbox.url}" + (" (drift profile)" if drift else ""))
        for account in sandbox.accounts.values():
            sizes = account.sizes
            click.echo(f"account {account.name} api_key {account.api_key} username {account.username} "
                       f"password {account.password} orders {sizes['orders']} products {sizes['products']}")
        import sys
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sandbox.stop()
