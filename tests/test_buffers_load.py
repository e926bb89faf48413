"""Buffers write-back (`load_buffers`, `sqquid-etl load-buffers`): a frame made the account's
buffers (create, update, and with mode full delete), validation naming row and column, the
delete guard, dry run, journal and re-run, and the CLI."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from click.testing import CliRunner

from sqquid_etl.buffers import load_buffers
from sqquid_etl.buffers_cli import load_buffers_command
from sqquid_etl.errors import ApiError, ConfigError, InputError
from sqquid_etl.sandbox import FaultConfig
from tests.test_reverse import API_KEY, client_for, sb  # noqa: F401  (the fixture)

POST, PATCH, DELETE, LIST = "POST /v1/buffers", "PATCH /v1/buffers/{buffer_id}", "DELETE /v1/buffers/{buffer_id}", \
    "GET /v1/buffers"


def account(sandbox) -> dict[tuple, int]:
    """The account's buffers by tuple (sku, channel, location); a repeated tuple keeps a list."""
    out: dict[tuple, list[int]] = {}
    with sandbox.store.lock:
        for b in sandbox.store.buffers:
            out.setdefault((b.get("sku"), b.get("channel_id"), b.get("location_external_id")), []).append(b["qty"])
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()}


def frame_of(buffers: dict[tuple, int]) -> pd.DataFrame:
    return pd.DataFrame([{"sku": k[0], "channel_id": k[1], "location_external_id": k[2], "quantity": q}
                         for k, q in buffers.items()])


def test_full_load_makes_the_account_equal_the_frame(sb):
    before = account(sb)
    keys = sorted(before, key=str)
    target = {k: (q if isinstance(q, int) else q[0]) + 1 for k, q in list(zip(keys, map(before.get, keys)))[:10]}
    target[("NEW-SKU", 2, "50")] = 4
    target[(None, 3, None)] = 1
    target[("GLOBAL-ONLY", None, None)] = -2  # a negative buffer: accepted, flagged
    sb.stats.reset()
    report = load_buffers(frame_of(target), mode="full", client=client_for(sb), confirm=True)
    assert account(sb) == target
    assert sb.stats.by_route[POST] == report.creates and sb.stats.by_route[PATCH] == report.updates
    assert sb.stats.by_route[DELETE] == report.deletes > 0
    assert report.negative == 1 and "negative" in report.summary()
    sb.stats.reset()
    again = load_buffers(frame_of(target), mode="full", client=client_for(sb), confirm=True)
    assert again.operations_sent == 0 and again.unchanged == len(target)
    assert sb.stats.by_route[POST] + sb.stats.by_route[PATCH] + sb.stats.by_route[DELETE] == 0


def test_partial_load_creates_and_updates_and_deletes_nothing(sb):
    before = account(sb)
    key = next(k for k, q in before.items() if isinstance(q, int))
    target = {key: before[key] + 5, ("P-NEW", 1, None): 3}
    report = load_buffers(frame_of(target), mode="partial", client=client_for(sb))
    after = account(sb)
    assert after[key] == before[key] + 5 and after[("P-NEW", 1, None)] == 3
    assert {k: v for k, v in after.items() if k not in target} == {k: v for k, v in before.items() if k not in target}
    assert report.creates == 1 and report.updates == 1 and report.deletes == 0


def test_full_delete_guard_refuses_without_yes_and_sends_nothing(sb, tmp_path):
    before = account(sb)
    sb.stats.reset()
    with pytest.raises(ConfigError, match=r"delete \d+ of the account's 50 buffers.*--yes"):
        load_buffers(frame_of({("ONLY", 1, None): 1}), mode="full", client=client_for(sb))
    assert account(sb) == before and sb.stats.by_route[POST] == sb.stats.by_route[DELETE] == 0
    plan = tmp_path / "plan.csv"
    report = load_buffers(frame_of({("ONLY", 1, None): 1}), mode="full", client=client_for(sb), dry_run=True,
                          diff_out=plan)
    rows = pd.read_csv(plan, dtype=str, keep_default_na=False)
    assert (rows["op"] == "delete").sum() == 50 and (rows["op"] == "create").sum() == 1
    assert any("--yes" in w for w in report.warnings) and account(sb) == before


@pytest.mark.parametrize("rows, where, reason", [
    ([{"sku": "A", "channel_id": 99, "quantity": 1}], "row 1, column channel_id", "unknown channel"),
    ([{"sku": "A", "channel_id": 1, "quantity": 1}, {"sku": "A", "channel_id": 1, "quantity": 1}],
     "row 2, column quantity", "duplicate of buffer (sku 'A', channel 1, location any): rows 1, 2"),
    ([{"sku": "A", "channel_id": "x", "quantity": 1}], "row 1, column channel_id", "not a number"),
    ([{"sku": "A", "channel_id": 0, "quantity": 1}], "row 1, column channel_id", "not a channel id"),
    ([{"sku": "A", "channel_id": 1, "quantity": 1.5}], "row 1, column quantity", "not a whole number"),
    ([{"sku": "A", "channel_id": 1, "quantity": None}], "row 1, column quantity", "missing"),
    ([{"sku": " A", "channel_id": 1, "quantity": 1}], "row 1, column sku", "whitespace"),
])
def test_invalid_rows_send_nothing_and_are_named(sb, rows, where, reason):
    before = account(sb)
    sb.stats.reset()
    with pytest.raises(InputError) as info:
        load_buffers(pd.DataFrame(rows), mode="full", client=client_for(sb), confirm=True)
    assert where in str(info.value) and reason in str(info.value) and "nothing was sent" in str(info.value)
    assert account(sb) == before
    assert sb.stats.by_route[POST] + sb.stats.by_route[PATCH] + sb.stats.by_route[DELETE] == 0


def test_a_channel_named_with_channels_is_known(sb):
    sb.store.buffers = [b for b in sb.store.buffers if b.get("channel_id") != 2]  # no buffer uses channel 2
    with pytest.raises(InputError, match="unknown channel"):
        load_buffers(frame_of({("C2", 2, None): 1}), client=client_for(sb))
    report = load_buffers(frame_of({("C2", 2, None): 1}), client=client_for(sb), channels=[2])
    assert report.creates == 1 and account(sb)[("C2", 2, None)] == 1


def test_quantity_column_may_be_qty_and_location_numbers_are_text(sb):
    frame = pd.DataFrame({"sku": ["Q1"], "channel_id": ["1"], "location_external_id": [50], "qty": ["7"]})
    load_buffers(frame, client=client_for(sb))
    assert account(sb)[("Q1", 1, "50")] == 7
    with pytest.raises(InputError, match="both quantity and qty"):
        load_buffers(frame.assign(quantity=1), client=client_for(sb))


def test_a_failed_load_is_finished_by_a_rerun_doing_only_what_remains(sb, tmp_path):
    target = {(f"R-{i}", 1 + i % 3, None): i for i in range(12)}
    journal = tmp_path / "b.journal.jsonl"
    client = client_for(sb, max_tries=1)
    client.login()
    sb.stats.reset()
    sb.set_faults(FaultConfig(error_every=6, error_status=500))  # the 6th data request fails (1 GET + 4 POST)
    with pytest.raises(ApiError, match="operation 5 of 12.*re-run"):
        load_buffers(frame_of(target), client=client, journal=journal)
    assert sb.stats.by_route[POST] == 5 and len(journal.read_text().splitlines()) == 4
    sb.set_faults(FaultConfig())
    sb.stats.reset()
    report = load_buffers(frame_of(target), client=client, journal=journal)
    assert sb.stats.by_route[POST] == 8 and report.creates == 8 and report.acknowledged_before == 4
    assert all(account(sb)[k] == q for k, q in target.items())


def test_cli_from_a_csv_and_from_duckdb(sb, tmp_path):
    path = tmp_path / "buffers.csv"
    path.write_text("sku,channel_id,location_external_id,quantity\nCLI-1,1,,3\n,2,50,4\n")
    env = {"SQQUID_API_KEY": API_KEY}
    result = CliRunner().invoke(load_buffers_command, [str(path), "--base-url", sb.url, "--rate", "0"], env=env)
    assert result.exit_code == 0, result.output
    assert account(sb)[("CLI-1", 1, None)] == 3 and account(sb)[(None, 2, "50")] == 4
    assert "2 to create" in result.output and (tmp_path / "buffers.csv.journal.jsonl").exists()
    db = tmp_path / "x.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE b AS SELECT 'CLI-1' AS sku, 1 AS channel_id, NULL AS location_external_id, 9 AS qty")
    result = CliRunner().invoke(load_buffers_command, ["--from-duckdb", "SELECT * FROM b", "--duckdb", str(db),
                                                       "--dry-run", "--base-url", sb.url, "--rate", "0"], env=env)
    assert result.exit_code == 0, result.output
    assert "update" in result.output and account(sb)[("CLI-1", 1, None)] == 3
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("sku,channel_id,quantity\nA,B,1,2\n")
    result = CliRunner().invoke(load_buffers_command, [str(ragged), "--base-url", sb.url, "--rate", "0"], env=env)
    assert result.exit_code == 6 and "row 1, column 4" in result.output
