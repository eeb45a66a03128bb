"""The clustering methods and the estimators behind them (no heavy imports: the CLI lists them in its
help, and :mod:`pycro_gpu.cluster` would bring in the streaming engine and HDF5)."""

from __future__ import annotations

from typing import Any

__all__ = ["CAPABILITIES"]

#: method -> CPU estimator, GPU estimator (None: CPU-only), whether it can stream over batches.
CAPABILITIES: dict[str, dict[str, Any]] = {
    "kmeans": {"cpu": "pycro_gpu._lib.kmeans.KMeans", "gpu": "cuml.KMeans", "streams": True},
    "minibatch_kmeans": {
        "cpu": "pycro_gpu._lib.kmeans.MiniBatchKMeans",
        "gpu": "pycro_gpu._lib.kmeans.MiniBatchKMeans",
        "streams": True,
    },
    "agglomerative": {"cpu": "sklearn.cluster.AgglomerativeClustering", "gpu": None, "streams": False},
    "birch": {"cpu": "sklearn.cluster.Birch", "gpu": None, "streams": False},
    "spectral": {"cpu": "sklearn.cluster.SpectralClustering", "gpu": None, "streams": False},
}
