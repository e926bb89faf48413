"""A destination bound to one account of a multi-account warehouse (issue #15).

Every table of such a destination has a leading `account` column, stamped by the destination
(the pipeline's Arrow tables do not carry it), and every primary key starts with it. The
destination's writer works on an account-scoped copy of each stream definition
(`scoped_definition`): the account column first in each table and in its primary key, so the
merge by key, the count of distinct keys and the change counts need no other change.

A location is single-account (today's layout, no account column) or multi-account; the two are
never mixed: opening one with the other's form is a ConfigError naming the upgrade command
(`sqquid-etl upgrade --account NAME`, `upgrade.py`)."""

from __future__ import annotations

import array
import re
from dataclasses import replace

import pyarrow as pa

from ..definitions import Column, StreamDefinition, TableSpec
from ..errors import ConfigError

ACCOUNT = "account"  # the column
STAMPED = "(stamped by the destination)"  # the source of the account column: no field of a record
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
UPGRADE = "sqquid-etl upgrade --account NAME"


def check_account(account: str | None) -> None:
    """A ConfigError unless `account` is None or a valid account name."""
    if account is not None and (not isinstance(account, str) or not NAME.fullmatch(account)):
        raise ConfigError(f"account {account!r}: not a valid account name (lower-case letters, digits, '_' and '-', "
                          "starting with a letter or digit, at most 63 characters)")


def is_stamped(column: Column) -> bool:
    """Whether a column is the account column a destination stamps (not a field of the API's)."""
    return column.name == ACCOUNT and column.source == STAMPED


def scoped_table(table: TableSpec) -> TableSpec:
    """The table with the account column first and its primary key starting with it."""
    if any(c.name == ACCOUNT for c in table.columns):
        raise ConfigError(f"table {table.name!r} has a column named {ACCOUNT!r}: it cannot be stored in a "
                          "multi-account destination (which adds that column); rename the field in its definition")
    column = Column(name=ACCOUNT, type="string", source=STAMPED, nullable=False)
    return replace(table, columns=(column, *table.columns), primary_key=(ACCOUNT, *table.primary_key))


def scoped_definition(stream: StreamDefinition) -> StreamDefinition:
    """The stream as a multi-account destination stores it (see the module's docstring)."""
    return replace(stream, tables=tuple(scoped_table(t) for t in stream.tables))


_FIELD = pa.field(ACCOUNT, pa.string(), nullable=False)
_STAMPS: dict[str, pa.Array] = {}  # account -> its name repeated (as many rows as the longest table stamped so far)


def stamp(table: pa.Table, account: str) -> pa.Table:
    """The rows with the account column first (`stamp_column`)."""
    return table.add_column(0, *stamp_column(account, table.num_rows))


def stamp_column(account: str, rows: int) -> tuple[pa.Field, pa.Array]:
    """The account column of `rows` rows: a slice of one array of the account's name a process
    (~1 µs against ~6.5 for `pa.repeat(pa.scalar(...))`, and `pa.scalar` imports pandas where it is
    installed: ~50 MB in a library process)."""
    column = _STAMPS.get(account)
    if column is None or len(column) < rows:
        column = _STAMPS[account] = repeated(account, -(-max(rows, 1) // 256) * 256)
    return _FIELD, column.slice(0, rows)


def repeated(text: str, n: int) -> pa.Array:
    """`text` n times, a string array made from its buffers."""
    data = text.encode()
    offsets = array.array("i", range(0, (n + 1) * len(data), len(data))) if data else array.array("i", bytes(4 * (n + 1)))
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data * n)])


def stamp_page(tables: dict, account: str) -> dict:
    """A page's tables stamped (`records.PageTables`: its other attributes, e.g. `extras`, kept)."""
    stamped = {name: stamp(data, account) for name, data in tables.items()}
    if type(tables) is dict:
        return stamped
    copy = type(tables).__new__(type(tables))
    copy.__dict__.update(tables.__dict__)
    dict.update(copy, stamped)
    return copy


def mixed_error(location: str, account: str | None, multi: bool) -> ConfigError:
    """The error of a location opened in the other form than it has (never silently mixed)."""
    if multi:
        return ConfigError(f"{location} is a multi-account destination (every table has an {ACCOUNT!r} column): "
                           "give the account to extract (--account NAME); it is never written without one")
    return ConfigError(f"{location} is a single-account destination (no {ACCOUNT!r} column): it is not written with "
                       f"an account ({account!r}) unless upgraded first: '{UPGRADE}' makes it a multi-account "
                       "destination in place, its rows and state becoming account NAME's")
