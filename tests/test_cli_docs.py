"""The README documents every command and option of the CLI, and keeps the two quick-start commands."""

from __future__ import annotations

from pathlib import Path

import click

from sqquid_etl.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
# commands whose options are documented in their own page, linked from the README
REVERSE_LOAD = (ROOT / "docs" / "reverse-load.md").read_text(encoding="utf-8")
OWN_PAGE = {"load-inventory": REVERSE_LOAD, "load-buffers": REVERSE_LOAD}

QUICK_START = [
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/sqquid-etl demo",
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && python3 -m venv .venv-singer-target && .venv-singer-target/bin/pip install -q target-jsonl==0.1.4 && python3 -m venv .venv-airflow && .venv-airflow/bin/pip install -q 'apache-airflow==3.3.2' -e . && .venv/bin/python -m pytest -q",
]


def _commands(group: click.Group, prefix: str = ""):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # lazily loaded commands too (sandbox, load-inventory)
        command = group.get_command(ctx, name)
        yield f"{prefix}{name}", command
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")


def test_quick_start_commands_are_kept():
    for command in QUICK_START:
        assert f"```bash\n{command}\n```" in README


def test_every_command_and_option_is_documented():
    missing = []
    for name, command in _commands(main):
        if f"`{name}" not in README and f"sqquid-etl {name}" not in README:
            missing.append(name)
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and opt not in README + OWN_PAGE.get(name, ""):
                    missing.append(f"{name} {opt}")
    assert not missing, f"not in README.md: {missing}"


def test_doc_links_point_to_files_or_are_announced():
    for doc in ("docs/api-notes.md", "docs/reverse-load.md", "docs/reliability.md", "docs/benchmarks.md",
                "examples/dagster_assets.py", "examples/airflow_dag.py", "examples/dagster_accounts.py",
                "examples/airflow_accounts_dag.py", "notebooks/explore.ipynb"):
        assert f"({doc})" in README, doc
