"""HyperSpy .hspy / .zspy out and in, checked with rosettasciio's own readers (HyperSpy itself optional)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pycro_gpu import datasets
from pycro_gpu.io.translators import TranslationError, export_hyperspy, translate
from pycro_gpu.io.usid import USIDataset, find_main_datasets

rsciio_hspy = pytest.importorskip("rsciio.hspy")


def _axes(signal):
    return {a["name"]: a for a in signal["axes"]}


@pytest.mark.parametrize("ext", [".hspy", ".zspy"])
def test_pfm_map_exports_with_its_data_and_axes(test_data, tmp_path, ext):
    if ext == ".zspy":
        pytest.importorskip("zarr")
    from rsciio import hspy, zspy

    with h5py.File(test_data / "SingFreqPFM_0003.h5", "r") as f:
        mains = find_main_datasets(f)
        main = mains[0]
        image = main[()][:, 0].reshape(128, 128)  # positions: X fastest, so rows are Y
        x, y = main.pos_dims
        out = export_hyperspy(main, tmp_path / f"pfm{ext}")
    (sig,) = (hspy if ext == ".hspy" else zspy).file_reader(str(out))
    np.testing.assert_array_equal(sig["data"], image)
    axes = _axes(sig)
    assert not axes["X"]["navigate"] and not axes["Y"]["navigate"]  # an image: Signal2D
    for dim in (x, y):
        a = axes[dim.name]
        assert a["units"] == dim.units and a["size"] == len(dim)
        np.testing.assert_allclose(a["offset"] + a["scale"] * np.arange(a["size"]), dim.values, rtol=1e-6)
    assert sig["metadata"]["General"]["title"] == main.quantity
    # and in again: the same map on the same positions
    back = translate(out, tmp_path / "back.h5")
    with h5py.File(back, "r") as f:
        (m,) = find_main_datasets(f)
        np.testing.assert_array_equal(m.to_xarray().values[..., 0], image)
        assert [d.name for d in m.pos_dims] == ["Y", "X"] or {d.name for d in m.pos_dims} == {"X", "Y"}


def test_spectrum_image_round_trip_through_hspy(test_data, tmp_path):
    eels = translate(test_data / "DMReader_SpectrumImage_SI-EELS.dm3", tmp_path / "eels.h5")
    with h5py.File(eels, "r") as f:
        (main,) = find_main_datasets(f)
        da = main.to_xarray()
        out = export_hyperspy(main, tmp_path / "eels.hspy")
    (sig,) = rsciio_hspy.file_reader(str(out))
    np.testing.assert_array_equal(sig["data"], da.values)
    axes = _axes(sig)
    energy = main.spec_dims[0]
    assert not axes[energy.name]["navigate"] and axes[energy.name]["units"] == energy.units == "eV"
    assert all(axes[d.name]["navigate"] for d in main.pos_dims)
    back = translate(out, tmp_path / "back.h5")
    with h5py.File(back, "r") as f:
        (m,) = find_main_datasets(f)
        np.testing.assert_array_equal(m.to_xarray().values, da.values)
        np.testing.assert_allclose(m.spec_dims[0].values, energy.values, rtol=1e-6)


def test_fit_results_export_one_field_and_bipolar_sweep_survives(tmp_path):
    from pycro_gpu.fitting import fit_sho_dataset

    path = datasets.write_usid(datasets.beps(shape=(2, 3), n_freq=16, n_dc=8, seed=2), tmp_path / "b.h5")
    res = fit_sho_dataset(path, backend="numpy", progress=False)
    with h5py.File(path, "r") as f:
        fit = USIDataset(f[res.group]["Fit"])
        with pytest.raises(TranslationError, match="choose one with field"):
            export_hyperspy(fit, tmp_path / "fit.hspy")
        out = export_hyperspy(fit, tmp_path / "fit.hspy", field="Amplitude")
        ds = fit.to_xarray()
        (sweep,) = fit.spec_dims
    (sig,) = rsciio_hspy.file_reader(str(out))
    np.testing.assert_array_equal(sig["data"], ds["Amplitude"].values)
    assert "V" in sig["metadata"]["Signal"]["quantity"]
    back = translate(out, tmp_path / "back.h5")
    with h5py.File(back, "r") as f:
        (m,) = find_main_datasets(f)
        (dc,) = m.spec_dims
        assert dc.name == sweep.name and dc.units == sweep.units
        np.testing.assert_allclose(dc.values, sweep.values)  # the repeated voltages, restored


def test_export_refuses_to_overwrite_and_wrong_extension(tmp_path):
    path = datasets.write_usid(datasets.band_excitation(shape=(2, 2), n_freq=8, seed=0), tmp_path / "be.h5")
    with h5py.File(path, "r") as f:
        (main,) = find_main_datasets(f)
        out = export_hyperspy(main, tmp_path / "x.hspy")
        with pytest.raises(TranslationError, match="exists"):
            export_hyperspy(main, out)
        with pytest.raises(TranslationError, match=r"\.hspy or \.zspy"):
            export_hyperspy(main, tmp_path / "x.h5")
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left
