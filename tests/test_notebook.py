"""notebooks/explore.ipynb runs from top to bottom against the in-process sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "explore.ipynb"


def test_explore_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (in the test extra: pip install -e '.[test]')")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (in the test extra: pip install -e '.[test]')")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed (in the test extra: pip install -e '.[test]')")
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (in the test extra: pip install -e '.[test]')")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), "commit the notebook without outputs"
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # a failing cell (an assert in the notebook included) raises CellExecutionError
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 4  # orders per day, top skus, inventory by location, available to sell per channel
    text = "".join(o.get("text", "") for o in outputs)
    assert "orders" in text and "count check: ok" in text
