"""USID data model: real pyUSID files, write/read round trips, dimension order, bad input."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pycro_gpu.errors import DataError, USIDError
from pycro_gpu.io.usid import (
    Dimension,
    USIDataset,
    check_main,
    create_main,
    find_main_datasets,
    is_main,
    write_main,
)


@pytest.fixture
def h5(tmp_path):
    with h5py.File(tmp_path / "t.h5", "w") as f:
        yield f


# ---------------------------------------------------------------------------------------------------
# the three real pyUSID files
# ---------------------------------------------------------------------------------------------------


def test_singfreq_pfm_four_channels_share_ancillaries(test_data):
    with h5py.File(test_data / "SingFreqPFM_0003.h5", "r") as f:
        mains = find_main_datasets(f)
        assert [m.name for m in mains] == [f"/Measurement_000/Channel_00{i}/Raw_Data" for i in range(4)]
        assert [m.quantity for m in mains] == [
            "HeightRetrace",
            "AmplitudeRetrace",
            "DeflectionRetrace",
            "PhaseRetrace",
        ]
        for m in mains:
            assert m.units == "m"
            assert m.shape == (16384, 1)
            assert m.n_dim_shape == (128, 128, 1)
            assert m.n_dim_labels == ["X", "Y", "arb"]
            assert m.n_dim_units == ["m", "m", "a.u."]
            # the four channels share one set of ancillary datasets
            assert m.h5_pos_inds.name == "/Measurement_000/Position_Indices"
            assert m.h5_spec_vals.name == "/Measurement_000/Spectroscopic_Values"
        x = mains[0].pos_dims[0]
        assert (x.name, x.units, len(x)) == ("X", "m", 128)
        np.testing.assert_allclose(x.values[[0, 1, 127]], [0.0, 5e-6 / 127, 5e-6], rtol=1e-6)
        # X varies fastest along the rows: N-D [x, y] = row y * 128 + x (pyUSID's get_n_dim_form)
        raw = f["/Measurement_000/Channel_000/Raw_Data"][()]
        nd = mains[0].get_n_dim_form()
        assert nd.shape == (128, 128, 1)
        assert nd[5, 7, 0] == raw[7 * 128 + 5, 0]
        np.testing.assert_array_equal(nd[:, :, 0], raw[:, 0].reshape(128, 128).T)


def test_afm_force_curve(test_data):
    with h5py.File(test_data / "AFM_Force_Curve.h5", "r") as f:
        (m,) = find_main_datasets(f)
        assert m.name == "/Measurement_000/Channel_000/Raw_Data"
        assert (m.quantity, m.units) == ("Deflection", "m")
        assert m.n_dim_shape == (1, 2045)
        assert m.n_dim_labels == ["X", "Z"]
        assert m.n_dim_units == ["a. u.", "m"]
        z = m.spec_dims[0]
        np.testing.assert_array_equal(z.values, f["/Measurement_000/Channel_000/Spectroscopic_Values"][0])
        np.testing.assert_array_equal(m.get_n_dim_form(), f["/Measurement_000/Channel_000/Raw_Data"][()])


def test_sparse_sampling_incomplete_grid(test_data):
    with h5py.File(test_data / "sparse_sampling.h5", "r") as f:
        m = USIDataset(f["/Measurement_000/Channel_000/Raw_Data"])
        assert (m.quantity, m.units, m.shape) == ("Cantilever Deflection", "V", (8, 3))
        assert m.n_dim_labels == ["X", "Y", "Frequency"]
        assert m.n_dim_units == ["nm", "um", "kHz"]
        assert m.n_dim_shape is None and not m.is_complete
        with pytest.raises(USIDError, match=r"full grid of \{'X': 8, 'Y': 8\}"):
            m.get_n_dim_form()
        # 2-D access and the per-position coordinates still work
        np.testing.assert_array_equal(m[2:4], f["/Measurement_000/Channel_000/Raw_Data"][2:4])
        np.testing.assert_array_equal(m.position_table()[:3], [[150.0, 3.75], [200.0, 0.0], [100.0, 3.75]])
        np.testing.assert_array_equal(m.spec_dims[0].values, [300.0, 315.0, 330.0])
        # Main datasets inside the earlier results groups are found too
        names = [d.name for d in find_main_datasets(f)]
        assert "/Measurement_000/Channel_000/Raw_Data-Simple_Process_006/Results" in names
        assert len(names) == 7


# ---------------------------------------------------------------------------------------------------
# writing and reading
# ---------------------------------------------------------------------------------------------------


def test_write_nd_and_2d_forms(h5, rng):
    nd = rng.standard_normal((3, 4, 5, 2)).astype(np.float32)
    pos = [Dimension("X", "m", np.linspace(0, 1, 3)), Dimension("Y", "m", 4)]
    spec = [Dimension("Frequency", "Hz", np.arange(5) * 10.0), Dimension("Field", "", [0, 1])]
    m = write_main(h5, "Raw_Data", nd, pos, spec, "Amplitude", "V")
    assert isinstance(m, USIDataset)
    assert m.shape == (12, 10) and m.dtype == np.float32
    assert m.n_dim_shape == (3, 4, 5, 2)
    assert m.n_dim_labels == ["X", "Y", "Frequency", "Field"]
    np.testing.assert_array_equal(m.get_n_dim_form(), nd)
    # row y * 3 + x, column field * 5 + freq: first dimension fastest
    assert m[2 * 3 + 1, 1 * 5 + 3] == nd[1, 2, 3, 1]
    assert m.pos_dims == [Dimension("X", "m", np.linspace(0, 1, 3).astype(np.float32)), pos[1]]
    # the same data given 2-D gives the same dataset
    g = h5.create_group("two_d")
    m2 = write_main(g, "Raw_Data", m[()], pos, spec, "Amplitude", "V")
    np.testing.assert_array_equal(m2[()], m[()])
    np.testing.assert_array_equal(m2.h5_pos_inds[()], m.h5_pos_inds[()])


def test_shared_ancillaries_and_create_main(h5, rng):
    pos = [Dimension("X", "m", 4), Dimension("Y", "m", 2)]
    spec = Dimension("Bias", "V", [-1.0, 0.0, 1.0])
    a = write_main(h5, "Ch0", rng.random((4, 2, 3)), pos, spec, "Current", "A")
    b = create_main(
        h5,
        "Ch1",
        None,
        None,
        "Current",
        "A",
        np.complex64,
        h5_pos_inds=a.h5_pos_inds,
        h5_pos_vals=a.h5_pos_vals,
        h5_spec_inds=a.h5_spec_inds,
        h5_spec_vals=a.h5_spec_vals,
    )
    assert b.h5_pos_inds == a.h5_pos_inds
    assert b.shape == (8, 3) and b.dtype == np.complex64
    b[:4] = np.full((4, 3), 1 + 2j)
    assert b.get_n_dim_form()[3, 0, 2] == 1 + 2j and b.get_n_dim_form()[0, 1, 0] == 0
    assert [d.name for d in find_main_datasets(h5)] == ["/Ch0", "/Ch1"]


def _write_manual(group, data2d, pos_inds, pos_vals, pos_labels, spec_inds, spec_vals, spec_labels):
    """Write a Main dataset by hand, the way other tools lay out ancillaries."""
    d = group.create_dataset("Raw_Data", data=data2d)
    anc = {}
    for name, arr, labels in (
        ("Position_Indices", pos_inds, pos_labels),
        ("Position_Values", pos_vals, pos_labels),
        ("Spectroscopic_Indices", spec_inds, spec_labels),
        ("Spectroscopic_Values", spec_vals, spec_labels),
    ):
        anc[name] = group.create_dataset(name, data=arr)
        anc[name].attrs["labels"] = np.array([s.encode() for s in labels])
        anc[name].attrs["units"] = np.array([b"u"] * len(labels))
        d.attrs[name] = anc[name].ref
    d.attrs["quantity"] = "Q"
    d.attrs["units"] = "V"
    return d


def test_dimension_order_inferred_slowest_first_file(h5, rng):
    """A file listing its position dims slowest-first (Y, X) reads back in label order."""
    ny, nx, nf = 3, 4, 2
    img = rng.standard_normal((ny, nx, nf))  # row-major: y slow, x fast
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    pos_inds = np.stack([yy.ravel(), xx.ravel()], axis=1).astype(np.uint32)  # labels [Y, X]
    spec = np.arange(nf, dtype=np.uint32)[None]
    d = _write_manual(h5, img.reshape(ny * nx, nf), pos_inds, pos_inds * 2.0, ["Y", "X"], spec, spec, ["F"])
    m = USIDataset(d)
    assert m.n_dim_labels == ["Y", "X", "F"]
    assert m.n_dim_shape == (ny, nx, nf)
    np.testing.assert_array_equal(m.get_n_dim_form(), img)
    np.testing.assert_array_equal(m.pos_dims[1].values, np.arange(nx) * 2.0)


def test_rows_stored_out_of_order_are_reordered(h5, rng):
    nx, ny = 3, 2
    nd = rng.standard_normal((nx, ny, 1))
    m = write_main(
        h5, "ref", nd, [Dimension("X", "m", nx), Dimension("Y", "m", ny)], Dimension("a", "", 1), "Q", "V"
    )
    perm = np.array([4, 0, 5, 2, 1, 3])
    g = h5.create_group("shuffled")
    d = _write_manual(
        g,
        m[()][perm],
        m.h5_pos_inds[()][perm],
        m.h5_pos_vals[()][perm],
        ["X", "Y"],
        m.h5_spec_inds[()],
        m.h5_spec_vals[()],
        ["a"],
    )
    np.testing.assert_array_equal(USIDataset(d).get_n_dim_form(), nd)


def test_write_rejects_bad_shapes_and_names(h5):
    pos = [Dimension("X", "m", 3)]
    spec = [Dimension("F", "Hz", 2)]
    with pytest.raises(DataError, match=r"shape \(2, 3\) does not fit"):
        write_main(h5, "Raw_Data", np.zeros((2, 3)), pos, spec, "Q", "V")
    assert "Raw_Data" not in h5 and "Position_Indices" not in h5
    write_main(h5, "Raw_Data", np.zeros((3, 2)), pos, spec, "Q", "V")
    with pytest.raises(USIDError, match="already exists"):
        write_main(h5, "Raw_Data", np.zeros((3, 2)), pos, spec, "Q", "V")
    with pytest.raises(USIDError, match="Position_Indices already exists"):
        write_main(h5, "Other", np.zeros((3, 2)), pos, spec, "Q", "V")
    assert "Other" not in h5  # nothing half-written
    with pytest.raises(ValueError, match="repeated dimension names"):
        write_main(h5, "X2", np.zeros((9, 2)), [Dimension("X", "m", 3)] * 2, spec, "Q", "V")
    with pytest.raises(ValueError, match="number of steps must be >= 1"):
        Dimension("X", "m", 0)


# ---------------------------------------------------------------------------------------------------
# bad input: each a USIDError naming the problem
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def good(h5):
    return write_main(
        h5, "Raw_Data", np.zeros((6, 2)), [Dimension("X", "m", 6)], [Dimension("F", "Hz", 2)], "Q", "V"
    )


def test_check_main_accepts_good(good):
    check_main(good)
    assert is_main(good)


def test_non_usid_dataset(h5):
    d = h5.create_dataset("plain", data=np.zeros((4, 4)))
    with pytest.raises(
        USIDError, match=r"/plain is not a USID Main dataset: missing attribute\(s\) Position_Indices"
    ):
        USIDataset(d)
    with pytest.raises(USIDError, match="shape \\(4,\\), a Main dataset is 2-D"):
        check_main(h5.create_dataset("one_d", data=np.zeros(4)))
    with pytest.raises(USIDError, match="not an HDF5 dataset"):
        check_main(h5)
    assert not is_main(d)


def test_missing_reference(h5, good):
    del good.attrs["Spectroscopic_Indices"]
    with pytest.raises(USIDError, match=r"missing attribute\(s\) Spectroscopic_Indices"):
        USIDataset(h5["Raw_Data"])


def test_dangling_reference(tmp_path):
    path = tmp_path / "dangling.h5"
    with h5py.File(path, "w") as f:
        write_main(
            f, "Raw_Data", np.zeros((6, 2)), [Dimension("X", "m", 6)], [Dimension("F", "Hz", 2)], "Q", "V"
        )
    with h5py.File(path, "r+") as f:
        del f["Spectroscopic_Values"]
    with (
        h5py.File(path, "r") as f,
        pytest.raises(USIDError, match="'Spectroscopic_Values' references an object"),
    ):
        USIDataset(f["Raw_Data"])


def test_reference_not_a_reference(h5, good):
    good.attrs["Position_Values"] = "Position_Values"
    with pytest.raises(USIDError, match="'Position_Values' must be an HDF5 object reference"):
        check_main(good)


def test_mismatched_ancillary_shapes(h5, good):
    bad = h5.create_dataset("short", data=np.zeros((5, 1), np.float32))
    bad.attrs["labels"] = np.array([b"X"])
    bad.attrs["units"] = np.array([b"m"])
    good.attrs["Position_Values"] = bad.ref
    with pytest.raises(
        USIDError, match=r"Position_Indices /Position_Indices \(6, 1\) and .* \(5, 1\) have mismatched"
    ):
        check_main(good)


def test_ancillary_shape_not_matching_main(h5, good):
    d = h5.create_dataset("wrong", data=np.zeros((7, 2)))
    for k in ("Position_Indices", "Position_Values", "Spectroscopic_Indices", "Spectroscopic_Values"):
        d.attrs[k] = good.attrs[k]
    d.attrs["quantity"] = "Q"
    d.attrs["units"] = "V"
    with pytest.raises(USIDError, match=r"does not match the 7 rows of the Main dataset \(7, 2\)"):
        check_main(d)


def test_labels_wrong_length(h5, good):
    h5["Spectroscopic_Indices"].attrs["labels"] = np.array([b"F", b"G"])
    with pytest.raises(USIDError, match=r"has 2 labels for 1 dimension\(s\)"):
        check_main(good)


def test_quantity_not_string(good):
    good.attrs["quantity"] = 3
    with pytest.raises(USIDError, match="attribute 'quantity' must be a string"):
        check_main(good)


# ---------------------------------------------------------------------------------------------------
# results groups, xarray
# ---------------------------------------------------------------------------------------------------


def test_results_group_bookkeeping_and_reuse(h5, good):
    import pycro_gpu
    from pycro_gpu.io.usid import create_results_group, find_results, results_parameters, results_version

    params = {"n_components": 3, "method": "svd", "window": [1.5, 2.5], "flag": True}
    grp, existing = create_results_group(good, "SVD", params, status="running")
    assert not existing and grp.name == "/Raw_Data-SVD_000"
    assert grp.attrs["tool"] == "SVD" and grp.attrs["status"] == "running"
    assert h5[grp.attrs["source_000"]] == good and grp.attrs["source_path"] == "/Raw_Data"
    assert grp.attrs["pycro_gpu_version"] == pycro_gpu.__version__ == results_version(grp)
    grp.attrs["pycro_gpu_version"] = np.bytes_(b"0.0.9")  # as a fixed-length byte string
    assert results_version(grp) == "0.0.9"
    grp.attrs["pycro_gpu_version"] = pycro_gpu.__version__
    assert len(grp.attrs["timestamp"]) == len("2026_01_01-00_00_00")
    # parameters as attributes and as a canonical record
    assert grp.attrs["n_components"] == 3 and grp.attrs["method"] == "svd"
    np.testing.assert_array_equal(grp.attrs["window"], [1.5, 2.5])
    assert results_parameters(grp) == params
    # an unfinished group is not reused
    assert find_results(good, "SVD", params) == []
    grp.attrs["status"] = "complete"
    again, existing = create_results_group(good, "SVD", dict(reversed(params.items())))
    assert existing and again == grp
    # other parameters or override=True: a new group with the next index
    other, existing = create_results_group(good, "SVD", {**params, "n_components": 4})
    assert not existing and other.name == "/Raw_Data-SVD_001"
    forced, existing = create_results_group(good, "SVD", params, override=True)
    assert not existing and forced.name == "/Raw_Data-SVD_002"
    assert [g.name for g in find_results(good, "SVD", None)] == ["/Raw_Data-SVD_000", "/Raw_Data-SVD_001",
                                                                "/Raw_Data-SVD_002"]  # fmt: skip
    with pytest.raises(ValueError, match="parameter name 'tool' is reserved"):
        create_results_group(good, "SVD", {"tool": 1})
    with pytest.raises(TypeError, match=r"parameter 'f'.*cannot be stored"):
        create_results_group(good, "SVD", {"f": object()})
    with pytest.raises(ValueError, match="tool must be a non-empty name without '-'"):
        create_results_group(good, "A-B", {})
    assert sorted(k for k in h5 if "SVD" in k) == ["Raw_Data-SVD_000", "Raw_Data-SVD_001", "Raw_Data-SVD_002"]


def test_pyusid_results_groups_found(test_data):
    from pycro_gpu.io.usid import find_results, results_parameters, results_version

    with h5py.File(test_data / "sparse_sampling.h5", "r") as f:
        src = f["/Measurement_000/Channel_000/Raw_Data"]
        groups = find_results(src, "Simple_Process")
        assert len(groups) == 12
        assert groups[-1].name.endswith("Raw_Data-Simple_Process_011")
        assert results_parameters(groups[0]) == {}
        assert results_version(groups[0]) == ""  # written by pyUSID, not by a pycro_gpu


def test_results_in_another_file(tmp_path, rng):
    from pycro_gpu.io.usid import create_results_group

    with h5py.File(tmp_path / "raw.h5", "w") as f:
        write_main(
            f, "Raw_Data", rng.random((4, 3)), [Dimension("X", "m", 4)], [Dimension("F", "Hz", 3)], "Q", "V"
        )
    with h5py.File(tmp_path / "raw.h5", "r") as raw, h5py.File(tmp_path / "res.h5", "w") as res:
        grp, _ = create_results_group(raw["Raw_Data"], "Fit", {"a": 1}, h5_parent=res)
        assert grp.name == "/Raw_Data-Fit_000"
        assert "source_000" not in grp.attrs
        assert (
            grp.attrs["source_file"] == str(tmp_path / "raw.h5") and grp.attrs["source_path"] == "/Raw_Data"
        )


def test_to_xarray(h5, rng):
    xr = pytest.importorskip("xarray")
    nd = rng.random((2, 3, 4))
    m = write_main(h5, "M", nd, [Dimension("X", "m", [0.0, 2.0]), Dimension("Y", "m", 3)],
                   Dimension("Bias", "V", [-1, 0, 1, 2]), "Current", "A")  # fmt: skip
    da = m.to_xarray()
    assert isinstance(da, xr.DataArray)
    # slowest first: X is listed first, so it varies fastest (the stored C order is Y, X)
    assert da.dims == ("Y", "X", "Bias") and da.name == "Current" and da.attrs["units"] == "A"
    np.testing.assert_array_equal(da.values, nd.transpose(1, 0, 2))
    np.testing.assert_array_equal(da.coords["Bias"].values, [-1, 0, 1, 2])
    assert da.coords["X"].attrs["units"] == "m"
    assert float(da.sel(X=2.0, Y=1.0, Bias=0.0)) == nd[1, 1, 1]


def test_to_xarray_missing_dependency(h5, monkeypatch):
    import sys

    from pycro_gpu.errors import MissingDependencyError

    m = write_main(h5, "M", np.zeros((2, 1)), [Dimension("X", "m", 2)], [Dimension("a", "", 1)], "Q", "V")
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(
        MissingDependencyError, match=r"USIDataset.to_xarray needs the optional package 'xarray'"
    ):
        m.to_xarray()


def test_io_public_api():
    import pycro_gpu.io as io
    import pycro_gpu.process as process

    for mod in (io, process):
        assert mod.__all__ == sorted(mod.__all__)
        for name in mod.__all__:
            assert hasattr(mod, name), name


def test_dimension_order_properties(tmp_path):
    import h5py

    from pycro_gpu.io.usid import Dimension, USIDataset, write_main

    with h5py.File(tmp_path / "o.h5", "w") as f:
        write_main(
            f,
            "Raw_Data",
            np.zeros((2, 3, 4, 5)),
            [Dimension("X", "m", 2), Dimension("Y", "m", 3)],
            [Dimension("Frequency", "Hz", 4), Dimension("DC_Offset", "V", 5)],
            "Response",
            "V",
        )
        main = USIDataset(f["Raw_Data"])
        # dimensions listed fastest first on write: Frequency varies fastest
        assert [main.spec_dims[i].name for i in main.spec_order] == ["Frequency", "DC_Offset"]
        assert [main.pos_dims[i].name for i in main.pos_order] == ["X", "Y"]
        assert main.spec_is_regular


@pytest.mark.parametrize(
    "col",
    [
        np.tile(np.arange(64, dtype=np.uint32), 32),  # fast index of a 64 x 32 map
        np.repeat(np.arange(32, dtype=np.uint32), 64),  # slow index
        np.array([3, 1, 3, 7, -2, 7]),
        np.array([0, 10**9, 5]),  # sparse range: falls back to np.unique
        np.array([2.5, 1.0, 2.5]),
    ],
)
def test_unique_rows_of_matches_numpy_unique(col):
    from pycro_gpu.io.usid.dimensions import _unique_rows_of

    got = _unique_rows_of(col)
    want = np.unique(col, return_index=True, return_inverse=True)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, np.asarray(w).reshape(-1))


def test_writing_results_completes_or_removes_the_group(good):
    from pycro_gpu.io.usid import create_results_group, writing_results

    grp, _ = create_results_group(good, "SVD", {"k": 1}, status="running")
    with writing_results(grp):
        grp.create_dataset("S", data=[1.0])
    assert grp.attrs["status"] == "complete" and "S" in grp

    grp, _ = create_results_group(good, "SVD", {"k": 2}, status="running")
    name = grp.name
    with pytest.raises(KeyboardInterrupt), writing_results(grp):
        grp.create_dataset("S", data=[1.0])
        raise KeyboardInterrupt
    assert name not in good.file  # an interrupted computation leaves no half-written group
