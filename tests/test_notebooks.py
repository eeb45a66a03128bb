"""The example notebooks execute top to bottom (their cells assert results against ground truth)."""

from pathlib import Path

import pytest
from conftest import TEST_DATA

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
#: notebook -> (minimum number of figures it draws, whether it needs ../shared/data)
EXPECTED = {
    "band_excitation.ipynb": (4, False),
    "gmode_filtering.ipynb": (1, False),
    "spectrum_image_decomposition.ipynb": (4, True),
}


def test_the_three_workflows_are_there_with_outputs_stripped():
    assert sorted(p.name for p in NOTEBOOKS) == sorted(EXPECTED)
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code, path.name
        for cell in code:
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs not stripped"
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


KERNEL = "pycro-gpu-test"


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory):
    """A kernelspec for this interpreter, so the notebooks run here whatever else is installed."""
    from ipykernel.kernelspec import write_kernel_spec

    root = tmp_path_factory.mktemp("jupyter")
    write_kernel_spec(root / "kernels" / KERNEL, overrides={"display_name": KERNEL})
    return root


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, kernel_dir, monkeypatch):
    n_figures, needs_data = EXPECTED[path.name]
    if needs_data and not TEST_DATA.is_dir():
        pytest.skip(f"test data folder {TEST_DATA} not found (set PYCRO_GPU_TEST_DATA)")
    # the kernel inherits the environment: real files, CPU backend, no progress bars
    monkeypatch.setenv("PYCRO_GPU_TEST_DATA", str(TEST_DATA))
    monkeypatch.setenv("PYCRO_GPU_BACKEND", "numpy")
    monkeypatch.setenv("PYCRO_GPU_PROGRESS", "0")
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name=KERNEL, resources={"metadata": {"path": str(EXAMPLES)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell (including its asserts)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    pngs = [
        o for o in outputs if o.output_type in ("display_data", "execute_result") and "image/png" in o.data
    ]
    assert len(pngs) >= n_figures, f"{path.name}: {len(pngs)} figures drawn"
