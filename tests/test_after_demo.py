"""The README's "look at the data" commands work on a fresh install: after the demo, each one
runs with only what `pip install -e '.[test]'` installed (no separate DuckDB CLI)."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sqquid_etl.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent


def after_demo_commands() -> list[str]:
    block = re.search(r"<!-- after-demo[^>]*-->\n```bash\n(.*?)\n```", README, re.S)
    assert block, "README: the after-demo block is gone"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_names_only_installed_tools():
    commands = after_demo_commands()
    assert len(commands) >= 4
    for command in commands:
        assert command.startswith(".venv/bin/"), command  # nothing the quick start did not install
        assert (BIN / command.split()[0].removeprefix(".venv/bin/")).exists(), command


@pytest.fixture
def demo_dir(tmp_path, monkeypatch):
    """A directory laid out like the repository after `sqquid-etl demo` (a small, unpaced demo)."""
    monkeypatch.chdir(tmp_path)
    made = CliRunner().invoke(main, ["demo", "--orders", "400", "--products", "60", "--rate", "0"])
    assert made.exit_code == 0, made.output
    assert (tmp_path / "sqquid-demo.duckdb").is_file()
    assert not list(tmp_path.glob("*.staging")), "an empty staging directory was left beside the database"
    (tmp_path / "notebooks").symlink_to(ROOT / "notebooks")
    return tmp_path


def test_after_demo_commands_run(demo_dir):
    for command in after_demo_commands():
        shell = command.replace(".venv/bin/", f"{BIN}/")
        done = subprocess.run(shell, shell=True, cwd=demo_dir, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        if "sqquid-etl sql" in command and ">" not in command:
            assert "row" in done.stdout, done.stdout  # an aligned table with its row count
    with open(demo_dir / "runs.csv", encoding="utf-8") as runs:
        rows = list(csv.DictReader(runs))
    assert {r["stream"] for r in rows} >= {"orders", "inventory"} and all(r["status"] != "failed" for r in rows)


def test_sql_command_formats_and_errors(demo_dir):
    runner = CliRunner()
    json_out = runner.invoke(main, ["sql", "--duckdb", "sqquid-demo.duckdb", "--format", "json",
                                    "SELECT id, created_at FROM orders ORDER BY id LIMIT 2"])
    assert json_out.exit_code == 0 and json_out.stdout.count("\n") == 2 and '"id": 1' in json_out.stdout
    capped = runner.invoke(main, ["sql", "--duckdb", "sqquid-demo.duckdb", "--max-rows", "3", "SELECT * FROM orders"])
    assert capped.exit_code == 0 and "(3 rows)" in capped.stdout and "--max-rows 0" in capped.stderr
    bad = runner.invoke(main, ["sql", "--duckdb", "sqquid-demo.duckdb", "SELECT nope FROM orders"])
    assert bad.exit_code == 1 and bad.stderr.startswith("error: query failed")
    missing = runner.invoke(main, ["sql", "--duckdb", "absent.duckdb", "SELECT 1"])
    assert missing.exit_code == 2 and "no such DuckDB file" in missing.stderr and not Path("absent.duckdb").exists()
    write = runner.invoke(main, ["sql", "--duckdb", "sqquid-demo.duckdb", "DROP TABLE orders"])
    assert write.exit_code == 1  # read-only: looking never writes
    assert runner.invoke(main, ["sql", "--duckdb", "sqquid-demo.duckdb", "SELECT count(*) AS n FROM orders"]).stdout.split()[2] == "400"


def test_sql_on_object_storage_says_what_it_reads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(main, ["sql", "--parquet", "s3://bucket/lake", "SELECT 1"])
    assert out.exit_code == 2 and "reads a local Parquet directory" in out.stderr
    assert not (tmp_path / "s3:").exists()
