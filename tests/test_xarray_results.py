"""USIDataset.to_xarray of results: compound fits as Datasets, bipolar sweeps, map orientation, round trip."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pycro_gpu import datasets
from pycro_gpu.fitting import fit_sho_dataset
from pycro_gpu.io.translators import translate_xarray
from pycro_gpu.io.usid import Dimension, USIDataset, find_main_datasets, write_main

xr = pytest.importorskip("xarray")


@pytest.fixture(scope="module")
def beps_fit(tmp_path_factory):
    """A BEPS file (bipolar DC sweep, nx != ny) and its SHO fit."""
    path = tmp_path_factory.mktemp("xr") / "beps.h5"
    datasets.write_usid(datasets.beps(shape=(3, 5), n_freq=24, n_dc=8, seed=1), path)
    res = fit_sho_dataset(path, backend="numpy", progress=False)
    return path, res.group


def test_compound_fit_is_a_dataset_with_units_and_a_step_dimension(beps_fit):
    path, group = beps_fit
    with h5py.File(path, "r") as f:
        fit = USIDataset(f[group]["Fit"])
        ds = fit.to_xarray()
        records = fit[()]
        pos = fit.position_table()
        repeated = [d for d in fit.spec_dims if np.unique(d.values).size < len(d)]
    assert isinstance(ds, xr.Dataset)
    assert {"Amplitude", "Frequency", "Quality Factor", "Phase"} <= set(ds.data_vars)
    assert ds["Amplitude"].attrs["units"] == "V" and ds["Frequency"].attrs["units"] == "Hz"
    # positions slowest first: y then x (x is the fastest, stored first)
    assert list(ds.dims)[:2] == ["Y", "X"] and ds.sizes["X"] == 5 and ds.sizes["Y"] == 3
    # the bipolar DC sweep repeats voltages: a step dimension, the voltage a coordinate along it
    (sweep,) = repeated
    name, step, dc = sweep.name, f"{sweep.name}_step", np.asarray(sweep.values)
    assert step in ds.dims and ds[name].dims == (step,) and ds[name].attrs["units"] == sweep.units
    np.testing.assert_array_equal(ds[name].values, dc)
    assert len(fit.spec_dims) == 1  # one record per DC step: the stored column is the step
    # every record at its position and step
    for row in (0, 7, 14):
        x, y = pos[row]
        for col in (0, dc.size - 1):
            got = ds["Amplitude"].sel(X=x, Y=y).isel({step: col}).item()
            assert got == pytest.approx(float(records[row, col]["Amplitude [V]"]), rel=1e-6)
    # .sel by voltage through an index on the coordinate: every step at that voltage
    v = float(dc[1])
    both = ds.set_xindex(name).sel({name: v})
    assert both.sizes[step] == int(np.count_nonzero(dc == v))
    ds["Amplitude"].isel({step: 0}).plot()  # a map: plots without error


def test_compound_round_trip(beps_fit, tmp_path):
    path, group = beps_fit
    with h5py.File(path, "r") as f:
        ds = USIDataset(f[group]["Fit"]).to_xarray()
    out = translate_xarray(ds, tmp_path / "back.h5")
    with h5py.File(out, "r") as f:
        (main,) = find_main_datasets(f)
        assert main.dtype.names is not None
        back = main.to_xarray()
    xr.testing.assert_allclose(back.drop_attrs(), ds.drop_attrs())
    assert back["Amplitude"].attrs["units"] == "V"


def test_plain_dataset_round_trip_and_map_orientation(tmp_path):
    nx, ny = 5, 3
    values = np.array([[10.0 * x + y for x in range(nx)] for y in range(ny)])  # (ny, nx), asymmetric
    bias = np.array([0.0, 1.0, 2.0, 1.0, 0.0, -1.0, 0.0])  # repeats
    data = np.repeat(values.reshape(-1, 1), bias.size, axis=1) + bias  # x fastest in rows
    with h5py.File(tmp_path / "p.h5", "w") as f:
        main = write_main(f, "Raw_Data", data, [Dimension("X", "m", nx), Dimension("Y", "m", ny)],
                          Dimension("Bias", "V", bias), "Current", "A")  # fmt: skip
        da = main.to_xarray()
    assert da.dims == ("Y", "X", "Bias_step")
    np.testing.assert_array_equal(da.isel(Bias_step=0).values, values)  # the true map, x across
    np.testing.assert_array_equal(da["Bias"].values, bias)
    out = translate_xarray(da, tmp_path / "q.h5")
    with h5py.File(out, "r") as f:
        (back_main,) = find_main_datasets(f)
        back = back_main.to_xarray()
        np.testing.assert_array_equal(back_main[()], data)  # same stored layout
    xr.testing.assert_allclose(back.drop_attrs(), da.drop_attrs())
