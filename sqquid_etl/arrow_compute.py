"""The Arrow compute functions every page goes through, without `import pyarrow.compute`.

Importing `pyarrow.compute` wraps each of Arrow's ~600 compute functions in a Python function
with its docstring: ~0.02 s of CPU, a twentieth of a scheduled no-op run (bench/startup.py),
for the handful a clean page needs. Those are called here as `pyarrow.compute` calls them
(`call_function`, with the options and defaults of its wrappers); any other name is
`pyarrow.compute`'s own, imported when first asked for (the coercions of a drifted page,
reverse loads): `from . import arrow_compute as pc` reads like `import pyarrow.compute as pc`.
pyarrow's own methods that compute (`Array.take`, `.cast`, `.unique`, `ListArray.flatten`) import pyarrow.compute
themselves: on the per-page path, these functions are called instead."""

from __future__ import annotations

from typing import Any

try:  # the module `pyarrow.compute` re-exports them from
    from pyarrow._compute import (CastOptions, ListFlattenOptions, MatchSubstringOptions, ScalarAggregateOptions,
                                  SetLookupOptions, TakeOptions, call_function)
except ImportError:  # pragma: no cover - a pyarrow laid out otherwise
    from pyarrow.compute import (CastOptions, ListFlattenOptions, MatchSubstringOptions, ScalarAggregateOptions,
                                 SetLookupOptions, TakeOptions, call_function)

_AGGREGATE = ScalarAggregateOptions(skip_nulls=True, min_count=1)  # pyarrow.compute's defaults


def cast(values: Any, target: Any) -> Any:
    """`pyarrow.compute.cast(values, target)`: a safe cast."""
    return call_function("cast", [values], CastOptions.safe(target))


def take(values: Any, indices: Any) -> Any:
    """`pyarrow.compute.take(values, indices)` (`values.take(indices)`), bounds checked."""
    return call_function("take", [values, indices], TakeOptions(boundscheck=True))


def unique(values: Any) -> Any:
    return call_function("unique", [values])


def max(values: Any) -> Any:  # noqa: A001 - pyarrow.compute's name
    return call_function("max", [values], _AGGREGATE)


def min_max(values: Any) -> Any:
    return call_function("min_max", [values], _AGGREGATE)


def sum(values: Any) -> Any:  # noqa: A001 - pyarrow.compute's name
    return call_function("sum", [values], _AGGREGATE)


# -- the ones a drifted page goes through (coercions counted, timestamps in other forms): a
# drifted run would otherwise import pyarrow.compute for them (~0.04 s of CPU, bench/drift.py)

def is_in(values: Any, value_set: Any) -> Any:
    """`pyarrow.compute.is_in(values, value_set=value_set)` (nulls not skipped)."""
    return call_function("is_in", [values], SetLookupOptions(value_set, skip_nulls=False))


def match_substring_regex(strings: Any, pattern: str) -> Any:
    return call_function("match_substring_regex", [strings], MatchSubstringOptions(pattern, ignore_case=False))


def invert(values: Any) -> Any:
    return call_function("invert", [values])


def indices_nonzero(values: Any) -> Any:
    return call_function("indices_nonzero", [values])


def replace_with_mask(values: Any, mask: Any, replacements: Any) -> Any:
    return call_function("replace_with_mask", [values, mask, replacements])


def coalesce(*values: Any) -> Any:
    return call_function("coalesce", list(values))


def list_flatten(lists: Any) -> Any:
    """`lists.flatten()`: the values of a list array's lists, one level."""
    return call_function("list_flatten", [lists], ListFlattenOptions(recursive=False))


def list_parent_indices(lists: Any) -> Any:
    return call_function("list_parent_indices", [lists])


def __getattr__(name: str) -> Any:
    if name.startswith("__"):  # (`from .arrow_compute import f` asks for `__path__`: no import for it)
        raise AttributeError(name)
    import pyarrow.compute

    return getattr(pyarrow.compute, name)
