"""Deprecated import path: these figures moved to :mod:`pycro_gpu.viz.results` (removed next release)."""

from __future__ import annotations

import warnings

from .viz.results import plot_clusters, plot_decomposition, plot_svd

__all__ = ["plot_clusters", "plot_decomposition", "plot_svd"]

warnings.warn(
    "pycro_gpu.plots_decomposition is now pycro_gpu.viz.results (the old path goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
