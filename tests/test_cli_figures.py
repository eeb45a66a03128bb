"""Every ``--plot`` output of the CLI: non-blank PNGs, labelled axes, colorbars, maps in the right place.

Each command runs through :func:`pycro_gpu.cli.main` with ``--plot DIR``; every PNG written is checked
for ink, and the Figure objects of the matching ``*_figures`` function for axis labels on every axes
that draws data and a labelled colorbar on every image.

Orientation truth: on a grid of ``n_x != n_y`` positions the data of the position ``(x_i, y_j)`` is made
from ``10 i + j``, computed from the ``Position_Values`` the file holds (not from any reshape).
:func:`_drawn_at` reads what an image shows at the physical coordinates of a position from its
array, extent and origin, so a map transposed, flipped or given the wrong extent cannot pass.
"""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from matplotlib.image import imread

from pycro_gpu import datasets, viz
from pycro_gpu.cli import main
from pycro_gpu.io.usid import Dimension, USIDataset, write_main

#: the pattern grid: X and Y with different starts and steps (m), n_x != n_y
X_M = 2e-9 + 5e-9 * np.arange(7)
Y_M = 1e-9 + 3e-9 * np.arange(4)
ENERGY = np.linspace(280.0, 320.0, 40)  # eV


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """Tiny matrices gain nothing from BLAS threads, and threaded OpenBLAS collapses on a busy machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


# ------------------------------------------------------------------------------------------ helpers


def _assert_pngs(folder, names) -> None:
    """``folder`` holds exactly ``names`` (.png), each a drawn figure (grey spread and ink)."""
    assert sorted(p.stem for p in folder.glob("*.png")) == sorted(names)
    for name in names:
        gray = imread(folder / f"{name}.png")[..., :3].mean(axis=-1)
        assert gray.std() > 0.05 and (gray < 0.9).mean() > 0.01, name


def _colorbar_axes(fig) -> set:
    return {
        id(m.colorbar.ax)
        for ax in fig.axes
        for m in [*ax.images, *ax.collections]
        if getattr(m, "colorbar", None) is not None
    }


def _data_axes(fig) -> list:
    """The visible axes that draw data (images, lines, markers), colorbars excluded."""
    cbars = _colorbar_axes(fig)
    return [
        ax
        for ax in fig.axes
        if ax.get_visible() and id(ax) not in cbars and (ax.images or ax.lines or ax.collections)
    ]


def _assert_labelled(figures: dict) -> None:
    """Every data axes has x and y labels; every image a colorbar with a label."""
    for name, fig in figures.items():
        axes = _data_axes(fig)
        assert axes, name
        for ax in axes:
            assert ax.get_xlabel() and ax.get_ylabel(), (name, ax.get_title())
            for im in ax.images:
                assert im.colorbar is not None and im.colorbar.ax.get_ylabel(), (name, ax.get_title())


def _axes(fig, title: str):
    (ax,) = [a for a in fig.axes if a.get_title() == title]
    return ax


def _drawn_at(im, x: float, y: float) -> float:
    """The value an image shows at the data coordinates ``(x, y)`` (its array, extent and origin)."""
    arr = np.asarray(im.get_array())
    left, right, bottom, top = im.get_extent()
    col = int(np.floor((x - left) / (right - left) * arr.shape[1]))
    row = int(np.floor((y - bottom) / (top - bottom) * arr.shape[0]))
    return arr[row if im.origin == "lower" else arr.shape[0] - 1 - row, col]


def _map_values(ax, x_nm=X_M * 1e9, y_nm=Y_M * 1e9) -> np.ndarray:
    """``(n_x, n_y)``: what the map of ``ax`` shows at each position ``(x_i, y_j)`` (axes in nm)."""
    (im,) = ax.images
    assert ax.get_xlabel() == "X (nm)" and ax.get_ylabel() == "Y (nm)"
    assert im.get_array().shape == (y_nm.size, x_nm.size)  # rows Y, columns X
    return np.array([[_drawn_at(im, x, y) for y in y_nm] for x in x_nm])


def _pattern(n_x=X_M.size, n_y=Y_M.size) -> np.ndarray:
    """``(n_x, n_y)``: 10 i + j at the position (x_i, y_j)."""
    i, j = np.meshgrid(np.arange(n_x), np.arange(n_y), indexing="ij")
    return 10.0 * i + j


def _write_grid_main(group, name, values_of, n_spec, spec, quantity, units, dtype=np.float32):
    """A Main dataset over the pattern grid; row r holds ``values_of(i, j)`` for its position (x_i, y_j).

    The position of each row is read back from the file's ``Position_Values``, so the truth does not
    depend on the order in which the rows are stored.
    """
    main = write_main(
        group, name, np.zeros((X_M.size * Y_M.size, n_spec), dtype=dtype),
        [Dimension("X", "m", X_M), Dimension("Y", "m", Y_M)], spec, quantity, units,
    )  # fmt: skip
    table = main.position_table()
    i = np.abs(table[:, [0]] - X_M.astype(np.float32)).argmin(axis=1)
    j = np.abs(table[:, [1]] - Y_M.astype(np.float32)).argmin(axis=1)
    main[...] = np.stack([values_of(a, b) for a, b in zip(i, j, strict=True)])
    return main


def _affine_residual(drawn: np.ndarray, truth: np.ndarray) -> float:
    """Relative residual of the best fit ``drawn = a truth + b`` (0 for a perfect score map)."""
    a, b = np.polyfit(truth.ravel(), drawn.ravel(), 1)
    return float(np.abs(drawn - (a * truth + b)).max() / np.abs(drawn).max())


# ---------------------------------------------------------------- svd / decompose / cluster: maps


@pytest.fixture(scope="module")
def rank_one(tmp_path_factory):
    """A spectrum image (eV) of rank one: the abundance 1 + 10 i + j times a Gaussian peak."""
    path = tmp_path_factory.mktemp("rank1") / "si.h5"
    peak = np.exp(-(((ENERGY - 300.0) / 6.0) ** 2))
    with h5py.File(path, "w") as f:
        _write_grid_main(
            f.create_group("Measurement_000/Channel_000"), "Raw_Data",
            lambda i, j: (1.0 + 10 * i + j) * peak, ENERGY.size, Dimension("Energy", "eV", ENERGY),
            "Counts", "a.u.",
        )  # fmt: skip
    return path


def test_svd_plot_abundance_maps_oriented_beside_components_in_ev(rank_one, tmp_path):
    assert main(["svd", str(rank_one), "-k", "2", "-q", "--plot", str(tmp_path / "svd")]) == 0
    _assert_pngs(tmp_path / "svd", ["svd_scree", "svd_components", "svd_abundance"])
    with h5py.File(rank_one, "r") as f:
        figs = viz.svd_figures(f["Measurement_000/Channel_000/Raw_Data-SVD_000"])
    _assert_labelled(figs)
    truth = 1.0 + _pattern()
    for fig, title in ((figs["svd_abundance"], "U 0"), (figs["svd_components"], "Abundance U 0")):
        ax = _axes(fig, title)
        assert _affine_residual(_map_values(ax), truth) < 1e-5
        assert ax.images[0].colorbar.ax.get_ylabel() == "Abundance (a.u.)"
        assert ax.images[0].origin == "lower"
        # pixel centres at the positions: the extent is half a step beyond the first and last
        np.testing.assert_allclose(ax.images[0].get_extent(), [-0.5, 34.5, -0.5, 11.5], rtol=1e-5)
    comp = _axes(figs["svd_components"], "Component V 0")
    assert comp.get_xlabel() == "Energy (eV)"
    np.testing.assert_allclose(comp.lines[0].get_xdata(), ENERGY, rtol=1e-6)
    peak = np.exp(-(((ENERGY - 300.0) / 6.0) ** 2))
    np.testing.assert_allclose(np.abs(comp.lines[0].get_ydata()), peak / np.linalg.norm(peak), atol=1e-5)


def test_decompose_plot_projection_maps_beside_components(rank_one, tmp_path):
    rc = main(["decompose", str(rank_one), "-k", "1", "-q", "--plot", str(tmp_path / "d")])
    assert rc == 0
    _assert_pngs(tmp_path / "d", ["decomposition_components"])
    with h5py.File(rank_one, "r") as f:
        figs = viz.decomposition_figures(f["Measurement_000/Channel_000/Raw_Data-Decomposition_000"])
    _assert_labelled(figs)
    fig = figs["decomposition_components"]
    assert _affine_residual(_map_values(_axes(fig, "Projection 0")), _pattern()) < 1e-5
    comp = _axes(fig, "Component 0")
    assert comp.get_xlabel() == "Energy (eV)" and "spectral index" not in comp.get_xlabel()
    np.testing.assert_allclose(comp.lines[0].get_xdata(), ENERGY, rtol=1e-6)


def test_cluster_plot_label_map_in_place(tmp_path):
    # four labels on an asymmetric layout; one peak per label
    truth = np.zeros((X_M.size, Y_M.size), dtype=int)  # (n_x, n_y)
    truth[5:, :] = 1
    truth[:, 2:] += 2
    truth[0, 0] = 3
    peaks = np.exp(-(((ENERGY[None] - np.array([285.0, 295.0, 305.0, 315.0])[:, None]) / 2.0) ** 2))
    path = tmp_path / "labels.h5"
    with h5py.File(path, "w") as f:
        _write_grid_main(
            f.create_group("Measurement_000/Channel_000"), "Raw_Data", lambda i, j: peaks[truth[i, j]],
            ENERGY.size, Dimension("Energy", "eV", ENERGY), "Counts", "a.u.",
        )  # fmt: skip
    assert main(["cluster", str(path), "-n", "4", "-q", "--plot", str(tmp_path / "c")]) == 0
    _assert_pngs(tmp_path / "c", ["cluster_labels", "cluster_mean_response"])
    with h5py.File(path, "r") as f:
        figs = viz.cluster_figures(f["Measurement_000/Channel_000/Raw_Data-Cluster_000"])
    _assert_labelled(figs)
    drawn = _map_values(_axes(figs["cluster_labels"], "Cluster labels")).astype(int)
    pairs = set(zip(drawn.ravel().tolist(), truth.ravel().tolist(), strict=True))
    assert len(pairs) == 4 == len(np.unique(drawn))  # the same partition, labels renamed
    ax = figs["cluster_mean_response"].axes[0]
    assert ax.get_xlabel() == "Energy (eV)" and ax.get_ylabel() == "Counts (a.u.)"
    np.testing.assert_allclose(ax.lines[0].get_xdata(), ENERGY, rtol=1e-6)


# ------------------------------------------------------------------ band excitation: frequency x DC


@pytest.fixture(scope="module")
def beps_file(tmp_path_factory):
    """A small BEPS file (6 x 4 positions, 16 frequencies x 16 DC steps) after svd, cluster, fits."""
    out = tmp_path_factory.mktemp("beps")
    data = datasets.beps(shape=(4, 6), n_freq=16, n_dc=16, seed=3)
    path = datasets.write_usid(data, out / "beps.h5", exclude=("clean",))
    plots = {}
    for cmd in (["svd", "-k", "3"], ["cluster", "-n", "2"], ["decompose", "-k", "2"], ["fit", "sho"],
                ["fit", "loop"]):  # fmt: skip
        name = "_".join(cmd[:2]) if cmd[0] == "fit" else cmd[0]
        plots[name] = out / name
        args = [*cmd[:2], str(path), *cmd[2:]] if cmd[0] == "fit" else [cmd[0], str(path), *cmd[1:]]
        assert main([*args, "-q", "--plot", str(plots[name])]) == 0, cmd
    return path, data, plots


def _group(f, suffix: str):
    found = []
    f.visititems(lambda name, obj: found.append(name) if name.endswith(suffix) else None)
    return f[found[0]]


def test_beps_components_and_mean_responses_are_frequency_by_dc_images(beps_file):
    path, data, plots = beps_file
    _assert_pngs(plots["svd"], ["svd_scree", "svd_components", "svd_abundance"])
    _assert_pngs(plots["cluster"], ["cluster_labels", "cluster_mean_response"])
    _assert_pngs(plots["decompose"], ["decomposition_components"])
    freq_khz, dc = data.truth["frequency"] / 1e3, data.truth["dc_offset"]
    with h5py.File(path, "r") as f:
        svd = _group(f, "Raw_Data-SVD_000")
        V = svd["V"][()]
        figs = viz.svd_figures(svd)
        clusters = _group(f, "Raw_Data-Cluster_000")
        mean = clusters["Mean_Response"][()]
        figs |= viz.cluster_figures(clusters)
        figs |= viz.decomposition_figures(_group(f, "Raw_Data-Decomposition_000"))
    _assert_labelled(figs)
    images = [
        (_axes(figs["svd_components"], "Component V 1"), np.abs(V[1])),
        (_axes(figs["cluster_mean_response"], "Cluster 1"), np.abs(mean[1]) * 1e3),  # in mV
        (_axes(figs["decomposition_components"], "Component 1"), None),
    ]
    for ax, flat in images:
        (im,) = ax.images
        assert im.get_array().shape == (dc.size, freq_khz.size)  # rows: DC steps, columns: frequency
        if flat is not None:  # stored frequency fastest: row d is DC step d
            np.testing.assert_allclose(im.get_array(), flat.reshape(dc.size, freq_khz.size), rtol=1e-5)
        assert ax.get_xlabel() == "Frequency (kHz)" and ax.get_ylabel() == "DC_Offset (V)"
        half = (freq_khz[1] - freq_khz[0]) / 2
        np.testing.assert_allclose(im.get_extent()[:2], [freq_khz[0] - half, freq_khz[-1] + half])
        # the bipolar DC sweep: one row per step, the ticks labelled with the voltage of their step
        ticks = ax.get_yticks()
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels == [f"{dc[int(t)]:.3g}" for t in ticks]
    assert figs["cluster_mean_response"].axes[0].images[0].colorbar.ax.get_ylabel() == "|Response| (mV)"
    # the abundance maps of BE data are oriented like any map: rows Y (4), columns X (6)
    assert _axes(figs["svd_abundance"], "U 0").images[0].get_array().shape == (4, 6)


def test_beps_fit_plots_parameter_r2_and_converged_maps(beps_file):
    path, data, plots = beps_file
    _assert_pngs(plots["fit_sho"], ["fit_parameters", "fit_quality", "fit_steps"])
    _assert_pngs(plots["fit_loop"], ["fit_parameters", "fit_quality", "fit_switching"])
    with h5py.File(path, "r") as f:
        sho = viz.fit_figures(_group(f, "Raw_Data-SHO_Fit_000"))
        loop = viz.fit_figures(_group(f, "Loop_Fit_000"))
    _assert_labelled(sho)
    _assert_labelled(loop)
    # the resonance map matches the ground truth in place (a flipped map would not)
    ax = _axes(sho["fit_parameters"], "Frequency")
    assert ax.images[0].colorbar.ax.get_ylabel() == "Frequency (kHz)"
    drawn = ax.images[0].get_array()
    truth = data.truth["resonance_frequency"] / 1e3  # (ny, nx)
    assert np.abs(drawn - truth).max() < 0.25 * np.ptp(truth)
    assert np.abs(drawn - truth[::-1]).max() > np.abs(drawn - truth).max()
    assert _axes(sho["fit_parameters"], "Amplitude").images[0].colorbar.ax.get_ylabel() == "Amplitude (mV)"
    quality = {ax.get_title() for ax in sho["fit_quality"].axes}
    assert "R² (mean over 16 DC_Offset steps)" in quality
    assert any(" of 384 fits converged (" in t for t in quality)
    steps = _axes(sho["fit_steps"], "Amplitude")
    assert steps.get_xlabel() == "DC_Offset (V)"
    np.testing.assert_allclose(steps.lines[0].get_xdata(), data.truth["dc_offset"], rtol=1e-6)
    # loop fits: one record per position, mapped over the positions of the loops they fit
    a2 = _axes(loop["fit_parameters"], "a2")
    assert a2.get_xlabel() == "X (nm)" and a2.images[0].colorbar.ax.get_ylabel() == "a2 (V)"
    a0 = _axes(loop["fit_parameters"], "a0")  # R- of each position: fitted to within noise
    assert a0.images[0].colorbar.ax.get_ylabel() == "a0 (mV)"
    drawn, truth = a0.images[0].get_array(), data.truth["loop_parameters"][..., 0] * 1e3
    assert np.corrcoef(drawn.ravel(), truth.ravel())[0, 1] > 0.99
    assert np.corrcoef(drawn[::-1].ravel(), truth.ravel())[0, 1] < 0.9  # a flipped map would not match
    assert _axes(loop["fit_switching"], "Work of Switching").images[0].colorbar.ax.get_ylabel()


# --------------------------------------------------------------- fits: the maps against the pattern


def _fit_group(f, n_dc: int = 6):
    """An SHO fit group over the pattern grid (fields 10 i + j in several units) with Status codes."""
    dc = np.array([0.0, 5.0, 10.0, 5.0, 0.0, -5.0])[:n_dc]
    group = f.create_group("Measurement_000/Channel_000/Raw_Data-SHO_Fit_000")
    fields = [("Amplitude [V]", "<f4"), ("Frequency [Hz]", "<f4"), ("Quality Factor", "<f4"),
              ("Phase [rad]", "<f4"), ("R2 Criterion", "<f4")]  # fmt: skip

    def record(i, j):
        rec = np.zeros(n_dc, dtype=fields)
        p = 10.0 * i + j
        rec["Amplitude [V]"], rec["Frequency [Hz]"] = p * 1e-3, 3e5 + p * 1e3
        rec["Quality Factor"], rec["Phase [rad]"], rec["R2 Criterion"] = 100 + p, -p / 100, 1 - p / 1000
        return rec

    fit = _write_grid_main(group, "Fit", record, n_dc, Dimension("DC_Offset", "V", dc), "SHO", "compound",
                           dtype=fields)  # fmt: skip
    # not converged: every step of the positions with j == 0 and i < 3, one step where i == 6
    table = fit.position_table()
    i = np.abs(table[:, [0]] - X_M.astype(np.float32)).argmin(axis=1)
    j = np.abs(table[:, [1]] - Y_M.astype(np.float32)).argmin(axis=1)
    status = np.zeros((i.size, n_dc), dtype=np.int8)
    status[(j == 0) & (i < 3)] = 1
    status[i == 6, 0] = 2
    group["Status"] = status
    group.attrs["status_codes"] = json.dumps({"0": "converged", "1": "not converged", "2": "skipped"})
    return group, dc


def test_fit_figures_map_each_parameter_with_units_r2_and_converged_share(tmp_path):
    with h5py.File(tmp_path / "fit.h5", "w") as f:
        group, dc = _fit_group(f)
        figs = viz.fit_figures(group)
    _assert_labelled(figs)
    assert set(figs) == {"fit_parameters", "fit_quality", "fit_steps"}
    p = _pattern()
    expected = {  # title: (colorbar label, drawn values)
        "Amplitude": ("Amplitude (mV)", p),
        "Frequency": ("Frequency (kHz)", 300 + p),
        "Quality Factor": ("Quality Factor", 100 + p),
        "Phase": ("Phase (rad)", -p / 100),
        "R2 Criterion": ("R²", 1 - p / 1000),
    }
    for title, (cbar, truth) in expected.items():
        ax = _axes(figs["fit_parameters"], title)
        assert ax.images[0].colorbar.ax.get_ylabel() == cbar
        np.testing.assert_allclose(_map_values(ax), truth, rtol=1e-5, atol=1e-6)
    r2 = _axes(figs["fit_quality"], "R² (mean over 6 DC_Offset steps)")
    np.testing.assert_allclose(_map_values(r2), 1 - p / 1000, rtol=1e-6)
    n = p.size * dc.size
    bad = 3 * dc.size + Y_M.size
    converged = _axes(figs["fit_quality"], f"{1 - bad / n:.1%} of {n} fits converged ({n - bad})")
    truth = np.ones_like(p)
    truth[:3, 0] = 0.0
    truth[6, :] = 1 - 1 / dc.size
    np.testing.assert_allclose(_map_values(converged), truth)
    assert converged.images[0].get_clim() == (0.0, 1.0)
    steps = _axes(figs["fit_steps"], "Frequency")
    np.testing.assert_allclose(steps.lines[0].get_xdata(), dc)
    np.testing.assert_allclose(steps.lines[0].get_ydata(), 300 + np.median(p), rtol=1e-6)


def test_loop_fit_figures_map_one_record_per_position_over_its_source(tmp_path):
    from pycro_gpu.fitting.dataset import LOOP_FIELDS, SWITCHING_FIELDS

    with h5py.File(tmp_path / "loop.h5", "w") as f:
        sho = f.create_group("Raw_Data-SHO_Fit_000")
        dc = Dimension("DC_Offset", "V", np.array([0.0, 5.0, 0.0, -5.0]))
        source = _write_grid_main(sho, "Piezoresponse", lambda i, j: np.full(4, 10.0 * i + j), 4, dc,
                                  "Piezoresponse", "V")  # fmt: skip
        group = sho.create_group("Piezoresponse-Loop_Fit_000")
        group.attrs["source_path"] = source.name
        table = source.position_table()
        p = 10 * np.abs(table[:, [0]] - X_M.astype(np.float32)).argmin(axis=1)
        p = p + np.abs(table[:, [1]] - Y_M.astype(np.float32)).argmin(axis=1)
        fit = np.zeros(p.size, dtype=[(name, "<f4") for name in LOOP_FIELDS])
        for k, name in enumerate(LOOP_FIELDS):
            fit[name] = p + k
        group["Fit"] = fit
        switching = np.zeros(p.size, dtype=[(name, "<f4") for name in SWITCHING_FIELDS])
        switching["Work of Switching"] = -p
        group["Switching"] = switching
        group["Status"] = np.zeros(p.size, dtype=np.int8)
        figs = viz.fit_figures(group)
    _assert_labelled(figs)
    assert set(figs) == {"fit_parameters", "fit_quality", "fit_switching"}
    units = {"a0": "V", "a2": "V", "a4": "V/V", "b3": "V"}
    for k, name in enumerate(LOOP_FIELDS[:-1]):
        ax = _axes(figs["fit_parameters"], name)
        np.testing.assert_allclose(_map_values(ax), _pattern() + k)
        if name in units:
            assert ax.images[0].colorbar.ax.get_ylabel() == f"{name} ({units[name]})"
    work = _axes(figs["fit_switching"], "Work of Switching")
    assert work.images[0].colorbar.ax.get_ylabel() == "Work of Switching (V²)"
    np.testing.assert_allclose(_map_values(work), -_pattern())
    assert any(ax.get_title() == "100.0% of 28 fits converged (28)" for ax in figs["fit_quality"].axes)


# ---------------------------------------------------------------------------- image and filter


def test_image_plot_source_and_processed_in_place(tmp_path):
    i, j = np.meshgrid(np.arange(X_M.size), np.arange(Y_M.size), indexing="ij")
    bowl = 10.0 * i + j + 0.5 * (i - 3.0) ** 2  # (n_x, n_y); the plane goes, the bowl stays
    design = np.stack([np.ones(i.size), i.ravel(), j.ravel()], axis=1)
    coef, *_ = np.linalg.lstsq(design, bowl.ravel(), rcond=None)
    flat = (bowl.ravel() - design @ coef).reshape(bowl.shape)
    path = tmp_path / "img.h5"
    with h5py.File(path, "w") as f:
        _write_grid_main(f.create_group("Measurement_000/Channel_000"), "Raw_Data",
                         lambda a, b: bowl[a, b][None], 1, Dimension("Height", "m", 1), "Height", "m",
                         dtype=np.float64)  # fmt: skip
    rc = main(["image", str(path), "--flatten", "plane", "-q", "--plot", str(tmp_path / "i")])
    assert rc == 0
    _assert_pngs(tmp_path / "i", ["image"])
    with h5py.File(path, "r") as f:
        figs = viz.image_figures(_group(f, "Raw_Data-Image_000"))
    _assert_labelled(figs)
    (fig,) = figs.values()
    source, processed = _data_axes(fig)
    assert source.get_title() == "source" and processed.get_title().startswith("processed: ")
    np.testing.assert_allclose(_map_values(source), bowl)
    np.testing.assert_allclose(_map_values(processed), flat, atol=1e-9)
    assert source.images[0].colorbar.ax.get_ylabel() == "Height (m)"


def test_filter_plot_draws_one_position_with_labels(tmp_path):
    from pycro_gpu.filters import LowPassFilter, SignalFilter

    g = datasets.gmode((2, 3), 1024, seed=0)
    path = datasets.write_usid(g, tmp_path / "g.h5", exclude=("clean",))
    rc = main(["filter", str(path), "--low-pass", "2e5", "-q", "--plot", str(tmp_path / "f")])
    assert rc == 0
    _assert_pngs(tmp_path / "f", ["filter_position_0"])
    with h5py.File(path, "r") as f:
        raw = USIDataset(f["Measurement_000/Channel_000/Raw_Data"])
        fs = g.truth["sample_rate"]
        fig = SignalFilter(raw, [LowPassFilter(1024, fs, 2e5)]).test(0)
    _assert_labelled({"filter": fig})
    assert [ax.get_xlabel() for ax in _data_axes(fig)] == ["Time (µs)", "Frequency (kHz)"]


# ------------------------------------------------------------------- positions without a 2-D grid


def test_line_scan_and_sparse_positions_are_curves_over_the_position(tmp_path, test_data):
    x_m = 1e-6 * np.arange(9)
    path = tmp_path / "line.h5"
    with h5py.File(path, "w") as f:
        write_main(
            f.create_group("Measurement_000/Channel_000"), "Raw_Data",
            np.outer(1.0 + np.arange(9), np.exp(-(((ENERGY - 300.0) / 6.0) ** 2))).astype(np.float32),
            Dimension("X", "m", x_m), Dimension("Energy", "eV", ENERGY), "Counts", "a.u.",
        )  # fmt: skip
    assert main(["svd", str(path), "-k", "1", "-q", "--plot", str(tmp_path / "line")]) == 0
    _assert_pngs(tmp_path / "line", ["svd_scree", "svd_components", "svd_abundance"])
    with h5py.File(path, "r") as f:
        figs = viz.svd_figures(f["Measurement_000/Channel_000/Raw_Data-SVD_000"])
    _assert_labelled(figs)
    ax = _axes(figs["svd_abundance"], "U 0")
    assert not ax.images and ax.get_xlabel() == "X (µm)" and ax.get_ylabel() == "Abundance (a.u.)"
    np.testing.assert_allclose(ax.lines[0].get_xdata(), np.arange(9))
    u = ax.lines[0].get_ydata()
    np.testing.assert_allclose(u / u[0], 1.0 + np.arange(9), rtol=1e-5)  # abundance in scan order

    sparse = shutil.copy(test_data / "sparse_sampling.h5", tmp_path / "sparse.h5")
    assert main(["svd", str(sparse), "-k", "2", "-q", "--plot", str(tmp_path / "sp")]) == 0
    _assert_pngs(tmp_path / "sp", ["svd_scree", "svd_components", "svd_abundance"])
    with h5py.File(sparse, "r") as f:
        figs = viz.svd_figures(f["Measurement_000/Channel_000/Raw_Data-SVD_000"])
    _assert_labelled(figs)
    ax = _axes(figs["svd_components"], "Abundance U 0")
    assert not ax.images and ax.get_xlabel() == "position (row index)"
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), np.arange(8))
    assert _axes(figs["svd_components"], "Component V 0").get_xlabel() == "Frequency (kHz)"


# ---------------------------------------------------------------------------------- the real DM3


def test_dm3_spectrum_image_svd_plot_shows_energy_in_ev(test_data, tmp_path):
    from pycro_gpu.io.translators import translate

    path = translate(test_data / "DMReader_SpectrumImage_SI-EELS.dm3", tmp_path / "si.h5")
    assert main(["svd", str(path), "-k", "3", "-q", "--plot", str(tmp_path / "fig")]) == 0
    _assert_pngs(tmp_path / "fig", ["svd_scree", "svd_components", "svd_abundance"])
    with h5py.File(path, "r") as f:
        energy = USIDataset(f["Measurement_000/Channel_000/Raw_Data"]).spec_dims[0].values
        figs = viz.svd_figures(f["Measurement_000/Channel_000/Raw_Data-SVD_000"])
    _assert_labelled(figs)
    for i in range(3):
        ax = _axes(figs["svd_components"], f"Component V {i}")
        assert ax.get_xlabel() == "Energy loss (eV)"
        np.testing.assert_allclose(ax.lines[0].get_xdata(), energy)
    ax = _axes(figs["svd_abundance"], "U 0")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x (pixel)", "y (pixel)")
    assert ax.images[0].get_array().shape == (49, 6)  # 49 rows of y, 6 columns of x
