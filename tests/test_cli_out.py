"""``--results`` on the file commands: results go to another file and the raw file stays untouched."""

import hashlib

import h5py
import numpy as np

from pycro_gpu import datasets
from pycro_gpu.cli import main


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fit_sho_results_leaves_raw_file_untouched(tmp_path, capsys):
    ds = datasets.band_excitation(shape=(3, 3), n_freq=40, seed=1)
    raw = tmp_path / "be.h5"
    datasets.write_usid(ds, raw)
    raw.chmod(0o444)
    before = _sha(raw)
    assert main(["fit", "sho", str(raw), "--results", str(tmp_path / "res.h5"), "--backend", "numpy"]) == 0
    assert _sha(raw) == before
    out = capsys.readouterr().out
    assert "res.h5:/Raw_Data-SHO_Fit_000" in out and "100.00% converged" in out
    with h5py.File(tmp_path / "res.h5", "r") as f:
        fit = f["Raw_Data-SHO_Fit_000/Fit"][()]
    q = fit["Quality Factor"].ravel()
    np.testing.assert_allclose(q, np.ravel(ds.truth["quality_factor"]), rtol=0.1)


def test_quiet_fit_prints_nothing(tmp_path, capsys):
    raw = tmp_path / "be.h5"
    datasets.write_usid(datasets.band_excitation(shape=(2, 2), n_freq=32, seed=2), raw)
    assert main(["fit", "sho", str(raw), "--quiet", "--backend", "numpy"]) == 0
    assert capsys.readouterr().out == ""


def test_translate_out_option(tmp_path, test_data):
    out = tmp_path / "force.h5"
    assert main(["translate", str(test_data / "IgorIBWReader_ForceCurve.ibw"), "--out", str(out)]) == 0
    with h5py.File(out, "r") as f:
        assert f["Measurement_000/Channel_000/Raw_Data"].shape[0] >= 1
