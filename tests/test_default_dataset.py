"""File-based routines find the Main dataset themselves when the file makes it unambiguous."""

import h5py
import numpy as np
import pytest

from pycro_gpu import DataError
from pycro_gpu.io.usid import DEFAULT_RAW_DATA, Dimension, open_main, write_main


def _write(path, names):
    with h5py.File(path, "w") as f:
        for i, name in enumerate(names):
            grp = f.require_group(name.rsplit("/", 1)[0])
            write_main(
                grp,
                name.rsplit("/", 1)[1],
                np.arange(12.0).reshape(3, 4) + i,
                [Dimension("X", "m", 3)],
                [Dimension("Bias", "V", 4)],
                "Current",
                "A",
            )


def test_default_raw_data_path_wins(tmp_path):
    path = tmp_path / "two.h5"
    _write(path, ["/Other/Data", DEFAULT_RAW_DATA])
    with h5py.File(path, "r") as f:
        main = open_main(f)
        assert main.name == DEFAULT_RAW_DATA
        np.testing.assert_array_equal(main[()], np.arange(12.0).reshape(3, 4) + 1)


def test_single_main_dataset_is_found(tmp_path):
    path = tmp_path / "one.h5"
    _write(path, ["/Scan/Image"])
    with h5py.File(path, "r") as f:
        assert open_main(f).name == "/Scan/Image"


def test_ambiguous_file_names_its_main_datasets(tmp_path):
    path = tmp_path / "two.h5"
    _write(path, ["/A/Data", "/B/Data"])
    with h5py.File(path, "r") as f, pytest.raises(DataError, match=r"2 Main datasets.*/A/Data.*/B/Data"):
        open_main(f)


def test_fit_sho_dataset_from_a_file_path(tmp_path):
    from pycro_gpu import datasets
    from pycro_gpu.fitting import fit_sho, fit_sho_dataset

    ds = datasets.band_excitation(shape=(4, 4), n_freq=48, seed=3)
    path = tmp_path / "be.h5"
    datasets.write_usid(ds, path)
    res = fit_sho_dataset(str(path), progress=False)
    with h5py.File(res.file, "r") as f:
        fit = f[res.group]["Fit"][()]
    ref = fit_sho(ds.data.reshape(16, -1), ds.truth["frequency"])
    np.testing.assert_allclose(fit["Frequency [Hz]"].ravel(), ref.params[:, 1], rtol=1e-5)
