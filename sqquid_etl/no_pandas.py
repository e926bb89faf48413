"""The `extract` command runs without pandas. Nothing an extract does needs it, but pyarrow loads it
(~33 MB of RSS) to answer "is this value a pandas object?": when `pyarrow.dataset` is imported
(pyiceberg's reader and writer import it), and in `pa.scalar`, `as_py`, `from_pylist`. While
pandas is not loaded no value can be a pandas object, so for the command an import of pandas
fails and pyarrow's probes answer "no pandas" (bench/shared_storage.py: Iceberg's peak RSS).

Only the command's own process: pyarrow remembers the answer, and in a library caller's process
a later `pa.array(a_pandas_series)` would be converted as a plain sequence. When pandas is loaded
already nothing is refused.
"""

from __future__ import annotations

import importlib.abc
import sys
from typing import Callable


class _RefusePandas(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):  # noqa: ANN001 - the finder protocol
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r} (an extract does not load pandas)", name=name)
        return None


def refuse_pandas() -> Callable[[], None]:
    """From now an import of pandas fails (unless pandas is loaded already); returns what undoes it."""
    if "pandas" in sys.modules:
        return lambda: None
    finder = _RefusePandas()
    sys.meta_path.insert(0, finder)
    return lambda: sys.meta_path.remove(finder) if finder in sys.meta_path else None
