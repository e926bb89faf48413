"""notebooks/explore.ipynb runs from top to bottom: on the demo database when there is one (any
size: it asserts nothing about it), else on an in-process sandbox."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from click.testing import CliRunner

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "explore.ipynb"
PLOTS = 5  # weekly orders and revenue, top skus, stock by location, available to sell per channel, stock over time


def _execute(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (in the test extra: pip install -e '.[test]')")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (in the test extra: pip install -e '.[test]')")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed (in the test extra: pip install -e '.[test]')")
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (in the test extra: pip install -e '.[test]')")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("SQQUID_NOTEBOOK_DB", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), "commit the notebook without outputs"
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # a failing cell (an assert in the notebook included) raises CellExecutionError
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    images = [base64.b64decode(o["data"]["image/png"]) for o in outputs if "image/png" in o.get("data", {})]
    text = "".join(o.get("text", "") for o in outputs)
    return images, text


def test_explore_notebook_reads_the_demo_database(tmp_path, monkeypatch):
    from sqquid_etl.cli import main

    monkeypatch.chdir(tmp_path)
    made = CliRunner().invoke(main, ["demo", "--orders", "700", "--products", "60", "--rate", "0"])
    assert made.exit_code == 0, made.output
    images, text = _execute(tmp_path, monkeypatch)
    assert "reading sqquid-demo.duckdb" in text
    assert len(images) == PLOTS and all(len(png) > 10_000 for png in images)
    assert "count check: ok" in text and "stock over time of sku" in text


def test_explore_notebook_without_a_database_runs_the_sandbox(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images, text = _execute(tmp_path, monkeypatch)
    assert "no demo database" in text and "count check: ok" in text
    assert len(images) == PLOTS
