"""The notebooks (notebooks/*.ipynb) run top to bottom in a Jupyter kernel (nbclient) with the small settings
of their `parameters` cell: tiny random models, a fake sweep, no training (all three together about 20 s on
an idle 2-core machine). `workdir` is set to a temporary folder the way papermill does it: a cell tagged
`injected-parameters` after the `parameters` cell. They are committed without outputs."""

import asyncio
import csv
import re

import nbformat
import numpy as np
import skimage.data
from nbclient import NotebookClient
from PIL import Image

from helpers import ROOT

NOTEBOOKS = ["01_restore_a_photo.ipynb", "02_gamma_sweep.ipynb", "03_compare_methods.ipynb"]
CELL_TIMEOUT = 120  # seconds, per cell


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "notebooks" / name, as_version=4)


def _parameters_index(notebook) -> int:
    tagged = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "expected one cell tagged `parameters`"
    return tagged[0]


def test_the_notebooks_are_committed_stripped():
    assert sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")) == NOTEBOOKS
    for name in NOTEBOOKS:
        notebook = _read(name)
        nbformat.validate(notebook)
        parameters = notebook.cells[_parameters_index(notebook)]
        assert re.search(r"^workdir = None", parameters.source, re.M), name
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{name}: outputs not stripped"
                assert "execution" not in cell.metadata, f"{name}: execution times not stripped"
                private = re.search(r"from facezoo\S* import .*\b_\w", cell.source)  # public functions only
                assert not private, f"{name}: {private.group()}"


def _run_all(work: dict) -> list[nbformat.NotebookNode]:
    """Execute the notebooks `work` names (name -> its working folder) at once, each in its own kernel (one
    torch thread each, so two cores run them side by side); a cell's error raises CellExecutionError with
    its traceback."""
    clients = []
    for name, workdir in work.items():
        notebook = _read(name)
        injected = nbformat.v4.new_code_cell(f"workdir = {str(workdir)!r}")
        injected.metadata["tags"] = ["injected-parameters"]
        notebook.cells.insert(_parameters_index(notebook) + 1, injected)
        clients.append(NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                                      resources={"metadata": {"path": str(workdir)}}))

    async def execute():
        return await asyncio.gather(*(client.async_execute() for client in clients))

    return list(asyncio.run(execute()))


def _images(notebook) -> int:
    outputs = [out for cell in notebook.cells for out in cell.get("outputs", [])]
    return sum("image/png" in out.get("data", {}) for out in outputs)


def test_the_notebooks_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # robust on a small shared CPU, as the suite's torch threads
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "1")  # this environment's kernel before a user's
    work = {name: tmp_path / name.split("_")[0] for name in NOTEBOOKS}
    for folder in work.values():
        folder.mkdir()

    restore, sweep, compare = _run_all(work)
    before = skimage.data.astronaut()
    after = np.asarray(Image.open(work[NOTEBOOKS[0]] / "restored.png"))
    changed = np.abs(after.astype(int) - before).max(axis=2) > 0
    assert after.shape == before.shape and changed[76:166, 175:265].mean() > 0.5 and not changed[300:].any()
    assert _images(restore) == 2  # the pipeline figure, before / after

    with open(work[NOTEBOOKS[1]] / "report" / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["split.gamma"], r["runs"], r["failed"], r["test/psnr_n"]) for r in table] == [
        ("0.01", "3", "0", "3"), ("0.1", "3", "0", "3"), ("0.2", "3", "1", "2"), ("1.0", "3", "0", "3")]
    assert _images(sweep) == 3  # results.png, the gain plot, the split's roles
    assert "| 0.1 | 10 | 45 | 45 |" in str(sweep.cells[-2].outputs)  # the split manifest's sizes

    out = work[NOTEBOOKS[2]] / "compare"
    assert "| tiny_baseline | ok |" in (out / "results.md").read_text()
    assert "| tiny_gpen | ok |" in (out / "results.md").read_text()
    assert _images(compare) == 3  # the grid and two plots

