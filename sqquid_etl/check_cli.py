"""`sqquid-etl check`: a thin click command over `check.check_streams`."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import click

from .cli_common import api_connection, api_options, fail, load_settings
from .errors import SqquidError


@click.command("check")
@click.option("--streams", help="Comma-separated streams (default: all, or the config's).")
@api_options
@click.option("--schema-contract", "contract", type=click.Choice(["evolve", "freeze", "discard"]),
              help="As for extract: what undefined fields mean (default: each stream's, else evolve).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout (for CI).")
def check_command(streams, config, account, base_url, api_key, username, password, rate, burst, contract, as_json) -> None:
    """Read one page of every selected stream and compare it with the stream definitions.

    Exit 0 when an extract would store every record and field (coerced at most; undefined fields
    as new columns under the evolve contract), 1 when it would quarantine records, drop or refuse
    undefined fields, or fail.
    """
    from .check import check_streams
    from .client import SqquidClient
    from .definitions import load_definitions, select_streams

    try:
        settings = load_settings(config)
        connection = api_connection(settings, account, base_url, api_key, username, password, rate, burst)
        definitions = load_definitions()
        names = [s.strip() for s in streams.split(",") if s.strip()] if streams else settings.get("streams")
        selected = select_streams(definitions, names)
        with SqquidClient.from_env(**connection) as client:
            client.ensure_token()
            checks = check_streams(client, selected, definitions,
                                   contract or settings.get("schema_contract"))
            requests = client.stats.requests
    except SqquidError as exc:
        fail(exc)
    ok = all(c.stores_everything for c in checks)
    if as_json:
        click.echo(json.dumps({"ok": ok, "requests": requests, "streams": [
            {**asdict(c), "stores_everything": c.stores_everything} for c in checks]}, default=str))
    else:
        _print(checks, requests)
    sys.exit(0 if ok else 1)


def _print(checks, requests: int) -> None:
    for c in checks:
        state = "error" if c.error else ("ok" if c.stores_everything else "differs")
        paging = ", ".join(f"{k}={v}" for k, v in c.paging.items()) or "-"
        click.echo(f"{c.stream:<16}{state:<9}{c.records:>5} records  envelope: {', '.join(c.envelope) or '-'}  "
                   f"paging: {paging}")
        if c.error:
            click.echo(f"  error: {c.error}")
        for d in c.differences:
            where = f"{d.table}.{d.field}"
            detail = f"{d.count}x, e.g. {d.example}" if d.example is not None else ""
            reason = f" ({d.reason})" if d.reason else ""
            click.echo(f"  {where:<40}{d.kind:<11}{detail}{reason}")
    differing = sum(not c.stores_everything for c in checks)
    click.echo(f"{len(checks)} streams checked with {requests} requests; "
               + (f"{differing} would not be stored as sent" if differing else "an extract would store everything"))
