"""Figures of maps, spectra, loops, decompositions, clusters and filters (matplotlib, no pyplot).

Every function returns a :class:`matplotlib.figure.Figure` built directly (no ``pyplot`` state, so
nothing leaks between calls or into a user's session) and takes host NumPy arrays; save it with
:func:`save_figure`. Axes carry labels with units, every image a colorbar.

Modules: :mod:`~pycro_gpu.viz.figures` (one figure per kind of data),
:mod:`~pycro_gpu.viz.decomposition` (the figures of SVD, decomposition and cluster results groups) and
:mod:`~pycro_gpu.viz.report` (the HTML report).
"""

from __future__ import annotations

from .decomposition import plot_clusters, plot_decomposition, plot_svd
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

__all__ = [
    "Panel",
    "cluster_figure",
    "components_figure",
    "filter_figure",
    "loops_figure",
    "map_figure",
    "plot_clusters",
    "plot_decomposition",
    "plot_svd",
    "save_figure",
    "scree_figure",
    "si_scale",
    "spectra_figure",
]
