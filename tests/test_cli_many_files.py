"""File commands on several files: each processed on its own, one summary per file, failures isolated."""

from __future__ import annotations

import h5py
import numpy as np

from pycro_gpu import datasets
from pycro_gpu.cli import main


def test_fit_sho_on_three_files_one_of_them_broken(tmp_path, capsys):
    a = datasets.write_usid(datasets.band_excitation(shape=(2, 3), n_freq=32, seed=1), tmp_path / "a.h5")
    b = datasets.write_usid(datasets.band_excitation(shape=(3, 2), n_freq=32, seed=2), tmp_path / "b.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    rc = main(["fit", "sho", str(a), str(bad), str(b), "--backend", "numpy"])
    assert rc == 1  # the broken file's exit code; the good ones were fitted
    out, err = capsys.readouterr()
    assert out.count("SHO_Fit_000") == 2 and out.count("6 fits:") == 2  # one summary per good file
    (line,) = [x for x in err.splitlines() if "error" in x]  # one error line (progress bars aside)
    assert str(bad) in line and "not an HDF5 file" in line
    for path, seed in ((a, 1), (b, 2)):
        truth = datasets.band_excitation(shape=(2, 3) if seed == 1 else (3, 2), n_freq=32, seed=seed).truth
        with h5py.File(path, "r") as f:
            fit = f["Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit"][()]
        resonance = truth["resonance_frequency"].reshape(-1)
        np.testing.assert_allclose(fit["Frequency [Hz]"][:, 0], resonance, rtol=1e-2)
    # run again: both reused, each on its own
    assert main(["fit", "sho", str(a), str(b), "--backend", "numpy"]) == 0
    assert capsys.readouterr().out.count("reused") == 2


def test_svd_of_two_files_into_one_results_file(tmp_path, capsys):
    paths = []
    for i in range(2):
        p = datasets.write_usid(
            datasets.band_excitation(shape=(4, 4), n_freq=16, seed=i), tmp_path / f"{i}.h5"
        )
        paths.append(str(p))
    res = tmp_path / "svd.h5"
    assert main(["svd", *paths, "-k", "3", "--results", str(res), "-q"]) == 0
    with h5py.File(res, "r") as f:
        groups = sorted(k for k in f if "SVD" in k)
        assert groups == ["Raw_Data-SVD_000", "Raw_Data-SVD_001"]
        assert [f[g].attrs["source_file"] for g in groups] == paths
