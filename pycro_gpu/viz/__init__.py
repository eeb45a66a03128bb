"""Figures of maps, spectra, loops, decompositions, clusters and filters (matplotlib, no pyplot).

Every function returns a :class:`matplotlib.figure.Figure` built directly (no ``pyplot`` state, so
nothing leaks between calls or into a user's session) and takes host NumPy arrays; save it with
:func:`save_figure`. Axes carry labels with units, every image a colorbar. Maps are ``(ny, nx)`` arrays
drawn as given (row 0 at the top, X across); build them from per-position values with
:meth:`pycro_gpu.io.usid.USIDataset.position_maps`, which orients them from the file's dimensions.

Modules: :mod:`~pycro_gpu.viz.figures` (one figure per kind of data),
:mod:`~pycro_gpu.viz.results` (the figures of SVD, decomposition, cluster, fit and image results groups) and
:mod:`~pycro_gpu.viz.report` (the HTML report).
"""

from __future__ import annotations

from .figures import (
    Panel,
    cluster_figure,
    components_figure,
    filter_figure,
    loops_figure,
    map_figure,
    save_figure,
    scree_figure,
    si_scale,
    spectra_figure,
)
from .results import (
    cluster_figures,
    decomposition_figures,
    fit_figures,
    image_figures,
    plot_clusters,
    plot_decomposition,
    plot_fit,
    plot_image,
    plot_svd,
    svd_figures,
)

__all__ = [
    "Panel",
    "cluster_figure",
    "cluster_figures",
    "components_figure",
    "decomposition_figures",
    "filter_figure",
    "fit_figures",
    "image_figures",
    "loops_figure",
    "map_figure",
    "plot_clusters",
    "plot_decomposition",
    "plot_fit",
    "plot_image",
    "plot_svd",
    "save_figure",
    "scree_figure",
    "si_scale",
    "spectra_figure",
    "svd_figures",
]
