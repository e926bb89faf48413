"""Reverse load: the input means what it says (ragged CSV rows, unquoted commas, duplicate header
columns refused with row and column named), negative quantities accepted and flagged, no output
file overlapping an input, and requests cut into chunks of bounded size."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from sqquid_etl.errors import ConfigError, InputError
from sqquid_etl.reverse import load_inventory
from sqquid_etl.reverse_chunks import plan_chunks, chunk_payload
from sqquid_etl.reverse_cli import load_inventory_command
from sqquid_etl.reverse_validate import prepare_inventory
from tests.test_reverse import API_KEY, PARTIAL, client_for, inventory, sb  # noqa: F401  (the fixture)


@pytest.mark.parametrize("text, where", [
    ("sku,qty_on_hand\nA,1\nRAGGED-SKU,5,7\n", "row 2, column 3 (past the last header column 'qty_on_hand')"),
    ("sku,qty_on_hand\nA,B,5\n", "row 1, column 3"),
    ("sku,qty_on_hand,bin\nA,1,x\nB,2\n", "row 2, column 'bin'"),
])
def test_a_ragged_csv_row_is_refused_with_row_and_column(sb, tmp_path, text, where):
    path = tmp_path / "inv.csv"
    path.write_text(text)
    sb.stats.reset()
    with pytest.raises(InputError) as info:
        load_inventory(path, mode="partial", client=client_for(sb))
    assert where in str(info.value) and "nothing was sent" in str(info.value)
    assert sb.stats.requests == 0 and ("5", "default", "default") not in inventory(sb)


def test_a_duplicated_header_column_is_refused(sb, tmp_path):
    path = tmp_path / "inv.csv"
    path.write_text("sku,qty_on_hand,qty_on_hand\nA,1,2\n")
    sb.stats.reset()
    with pytest.raises(InputError, match="header column 3 'qty_on_hand' repeats column 2"):
        load_inventory(path, mode="partial", client=client_for(sb))
    assert sb.stats.requests == 0


def test_a_quoted_comma_and_a_blank_line_mean_what_they_say(tmp_path):
    path = tmp_path / "inv.csv"
    path.write_text('sku,qty_on_hand\n"A,B",5\n\nC,1\n')
    with pytest.raises(InputError, match="row 2, column sku"):  # the blank line is a row with no sku
        prepare_inventory(path)
    path.write_text('sku,qty_on_hand\n"A,B",5\nC,1\n')
    assert prepare_inventory(path).records["sku"].tolist() == ["A,B", "C"]


def test_cli_ragged_row_exits_6_and_sends_nothing(sb, tmp_path):
    path = tmp_path / "inv.csv"
    path.write_text("sku,qty_on_hand\nRAGGED-SKU,5,7\n")
    sb.stats.reset()
    result = CliRunner().invoke(load_inventory_command, [str(path), "--mode", "partial", "--base-url", sb.url,
                                                         "--rate", "0"], env={"SQQUID_API_KEY": API_KEY})
    assert result.exit_code == 6 and "row 1, column 3" in result.output
    assert sb.stats.requests == 0


def test_negative_quantities_are_sent_and_flagged(sb):
    frame = pd.DataFrame({"sku": ["OVER-1", "OVER-2"], "qty_on_hand": ["-3", -2147483647]})
    report = load_inventory(frame, mode="partial", client=client_for(sb), diff_out=None, dry_run=True)
    assert report.negative == 2 and report.diff["flag"].tolist() == ["negative", "negative"]
    assert "negative" in report.summary()
    load_inventory(frame, mode="partial", client=client_for(sb))
    assert inventory(sb)[("OVER-1", "default", "default")] == -3
    assert inventory(sb)[("OVER-2", "default", "default")] == -2147483647


@pytest.mark.parametrize("option", ["diff_out", "journal"])
def test_an_output_over_the_input_is_refused_and_nothing_written(sb, tmp_path, option):
    path = tmp_path / "inv.csv"
    path.write_text("sku,qty_on_hand\nA,1\n")
    sb.stats.reset()
    with pytest.raises(ConfigError, match="same file as the input"):
        load_inventory(path, mode="partial", client=client_for(sb), **{option: tmp_path / "." / "inv.csv"})
    assert path.read_text() == "sku,qty_on_hand\nA,1\n" and sb.stats.requests == 0
    with pytest.raises(ConfigError, match="same file as the --journal"):
        load_inventory(path, mode="partial", client=client_for(sb), journal=tmp_path / "j", diff_out=tmp_path / "j")
    assert not (tmp_path / "j").exists()


def test_cli_output_over_the_duckdb_input_is_refused(sb, tmp_path):
    import duckdb

    db = tmp_path / "x.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE inv AS SELECT 'A' AS sku, 1 AS qty_on_hand")
    size = db.stat().st_size
    result = CliRunner().invoke(load_inventory_command, [
        "--mode", "partial", "--duckdb", str(db), "--query", "SELECT * FROM inv", "--diff-out", str(db),
        "--base-url", sb.url, "--rate", "0"], env={"SQQUID_API_KEY": API_KEY})
    assert result.exit_code == 2 and "same file as the --duckdb file" in result.output
    assert db.stat().st_size == size


def test_chunks_hold_at_most_batch_size_skus_and_max_bytes():
    rng = np.random.default_rng(3)
    n = 3000
    frame = pd.DataFrame({
        "sku": [f"SKU-{i // 3:05d}" + ("é" if i % 7 == 0 else "") for i in range(n)],
        "location_external_id": [f"L{i % 3}" for i in range(n)],
        "bin": ["default"] * (n - 40) + ["x" * 50] * 40,
        "qty_on_hand": rng.integers(-5, 10**6, n),
    })
    records = prepare_inventory(frame).records
    for batch_size, max_bytes in ((50, 10**6), (500, 4000), (500, 300)):
        chunks = plan_chunks(records, batch_size, max_bytes)
        assert chunks[0][0] == 0 and chunks[-1][1] == len(records)
        assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))  # every record once, in order
        for chunk in chunks:
            payload = chunk_payload(records, chunk)
            assert len(payload) <= batch_size
            assert len(json.dumps(payload, separators=(",", ":")).encode()) <= max_bytes


def test_a_partial_load_is_cut_by_bytes_too(sb, monkeypatch):
    import sqquid_etl.reverse_send as send

    monkeypatch.setattr(send, "MAX_BODY_BYTES", 2000)
    frame = pd.DataFrame({"sku": [f"BIG-{i:04d}" for i in range(200)], "qty_on_hand": 1})
    sb.stats.reset()
    report = load_inventory(frame, mode="partial", client=client_for(sb), batch_size=500)
    assert report.batches_sent == sb.stats.by_route[PARTIAL] > 1
    assert all(inventory(sb)[(f"BIG-{i:04d}", "default", "default")] == 1 for i in range(200))


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("1h", 3600), ("2d", 172800), ("45", 45),
                                           (120, 120)])
def test_baseline_max_age_forms(text, seconds):
    from sqquid_etl.reverse_current import parse_age

    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["soon", "", "-1h", "nan", "inf", "1y", "99999999d"])
def test_baseline_max_age_refused(text):
    from sqquid_etl.reverse_current import parse_age

    with pytest.raises(ConfigError, match="baseline-max-age"):
        parse_age(text)


def test_full_endpoint_with_unlisted_skus_counts_the_records_the_readings_disagree_on(sb):
    from tests.test_reverse import two_record_sku

    before = inventory(sb)
    sku = two_record_sku(before)
    listed = sorted(k for k in before if k[0] == sku)
    frame = pd.DataFrame([{"sku": sku, "location_external_id": listed[0][1], "bin": listed[0][2], "qty_on_hand": 1}])
    with pytest.raises(ConfigError) as info:
        load_inventory(frame, mode="full", via="full-endpoint", client=client_for(sb))
    assert f"{len(listed) - 1} other record(s) of listed skus are kept by the reference's sentence" in str(info.value)
    assert inventory(sb) == before
