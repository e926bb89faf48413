"""The `extract` command runs without pandas, and in its own process without numpy.

Nothing an extract does needs pandas, but pyarrow loads it (~33 MB of RSS) to answer "is this
value a pandas object?": when `pyarrow.dataset` is imported (pyiceberg's reader and writer import
it), and in `pa.scalar`, `as_py`, `from_pylist`. While pandas is not loaded no value can be a
pandas object, so for the command an import of pandas fails and pyarrow's probes answer "no
pandas" (bench/shared_storage.py: Iceberg's peak RSS). Only the command's own process: pyarrow
remembers the answer, and in a library caller's process a later `pa.array(a_pandas_series)` would
be converted as a plain sequence. When pandas is loaded already nothing is refused.

numpy likewise: pyarrow loads it when it loads (numpy is optional to pyarrow since 16), only to
know numpy arrays; an extract builds its arrays from JSON and never hands Arrow or DuckDB a numpy
one. Loading it costs ~0.03 s of CPU and ~10 MB (bench/startup.py). It is refused only by the
`sqquid-etl` program itself (`cli.run`), before pyarrow loads, since pyarrow's answer lasts as long
as the process: a process that calls the commands (tests, `api.py` callers) keeps numpy.
"""

from __future__ import annotations

import sys
from typing import Callable


class _Refuse:
    """A meta path finder (the protocol is `find_spec`; `importlib.abc`'s base class would load
    importlib's resource readers, ~3 ms, for nothing)."""

    def __init__(self, package: str):
        self.package = package

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001 - the finder protocol
        if name == self.package or name.startswith(self.package + "."):
            raise ModuleNotFoundError(f"No module named {name!r} (an extract does not load {self.package})", name=name)
        return None


def _refuse(package: str) -> Callable[[], None]:
    """From now an import of `package` fails (unless it is loaded already); returns what undoes it."""
    if package in sys.modules:
        return lambda: None
    finder = _Refuse(package)
    sys.meta_path.insert(0, finder)
    return lambda: sys.meta_path.remove(finder) if finder in sys.meta_path else None


def refuse_pandas() -> Callable[[], None]:
    """From now an import of pandas fails (unless pandas is loaded already); returns what undoes it."""
    return _refuse("pandas")


def refuse_numpy() -> None:
    """For the rest of the process, an import of numpy fails, when neither numpy nor pyarrow is
    loaded yet (pyarrow decides once whether numpy is there)."""
    if "pyarrow" not in sys.modules:
        _refuse("numpy")
