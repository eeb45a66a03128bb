"""Maps from positions in one place: USIDataset.position_maps, the figures and the example notebook.

Every test uses an asymmetric pattern on a grid with n_x != n_y (value = 10 x + y at the pixel in column
x, row y), so a transposed or scrambled map cannot pass.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from pycro_gpu import viz
from pycro_gpu.cluster import cluster_dataset
from pycro_gpu.decomposition import svd_dataset
from pycro_gpu.errors import DataError, ParameterError, USIDError
from pycro_gpu.io.usid import Dimension, USIDataset, position_maps, write_main

N_X, N_Y = 5, 3
NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "spectrum_image_decomposition.ipynb"


def _pattern(x, y):
    return 10 * np.asarray(x) + np.asarray(y)


def _truth(n_y=N_Y, n_x=N_X) -> np.ndarray:
    """The true (n_y, n_x) map: row y, column x holds 10 x + y."""
    y, x = np.mgrid[0:n_y, 0:n_x]
    return _pattern(x, y)


def _write_manual(group, data2d, pos_inds, labels):
    """A Main dataset with hand-made position ancillaries (the layouts other tools write)."""
    d = group.create_dataset("Raw_Data", data=data2d)
    spec = np.zeros((1, data2d.shape[1]), dtype=np.uint32)
    for name, arr, labs in (
        ("Position_Indices", pos_inds.astype(np.uint32), labels),
        ("Position_Values", pos_inds.astype(np.float32), labels),
        ("Spectroscopic_Indices", spec, ["Bias"]),
        ("Spectroscopic_Values", spec.astype(np.float32), ["Bias"]),
    ):
        anc = group.create_dataset(name, data=arr)
        anc.attrs["labels"] = np.array([s.encode() for s in labs])
        anc.attrs["units"] = np.array([b"m"] * len(labs))
        d.attrs[name] = anc.ref
    d.attrs["quantity"] = "Current"
    d.attrs["units"] = "A"
    return USIDataset(d)


def _layout(f, layout: str) -> USIDataset:
    """A one-column Main dataset of N_X x N_Y positions stored in ``layout``."""
    if layout == "x_fastest":  # what write_main writes for pos_dims=[X, Y]
        return write_main(
            f, "Raw_Data", np.zeros((N_X * N_Y, 1)), [Dimension("X", "m", N_X), Dimension("Y", "m", N_Y)],
            Dimension("Bias", "V", 1), "Current", "A",
        )  # fmt: skip
    y, x = (g.ravel() for g in np.mgrid[0:N_Y, 0:N_X])  # rows in raster order: x fastest
    rows = np.zeros((N_X * N_Y, 1))
    if layout == "labels_slowest_first":  # labels [Y, X], x still the fastest
        return _write_manual(f, rows, np.stack([y, x], axis=1), ["Y", "X"])
    if layout == "shuffled":  # x fastest, rows stored in a random order
        perm = np.random.default_rng(3).permutation(x.size)
        return _write_manual(f, rows, np.stack([x, y], axis=1)[perm], ["X", "Y"])
    raise AssertionError(layout)


def _values(main: USIDataset) -> np.ndarray:
    """10 x + y of every row, from the row's own position indices (whatever the layout)."""
    labels = [d.name for d in main.pos_dims]
    inds = main.h5_pos_inds[()]
    return _pattern(inds[:, labels.index("X")], inds[:, labels.index("Y")]).astype(np.float64)


# ------------------------------------------------------------------------------------ the helper


@pytest.mark.parametrize("layout", ["x_fastest", "labels_slowest_first", "shuffled"])
def test_two_position_dims_give_the_true_map(tmp_path, layout):
    with h5py.File(tmp_path / "m.h5", "w") as f:
        main = _layout(f, layout)
        values = _values(main)
        maps = main.position_maps(values)
        np.testing.assert_array_equal(maps, _truth())
        assert [d.name for d in main.map_dims] == ["Y", "X"]
        np.testing.assert_array_equal(position_maps(f[main.name], values), _truth())  # plain h5py.Dataset
        # trailing axes follow the position axis; axis=-1 takes (k, N_pos) values to (k, n_y, n_x)
        stacked = main.position_maps(np.stack([values, -values], axis=1))
        assert stacked.shape == (N_Y, N_X, 2)
        np.testing.assert_array_equal(stacked[..., 1], -_truth())
        first = main.position_maps(np.stack([values, -values]), axis=-1)
        np.testing.assert_array_equal(first, np.stack([_truth(), -_truth()]))


def test_columns_are_the_fastest_dimension(tmp_path):
    """A scan stored y fastest draws y across: the map follows the storage, not the label order."""
    x, y = (g.ravel() for g in np.mgrid[0:N_X, 0:N_Y])  # rows: y fastest
    with h5py.File(tmp_path / "m.h5", "w") as f:
        main = _write_manual(f, np.zeros((x.size, 1)), np.stack([x, y], axis=1), ["X", "Y"])
        assert [d.name for d in main.map_dims] == ["X", "Y"]
        np.testing.assert_array_equal(main.position_maps(_pattern(x, y)), _truth().T)


@pytest.mark.parametrize("shuffle", [False, True])
def test_one_position_dim_gives_the_line_in_order(tmp_path, shuffle):
    n = 7
    order = np.random.default_rng(1).permutation(n) if shuffle else np.arange(n)
    with h5py.File(tmp_path / "m.h5", "w") as f:
        main = _write_manual(f, np.zeros((n, 2)), order[:, None], ["X"])
        values = np.stack([10 * order, order + 100], axis=1)  # (N_pos, 2): 10 x and x + 100
        line = main.position_maps(values)
        np.testing.assert_array_equal(line, np.stack([10 * np.arange(n), np.arange(n) + 100], axis=1))


def test_incomplete_grid_wrong_length_and_bad_axis_are_refused(tmp_path, test_data):
    with h5py.File(test_data / "sparse_sampling.h5", "r") as f:
        sparse = USIDataset(f["/Measurement_000/Channel_000/Raw_Data"])
        with pytest.raises(
            USIDError, match=r"8 positions do not form the full grid of \{'X': 8, 'Y': 8\}"
        ) as e:
            sparse.position_maps(np.arange(8))
        assert "\n" not in str(e.value)
    with h5py.File(tmp_path / "m.h5", "w") as f:
        main = _layout(f, "x_fastest")
        with pytest.raises(DataError, match=r"one entry per position of /Raw_Data \(15\) along axis 0"):
            main.position_maps(np.arange(14))
        with pytest.raises(DataError, match="got a scalar"):
            main.position_maps(3.0)
        with pytest.raises(ParameterError, match="axis must be between -2 and 1, got 2"):
            main.position_maps(np.zeros((15, 2)), axis=2)


def test_real_file_maps_equal_its_n_dim_form(test_data):
    """SingFreqPFM (pyUSID file, X fastest): the map of each channel is its N-D form with Y down."""
    with h5py.File(test_data / "SingFreqPFM_0003.h5", "r") as f:
        from pycro_gpu.io.usid import find_main_datasets

        main = find_main_datasets(f)[0]
        assert [d.name for d in main.pos_dims] == ["X", "Y"] and main.pos_order == [0, 1]
        column = main[:, 0]
        np.testing.assert_array_equal(main.position_maps(column), main.get_n_dim_form()[..., 0].T)


# ------------------------------------------------------------------------------------ the figures


def _image(fig, title: str) -> np.ndarray:
    """The array drawn in the axes titled ``title``."""
    (ax,) = [a for a in fig.axes if a.get_title() == title]
    return np.asarray(ax.images[0].get_array())


def test_map_components_and_cluster_figures_draw_the_map_as_given():
    truth = _truth().astype(float)
    x = np.arange(N_X) * 2e-9
    y = np.arange(N_Y) * 2e-9
    fig = viz.map_figure([viz.Panel("pattern", truth, "a.u.")], x=x, y=y)
    im = fig.axes[0].images[0]
    np.testing.assert_array_equal(im.get_array(), truth)
    # row 0 at the top, x growing to the right: the extent runs x[0] -> x[-1] and y[0] at the top
    assert im.origin == "upper"
    np.testing.assert_allclose(im.get_extent(), [-1, 9, 5, -1])  # nm, pixel centres 0..8 and 0..4
    maps = np.stack([truth, -truth])
    fig = viz.components_figure(maps, np.ones((2, 4)))
    np.testing.assert_array_equal(_image(fig, "Score map 2"), -truth)
    labels = (truth >= 20).astype(int) + (truth % 10 == 2)  # asymmetric three-label map
    fig = viz.cluster_figure(labels, truth=labels)
    np.testing.assert_array_equal(_image(fig, "Cluster map (k = 3)"), labels)


def test_map_figures_refuse_arrays_that_are_not_maps():
    with pytest.raises(
        DataError, match=r"panel 'p' must be a non-empty \(ny, nx\) array .* got shape \(15,\)"
    ):
        viz.map_figure([viz.Panel("p", np.arange(15.0), "a.u.")])
    with pytest.raises(DataError, match=r"maps must be a non-empty \(k, ny, nx\) array"):
        viz.components_figure(np.zeros((3, 5)), np.zeros((3, 4)))
    with pytest.raises(DataError, match=r"truth must have the shape of labels \(3, 5\), got \(5, 3\)"):
        viz.cluster_figure(np.zeros((3, 5), dtype=int), truth=np.zeros((5, 3), dtype=int))


def _spectrum_image(path, abundance=None, labels=None, n_e=40, seed=0):
    """A USID spectrum image of N_Y x N_X positions x n_e channels from (n_y, n_x) maps.

    ``abundance``: rank one, ``abundance[y, x] * s(E)``. ``labels``: one Gaussian peak per label.
    Written with write_main from the (x, y, E) N-D form, independently of position_maps.
    """
    energy = np.linspace(0.0, 1.0, n_e)
    rng = np.random.default_rng(seed)
    if abundance is not None:
        spectrum = np.exp(-(((energy - 0.4) / 0.15) ** 2))
        cube = abundance[..., None] * spectrum + 1e-9 * rng.standard_normal((*abundance.shape, n_e))
    else:
        peaks = np.exp(-(((energy[None] - np.linspace(0.15, 0.85, 4)[:, None]) / 0.05) ** 2))
        cube = peaks[labels] + 0.01 * rng.standard_normal((*labels.shape, n_e))
    f = h5py.File(path, "w")
    group = f.create_group("Measurement_000/Channel_000")
    n_y, n_x = cube.shape[:2]
    raw = write_main(
        group, "Raw_Data", cube.transpose(1, 0, 2), [Dimension("X", "m", n_x), Dimension("Y", "m", n_y)],
        Dimension("Energy", "eV", energy), "Counts", "a.u.",
    )  # fmt: skip
    return f, raw


#: an asymmetric 4-label map on 9 x 5 positions (n_x != n_y): unequal blocks, no symmetry
N_X_SI, N_Y_SI = 9, 5
LABELS = np.zeros((N_Y_SI, N_X_SI), dtype=int)
LABELS[:, 6:] = 1
LABELS[3:, :] += 2
LABELS[0, 0:2] = 3
ABUNDANCE = 1.0 + _truth(N_Y_SI, N_X_SI)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when the label maps ``a`` and ``b`` split the positions alike (labels renamed)."""
    pairs = set(zip(a.ravel().tolist(), b.ravel().tolist(), strict=True))
    return a.shape == b.shape and len(pairs) == len(np.unique(a)) == len(np.unique(b))


def test_results_figures_orient_the_maps(tmp_path):
    f, raw = _spectrum_image(tmp_path / "rank1.h5", abundance=ABUNDANCE)
    with f:
        svd = f[svd_dataset(raw, k=3, progress=False).group]
        abundance = _image(viz.svd_figures(svd, n_show=3)["svd_abundance"], "U 0")
        scale = abundance.ravel() @ ABUNDANCE.ravel() / (ABUNDANCE.ravel() @ ABUNDANCE.ravel())
        np.testing.assert_allclose(abundance, scale * ABUNDANCE, rtol=1e-6)  # U[:, 0] up to sign and norm
    f, raw = _spectrum_image(tmp_path / "clusters.h5", labels=LABELS)
    with f:
        clusters = f[cluster_dataset(raw, n_clusters=4, progress=False).group]
        drawn = _image(viz.cluster_figures(clusters)["cluster_labels"], "Cluster labels")
        assert _same_partition(drawn.astype(int), LABELS)
        # the PNG writers draw the same figures
        files = viz.plot_clusters(clusters, tmp_path / "png")
        assert [p.name for p in files] == ["cluster_labels.png", "cluster_mean_response.png"]


def test_fit_figures_orient_each_parameter_map(tmp_path):
    truth = _truth().astype(np.float32)
    rows = truth.reshape(-1)  # rows of a scan stored x fastest (row y * N_X + x)
    fit = np.zeros((rows.size, 3), dtype=[("Amplitude", np.float32), ("Phase", np.float32)])
    fit["Amplitude"] = rows[:, None]
    fit["Phase"] = -rows[:, None]
    with h5py.File(tmp_path / "fit.h5", "w") as f:
        group = f.create_group("Raw_Data-SHO_Fit_000")
        write_main(
            group, "Fit", fit, [Dimension("X", "m", N_X), Dimension("Y", "m", N_Y)],
            Dimension("DC", "V", 3), "SHO", "a.u.",
        )  # fmt: skip
        fig = viz.fit_figures(group)["fit_parameters"]
        np.testing.assert_array_equal(_image(fig, "Amplitude"), truth)
        np.testing.assert_array_equal(_image(fig, "Phase"), -truth)


# ------------------------------------------------------------------------------- the notebook


def _notebook_statement(target: str) -> ast.Module:
    """The notebook's assignment to ``target`` (the exact code the example runs), compiled alone."""
    cells = [c for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    found = []
    for cell in cells:
        code = "\n".join(line for line in "".join(cell["source"]).splitlines() if not line.startswith("%"))
        for node in ast.parse(code).body:
            if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == [target]:
                found.append(node)
    assert len(found) == 1, f"{NOTEBOOK.name}: {len(found)} assignments to {target}"
    return ast.Module(body=found, type_ignores=[])


def _run(statement: ast.Module, namespace: dict) -> dict:
    exec(compile(statement, str(NOTEBOOK), "exec"), namespace)  # the notebook's own line of code
    return namespace


def test_notebook_score_maps_equal_the_true_maps(tmp_path):
    """The notebook's ``maps = ...`` on a rank-one spectrum image gives the abundance map, not a scramble."""
    f, raw = _spectrum_image(tmp_path / "si.h5", abundance=ABUNDANCE)
    with f:
        svd = raw.file[svd_dataset(raw, k=16, progress=False).group]  # as the notebook
        ns = {"np": np, "raw": raw, "U": svd["U"][()], "S": svd["S"][()], "k": 4}
        maps = _run(_notebook_statement("maps"), ns)["maps"]
        assert maps.shape == (4, N_Y_SI, N_X_SI)
        sign = np.sign(maps[0].sum())
        norm = np.linalg.norm(raw[()]) / np.linalg.norm(ABUNDANCE)  # |U0 S0| = abundance * |spectrum|
        np.testing.assert_allclose(sign * maps[0], norm * ABUNDANCE, rtol=1e-6)
        # the expression the notebook used to have fails this check
        U, S, k, n_x, n_y = ns["U"], ns["S"], 4, N_X_SI, N_Y_SI
        old = (U[:, :k] * S[:k]).T.reshape(k, n_x, n_y).transpose(0, 2, 1)
        assert not np.allclose(sign * old[0], norm * ABUNDANCE, rtol=1e-3)


def test_notebook_label_map_equals_the_true_map(tmp_path):
    """The notebook's ``labels = ...`` after ``cluster_dataset`` (called as there) is the true map."""
    f, raw = _spectrum_image(tmp_path / "si.h5", labels=LABELS)
    with f:
        clusters = raw.file[cluster_dataset(raw, n_clusters=4, components=4, progress=False).group]
        labels = _run(_notebook_statement("labels"), {"np": np, "raw": raw, "clusters": clusters})["labels"]
        assert labels.shape == (N_Y_SI, N_X_SI)
        assert _same_partition(labels, LABELS)
        old = clusters["Labels"][()][:, 0].reshape(N_X_SI, N_Y_SI).T  # the notebook's former expression
        assert not _same_partition(old, LABELS)
