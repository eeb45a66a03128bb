"""Figures of results groups (matplotlib Figure objects, no pyplot; host data).

* :func:`svd_figures` / :func:`plot_svd`: scree plot, first components ``V`` and abundance maps ``U`` of
  an SVD group.
* :func:`cluster_figures` / :func:`plot_clusters`: label map and the mean response of each cluster of a
  Cluster group.
* :func:`decomposition_figures` / :func:`plot_decomposition`: the components of a Decomposition group.
* :func:`fit_figures` / :func:`plot_fit`: a map of each fitted parameter (mean over the spectroscopic
  steps) of a fit group.
* :func:`plot_image`: the source image and the processed one of an Image group (axes in units).

The ``*_figures`` functions return the figures by name; the ``plot_*`` functions write them as PNG files
(``pycro-gpu ... --plot DIR``). Position data are shown as maps when the source has two position
dimensions on a complete grid, oriented by :meth:`~pycro_gpu.io.usid.USIDataset.position_maps` (rows Y,
columns X), as curves over the position index otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from .._lib.checks import check_int

__all__ = [
    "cluster_figures",
    "decomposition_figures",
    "fit_figures",
    "plot_clusters",
    "plot_decomposition",
    "plot_fit",
    "plot_image",
    "plot_svd",
    "svd_figures",
]


def _usid(h5_main: Any) -> Any:
    """``h5_main`` as a :class:`~pycro_gpu.io.usid.USIDataset`, or None when it is not a Main dataset."""
    from ..io.usid import USIDataset

    try:
        return USIDataset(h5_main)
    except Exception:
        return None


def _maps(values: np.ndarray, h5_main: Any, *, axis: int = 0) -> np.ndarray | None:
    """Per-position ``values`` of ``h5_main`` as ``(..., n_y, n_x)`` maps, or None when they are not images.

    :meth:`~pycro_gpu.io.usid.USIDataset.position_maps` orients them (rows Y, columns X); None unless
    ``h5_main`` is a Main dataset with two position dimensions on a complete grid.
    """
    from ..errors import USIDError

    d = _usid(h5_main)
    if d is None or len(d.pos_dims) != 2:
        return None
    try:
        return d.position_maps(values, axis=axis)
    except USIDError:  # sparse sampling: no grid
        return None


def _spec_axis(h5_main: Any, n: int) -> tuple[np.ndarray, str]:
    d = _usid(h5_main)
    if d is None:
        return np.arange(n), "index"
    if len(d.spec_dims) == 1 and len(d.spec_dims[0]) == n:
        dim = d.spec_dims[0]
        return np.asarray(dim.values), f"{dim.name} [{dim.units}]"
    return np.arange(n), "spectral index"


def _figure(width: float, height: float) -> tuple[Figure, Any]:
    """A figure of one panel and its axes."""
    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def _component_grid(n: int, height: float) -> tuple[Figure, list[Any]]:
    """A figure of ``n`` panels in a near-square grid and their axes (the spare ones switched off)."""
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(3 * cols, height * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    return fig, list(axes.flat[:n])


def _folder(out_dir: str | Path) -> Path:
    """``out_dir`` as a Path, created."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _real(a: np.ndarray) -> np.ndarray:
    return np.abs(a) if np.iscomplexobj(a) else a


def svd_figures(h5_svd_group: Any, *, n_show: int = 9) -> dict[str, Figure]:
    """The scree plot, the first components ``V`` and the abundance maps ``U`` of an SVD group.

    Parameters
    ----------
    h5_svd_group : h5py.Group
        Group written by :func:`pycro_gpu.decomposition.svd_dataset`.
    n_show : int
        Number of components drawn (>= 1).

    Returns
    -------
    dict of str to Figure
        ``svd_scree``, ``svd_components`` and ``svd_abundance`` (maps oriented by
        :meth:`~pycro_gpu.io.usid.USIDataset.position_maps`: rows Y, columns X).
    """
    n_show = check_int(n_show, "n_show", minimum=1)
    S = np.asarray(h5_svd_group["S"][()])
    V = np.asarray(h5_svd_group["V"][()])
    h5_u = h5_svd_group["U"]
    n = min(n_show, S.size)
    figures = {}

    fig, ax = _figure(5, 3.5)
    ax.semilogy(np.arange(S.size), S, "o-")
    ax.set_xlabel("component")
    ax.set_ylabel("singular value")
    ax.set_title("Scree plot")
    figures["svd_scree"] = fig

    x, xlabel = _spec_axis(h5_svd_group["V"], V.shape[1])
    fig, axes = _component_grid(n, 2.4)
    for i, ax in enumerate(axes):
        if np.iscomplexobj(V):
            ax.plot(x, V[i].real, label="Re")
            ax.plot(x, V[i].imag, label="Im")
        else:
            ax.plot(x, V[i])
        ax.set_title(f"V {i}")
        ax.set_xlabel(xlabel, fontsize=7)
    figures["svd_components"] = fig

    U = _real(np.asarray(h5_u[()]))[:, :n]
    maps = _maps(U.T, h5_u, axis=-1)  # (n, n_y, n_x)
    fig, axes = _component_grid(n, 2.6)
    for i, ax in enumerate(axes):
        if maps is None:
            ax.plot(U[:, i])
            ax.set_xlabel("position", fontsize=7)
        else:
            ax.imshow(maps[i], cmap="inferno")
            ax.set_axis_off()
        ax.set_title(f"U {i}")
    figures["svd_abundance"] = fig
    return figures


def plot_svd(h5_svd_group: Any, out_dir: str | Path, *, n_show: int = 9) -> list[Path]:
    """Write ``svd_scree.png``, ``svd_components.png`` and ``svd_abundance.png`` (:func:`svd_figures`).

    Parameters
    ----------
    h5_svd_group : h5py.Group
        Group written by :func:`pycro_gpu.decomposition.svd_dataset`.
    out_dir : path
        Folder (created).
    n_show : int
        Number of components drawn.

    Returns
    -------
    list of Path
        The files written.
    """
    return _save_all(svd_figures(h5_svd_group, n_show=n_show), out_dir)


def cluster_figures(h5_cluster_group: Any) -> dict[str, Figure]:
    """The label map and the mean response of each cluster of a Cluster group.

    Parameters
    ----------
    h5_cluster_group : h5py.Group
        Group written by :func:`pycro_gpu.cluster.cluster_dataset`.

    Returns
    -------
    dict of str to Figure
        ``cluster_labels`` (a map oriented by :meth:`~pycro_gpu.io.usid.USIDataset.position_maps`, or
        the labels over the position index where the positions form no 2-D grid) and
        ``cluster_mean_response``.
    """
    h5_lab = h5_cluster_group["Labels"]
    labels = np.asarray(h5_lab[()])[:, 0]
    mean = np.asarray(h5_cluster_group["Mean_Response"][()])
    k = mean.shape[0]
    cmap = colormaps["tab10" if k <= 10 else "tab20"].resampled(k)
    figures = {}
    fig, ax = _figure(4.5, 4)
    label_map = _maps(labels, h5_lab)
    if label_map is None:
        ax.scatter(np.arange(labels.size), labels, c=labels, cmap=cmap, s=4, vmin=-0.5, vmax=k - 0.5)
        ax.set_xlabel("position")
        ax.set_ylabel("label")
    else:
        im = ax.imshow(label_map, cmap=cmap, vmin=-0.5, vmax=k - 0.5)
        fig.colorbar(im, ax=ax, ticks=np.arange(k))
        ax.set_axis_off()
    ax.set_title("Cluster labels")
    figures["cluster_labels"] = fig

    x, xlabel = _spec_axis(h5_cluster_group["Mean_Response"], mean.shape[1])
    fig, ax = _figure(5.5, 3.5)
    for c in range(k):
        ax.plot(x, _real(mean[c]), color=cmap(c), label=f"cluster {c}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean response" + (" (|.|)" if np.iscomplexobj(mean) else ""))
    ax.legend(fontsize=7)
    figures["cluster_mean_response"] = fig
    return figures


def plot_clusters(h5_cluster_group: Any, out_dir: str | Path) -> list[Path]:
    """Write ``cluster_labels.png`` (label map) and ``cluster_mean_response.png`` (:func:`cluster_figures`).

    Parameters
    ----------
    h5_cluster_group : h5py.Group
        Group written by :func:`pycro_gpu.cluster.cluster_dataset`.
    out_dir : path
        Folder (created).

    Returns
    -------
    list of Path
    """
    return _save_all(cluster_figures(h5_cluster_group), out_dir)


def decomposition_figures(h5_decomposition_group: Any) -> dict[str, Figure]:
    """``decomposition_components``: the first (up to 9) components, magnitude when complex.

    Parameters
    ----------
    h5_decomposition_group : h5py.Group
        Group written by :func:`pycro_gpu.decomposition.decompose_dataset`.

    Returns
    -------
    dict of str to Figure
    """
    C = np.asarray(h5_decomposition_group["Components"][()])
    fig, ax = _figure(5.5, 3.5)
    for i, c in enumerate(C[:9]):
        ax.plot(np.abs(c) if np.iscomplexobj(c) else c, label=f"{i}")
    ax.set_xlabel("spectral index")
    ax.legend(fontsize=7)
    return {"decomposition_components": fig}


def plot_decomposition(h5_decomposition_group: Any, out_dir: str | Path) -> list[Path]:
    """Write ``decomposition_components.png`` (:func:`decomposition_figures`).

    Parameters
    ----------
    h5_decomposition_group : h5py.Group
        Group written by :func:`pycro_gpu.decomposition.decompose_dataset`.
    out_dir : path
        Folder (created).

    Returns
    -------
    list of Path
    """
    return _save_all(decomposition_figures(h5_decomposition_group), out_dir)


def fit_figures(h5_fit_group: Any) -> dict[str, Figure]:
    """``fit_parameters``: a map of each field of the ``Fit`` dataset, averaged over its steps.

    Parameters
    ----------
    h5_fit_group : h5py.Group
        Group written by :func:`pycro_gpu.fitting.fit_sho_dataset` or
        :func:`~pycro_gpu.fitting.fit_loop_dataset` (a compound ``Fit`` Main dataset).

    Returns
    -------
    dict of str to Figure
        Maps oriented by :meth:`~pycro_gpu.io.usid.USIDataset.position_maps` (curves over the position
        index where the positions form no 2-D grid).
    """
    h5_fit = h5_fit_group["Fit"]
    fit = np.asarray(h5_fit[()])
    names = fit.dtype.names
    means = np.stack([np.nanmean(fit[name].astype(np.float64), axis=1) for name in names], axis=1)
    maps = _maps(means.T, h5_fit, axis=-1)  # (n_fields, n_y, n_x)
    fig, axes = _component_grid(len(names), 2.6)
    for i, ax in enumerate(axes):
        if maps is None:
            ax.plot(means[:, i])
            ax.set_xlabel("position", fontsize=7)
        else:
            fig.colorbar(ax.imshow(maps[i], cmap="viridis"), ax=ax)
            ax.set_axis_off()
        ax.set_title(names[i], fontsize=8)
    return {"fit_parameters": fig}


def plot_fit(h5_fit_group: Any, out_dir: str | Path) -> list[Path]:
    """Write ``fit_parameters.png`` (:func:`fit_figures`).

    Parameters
    ----------
    h5_fit_group : h5py.Group
        Group written by :func:`pycro_gpu.fitting.fit_sho_dataset` or
        :func:`~pycro_gpu.fitting.fit_loop_dataset` (a compound ``Fit`` Main dataset).
    out_dir : path
        Folder (created).

    Returns
    -------
    list of Path
    """
    return _save_all(fit_figures(h5_fit_group), out_dir)


def _save_all(figures: dict[str, Figure], out_dir: str | Path) -> list[Path]:
    """Write each figure as ``<out_dir>/<name>.png`` and return the paths."""
    out = _folder(out_dir)
    return [_save(fig, out / f"{name}.png") for name, fig in figures.items()]


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def plot_image(h5_image_group: Any, out_dir: str | Path) -> list[Path]:
    """Write ``image.png``: the source image and the processed one side by side (first spectroscopic step).

    Parameters
    ----------
    h5_image_group : h5py.Group
        Group written by :func:`pycro_gpu.filters.image_dataset.process_image_dataset`.
    out_dir : path
        Folder (created).

    Returns
    -------
    list of Path
    """
    out = _folder(out_dir)
    processed = _usid(h5_image_group["Processed"])
    path = h5_image_group.attrs.get("source_path")
    source = h5_image_group.file.get(str(path)) if path is not None else None
    panels = (
        [("processed", processed)]
        if source is None
        else [("source", _usid(source)), ("processed", processed)]
    )
    fig = Figure(figsize=(5.2 * len(panels), 4.4))
    for i, (title, main) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        da = main.to_xarray()
        y, x = da.dims[:2]
        image = np.asarray(da.values).reshape(da.sizes[y], da.sizes[x], -1)[..., 0]
        xs, ys = np.asarray(da[x].values), np.asarray(da[y].values)
        im = ax.imshow(
            image, origin="lower", extent=(xs[0], xs[-1], ys[0], ys[-1]), cmap="viridis", aspect="auto"
        )
        ax.set_xlabel(f"{x} ({da[x].attrs.get('units', '')})")
        ax.set_ylabel(f"{y} ({da[y].attrs.get('units', '')})")
        ax.set_title(
            title if title == "source" else f"{title}: {h5_image_group.attrs.get('operations', '')}",
            fontsize=8,
        )
        fig.colorbar(im, ax=ax, label=f"{main.quantity} ({main.units})")
    return [_save(fig, out / "image.png")]
