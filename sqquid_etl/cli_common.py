"""What the CLI's commands share: failing with a clear error, the config file, the destination."""

from __future__ import annotations

import logging
import sys

import click

from .errors import SqquidError, unexpected
from .redaction import SECRETS
from .settings import DEFAULT_BURST, DEFAULT_RATE

log = logging.getLogger("sqquid_etl")


def fail(exc: SqquidError) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(exc.exit_code)


def last_resort(exc: Exception) -> None:
    """An error no command caught: one `error:` line, secrets masked, and exit 1 (a SqquidError:
    its own code). An OSError is the machine's (a full disk, a file that vanished); anything
    else is a bug, said as one, with its traceback at -vv."""
    if isinstance(exc, SqquidError):
        fail(exc)
    log.debug("the error's traceback", exc_info=exc)
    click.echo(f"error: {SECRETS.redact(unexpected(exc))}", err=True)
    sys.exit(1)


def load_settings(config: str | None):
    from .config import find_config, load_config

    path = find_config(config)
    if path is not None:
        log.info("config: %s", path)
    return load_config(path)


def choose_destination(settings, duckdb_path: str | None, parquet_dir: str | None) -> tuple[str | None, str | None]:
    """Command-line destination wins; else the config file's; else the default DuckDB file."""
    if duckdb_path or parquet_dir:
        return duckdb_path, parquet_dir
    return settings.get("duckdb"), settings.get("parquet")


config_option = click.option(
    "--config", "config", type=click.Path(dir_okay=False), envvar="SQQUID_CONFIG",
    help="Settings file (env SQQUID_CONFIG; default ./sqquid.toml when present). Options override it.",
)


def api_options(f):
    """--config, --account, --base-url, --api-key, --username, --password, --rate, --burst: how a
    command that reads the API reaches it (the environment's variables as defaults, the config
    file next; --account: one [accounts.NAME] of the config file)."""
    options = [
        config_option,
        click.option("--account", help="One account of the config file ([accounts.NAME]): its base URL, "
                                       "credentials, rate and burst."),
        click.option("--base-url", envvar="SQQUID_BASE_URL", help="API base URL (env SQQUID_BASE_URL)."),
        click.option("--api-key", envvar="SQQUID_API_KEY", help="API key (env SQQUID_API_KEY)."),
        click.option("--username", envvar="SQQUID_USERNAME", help="Username (env SQQUID_USERNAME)."),
        click.option("--password", envvar="SQQUID_PASSWORD", help="Password (env SQQUID_PASSWORD)."),
        click.option("--rate", type=click.FloatRange(min=0),
                     help="Requests per second the client allows itself (0: no pacing). [default: 2]"),
        click.option("--burst", type=click.IntRange(min=1), help="Leaky-bucket size the client allows itself. [default: 40]"),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def api_connection(settings, account: str | None, base_url: str | None, api_key: str | None,
                   username: str | None, password: str | None, rate: float | None, burst: int | None) -> dict:
    """How a command reaches the API (`SqquidClient.from_env`'s arguments): the options (whose
    defaults are the environment's variables), else the config file, else the defaults; a rate
    of 0 is no pacing. `account`: that account of the config file (`--rate`/`--burst` still
    override its pacing; credentials or a base URL on the command line beside it are refused,
    the environment's SQQUID_* variables are not read)."""
    if account is not None:
        return _account_connection(settings, account, rate, burst)
    api_key, username, password = credentials_from(settings, api_key, username, password)
    rate = rate if rate is not None else settings.get("rate", DEFAULT_RATE)
    return {"base_url": base_url or settings.get("base_url"), "api_key": api_key, "username": username,
            "password": password, "rate": rate or None,
            "burst": burst if burst is not None else settings.get("burst", DEFAULT_BURST)}


def _account_connection(settings, name: str, rate: float | None, burst: int | None) -> dict:
    from click.core import ParameterSource

    from .accounts import accounts_from_settings, select_accounts
    from .errors import ConfigError

    context = click.get_current_context(silent=True)
    given = [f"--{p.replace('_', '-')}" for p in ("base_url", "api_key", "username", "password")
             if context is not None and context.get_parameter_source(p) == ParameterSource.COMMANDLINE]
    if given:
        raise ConfigError(f"--account {name} and {', '.join(given)}: the account's base URL and credentials "
                          "come from the config file; give one or the other")
    account = select_accounts(accounts_from_settings(settings), [name.strip()])[0]
    credentials = account.credentials()
    return {"base_url": account.base_url, "api_key": credentials.api_key, "username": credentials.username,
            "password": credentials.password, "rate": (rate if rate is not None else account.rate) or None,
            "burst": burst if burst is not None else account.burst}


def credentials_from(settings, api_key: str | None, username: str | None, password: str | None) -> tuple:
    """The options' credentials, else those the config file names (read from the environment)."""
    if api_key or (username and password):
        return api_key, username, password
    found = settings.credentials()
    return found.get("api_key"), found.get("username", username), found.get("password")


STREAM_HEADER = f"{'stream':<16}{'status':<9}{'rows':>9}{'pages':>7}{'requests':>10}{'seconds':>9}{'rows/s':>9}"


def stream_cells(s) -> tuple[str, str]:
    """A stream's columns under `STREAM_HEADER` (a `StreamResult`), and its count check with the
    counts compared."""
    rows = sum(s.rows.values())
    per_second = f"{rows / s.seconds:.0f}" if s.seconds > 0 else "-"
    check = s.count_check + ("" if s.count_expected is None else f" ({s.count_received}/{s.count_expected})")
    return (f"{s.stream:<16}{s.status:<9}{rows:>9}{s.pages:>7}{s.requests:>10}{s.seconds:>9.1f}{per_second:>9}",
            check)
