"""Re-read windows: the trailing window of each incremental stream that every run reads again
and merges, so that records changed or deleted behind the cursor are seen (`reread:` in a
stream definition, `[reread]` in sqquid.toml, `--reread orders=30d`; `*=all` for every stream;
the deep key check is `verify.py`). The reasoning behind the defaults is in docs/api-notes.md
("Freshness")."""

from __future__ import annotations

from datetime import timedelta
from typing import Mapping

from .definitions import StreamDefinition, parse_reread
from .errors import ConfigError


def split_reread(text: str | None) -> dict[str, str]:
    """`"orders=30d,products=all"` -> {"orders": "30d", "products": "all"} (checked by
    `parse_reread_overrides`)."""
    out: dict[str, str] = {}
    for item in (part.strip() for part in (text or "").split(",") if part.strip()):
        name, sep, window = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--reread {item!r}: expected STREAM=WINDOW (e.g. orders=30d, products=all, shipments=0)")
        out[name.strip()] = window.strip()
    return out


def parse_reread_overrides(value: str | Mapping | None, definitions: Mapping[str, StreamDefinition]) -> dict[str, timedelta | None]:
    """`"orders=30d,products=all"` or `{"orders": "30d"}` -> {stream: window (None: none)}; an
    unknown stream, a stream without a cursor or a bad window is a ConfigError naming it."""
    pairs = split_reread(value) if isinstance(value, str) else dict(value or {})
    out: dict[str, timedelta | None] = {}
    if "*" in pairs:  # every incremental stream ("*=all")
        window = pairs.pop("*")
        out.update({name: parse_reread(window, "--reread *") for name, d in definitions.items() if d.cursor})
    for name, window in pairs.items():
        definition = definitions.get(name)
        if definition is None:
            raise ConfigError(f"--reread {name}={window}: unknown stream {name!r} (known: {', '.join(definitions)})")
        if definition.cursor is None:
            raise ConfigError(f"--reread {name}={window}: stream {name!r} is a full refresh every run; it has no window")
        out[name] = parse_reread(window, f"--reread {name}")
    return out
