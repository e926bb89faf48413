"""`tap-sqquid`: the connector as a Singer tap (Meltano runs it), on the same engine as extract.

    tap-sqquid --config config.json --discover > catalog.json
    tap-sqquid --config config.json --catalog catalog.json --state state.json | target-jsonl

Messages go to stdout (`singer.py`), logs and progress to stderr. Exit codes are the CLI's
(2 config, 3 login, 4 API, 7 state; 1 when a stream failed, after the other streams' messages).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from .cli_common import fail
from .errors import ConfigError, SqquidError

log = logging.getLogger("sqquid_etl.singer")

# config.json keys, as Singer users write them, and the extract(...) argument each one is
SETTINGS: dict[str, tuple[tuple[type, ...], str]] = {
    "api_key": ((str,), "API key (or username and password)"),
    "username": ((str,), "username, with password"),
    "password": ((str,), "password"),
    "base_url": ((str,), "API base URL (default https://api.sqquid.com)"),
    "start_date": ((str,), "earliest date of a first run (ISO 8601)"),
    "lookback": ((str,), "re-read this much before the bookmark (default 1s)"),
    "rate": ((int, float), "requests per second the tap allows itself (default 2; 0: no pacing)"),
    "burst": ((int,), "leaky-bucket size (default 40)"),
    "streams": ((list,), "streams to run when no catalog is given (default: all)"),
    "strict": ((bool,), "fail a stream whose records differ from the API's /count"),
    "schema_contract": ((str,), "undocumented fields: discard (default for the tap) or freeze"),
}
SECRETS = ("api_key", "password")


def read_config(path: str) -> dict[str, Any]:
    """config.json, checked key by key; the environment (SQQUID_API_KEY, ...) fills credentials."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read ({exc.strerror})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {path}: not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"--config {path}: expected a JSON object of settings")
    for key, value in raw.items():
        if key not in SETTINGS:
            raise ConfigError(f"--config {path}: unknown setting {key!r} (expected one of {', '.join(SETTINGS)})")
        types = SETTINGS[key][0]
        if value is not None and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            shown = "***" if key in SECRETS else repr(value)
            raise ConfigError(f"--config {path}: {key} must be {' or '.join(t.__name__ for t in types)}, got {shown}")
    return {k: v for k, v in raw.items() if v is not None}


def about() -> dict[str, Any]:
    from . import __version__

    return {
        "name": "tap-sqquid",
        "description": "Singer tap for the Sqquid retail API (sqquid-etl)",
        "version": __version__,
        "capabilities": ["catalog", "discover", "state", "about"],
        "settings": [{"name": k, "type": "/".join(t.__name__ for t in types), "description": text,
                      "sensitive": k in SECRETS} for k, (types, text) in SETTINGS.items()],
    }


def run_tap(config: dict[str, Any], catalog: str | None, state: str | None, out) -> int:
    """Extract the selected streams as Singer messages on `out`; the exit code."""
    from .emit import EmittingDestination
    from .pipeline import extract
    from .progress import ProgressReporter
    from .singer import SingerWriter, load_state

    states, keys = load_state(state)
    writer = SingerWriter(out, states, keys)
    from .settings import Tuning

    tuning = Tuning.from_env()  # SQQUID_DUCKDB_MEMORY_LIMIT, ... as for an extract
    destination = EmittingDestination(on_commit=writer.commit, states=states, keys=keys, label="singer (stdout)",
                                      tuning=tuning)
    rate = config.get("rate", 2.0)
    if rate < 0:
        raise ConfigError(f"--config: rate {rate}: must be at least 0 (0: no pacing)")
    reporter = ProgressReporter("log", rate=rate or None)
    result = extract(
        None if catalog else config.get("streams"), destination=destination, catalog=catalog,
        base_url=config.get("base_url") or os.environ.get("SQQUID_BASE_URL"),
        api_key=config.get("api_key"), username=config.get("username"), password=config.get("password"),
        start_date=config.get("start_date"), lookback=config.get("lookback", "1s"),
        strict=config.get("strict", False), rate=rate or None, burst=config.get("burst", 40),
        schema_contract=config.get("schema_contract", "discard"), reconcile=False,
        progress=reporter, stream_done=reporter.stream_done, tuning=tuning,
    )
    writer.send_state()
    for s in result.streams:
        if s.status == "failed":
            click.echo(f"error: stream {s.stream}: {s.message}", err=True)
    log.info("records emitted: %s", json.dumps(writer.records, sort_keys=True))
    return result.exit_code


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Singer config.json.")
@click.option("--catalog", "catalog", type=click.Path(dir_okay=False), help="Singer catalog: the streams and fields selected.")
@click.option("--properties", "properties", type=click.Path(dir_okay=False), hidden=True, help="Old name of --catalog.")
@click.option("--state", "state", type=click.Path(dir_okay=False), help="Singer state from the last run (incremental).")
@click.option("--discover", is_flag=True, help="Print the catalog of every stream and exit.")
@click.option("--about", "show_about", is_flag=True, help="Print what the tap is and its settings, as JSON.")
@click.option("--format", "about_format", type=click.Choice(["json", "markdown"]), default="json", hidden=True)
def main(config_path, catalog, properties, state, discover, show_about, about_format) -> None:
    """Singer tap for the Sqquid retail API: SCHEMA, RECORD and STATE messages on stdout."""
    # as `sqquid-etl extract` does (cli.py), before pyarrow loads: Arrow's buffers from the system
    # allocator, which gives freed memory back, and one OpenBLAS thread; a value set is kept
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from .progress import configure_logging

    configure_logging(0, "text")
    try:
        if show_about:
            info = about()
            if about_format == "markdown":
                click.echo(f"# {info['name']}\n\n{info['description']}\n\n" +
                           "\n".join(f"- `{s['name']}`: {s['description']}" for s in info["settings"]))
            else:
                click.echo(json.dumps(info, indent=2))
            return
        if discover:
            from .catalog import render_catalog

            click.echo(render_catalog(), nl=False)
            return
        if not config_path:
            raise ConfigError("--config config.json is required (api_key or username/password, base_url, start_date)")
        code = run_tap(read_config(config_path), catalog or properties, state, sys.stdout)
    except SqquidError as exc:
        fail(exc)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        click.echo("error: the target stopped reading (closed the pipe); its last STATE is the one to keep", err=True)
        sys.exit(1)
    sys.exit(code)
