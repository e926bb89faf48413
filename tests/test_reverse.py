"""Reverse load (`load_inventory`, `sqquid-etl load-inventory`): validation, payload, partial
batches with the journal, full update with its diff and threshold, dry run, CLI."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import duckdb
import pyarrow as pa
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from sqquid_etl.client import Credentials, SqquidClient
from sqquid_etl.retry import RetryBudget
from sqquid_etl.errors import ApiError, ConfigError, InputError, SchemaError, StateError
from sqquid_etl.reverse import load_inventory
from sqquid_etl.reverse_cli import load_inventory_command
from sqquid_etl.reverse_current import current_frame, fetch_current
from sqquid_etl.reverse_validate import build_payload, prepare_inventory
from sqquid_etl.sandbox import FaultConfig, Sandbox, SandboxConfig

API_KEY = "sandbox-api-key"
PARTIAL = "PATCH /v1/inventory/partial"
FULL = "PATCH /v1/inventory/full"
LIST = "GET /v1/inventory"


@pytest.fixture
def sb():
    with Sandbox(SandboxConfig(seed=1, orders=50, products=100, rate=None)) as sandbox:
        yield sandbox


def client_for(sandbox, **options) -> SqquidClient:
    options.setdefault("rate", None)
    options.setdefault("backoff_base", 0.001)
    return SqquidClient(Credentials(api_key=API_KEY), sandbox.url, sleep=lambda s: None, **options)


def inventory(sandbox) -> dict[tuple[str, str, str], int]:
    with sandbox.store.lock:
        return {k: v["qty_on_hand"] for k, v in sandbox.store.inventory.items()}


def frame_of(records: dict[tuple[str, str, str], int]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"sku": k[0], "location_external_id": k[1], "bin": k[2], "qty_on_hand": q} for k, q in records.items()]
    )


def some_keys(sandbox, n: int) -> list[tuple[str, str, str]]:
    return sorted(inventory(sandbox))[:n]


# -- validation: each invalid kind names row, column, reason; nothing is sent -------------------


BAD_CASES = [
    ({"sku": ["A", None], "qty_on_hand": [1, 2]}, "row 2, column sku", "missing"),
    ({"sku": ["A", ""], "qty_on_hand": ["1", "2"]}, "row 2, column sku", "missing"),
    ({"sku": ["A", "  "], "qty_on_hand": ["1", "2"]}, "row 2, column sku", "whitespace"),
    ({"sku": ["A", "B"], "qty_on_hand": [1, None]}, "row 2, column qty_on_hand", "missing"),
    ({"sku": ["A", "B"], "qty_on_hand": [1.0, np.nan]}, "row 2, column qty_on_hand", "missing"),
    ({"sku": ["A", "B"], "qty_on_hand": ["1", ""]}, "row 2, column qty_on_hand", "missing"),
    ({"sku": ["A", "B"], "qty_on_hand": ["1", "3.5"]}, "row 2, column qty_on_hand", "not a whole number"),
    ({"sku": ["A", "B"], "qty_on_hand": [1.0, 3.5]}, "row 2, column qty_on_hand", "not a whole number"),
    ({"sku": ["A", "B"], "qty_on_hand": ["1", "-2147483648"]}, "row 2, column qty_on_hand", "smaller than"),
    ({"sku": ["A", "B"], "qty_on_hand": [1, -(2**31)]}, "row 2, column qty_on_hand", "smaller than"),
    ({"sku": ["A", "B"], "qty_on_hand": ["1", "-4.5"]}, "row 2, column qty_on_hand", "not a whole number"),
    ({"sku": ["A", "B"], "qty_on_hand": ["1", "abc"]}, "row 2, column qty_on_hand", "not a number"),
    ({"sku": ["A", "B"], "qty_on_hand": ["1", "1e3"]}, "row 2, column qty_on_hand", "plain digits"),
    ({"sku": ["A", "B"], "qty_on_hand": [1, "x"]}, "row 2, column qty_on_hand", "not a number"),
    ({"sku": ["A", "B"], "qty_on_hand": [1, True]}, "row 2, column qty_on_hand", "boolean"),
    ({"sku": ["A", "B"], "qty_on_hand": [True, False]}, "row 2, column qty_on_hand", "boolean"),
    ({"sku": ["A", "B"], "qty_on_hand": [1.0, float("inf")]}, "row 2, column qty_on_hand", "not finite"),
    ({"sku": ["A", "B"], "qty_on_hand": ["1", "inf"]}, "row 2, column qty_on_hand", "not finite"),
    ({"sku": ["A", "B"], "qty_on_hand": [1, 2**31]}, "row 2, column qty_on_hand", "larger than 2147483647"),
    ({"sku": ["A", "B"], "qty_on_hand": ["1", "2147483648"]}, "row 2, column qty_on_hand", "larger than"),
    ({"sku": ["A", "B"], "qty_on_hand": [1, 2**80]}, "row 2, column qty_on_hand", "larger than"),
    ({"sku": ["A", "A"], "qty_on_hand": [1, 2]}, "row 2, column qty_on_hand", "conflicting duplicate"),
    ({"sku": ["A", "B"], "qty_on_hand": [1, 2], "bin": ["x", 1.5]}, "row 2, column bin", "fraction"),
]


@pytest.mark.parametrize("columns, where, reason", BAD_CASES)
def test_invalid_input_names_row_column_reason_and_sends_nothing(sb, columns, where, reason):
    client = client_for(sb)
    sb.stats.reset()
    with pytest.raises(InputError) as info:
        load_inventory(pd.DataFrame(columns), mode="partial", client=client)
    message = str(info.value)
    assert where in message and reason in message
    assert "1-based" in message or "count data rows from 1" in message
    assert "nothing was sent" in message
    assert sb.stats.requests == 0 and client.stats.requests == 0  # not even a login


@pytest.mark.parametrize("mode", ["partial", "full"])
def test_missing_required_column_is_refused(sb, mode):
    sb.stats.reset()
    with pytest.raises(InputError, match="missing required column.*qty_on_hand"):
        load_inventory(pd.DataFrame({"sku": ["A"], "qty": [1]}), mode=mode, client=client_for(sb))
    assert sb.stats.requests == 0


def test_empty_input_is_refused_for_full(sb):
    sb.stats.reset()
    empty = pd.DataFrame({"sku": pd.Series([], dtype=str), "qty_on_hand": pd.Series([], dtype=int)})
    with pytest.raises(InputError, match="no data rows"):
        load_inventory(empty, mode="full", client=client_for(sb), confirm=True)
    assert sb.stats.requests == 0


def test_error_lists_first_20_problems_and_counts_the_rest():
    frame = pd.DataFrame({"sku": [f"S{i}" for i in range(30)], "qty_on_hand": ["x"] * 30})
    with pytest.raises(InputError) as info:
        prepare_inventory(frame)
    lines = str(info.value).splitlines()
    shown = [line for line in lines if line.strip().startswith("row ")]
    assert len(shown) == 20
    assert shown[0].strip().startswith("row 1, column qty_on_hand, value 'x': not a number")
    assert "... and 10 more" in lines[-1]
    assert "30 problem(s) in 30 of 30" in lines[0]


def test_accepted_quantity_forms():
    frame = pd.DataFrame({
        "sku": ["a", "b", "c", "d", "e", "f"],
        "qty_on_hand": pd.Series([3, 3.0, "7", " 8 ", "009", np.int64(2**31 - 1)], dtype=object),
    })
    records = prepare_inventory(frame).records
    assert records["qty_on_hand"].tolist() == [3, 3, 7, 8, 9, 2**31 - 1]
    assert records["qty_on_hand"].dtype == np.int64
    nullable = pd.DataFrame({"sku": ["a"], "qty_on_hand": pd.array([5], dtype="Int64")})
    assert prepare_inventory(nullable).records["qty_on_hand"].tolist() == [5]


def test_payload_groups_by_sku_with_explicit_location_and_bin():
    frame = pd.DataFrame({
        "sku": ["B", "A", "B", "A"],
        "location_external_id": ["50", None, "50", ""],
        "bin": ["back", "front", None, None],
        "qty_on_hand": [1, 2, 3, 4],
    })
    payload = prepare_inventory(frame).payload()
    assert payload == [
        {"sku": "A", "inventory": [
            {"location_external_id": "default", "bin": "default", "qty_on_hand": 4},
            {"location_external_id": "default", "bin": "front", "qty_on_hand": 2},
        ]},
        {"sku": "B", "inventory": [
            {"location_external_id": "50", "bin": "back", "qty_on_hand": 1},
            {"location_external_id": "50", "bin": "default", "qty_on_hand": 3},
        ]},
    ]


def test_identical_duplicates_collapse():
    frame = pd.DataFrame({"sku": ["A", "A", "A", "B"], "bin": [None, "default", "", "x"], "qty_on_hand": [5, 5, 5, 1]})
    prepared = prepare_inventory(frame)
    assert prepared.rows_read == 4
    assert prepared.duplicates_collapsed == 2
    assert build_payload(prepared.records) == [
        {"sku": "A", "inventory": [{"location_external_id": "default", "bin": "default", "qty_on_hand": 5}]},
        {"sku": "B", "inventory": [{"location_external_id": "default", "bin": "x", "qty_on_hand": 1}]},
    ]


def test_csv_keeps_leading_zero_sku_and_empty_means_default(tmp_path):
    path = tmp_path / "inv.csv"
    path.write_text("sku,qty_on_hand,location_external_id,bin\n007,3,,\n0010,4.0,50,front\nNA,1,,\n")
    payload = prepare_inventory(path).payload()
    assert [p["sku"] for p in payload] == ["0010", "007", "NA"]
    assert payload[1]["inventory"] == [{"location_external_id": "default", "bin": "default", "qty_on_hand": 3}]
    assert payload[0]["inventory"] == [{"location_external_id": "50", "bin": "front", "qty_on_hand": 4}]


def test_input_hash_ignores_row_order_and_duplicates_but_not_values():
    a = pd.DataFrame({"sku": ["A", "B"], "qty_on_hand": [1, 2]})
    b = pd.DataFrame({"sku": ["B", "A", "A"], "qty_on_hand": [2, 1, 1]})
    c = pd.DataFrame({"sku": ["A", "B"], "qty_on_hand": [1, 3]})
    assert prepare_inventory(a).input_hash() == prepare_inventory(b).input_hash()
    assert prepare_inventory(a).input_hash() != prepare_inventory(c).input_hash()


def test_validate_and_build_a_large_input():
    # the timing of this path is measured by bench/reverse.py, not asserted here
    n = 50_000
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({
        "sku": np.char.add("SKU-", np.arange(n).astype(str)),
        "location_external_id": rng.integers(0, 5, n).astype(str),
        "qty_on_hand": rng.integers(0, 1000, n).astype(str),
    })
    payload = prepare_inventory(frame).payload()
    assert len(payload) == n
    assert payload[0]["inventory"][0]["bin"] == "default" 


# -- partial load against the sandbox -------------------------------------------------------


def test_partial_load_sets_given_keys_and_nothing_else(sb):
    before = inventory(sb)
    keys = some_keys(sb, 12)
    target = {k: (before[k] + 5) % 50 for k in keys}
    target[("NEW-SKU-1", "default", "default")] = 9
    sb.stats.reset()
    report = load_inventory(frame_of(target), mode="partial", client=client_for(sb), batch_size=4)
    after = inventory(sb)
    for key, qty in target.items():
        assert after[key] == qty
    assert {k: v for k, v in after.items() if k not in target} == {k: v for k, v in before.items() if k not in target}
    assert report.batches_sent == sb.stats.by_route[PARTIAL] == report.batches_total
    assert report.skus_sent == len({k[0] for k in target})
    assert sb.stats.by_route[FULL] == 0
    assert "partial" in report.summary() and "chunks sent" in report.summary()


def test_partial_10000_skus_in_batches_of_500_is_20_requests(sb):
    frame = pd.DataFrame({"sku": [f"BULK-{i:05d}" for i in range(10_000)], "qty_on_hand": np.arange(10_000) % 97})
    sb.stats.reset()
    report = load_inventory(frame, mode="partial", client=client_for(sb), batch_size=500)
    assert sb.stats.by_route[PARTIAL] == 20
    assert report.batches_sent == 20 and report.skus_sent == 10_000
    assert inventory(sb)[("BULK-09999", "default", "default")] == 9999 % 97


def test_partial_resumes_after_failure_sending_only_unacknowledged_batches(sb, tmp_path):
    frame = pd.DataFrame({"sku": [f"RES-{i:04d}" for i in range(1000)], "qty_on_hand": np.arange(1000) % 13})
    journal = tmp_path / "load.journal.jsonl"
    client = client_for(sb, max_tries=1)
    client.login()
    sb.stats.reset()
    sb.set_faults(FaultConfig(error_every=7, error_status=500))  # the 7th data request fails
    with pytest.raises(ApiError) as info:
        load_inventory(frame, mode="partial", client=client, batch_size=50, journal=journal)
    assert "chunk 7 of 20" in str(info.value) and "re-run" in str(info.value)
    assert sb.stats.by_route[PARTIAL] == 7  # 6 acknowledged, the 7th answered 500
    assert len(journal.read_text().splitlines()) == 6

    sb.set_faults(FaultConfig())
    sb.stats.reset()
    report = load_inventory(frame, mode="partial", client=client, batch_size=50, journal=journal)
    assert sb.stats.by_route[PARTIAL] == 14
    assert report.batches_skipped == 6 and report.batches_sent == 14
    after = inventory(sb)
    assert all(after[(f"RES-{i:04d}", "default", "default")] == i % 13 for i in range(1000))

    sb.stats.reset()
    third = load_inventory(frame, mode="partial", client=client, batch_size=50, journal=journal)
    assert sb.stats.requests == 0
    assert third.already_applied and "already applied" in third.summary()


def test_journal_ignores_a_line_cut_short_and_other_inputs(sb, tmp_path):
    frame = pd.DataFrame({"sku": [f"J-{i}" for i in range(10)], "qty_on_hand": 1})
    journal = tmp_path / "j.jsonl"
    journal.write_text('{"event":"complete","input":"someone-else"}\n{"event":"batch","inp')
    sb.stats.reset()
    report = load_inventory(frame, mode="partial", client=client_for(sb), batch_size=3, journal=journal)
    assert report.batches_sent == 4 and sb.stats.by_route[PARTIAL] == 4 and not report.already_applied


def test_a_changed_input_is_sent_again_despite_the_journal(sb, tmp_path):
    journal = tmp_path / "j.jsonl"
    client = client_for(sb)
    load_inventory(pd.DataFrame({"sku": ["C1", "C2"], "qty_on_hand": [1, 2]}), mode="partial", client=client,
                   journal=journal)
    sb.stats.reset()
    report = load_inventory(pd.DataFrame({"sku": ["C1", "C2"], "qty_on_hand": [1, 3]}), mode="partial",
                            client=client, journal=journal)
    assert report.batches_sent == 1 and sb.stats.by_route[PARTIAL] == 1
    assert inventory(sb)[("C2", "default", "default")] == 3


def test_default_journal_sits_beside_the_input_file(sb, tmp_path):
    path = tmp_path / "inv.csv"
    path.write_text("sku,qty_on_hand\nF1,4\n")
    load_inventory(path, mode="partial", client=client_for(sb))
    journal = tmp_path / "inv.csv.journal.jsonl"
    events = [json.loads(line)["event"] for line in journal.read_text().splitlines()]
    assert events == ["batch", "complete"]


def test_a_second_load_sharing_the_journal_is_refused_while_the_first_runs(sb, tmp_path):
    import fcntl

    journal = tmp_path / "j.jsonl"
    with open(tmp_path / "j.jsonl.lock", "a") as held:  # another load holds the journal
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        sb.stats.reset()
        with pytest.raises(StateError, match="in use by another load"):
            load_inventory(pd.DataFrame({"sku": ["L1"], "qty_on_hand": [1]}), mode="partial", client=client_for(sb),
                           journal=journal)
        assert sb.stats.by_route.get(PARTIAL, 0) == 0 and not journal.exists()
    report = load_inventory(pd.DataFrame({"sku": ["L1"], "qty_on_hand": [1]}), mode="partial", client=client_for(sb),
                            journal=journal)
    assert report.batches_sent == 1  # once the first load has finished


# -- full load ----------------------------------------------------------------------------


def seen(sandbox) -> dict[tuple[str, str, str], int]:
    """The records the tool can see: those of products and variants (orphans have no product)."""
    return {k: q for k, q in inventory(sandbox).items() if not k[0].startswith("ORPHAN")}


def two_record_sku(before) -> str:
    return sorted({k[0] for k, q in before.items() if q > 0 and sum(1 for j in before if j[0] == k[0]) >= 2
                   and not k[0].startswith("ORPHAN")})[0]


def test_full_default_is_chunked_partials_zeroing_unlisted_skus(sb):
    before = inventory(sb)
    sku = two_record_sku(before)
    listed = sorted(k for k in before if k[0] == sku)
    target = {listed[0]: 77, ("FULL-NEW", "7", "front"): 3}
    sb.stats.reset()
    report = load_inventory(frame_of(target), mode="full", client=client_for(sb), confirm=True, batch_size=40)
    after = inventory(sb)
    assert sb.stats.by_route[FULL] == 0 and sb.stats.by_route[PARTIAL] == report.batches_sent > 1
    assert all(after[k] == q for k, q in target.items())
    assert all(after[k] == before[k] for k in listed[1:])  # other records of a listed sku: kept
    assert all(q == 0 for k, q in after.items() if k[0] not in (sku, "FULL-NEW") and not k[0].startswith("ORPHAN"))
    assert all(after[k] == q for k, q in before.items() if k[0].startswith("ORPHAN"))  # unseen: untouched
    assert report.records_zeroed == sum(1 for k, q in seen(sb).items() if False) + sum(
        1 for k, q in before.items() if q != 0 and k[0] != sku and not k[0].startswith("ORPHAN"))
    assert report.kept == len(listed) - 1 and report.via == "chunks" and report.zero == "unlisted-skus"
    assert "cannot be listed by the API" in report.summary()


def test_full_unlisted_records_zeroes_other_records_of_listed_skus(sb):
    before = inventory(sb)
    sku = two_record_sku(before)
    listed = sorted(k for k in before if k[0] == sku)
    sb.stats.reset()
    report = load_inventory(frame_of({listed[0]: 5}), mode="full", zero="unlisted-records", client=client_for(sb),
                            confirm=True)
    after = inventory(sb)
    assert after[listed[0]] == 5 and all(after[k] == 0 for k in listed[1:])
    assert report.kept == 0 and sb.stats.by_route[FULL] == 0


def test_full_without_yes_is_refused_with_the_count_and_sends_nothing(sb, tmp_path):
    before = inventory(sb)
    sku = two_record_sku(before)
    keep = sorted(k for k in before if k[0] == sku)[0]
    would_zero = sum(1 for k, q in seen(sb).items() if q != 0 and k[0] != sku)
    in_stock = sum(1 for q in seen(sb).values() if q > 0)
    sb.stats.reset()
    with pytest.raises(ConfigError) as info:
        load_inventory(frame_of({keep: 1}), mode="full", client=client_for(sb))
    message = str(info.value)
    assert "--yes" in message and "nothing was sent" in message
    assert f"of the {in_stock} inventory records currently above 0" in message
    assert f"{would_zero} record(s) in all are zeroed" in message
    assert sb.stats.by_route[FULL] == 0 and sb.stats.by_route[PARTIAL] == 0
    assert sb.stats.by_route["GET /v1/products"] >= 1  # it read the account's skus first
    assert inventory(sb) == before


def test_full_under_threshold_goes_without_confirm(sb):
    target = {k: q + 1 for k, q in seen(sb).items()}
    sb.stats.reset()
    report = load_inventory(frame_of(target), mode="full", client=client_for(sb))
    assert sb.stats.by_route[PARTIAL] == report.batches_sent >= 1
    assert report.records_zeroed == 0 and report.changed == len(target)
    assert all(inventory(sb)[k] == q for k, q in target.items())


def test_full_endpoint_is_one_request_and_always_needs_yes(sb):
    before = inventory(sb)
    target = {k: q + 1 for k, q in seen(sb).items()}
    sb.stats.reset()
    with pytest.raises(ConfigError, match="cannot see"):
        load_inventory(frame_of(target), mode="full", via="full-endpoint", client=client_for(sb))
    assert sb.stats.by_route[FULL] == 0 and inventory(sb) == before
    sku = two_record_sku(before)
    listed = sorted(k for k in before if k[0] == sku)
    report = load_inventory(frame_of({listed[0]: 9}), mode="full", via="full-endpoint", zero="unlisted-records",
                            client=client_for(sb), confirm=True)
    after = inventory(sb)
    assert sb.stats.by_route[FULL] == 1 and sb.stats.by_route[PARTIAL] == 0 and report.batches_sent == 1
    assert after[listed[0]] == 9 and all(q == 0 for k, q in after.items() if k != listed[0])  # orphans too


def test_full_endpoint_body_over_the_limit_is_refused(sb, monkeypatch):
    import sqquid_etl.reverse_full as full

    monkeypatch.setattr(full, "MAX_BODY_BYTES", 1000)
    sb.stats.reset()
    with pytest.raises(ConfigError, match="body over"):
        load_inventory(frame_of(seen(sb)), mode="full", via="full-endpoint", client=client_for(sb), confirm=True)
    assert sb.stats.by_route[FULL] == 0


def test_full_with_skus_that_cannot_be_seen_needs_yes(sb):
    target = dict(seen(sb))
    target[("HAS,COMMA", "default", "default")] = 1
    sb.stats.reset()
    with pytest.raises(ConfigError, match="cannot be seen"):
        load_inventory(frame_of(target), mode="full", client=client_for(sb))
    assert sb.stats.by_route[PARTIAL] == 0


def make_baseline(sb, path):
    from sqquid_etl import extract

    assert extract(["products", "inventory"], duckdb=path, client=client_for(sb)).ok


def test_full_against_a_baseline_reads_no_inventory_from_the_api(sb, tmp_path):
    baseline = tmp_path / "extract.duckdb"
    make_baseline(sb, baseline)
    before = inventory(sb)
    sku = two_record_sku(before)
    keep = {k: q for k, q in before.items() if k[0] == sku}
    sb.stats.reset()
    report = load_inventory(frame_of(keep), mode="full", client=client_for(sb), baseline=baseline, dry_run=True,
                            zero_threshold=1)
    assert sb.stats.by_route[LIST] == 0 and sb.stats.by_route["GET /v1/products"] == 0
    assert report.current_records_seen == len(seen(sb))
    assert report.records_zeroed == sum(1 for k, q in seen(sb).items() if q != 0 and k[0] != sku)
    assert "baseline extract.duckdb" in report.summary()


def test_a_stale_or_foreign_baseline_is_refused(sb, tmp_path):
    baseline = tmp_path / "extract.duckdb"
    make_baseline(sb, baseline)
    frame = frame_of({next(iter(seen(sb))): 1})
    sb.stats.reset()
    with pytest.raises(ConfigError, match="more than --baseline-max-age"):
        load_inventory(frame, mode="full", client=client_for(sb), baseline=baseline, baseline_max_age="0s")
    foreign = tmp_path / "other.duckdb"
    with duckdb.connect(str(foreign)) as con:
        con.execute("CREATE TABLE product_variants AS SELECT 'A' AS sku")
    with pytest.raises(ConfigError, match="no table"):
        load_inventory(frame, mode="full", client=client_for(sb), baseline=foreign)
    with pytest.raises(ConfigError, match="baseline-max-age"):
        load_inventory(frame, mode="full", client=client_for(sb), baseline=baseline, baseline_max_age="soon")
    assert sb.stats.requests == 0


# -- dry run ------------------------------------------------------------------------------


def test_full_dry_run_sends_no_patch_and_writes_the_diff(sb, tmp_path):
    before = inventory(sb)
    sku = two_record_sku(before)
    keys = sorted(k for k in before if k[0] == sku)
    changed, kept = keys[0], keys[1]
    target = {changed: before[changed] + 1, (sku, "NEWLOC", "default"): 4, ("NEG-1", "default", "default"): -3}
    diff_path = tmp_path / "diff.csv"
    sb.stats.reset()
    report = load_inventory(frame_of(target), mode="full", client=client_for(sb), dry_run=True, diff_out=diff_path)
    assert sb.stats.by_route[FULL] == 0 and sb.stats.by_route[PARTIAL] == 0 and sb.stats.by_route[LIST] >= 1
    assert inventory(sb) == before
    diff = pd.read_csv(diff_path, dtype=str, keep_default_na=False)
    assert list(diff.columns) == ["sku", "location_external_id", "bin", "current_qty", "new_qty", "change", "flag"]
    rows = {(r.sku, r.location_external_id, r.bin): (r.current_qty, r.new_qty, r.change) for r in diff.itertuples()}
    assert rows[changed] == (str(before[changed]), str(before[changed] + 1), "changed")
    assert rows[kept] == (str(before[kept]), str(before[kept]), "kept")
    assert rows[(sku, "NEWLOC", "default")] == ("", "4", "new")
    assert rows[("NEG-1", "default", "default")] == ("", "-3", "new")
    for key, qty in seen(sb).items():  # every seen record of another sku: listed, zeroed unless already 0
        if key[0] != sku:
            assert rows[key] == (str(qty), "0", "zeroed" if qty != 0 else "unchanged")
    assert len(rows) == len(seen(sb)) + 2
    assert report.dry_run and report.new == 2 and report.changed == 1 and report.negative == 1
    assert diff.loc[diff["sku"] == "NEG-1", "flag"].tolist() == ["negative"]


def test_partial_dry_run_diffs_only_the_given_keys(sb):
    before = inventory(sb)
    key = some_keys(sb, 1)[0]
    sb.stats.reset()
    report = load_inventory(frame_of({key: before[key] + 2}), mode="partial", client=client_for(sb), dry_run=True)
    assert sb.stats.by_route[PARTIAL] == 0 and inventory(sb) == before
    assert report.diff["change"].tolist() == ["changed"] and report.records_zeroed is None


# -- current inventory, read through the inventory stream definition -------------------------


def test_current_inventory_is_read_through_the_inventory_definition(sb):
    before = inventory(sb)
    skus = sorted({k[0] for k in before})[:5]
    sb.stats.reset()
    current, unlistable = fetch_current(client_for(sb), skus + ["HAS,COMMA", "NOT-IN-THE-ACCOUNT"])
    assert unlistable == ["HAS,COMMA"]
    assert list(current.columns) == ["sku", "location_external_id", "bin", "current_qty"]
    assert current["current_qty"].dtype == np.int64
    seen = {(r.sku, r.location_external_id, r.bin): r.current_qty for r in current.itertuples()}
    assert seen == {k: q for k, q in before.items() if k[0] in skus}
    assert sb.stats.by_route[LIST] == 1  # one batch of skus, one page


class ListingClient:
    """Records the listings asked for; the account has no inventory."""

    base_url = "http://127.0.0.1:1"

    def __init__(self):
        self.urls = []
        self.skus = []

    def get_body(self, path, params=None, budget=None):  # SqquidClient.get_body: list pages as bytes
        self.urls.append(f"{self.base_url}{path}?{urlencode(params)}")
        self.skus.extend(params["skus"].split(","))
        return b'{"total": 0, "offset": 0, "limit": 1000, "results": []}'

    def retry_budget(self, endpoint):
        return RetryBudget(endpoint, 1, 1, lambda *args: None)


def test_current_inventory_skus_are_batched_under_the_url_limit():
    client = ListingClient()
    skus = [f"LONG-SKU-{i:06d}/{'x' * 20}" for i in range(500)]
    current, unlistable = fetch_current(client, skus + ["y" * 3000])
    assert current.empty and unlistable == ["y" * 3000]
    assert len(client.urls) > 1 and all(len(url) < 2000 for url in client.urls)
    assert sorted(client.skus) == sorted(skus)


class LossyInventoryClient(ListingClient):
    """An account whose inventory listing holds a quantity that cannot be stored (1.5)."""

    def get_body(self, path, params=None, budget=None):
        super().get_body(path, params, budget)
        return (b'{"total": 2, "offset": 0, "limit": 1000, "results": ['
                b'{"sku": "A", "inventory": [{"location_external_id": "50", "bin": "x", "qty_on_hand": 3}]},'
                b'{"sku": "B", "inventory": [{"location_external_id": "50", "bin": "x", "qty_on_hand": 1.5}]}]}')


def test_current_inventory_that_cannot_be_read_exactly_stops_the_load():
    with pytest.raises(SchemaError, match="sku 'B'|sku B") as err:
        fetch_current(LossyInventoryClient(), ["A", "B"])
    assert "qty_on_hand" in str(err.value) and "nothing was sent" in str(err.value)


def test_current_frame_defaults_location_and_bin_and_keeps_the_last_record():
    table = pa.table({
        "sku": ["A", "A", "B", "B"],
        "location_external_id": ["", None, "50", "50"],
        "bin": [None, "default", "", ""],
        "qty_on_hand": pa.array([1, 2, None, 4], pa.int64()),
    })
    frame = current_frame([table])
    assert frame.to_dict("records") == [
        {"sku": "A", "location_external_id": "default", "bin": "default", "current_qty": 2},
        {"sku": "B", "location_external_id": "50", "bin": "default", "current_qty": 4},
    ]
    empty = current_frame([])
    assert list(empty.columns) == ["sku", "location_external_id", "bin", "current_qty"] and empty.empty


# -- CLI ----------------------------------------------------------------------------------


def run_cli(sb, *args, env=None):
    environment = {"SQQUID_API_KEY": API_KEY}
    environment.update(env or {})
    return CliRunner().invoke(load_inventory_command, [*args, "--base-url", sb.url, "--rate", "0"], env=environment)


def test_cli_partial_from_csv(sb, tmp_path):
    path = tmp_path / "inv.csv"
    path.write_text("sku,qty_on_hand,location_external_id,bin\n007,3,,\n007,5,50,front\n")
    result = run_cli(sb, str(path), "--mode", "partial")
    assert result.exit_code == 0, result.output
    assert inventory(sb)[("007", "default", "default")] == 3
    assert inventory(sb)[("007", "50", "front")] == 5
    assert "chunks sent:        1 of 1" in result.output
    again = run_cli(sb, str(path), "--mode", "partial")
    assert again.exit_code == 0 and "already applied" in again.output


def test_cli_parquet_full_dry_run(sb, tmp_path):
    path = tmp_path / "inv.parquet"
    key = some_keys(sb, 1)[0]
    frame_of({key: 40}).to_parquet(path)
    diff = tmp_path / "d.csv"
    sb.stats.reset()
    result = run_cli(sb, str(path), "--mode", "full", "--dry-run", "--diff-out", str(diff))
    assert result.exit_code == 0, result.output
    assert sb.stats.by_route[FULL] == 0 and diff.exists()
    assert "dry run" in result.output and "diff:" in result.output


def test_cli_duckdb_query(sb, tmp_path):
    db = tmp_path / "x.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE inv AS SELECT 'DQ-' || i AS sku, i AS qty FROM range(5) t(i)")
    result = run_cli(sb, "--mode", "partial", "--duckdb", str(db), "--query",
                     "SELECT sku, qty AS qty_on_hand FROM inv")
    assert result.exit_code == 0, result.output
    assert inventory(sb)[("DQ-4", "default", "default")] == 4


def test_cli_exit_codes(sb, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,qty_on_hand\nA,3.5\n")
    sb.stats.reset()
    result = run_cli(sb, str(bad), "--mode", "partial")
    assert result.exit_code == 6 and "error: " in result.output and "row 1, column qty_on_hand" in result.output
    assert sb.stats.requests == 0
    assert run_cli(sb, "--mode", "partial").exit_code == 2  # neither FILE nor --duckdb
    key = some_keys(sb, 1)[0]
    small = tmp_path / "small.csv"
    frame_of({key: 1}).to_csv(small, index=False)
    refused = run_cli(sb, str(small), "--mode", "full")
    assert refused.exit_code == 2 and "--yes" in refused.output
    assert sb.stats.by_route[FULL] == 0
    missing = run_cli(sb, str(tmp_path / "nope.csv"), "--mode", "partial")
    assert missing.exit_code == 6


def test_cli_never_prints_the_api_key(sb, tmp_path):
    path = tmp_path / "inv.csv"
    path.write_text("sku,qty_on_hand\nA,1\n")
    result = CliRunner().invoke(load_inventory_command, [str(path), "--mode", "partial", "--base-url", sb.url,
                                                         "--rate", "0", "--api-key", "wrong-secret-key-123"])
    assert result.exit_code == 3
    assert "wrong-secret-key-123" not in result.output


def test_cli_full_on_an_account_with_more_skus_is_refused_with_the_count_and_the_dry_run_lists_each(sb, tmp_path):
    before = inventory(sb)
    sku = two_record_sku(before)
    path = tmp_path / "inv.csv"
    frame_of({k: q for k, q in before.items() if k[0] == sku}).to_csv(path, index=False)
    zeroed = sorted(k for k, q in seen(sb).items() if q != 0 and k[0] != sku)
    sb.stats.reset()
    refused = run_cli(sb, str(path), "--mode", "full")
    assert refused.exit_code == 2 and f"{len(zeroed)} record(s) in all are zeroed" in refused.output
    assert "nothing was sent" in refused.output
    assert sb.stats.by_route[PARTIAL] == sb.stats.by_route[FULL] == 0 and inventory(sb) == before
    diff = tmp_path / "diff.csv"
    dry = run_cli(sb, str(path), "--mode", "full", "--dry-run", "--diff-out", str(diff))
    assert dry.exit_code == 0, dry.output
    assert "needs --yes" in dry.output and f"to be zeroed:       {len(zeroed)}" in dry.output
    rows = pd.read_csv(diff, dtype=str, keep_default_na=False)
    listed = rows.loc[rows["change"] == "zeroed", ["sku", "location_external_id", "bin"]]
    assert sorted(map(tuple, listed.itertuples(index=False))) == zeroed
    assert sb.stats.by_route[PARTIAL] == sb.stats.by_route[FULL] == 0 and inventory(sb) == before
