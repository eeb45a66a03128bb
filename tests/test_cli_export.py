"""``pycro-gpu export``: maps and spectra to TIFF, CSV, PNG and HyperSpy, checked by independent readers."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pycro_gpu import datasets
from pycro_gpu.cli import main
from pycro_gpu.io.usid import Dimension, find_main_datasets, write_main


@pytest.fixture
def pfm(test_data):
    path = test_data / "SingFreqPFM_0003.h5"
    with h5py.File(path, "r") as f:
        m = find_main_datasets(f)[0]
        image = m[()][:, 0].reshape(128, 128)  # X fastest: rows are Y
        x, y = m.pos_dims
        return path, m.name, image, x, y


def test_map_to_tiff_csv_png_hspy(pfm, tmp_path, capsys):
    import tifffile
    from matplotlib.image import imread
    from rsciio.hspy import file_reader

    path, name, image, x, y = pfm
    outs = {fmt: tmp_path / f"pfm.{ext}" for fmt, ext in
            (("tiff", "tif"), ("csv", "csv"), ("png", "png"), ("hspy", "hspy"))}  # fmt: skip
    for fmt, out in outs.items():
        assert main(["export", str(path), "--dataset", name, "--to", fmt, "--out", str(out)]) == 0
        assert f"wrote {out}" in capsys.readouterr().out
    np.testing.assert_array_equal(tifffile.imread(outs["tiff"]), image.astype(np.float32))
    table = np.loadtxt(outs["csv"], delimiter=",", skiprows=1)
    header = outs["csv"].read_text().splitlines()[0]
    assert header.startswith(f"{y.name} [{y.units}],{x.name} [{x.units}]")
    np.testing.assert_allclose(table[:, 2], image.reshape(-1), rtol=1e-6)
    yy, xx = np.meshgrid(y.values, x.values, indexing="ij")
    np.testing.assert_allclose(table[:, 0], yy.reshape(-1)) and np.testing.assert_allclose(
        table[:, 1], xx.reshape(-1)
    )
    png = imread(outs["png"])
    assert png.shape[0] > 300 and png[..., :3].std() > 0.05  # a drawn figure, not blank
    (sig,) = file_reader(str(outs["hspy"]))
    np.testing.assert_array_equal(sig["data"], image)
    assert not list(tmp_path.glob(".*tmp*"))


def test_spectra_pages_and_fit_fields(tmp_path, capsys):
    import tifffile

    nx, ny, ns = 4, 3, 5
    data = np.arange(nx * ny * ns, dtype=np.float64).reshape(nx * ny, ns)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        write_main(f, "Raw_Data", data, [Dimension("X", "m", nx), Dimension("Y", "m", ny)],
                   Dimension("Bias", "V", ns), "Current", "A")  # fmt: skip
    assert main(["export", str(tmp_path / "s.h5"), "--to", "tiff", "-q"]) == 0
    pages = tifffile.imread(tmp_path / "s_Raw_Data.tif")
    assert pages.shape == (ns, ny, nx)
    np.testing.assert_array_equal(pages[2], data[:, 2].reshape(ny, nx))

    from pycro_gpu.fitting import fit_sho_dataset

    be = datasets.write_usid(datasets.band_excitation(shape=(3, 2), n_freq=16, seed=0), tmp_path / "be.h5")
    res = fit_sho_dataset(be, backend="numpy", progress=False)
    fit = f"{res.group}/Fit"
    assert main(["export", str(be), "--dataset", fit, "--to", "csv", "-q"]) == 1
    assert "choose one with --field" in capsys.readouterr().err
    out = tmp_path / "amp.csv"
    assert (
        main(["export", str(be), "--dataset", fit, "--to", "csv", "--field", "Amplitude", "--out", str(out)])
        == 0
    )
    with h5py.File(be, "r") as f:
        amp = f[fit][()]["Amplitude [V]"][:, 0]
    np.testing.assert_allclose(np.loadtxt(out, delimiter=",", skiprows=1)[:, 2], amp, rtol=1e-6)
    assert (
        main(
            [
                "export",
                str(be),
                "--dataset",
                fit,
                "--to",
                "csv",
                "--field",
                "Amplitude",
                "--out",
                str(out),
                "-q",
            ]
        )
        == 1
    )
    assert "exists; pass --override" in capsys.readouterr().err
    assert main(["export", str(be), "--dataset", "/nope", "--to", "png"]) == 1
    assert "no dataset '/nope'" in capsys.readouterr().err
