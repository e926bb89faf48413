"""Many accounts: the `[accounts.NAME]` tables of `sqquid.toml` (or of the file its
`accounts_file = "..."` names), validated before anything is requested.

    [accounts.acme]
    base_url = "https://api.sqquid.com"      # optional: else [api] base_url, else the API's
    api_key_env = "ACME_SQQUID_KEY"          # or username_env + password_env
    rate = 2.0                               # optional: else [api] rate, else 2
    burst = 40                               # optional: else [api] burst, else 40
    start_date = "2024-01-01"                # optional: else [extract] start_date
    streams = ["orders", "products"]         # optional: else [extract] streams, else all

A name is `[a-z0-9][a-z0-9_-]{0,62}`. Secrets stay in the environment: an account names the
variables that hold them. Every problem is a ConfigError naming the account (and the key): an
unknown key, a secret written in the file, a bad value, two accounts naming one key variable;
for the accounts a run selects (`resolve_credentials`), a variable not set, and two accounts
with one api key (or one username at one base URL).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from .config import Settings, find_config, load_config
from .credentials import DEFAULT_BASE_URL, Credentials, check_base_url
from .errors import ConfigError
from .settings import DEFAULT_BURST, DEFAULT_RATE, MAX_BURST, MAX_RATE
from .state import parse_timestamp

__all__ = ["Account", "account_names", "accounts_from_settings", "load_accounts", "resolve_credentials",
           "select_accounts"]

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_KEYS: dict[str, tuple[type, ...]] = {
    "base_url": (str,), "api_key_env": (str,), "username_env": (str,), "password_env": (str,),
    "rate": (int, float), "burst": (int,), "start_date": (str,), "streams": (list,),
}
_SECRETS = {"api_key": "api_key_env", "password": "password_env", "token": "api_key_env", "username": "username_env"}


@dataclass(frozen=True)
class Account:
    """One account of the configuration: where it is, the NAMES of the variables holding its
    credentials (never the secrets), its pacing, and what it extracts by default."""

    name: str
    base_url: str = DEFAULT_BASE_URL
    api_key_env: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    rate: float | None = DEFAULT_RATE  # None: no pacing (rate = 0)
    burst: int = DEFAULT_BURST
    start_date: str | None = None
    streams: tuple[str, ...] | None = None

    def credentials(self, env: Mapping[str, str] | None = None) -> Credentials:
        """The account's credentials, read from the variables it names; one not set is a
        ConfigError naming the account and the variable (never the value)."""
        env = os.environ if env is None else env
        names = [self.api_key_env] if self.api_key_env else [self.username_env, self.password_env]
        missing = [name for name in names if name and not env.get(name)]
        if missing:
            raise ConfigError(f"account {self.name}: ${', $'.join(missing)} (named by "
                              f"{'api_key_env' if self.api_key_env else 'username_env/password_env'}) "
                              "is not set in the environment")
        if self.api_key_env:
            return Credentials(api_key=env[self.api_key_env])
        return Credentials(username=env[self.username_env or ""], password=env[self.password_env or ""])


def load_accounts(config_path: str | os.PathLike | None = None) -> dict[str, Account]:
    """The accounts of the config file (`config_path`, else $SQQUID_CONFIG, else ./sqquid.toml
    when present), in the file's order; `{}` when it has none (or there is no file)."""
    path = find_config(config_path or os.environ.get("SQQUID_CONFIG") or None)
    return accounts_from_settings(load_config(path))


def account_names(config_path: str | os.PathLike | None = None) -> list[str]:
    """The names of the config file's accounts, in the file's order."""
    return list(load_accounts(config_path))


def accounts_from_settings(settings: Settings) -> dict[str, Account]:
    """The accounts of an already read config file (its [api] gives their defaults)."""
    tables, where = _tables(settings)
    if tables is None:
        return {}
    if not isinstance(tables, dict):
        raise ConfigError(f"{where}: accounts must be tables ([accounts.NAME])")
    accounts = {name: _account(name, entries, settings, where) for name, entries in tables.items()}
    _refuse_shared_variables(accounts.values(), where)
    return accounts


def select_accounts(accounts: Mapping[str, Account], names: Iterable[str] | None, all_accounts: bool = False,
                    where: str = "--account") -> list[Account]:
    """The accounts named (in the order given, each once), or all of them; an unknown name is a
    ConfigError that lists the known ones."""
    names = [n for n in dict.fromkeys(names or ()) if n]
    if all_accounts and names:
        raise ConfigError(f"{where} and --all-accounts: give one of them")
    if not accounts:
        raise ConfigError(f"{where}: the config file has no accounts ([accounts.NAME] tables, or accounts_file)")
    if all_accounts:
        return list(accounts.values())
    if not names:
        raise ConfigError(f"{where}: name at least one account (known: {', '.join(accounts)})")
    unknown = [n for n in names if n not in accounts]
    if unknown:
        raise ConfigError(f"{where}: no account {', '.join(unknown)} in the config file (known: {', '.join(accounts)})")
    return [accounts[n] for n in names]


def resolve_credentials(accounts: Iterable[Account], env: Mapping[str, str] | None = None) -> dict[str, Credentials]:
    """Each account's credentials from the environment, before anything is requested: a variable
    not set, or two accounts with one api key (or one username at one base URL), is a ConfigError
    naming the accounts (never the secret)."""
    accounts = list(accounts)
    found = {a.name: a.credentials(env) for a in accounts}
    seen: dict[tuple, str] = {}
    for account in accounts:
        credentials = found[account.name]
        identity = ("api_key", credentials.api_key) if credentials.api_key else \
            ("username", account.base_url, credentials.username)
        other = seen.setdefault(identity, account.name)
        if other != account.name:
            what = "api key" if credentials.api_key else f"username at {account.base_url}"
            raise ConfigError(f"accounts {other} and {account.name} have the same {what}: "
                              "each account needs its own (one account's bucket would be spent by both)")
    return found


def _tables(settings: Settings) -> tuple[Any, str]:
    """The raw [accounts] tables and where they come from (the config file, or its accounts_file)."""
    where = f"config {settings.path}"
    if settings.accounts_file is None:
        return settings.accounts, where
    if settings.accounts is not None:
        raise ConfigError(f"{where}: both [accounts.NAME] tables and accounts_file: keep one")
    path = settings.accounts_file
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{where}: accounts_file {path}: cannot read ({exc.strerror})") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{where}: accounts_file {path}: not valid TOML ({exc})") from None
    extra = [key for key in raw if key != "accounts"]
    if extra:
        raise ConfigError(f"accounts file {path}: only [accounts.NAME] tables belong here, not {', '.join(extra)}")
    return raw.get("accounts", {}), f"accounts file {path}"


def _account(name: str, entries: Any, settings: Settings, where: str) -> Account:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(f"{where}: account name {name!r}: use lower-case letters, digits, '_' and '-' "
                          "(starting with a letter or digit, at most 63 characters)")
    if not isinstance(entries, dict):
        raise ConfigError(f"{where}: account {name} must be a table ([accounts.{name}])")
    at = f"{where}: account {name}"
    for key, value in entries.items():
        if key in _SECRETS:
            raise ConfigError(f"{at}: {key}: secrets and personal data do not belong in the file; put it in an "
                              f"environment variable and name that variable with {_SECRETS[key]} = \"...\"")
        if key not in _KEYS:
            raise ConfigError(f"{at}: unknown key {key!r} (expected one of {', '.join(_KEYS)})")
        types = _KEYS[key]
        if not isinstance(value, types) or isinstance(value, bool):
            raise ConfigError(f"{at}: {key}: expected {' or '.join(t.__name__ for t in types)}, got {value!r}")
    _check_credentials(entries, at)
    return Account(
        name=name,
        base_url=_base_url(entries.get("base_url") or settings.get("base_url") or DEFAULT_BASE_URL, at),
        api_key_env=entries.get("api_key_env"), username_env=entries.get("username_env"),
        password_env=entries.get("password_env"),
        rate=_rate(entries.get("rate", settings.get("rate", DEFAULT_RATE)), at),
        burst=_burst(entries.get("burst", settings.get("burst", DEFAULT_BURST)), at),
        start_date=_start_date(entries.get("start_date", settings.get("start_date")), at),
        streams=_streams(entries.get("streams", settings.get("streams")), at),
    )


def _check_credentials(entries: dict, at: str) -> None:
    key, user, password = (entries.get(k) for k in ("api_key_env", "username_env", "password_env"))
    if key and (user or password):
        raise ConfigError(f"{at}: give api_key_env, or username_env and password_env, not both")
    if not key and not (user and password):
        raise ConfigError(f"{at}: no credentials: name the variable holding the api key (api_key_env = \"...\"), "
                          "or those holding the username and password (username_env, password_env)")
    for variable in (key, user, password):
        if variable is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", variable):
            raise ConfigError(f"{at}: {variable!r} is not the name of an environment variable (name the "
                              "variable that holds the secret, never the secret)")


def _base_url(value: str, at: str) -> str:
    try:
        return check_base_url(value)
    except ConfigError as exc:
        raise ConfigError(f"{at}: base_url: {exc}") from None


def _rate(value: Any, at: str) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_RATE:
        raise ConfigError(f"{at}: rate {value!r}: must be a number of requests per second from 0 (no pacing) "
                          f"to {MAX_RATE:.0f}")
    return float(value) or None


def _burst(value: Any, at: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BURST:
        raise ConfigError(f"{at}: burst {value!r}: must be a whole number from 1 to {MAX_BURST}")
    return value


def _start_date(value: Any, at: str) -> str | None:
    if value is not None:
        parse_timestamp(value, f"{at}: start_date")  # a ConfigError naming the account
    return value


def _streams(value: Any, at: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        raise ConfigError(f"{at}: streams must be a list of stream names")
    return tuple(value)


def _refuse_shared_variables(accounts: Iterable[Account], where: str) -> None:
    """Two accounts naming one api key variable (or one username variable at one base URL) would
    be one account twice."""
    seen: dict[tuple, str] = {}
    for account in accounts:
        identity = ("api_key_env", account.api_key_env) if account.api_key_env else \
            ("username_env", account.username_env, account.base_url)
        other = seen.setdefault(identity, account.name)
        if other != account.name:
            raise ConfigError(f"{where}: accounts {other} and {account.name} both name ${identity[1]} "
                              f"({identity[0]}): each account needs its own key")
