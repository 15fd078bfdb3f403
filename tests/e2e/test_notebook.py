"""`examples/notebook.ipynb` runs from top to bottom in a real kernel, so it never rots."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "notebook.ipynb"


def _text(cell: dict) -> str:  # type: ignore[type-arg]
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def test_the_example_notebook_runs() -> None:
    """Executed in the examples folder, as a reader opens it: no cell fails, and the cells show
    what the text says (a promoted champion, a cached second run, predictions, lineage)."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        "the notebook is stored without outputs"
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    texts = [_text(cell) for cell in code]
    assert "task regression" in texts[0] and "'casual'" in texts[0] and "'registered'" in texts[0]
    assert "champion = v1" in texts[1] and "promote" in texts[1]
    assert texts[2].startswith("True r2") and "second run: ['cached', 'cached'" in texts[2]
    assert "'ran'" not in texts[2]
    assert "prediction" in texts[5] and "model_version" in texts[5]
    assert "bikes: 1 version, champion v1" in texts[6]
    assert texts[7].splitlines()[0].startswith("model bikes v1") and "source_file" in texts[7]
    version, metrics, *views = texts[8].splitlines()
    assert version.startswith("v1 ") and ": run " in version and "training set " in version
    assert "'r2':" in metrics and views and all("entity" in view and "fields, online as of" in view for view in views)
