"""The SVD methods and the decomposition estimators (no heavy imports: the CLI lists them in its help,
and :mod:`pycro_gpu.decomposition` would bring in the streaming engine and HDF5 for every command)."""

from __future__ import annotations

from typing import Any

__all__ = ["CAPABILITIES", "METHODS", "SKETCH_TOL"]

#: ``method`` of the streamed SVD (:func:`pycro_gpu.decomposition.svd`).
METHODS = ("auto", "sketch", "gram", "randomized", "dense")
#: Default tolerance of the sketch's estimated relative singular-value error.
SKETCH_TOL = 1e-5

#: Decomposition method -> CPU estimator, GPU estimator (None: CPU-only, runs on the host and returns to
#: the device), and whether it streams over position batches (``partial_fit``) instead of loading the data.
CAPABILITIES: dict[str, dict[str, Any]] = {
    "pca": {"cpu": "sklearn.decomposition.PCA", "gpu": "cuml.PCA", "streams": False},
    "incremental_pca": {
        "cpu": "sklearn.decomposition.IncrementalPCA",
        "gpu": "cuml.IncrementalPCA",
        "streams": True,
    },
    "truncated_svd": {
        "cpu": "sklearn.decomposition.TruncatedSVD",
        "gpu": "cuml.TruncatedSVD",
        "streams": False,
    },
    "nmf": {"cpu": "sklearn.decomposition.NMF", "gpu": None, "streams": False},
    "fast_ica": {"cpu": "sklearn.decomposition.FastICA", "gpu": None, "streams": False},
}
