"""`sqquid.toml`: the settings of a scheduled job, so that it is one short command.

    [api]
    base_url = "https://api.sqquid.com"
    api_key_env = "SQQUID_API_KEY"     # the NAME of the variable holding the key, never the key
    # username = "ops@example.com"
    # password_env = "SQQUID_PASSWORD"
    rate = 2.0
    burst = 40

    [destination]
    duckdb = "warehouse/sqquid.duckdb" # or: parquet = "lake"

    [extract]
    streams = ["orders", "products", "inventory"]
    start_date = "2024-01-01"
    lookback = "1s"
    catalog = "catalog.json"
    strict = false
    schema_contract = "evolve"         # undocumented fields: evolve | freeze | discard
    hard_delete = false                # records proven gone upstream: removed, not marked

    [reread]                           # trailing window each stream re-reads every run
    orders = "30d"                     # (overrides the definition's `reread:`; "all", "0")

    [tuning]                           # or SQQUID_DUCKDB_MEMORY_LIMIT, SQQUID_DUCKDB_THREADS, SQQUID_FLUSH_ROWS
    duckdb_memory_limit = "40MB"
    duckdb_threads = 1
    flush_rows = 10000

    [accounts.acme]                    # many accounts (`extract --account`): accounts.py reads
    api_key_env = "ACME_SQQUID_KEY"    # these tables, or those of `accounts_file = "..."`

Precedence: command-line option > environment variable (SQQUID_BASE_URL, SQQUID_API_KEY, ...)
> this file > built-in default. Relative paths are relative to the file's directory. Secrets are
refused in the file: name the environment variable that holds them instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError
from .settings import Tuning

DEFAULT_FILE = "sqquid.toml"

_SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "api": {
        "base_url": (str,), "api_key_env": (str,), "username": (str,), "username_env": (str,),
        "password_env": (str,), "rate": (int, float), "burst": (int,),
    },
    "destination": {"duckdb": (str,), "parquet": (str,)},
    "extract": {
        "streams": (list,), "start_date": (str,), "lookback": (str,), "catalog": (str,), "strict": (bool,),
        "full_refresh": (bool, list), "schema_contract": (str,), "hard_delete": (bool,),
    },
    "reread": {},  # stream name -> window (any stream name: checked when the streams are known)
    "tuning": {"duckdb_memory_limit": (str,), "duckdb_threads": (int,), "flush_rows": (int,)},
}
_SECRETS = {"api_key": "api_key_env", "password": "password_env", "token": "api_key_env"}


@dataclass
class Settings:
    """What a config file says, flattened to the names of `extract(...)`'s parameters."""

    path: Path | None = None
    values: dict[str, Any] = field(default_factory=dict)
    accounts: Any = None  # the [accounts.NAME] tables as read (accounts.py validates them)
    accounts_file: Path | None = None  # `accounts_file = "..."`, relative to the file's directory

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def tuning(self, env: Mapping[str, str] | None = None) -> Tuning:
        """How destinations use memory: the environment's variables, else the file's [tuning]."""
        return Tuning.from_env(env, {k: v for k, v in self.values.items() if k in _SCHEMA["tuning"]})

    def credentials(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """api_key / username / password read from the variables the file names (only those set).
        A named variable that is not set is a ConfigError naming it."""
        env = os.environ if env is None else env
        found: dict[str, str] = {}
        if "username" in self.values:
            found["username"] = self.values["username"]
        for key, target in (("api_key_env", "api_key"), ("username_env", "username"), ("password_env", "password")):
            name = self.values.get(key)
            if name and env.get(name):
                found[target] = env[name]
        if "api_key" not in found and not ("username" in found and "password" in found):
            missing = [self.values[k] for k in ("api_key_env", "password_env") if self.values.get(k) and not env.get(self.values[k])]
            if missing:
                raise ConfigError(f"config {self.path}: [api] names ${', $'.join(missing)} for the credentials, "
                                  "which is not set in the environment")
        return found


def find_config(explicit: str | os.PathLike | None, cwd: Path | None = None) -> Path | None:
    """The file to read: the one given (it must exist), else ./sqquid.toml if present."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"--config {path}: no such file")
        return path
    candidate = (cwd or Path.cwd()) / DEFAULT_FILE
    return candidate if candidate.is_file() else None


def load_config(path: str | os.PathLike | None) -> Settings:
    """Read and validate a config file; every problem is a ConfigError naming the file and key."""
    if path is None:
        return Settings()
    import tomllib  # only when there is a file (most scheduled runs have none: ~2 ms of start-up)

    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config {path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path}: not valid TOML ({exc})") from None
    values: dict[str, Any] = {}
    accounts, accounts_file = raw.pop("accounts", None), raw.pop("accounts_file", None)
    for section, entries in raw.items():
        if section not in _SCHEMA:
            raise ConfigError(f"config {path}: unknown section [{section}] (expected {', '.join(_SCHEMA)}, accounts)")
        if not isinstance(entries, dict):
            raise ConfigError(f"config {path}: {section} must be a table ([{section}])")
        for key, value in entries.items():
            where = f"config {path}: [{section}] {key}"
            if key in _SECRETS:
                raise ConfigError(
                    f"{where}: secrets do not belong in the file; put it in an environment variable and "
                    f"name that variable with {_SECRETS[key]} = \"...\""
                )
            if section == "reread":
                if not isinstance(value, str):
                    raise ConfigError(f"{where}: expected a window such as \"30d\", \"all\" or \"0\", got {value!r}")
                values.setdefault("reread", {})[key] = value
                continue
            if key not in _SCHEMA[section]:
                raise ConfigError(f"{where}: unknown key (expected one of {', '.join(_SCHEMA[section])})")
            types = _SCHEMA[section][key]
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise ConfigError(f"{where}: expected {' or '.join(t.__name__ for t in types)}, got {value!r}")
            values[key] = value
    base = path.parent
    for key in ("duckdb", "parquet", "catalog"):
        if key in values:
            values[key] = str(base / Path(values[key]).expanduser())
    if "duckdb" in values and "parquet" in values:
        raise ConfigError(f"config {path}: [destination] gives both duckdb and parquet; keep one")
    for key in ("streams",) + (("full_refresh",) if isinstance(values.get("full_refresh"), list) else ()):
        if key in values and not all(isinstance(s, str) for s in values[key]):
            raise ConfigError(f"config {path}: [extract] {key} must be a list of stream names")
    if accounts_file is not None and not isinstance(accounts_file, str):
        raise ConfigError(f"config {path}: accounts_file: expected the path of a file, got {accounts_file!r}")
    return Settings(path=path, values=values, accounts=accounts,
                    accounts_file=None if accounts_file is None else base / Path(accounts_file).expanduser())
