"""`sqquid-etl capture`: a thin click command over `capture.capture` (and its replay)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from .cli_common import api_connection, api_options, fail, load_settings
from .errors import SqquidError


@click.command("capture")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--streams", help="Comma-separated streams (default: all, or the config's).")
@api_options
@click.option("--max-pages", type=click.IntRange(min=1), default=2, show_default=True,
              help="Pages recorded of every listing (the capture ends each listing there).")
@click.option("--name", help="File name of the cassette and manifest (default: capture-<UTC time>).")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Replay the cassette through a full extract (offline) before saying it is complete.")
def capture_command(directory, streams, max_pages, name, config, account, base_url, api_key, username, password,
                    rate, burst, verify) -> None:
    """Record the first pages of every selected stream (and the counts) into DIRECTORY/NAME.yaml,
    a vcrpy cassette with every secret and personal field scrubbed, and DIRECTORY/NAME.json.

    Send both files with a report of a difference: they become a test (tests/cassettes/captured/).
    """
    from .capture import capture, replay

    try:
        settings = load_settings(config)
        connection = api_connection(settings, account, base_url, api_key, username, password, rate, burst)
        names = [s.strip() for s in streams.split(",") if s.strip()] if streams else settings.get("streams")
        result = capture(directory, name=name, streams=names, max_pages=max_pages, **connection)
        if verify:
            with tempfile.TemporaryDirectory(prefix="sqquid-replay-") as tmp:
                replayed = replay(result.cassette, Path(tmp) / "replay.duckdb")
    except SqquidError as exc:
        fail(exc)
    for stream, facts in result.streams.items():
        count = facts["api_count"]
        click.echo(f"{stream:<16}{facts['status']:<9}{facts['records']:>6} records captured"
                   + (f" of {count} (the API's count)" if count is not None else "")
                   + (f", {facts['records_quarantined']} quarantined" if facts["records_quarantined"] else ""))
    click.echo(f"{result.requests} requests recorded in {result.cassette} (manifest {result.manifest.name})")
    if verify:
        lost = [s.stream for s in replayed.streams if s.status == "failed"]
        if lost:
            click.echo(f"error: the replay failed for {', '.join(lost)}", err=True)
            sys.exit(1)
        click.echo("replayed offline through a full extract: every stream ok")
