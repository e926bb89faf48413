"""The write path of a DuckDB file of many accounts, piece by piece: the account column stamped on
each page (`account_scope.stamp`), the staged batches serialized (`staging_arrow.py`)."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa

from sqquid_etl.destinations.account_scope import ACCOUNT, repeated, stamp
from sqquid_etl.destinations.buffer import _int64s


def _table(n: int) -> pa.Table:
    return pa.Table.from_arrays([_int64s(range(n))], names=["id"])


def test_a_stamped_page_has_the_account_first_in_every_row():
    for n in (0, 1, 250, 3000, 40):  # (longer than the account's array so far: it grows; then shorter)
        stamped = stamp(_table(n), "acme")
        stamped.validate(full=True)
        assert stamped.schema.names == [ACCOUNT, "id"] and stamped.schema.field(ACCOUNT).nullable is False
        assert stamped.column(ACCOUNT).to_pylist() == ["acme"] * n and stamped.column("id").to_pylist() == list(range(n))
    assert stamp(_table(3), "globex").column(ACCOUNT).to_pylist() == ["globex"] * 3  # each account its own
    assert repeated("", 2).to_pylist() == ["", ""]


def test_stamping_does_not_import_pandas():
    """`pa.scalar` imported pandas where it is installed (~50 MB in a library process)."""
    code = ("import sys; from sqquid_etl.destinations.account_scope import stamp; "
            "from sqquid_etl.destinations.buffer import _int64s; import pyarrow as pa; "
            "stamp(pa.Table.from_arrays([_int64s(range(5))], names=['id']), 'acme'); "
            "print('pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False", done.stderr
