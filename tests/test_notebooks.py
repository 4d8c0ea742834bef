"""The notebooks run end to end (with nbclient, the engine of nbmake) on a tiny export."""

import os

import nbformat
from nbclient import NotebookClient

from tests.conftest import REPO_ROOT


def test_quickstart_notebook_runs_on_a_tiny_export_named_as_the_readme_does(tiny_export, monkeypatch):
    # As `RECSYS_EXPORT=exports/mi jupyter lab` in the README: the path is given from the repository
    # root, and Jupyter runs the notebook's kernel in notebooks/.
    monkeypatch.setenv("RECSYS_EXPORT", os.path.relpath(tiny_export[0], REPO_ROOT))
    notebook = nbformat.read(REPO_ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO_ROOT / "notebooks")}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "10 items, 12 users, dim 16" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the embedding plot
