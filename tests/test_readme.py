"""The README's Python tour runs as written (with the test-data folder in place of ../shared/data)."""

import re

import h5py
import numpy as np

from tests.conftest import REPO_ROOT


def test_readme_python_blocks_run(tmp_path, monkeypatch, test_data):
    text = (REPO_ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    code = "\n".join(blocks).replace("../shared/data", str(test_data))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    result, s, x, y = (namespace[k] for k in ("result", "s", "x", "y"))
    assert result.converged.mean() > 0.99
    assert np.all(result.params[:, 2] > 0)  # positive Q: the DESIGN sign convention
    spectra = namespace["spectra"].real
    np.testing.assert_allclose(s.S, np.linalg.svd(spectra, compute_uv=False)[:8], rtol=1e-6)
    assert y.shape == x.shape
    with h5py.File(tmp_path / "beps.h5", "r") as f:
        assert any(k.startswith("Raw_Data-SHO_Fit_") for k in f["Measurement_000/Channel_000"])
    assert (tmp_path / "afm.h5").stat().st_size > 0
