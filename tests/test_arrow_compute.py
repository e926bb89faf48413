"""arrow_compute.py calls the compute functions as pyarrow.compute does (issue #11: start-up)."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as real
import pytest

from sqquid_etl import arrow_compute as pc


def test_the_functions_answer_as_pyarrow_compute():
    numbers = pa.array([3, None, 1, 7])
    texts = pa.array(["1.50", None, "2"])
    lists = pa.array([[1, 2], [], None, [3]], pa.list_(pa.int64())).slice(1)
    assert pc.cast(texts, pa.decimal128(18, 4)).equals(real.cast(texts, pa.decimal128(18, 4)))
    assert pc.cast(texts, pa.decimal128(18, 4)).to_pylist() == [Decimal("1.5000"), None, Decimal("2.0000")]
    with pytest.raises(pa.ArrowInvalid):
        pc.cast(pa.array([300]), pa.int8())  # a safe cast, as pyarrow.compute's default
    assert pc.take(numbers, pa.array([3, 0])).to_pylist() == [7, 3]
    with pytest.raises(IndexError):
        pc.take(numbers, pa.array([4]))  # bounds checked
    assert pc.unique(pa.array([2, 2, None, 1])).to_pylist() == [2, None, 1]
    assert pc.max(numbers).as_py() == 7 and pc.max(pa.array([], pa.int64())).as_py() is None
    assert pc.min_max(numbers).as_py() == {"min": 1, "max": 7}
    assert pc.list_flatten(lists).equals(lists.flatten())
    assert pc.list_parent_indices(lists).equals(real.list_parent_indices(lists))
    chunked = pa.chunked_array([[1, 2], [3]])
    assert pc.cast(chunked, pa.string()).to_pylist() == ["1", "2", "3"]


def test_the_functions_of_a_drifted_page_answer_as_pyarrow_compute():
    numbers = pa.array([3, None, 1, 7])
    texts = pa.array(["2024-01-01T00:00:00Z", None, "2024-01-01 00:00:00", "x"])
    assert pc.sum(numbers).as_py() == 11 and pc.sum(pa.array([], pa.int64())).as_py() is None
    assert pc.is_in(numbers, value_set=pa.array([1, None])).equals(real.is_in(numbers, value_set=pa.array([1, None])))
    found = pc.match_substring_regex(texts, r"^\d{4}-\d{2}-\d{2}T")
    assert found.equals(real.match_substring_regex(texts, r"^\d{4}-\d{2}-\d{2}T"))
    assert found.to_pylist() == [True, None, False, False]
    assert pc.invert(found).to_pylist() == [False, None, True, True]
    assert pc.indices_nonzero(pc.invert(found)).to_pylist() == [2, 3]
    mask = pa.array([False, False, True, True])
    assert pc.replace_with_mask(texts, mask, pa.array(["a", "b"])).to_pylist() == ["2024-01-01T00:00:00Z", None, "a", "b"]
    assert pc.coalesce(pa.array([None, "x"]), pa.array(["d", "d"])).to_pylist() == ["d", "x"]


def test_any_other_function_is_pyarrow_computes_own():
    assert pc.utf8_length is real.utf8_length
    with pytest.raises(AttributeError):
        pc.no_such_function  # noqa: B018


def test_importing_a_function_by_name_does_not_load_pyarrow_compute():
    import subprocess
    import sys

    program = ("import sys\nfrom sqquid_etl.arrow_compute import min_max\n"
               "print('pyarrow.compute loaded:', 'pyarrow.compute' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "pyarrow.compute loaded: False", done.stderr
