"""A drifted page's timestamp columns fixed in one pass where they can be (issue #12 item 8):
timestamps sent without a zone (`2020-06-12 12:34:00`) given Arrow's form over the whole column
(`columns._zoneless_fixed`) read exactly as the coercion rules read them value by value
(`columns.fix_text`'s general way), counted alike; a column holding any other form Arrow's cast
refuses is left to the rules (and refused where they refuse it)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqquid_etl import columns
from sqquid_etl.definitions import Column

CREATED = Column("created_at", "timestamp", "created_at")


def outcome(result) -> tuple | None:
    """A `fix_text` result as comparable values (instants as microseconds: year 0 too)."""
    if result is None:
        return None
    return result.array.cast(pa.int64()).to_pylist(), sorted(result.coerced), result.bad


def both_ways(texts: list, monkeypatch) -> tuple:
    """`fix_text` of the texts with the one-pass fix, and by the rules alone."""
    array = pa.array(texts, pa.string())
    passes = []
    one_pass = columns._zoneless_fixed
    monkeypatch.setattr(columns, "_zoneless_fixed", lambda *a: passes.append(one_pass(*a)) or passes[-1])
    fast = outcome(columns.fix_text(array, CREATED))
    monkeypatch.setattr(columns, "_zoneless_fixed", lambda *a: None)
    return fast, outcome(columns.fix_text(array, CREATED)), passes


def test_zoneless_timestamps_are_read_as_utc_in_one_pass(monkeypatch):
    texts = ["2024-01-01T01:26:53.000Z", "2024-01-01 01:26:53", None, "2024-01-01T01:26:53+00:00",
             "2024-06-12T12:34:00.000-05:00", "2024-01-01T01:26:53.5", "0999-12-31 23:59:59.123456",
             "2024-01-01T01:26:53Z"]
    coerced = []
    monkeypatch.setattr(columns, "coerce", lambda *a: coerced.append(a[0]))
    fast = outcome(columns.fix_text(pa.array(texts, pa.string()), CREATED))
    assert coerced == []  # not a value through the rules one by one
    monkeypatch.undo()
    fast, rules, passes = both_ways(texts, monkeypatch)
    assert passes[0] is not None and fast == rules
    assert fast[1] == [1, 5, 6] and fast[2] == {}
    assert fast[0][1] == 1704072413000000  # 2024-01-01T01:26:53Z
    assert fast[0][5] == 1704072413500000


@pytest.mark.parametrize("odd", ["0000-01-01 00:00:00", "2024-01-01 24:00:00", "2024-02-30 00:00:00",
                                 "2024-01-01 23:59:60", "2024-01-01 01:02:03.1234567",
                                 "2024-01-01 01:02:03.1000000", " 2024-01-01 01:02:03", "2024-01-01t01:02:03",
                                 "20240101T010203Z", "2024-01-01 01:02", "2024-01-01 01:02:03Z", "not a date"])
def test_what_the_pass_cannot_read_is_left_to_the_rules(odd, monkeypatch):
    fast, rules, passes = both_ways(["2024-01-01 01:26:53", odd, "2024-01-01T01:26:53.000Z"], monkeypatch)
    assert passes == [None]
    assert fast == rules


_TEXTS = st.one_of(
    st.none(),
    st.builds(lambda y, mo, d, h, mi, s, frac, sep, zone: f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}{frac}{zone}",
              st.integers(0, 9999), st.integers(1, 13), st.integers(1, 31), st.integers(0, 24), st.integers(0, 59),
              st.integers(0, 60), st.sampled_from(["", ".5", ".000", ".123456", ".1234567"]),
              st.sampled_from([" ", "T", "t"]), st.sampled_from(["", "", "Z", "+00:00", "-05:00"])),
)


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(_TEXTS, min_size=1, max_size=8))
def test_a_column_of_any_forms_reads_as_the_rules_read_it(texts):
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast, rules, _ = both_ways(texts, monkeypatch)
    assert fast == rules
