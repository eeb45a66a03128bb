"""Clustering of USID data: KMeans & co on cuML or scikit-learn, labels ordered by a dendrogram.

:func:`cluster` labels every position (row) of a matrix from its *features* (by default the spectra
themselves; complex spectra as ``[Re, Im]``; or, e.g., SVD abundance maps) and returns the mean
response (mean spectrum of the data) of each cluster. Clusters are renumbered so that neighbours in a
dendrogram of their centroids (``scipy.cluster.hierarchy``, Ward linkage) get neighbouring labels, as
pycroscopy does: labels are then comparable between runs and the mean responses plot in a sensible
order.

KMeans uses cuML when the features are CuPy arrays and cuML is installed, scikit-learn otherwise.
Data too large for the memory budget stream: ``MiniBatchKMeans.partial_fit`` over position batches
(scikit-learn, on the host), then a second pass that predicts labels and accumulates the mean
responses on the compute backend. Agglomerative, Birch and spectral clustering are CPU-only
(scikit-learn) and need the features in memory; see :data:`CAPABILITIES`.

:func:`cluster_dataset` writes ``<Source>-Cluster_NNN`` with the Main datasets ``Labels``
``(N_pos, 1)`` and ``Mean_Response`` ``(n_clusters, N_spec)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._config import budget_mb, get_config, rows_for_budget
from ._lib.checks import require_finite
from ._lib.optional import ml_engine
from ._lib.typing import Array, Namespace
from .backend import array_namespace, device_of, from_host, get_namespace, to_host
from .errors import DataError

__all__ = ["CAPABILITIES", "ClusterResult", "cluster", "cluster_dataset", "dendrogram_order"]

#: method -> CPU estimator, GPU estimator (None: CPU-only), whether it can stream over batches.
CAPABILITIES: dict[str, dict[str, Any]] = {
    "kmeans": {"cpu": "sklearn.cluster.KMeans", "gpu": "cuml.KMeans", "streams": True},
    "minibatch_kmeans": {"cpu": "sklearn.cluster.MiniBatchKMeans", "gpu": None, "streams": True},
    "agglomerative": {"cpu": "sklearn.cluster.AgglomerativeClustering", "gpu": None, "streams": False},
    "birch": {"cpu": "sklearn.cluster.Birch", "gpu": None, "streams": False},
    "spectral": {"cpu": "sklearn.cluster.SpectralClustering", "gpu": None, "streams": False},
}

CLUSTER_TOOL = "Cluster"


@dataclass
class ClusterResult:
    """Result of :func:`cluster`.

    Attributes
    ----------
    labels : (n_positions,) int32 array
        Cluster of each position, renumbered in dendrogram order.
    mean_response : (n_clusters, n_spectral) array
        Mean of the data over each cluster (data dtype promoted to float64/complex128).
    centroids : (n_clusters, n_features) array
        Mean feature vector of each cluster (renumbered).
    counts : (n_clusters,) array
        Positions per cluster.
    linkage : (n_clusters - 1, 4) ndarray or None
        Ward linkage of the renumbered centroids (host array, for a dendrogram plot).
    method, engine : str
    streamed : bool
    """

    labels: Array
    mean_response: Array
    centroids: Array
    counts: Array
    linkage: np.ndarray | None
    method: str
    engine: str
    streamed: bool = False
    estimator: Any = field(default=None, repr=False)


def dendrogram_order(centroids: np.ndarray) -> np.ndarray:
    """Order of clusters given by the leaves of a Ward dendrogram of their centroids.

    Parameters
    ----------
    centroids : (n_clusters, n_features) ndarray (host)

    Returns
    -------
    (n_clusters,) ndarray of int
        ``order[i]`` is the old label that becomes label ``i``.
    """
    from scipy.cluster.hierarchy import leaves_list, linkage

    c = np.asarray(centroids)
    if c.shape[0] < 2:
        return np.arange(c.shape[0])
    if np.iscomplexobj(c):
        c = np.concatenate([c.real, c.imag], axis=1)
    return leaves_list(linkage(c, method="ward")).astype(np.int64)


def _estimator(method: str, engine: str, k: int, seed: int, params: dict[str, Any], streamed: bool) -> Any:
    if engine == "cuml":
        import cuml

        return cuml.KMeans(n_clusters=k, random_state=seed, output_type="cupy", **params)
    from sklearn import cluster as skc

    if method == "minibatch_kmeans" or (method == "kmeans" and streamed):
        return skc.MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, **params)
    if method == "kmeans":
        return skc.KMeans(n_clusters=k, random_state=seed, n_init=10, **params)
    if method == "agglomerative":
        return skc.AgglomerativeClustering(n_clusters=k, **params)
    if method == "birch":
        return skc.Birch(n_clusters=k, **params)
    kw = {"random_state": seed, **params}
    return skc.SpectralClustering(n_clusters=k, **kw)


class _Rows:
    """Row slices of an array or h5py dataset, as host or namespace arrays."""

    def __init__(self, data: Any, xp: Namespace, device: Any) -> None:
        import h5py

        self.data, self.xp, self.device = data, xp, device
        self.is_file = isinstance(data, h5py.Dataset)
        self.shape = (int(data.shape[0]), int(data.shape[1]))
        self.complex = (
            data.dtype.kind == "c" if self.is_file else bool(xp.isdtype(data.dtype, "complex floating"))
        )

    def xp_rows(self, s: int, e: int) -> Array:
        block = from_host(self.data[s:e], self.xp, device=self.device) if self.is_file else self.data[s:e, :]
        require_finite(block, f"cluster: rows {s}:{e} of the data")
        return block


def _features(block: Array, xp: Namespace, engine: str) -> Any:
    """Real float64 features of a block: host ndarray for scikit-learn, CuPy for cuML."""
    if xp.isdtype(block.dtype, "complex floating"):
        block = xp.concat([xp.real(block), xp.imag(block)], axis=1)
    block = xp.astype(block, xp.float64)
    return block if engine == "cuml" else np.asarray(to_host(block))


def _onehot_sums(labels: Array, block: Array, k: int, xp: Namespace) -> tuple[Array, Array]:
    """(k, n) sums of the rows of ``block`` per label, and (k,) float64 counts."""
    ks = xp.reshape(xp.arange(k, device=device_of(labels)), (1, -1))
    mask = xp.reshape(labels, (-1, 1)) == ks
    return xp.astype(mask, block.dtype).mT @ block, xp.sum(xp.astype(mask, xp.float64), axis=0)


def cluster(
    data: Any,
    n_clusters: int = 4,
    method: str = "kmeans",
    *,
    features: Any = None,
    streaming: bool | None = None,
    memory_mb: float | None = None,
    seed: int = 0,
    epochs: int = 3,
    reorder: bool = True,
    xp: Namespace | None = None,
    **params: Any,
) -> ClusterResult:
    """Cluster the positions (rows) of ``data`` and compute the mean response of each cluster.

    Parameters
    ----------
    data : (n_positions, n_spectral) array or h5py.Dataset
        Spectra; the mean responses are means of these rows. Real or complex.
    n_clusters : int
    method : {'kmeans', 'minibatch_kmeans', 'agglomerative', 'birch', 'spectral'}
    features : (n_positions, n_features) array or h5py.Dataset, optional
        What is clustered (default: ``data``; e.g. SVD abundance maps ``U``).
    streaming : bool, optional
        Stream batches with ``MiniBatchKMeans.partial_fit`` (KMeans methods only). Default: when the
        features (as float64) exceed the memory budget.
    memory_mb : float, optional
        Budget setting the batch size.
    seed : int
        Random state.
    epochs : int
        Passes of ``partial_fit`` over the batches when streaming.
    reorder : bool
        Renumber clusters in dendrogram order.
    xp : namespace, optional
        Compute namespace for dataset inputs (default: configured backend).
    **params
        Passed to the estimator.

    Returns
    -------
    ClusterResult
        Arrays in the data's namespace.

    Examples
    --------
    >>> import numpy as np
    >>> from pycro_gpu.cluster import cluster
    >>> x = np.repeat([[0.0, 0.0], [5.0, 5.0]], 10, axis=0)
    >>> r = cluster(x, 2)
    >>> sorted(np.bincount(r.labels).tolist())
    [10, 10]
    """
    if method not in CAPABILITIES:
        msg = f"method must be one of {', '.join(CAPABILITIES)}; got {method!r}"
        raise ValueError(msg)
    import h5py

    if isinstance(data, h5py.Dataset):
        xp = get_namespace() if xp is None else xp
        device = None
    else:
        xp = array_namespace(data) if xp is None else xp
        device = device_of(data)
    feats = data if features is None else features
    drows = _Rows(data, xp, device)
    frows = drows if features is None else _Rows(feats, xp, device)
    if drows.shape[0] != frows.shape[0]:
        msg = f"features must have one row per position ({drows.shape[0]}), got {frows.shape[0]}"
        raise DataError(msg)
    n, n_spec = drows.shape
    k = int(n_clusters)
    if not 1 <= k <= n:
        msg = f"n_clusters must be between 1 and the number of positions {n}, got {n_clusters!r}"
        raise ValueError(msg)
    f_cols = frows.shape[1] * (2 if frows.complex else 1)
    budget = budget_mb(memory_mb)
    if streaming is None:
        streaming = CAPABILITIES[method]["streams"] and n * f_cols * 8 > budget * 2**20
    if streaming and not CAPABILITIES[method]["streams"]:
        msg = (
            f"method {method!r} cannot stream; use 'kmeans' or 'minibatch_kmeans', or cluster fewer features"
        )
        raise ValueError(msg)
    engine = ml_engine(xp, not streaming and CAPABILITIES[method]["gpu"] is not None)
    est = _estimator(method, engine, k, seed, params, streaming)
    rows = max(k, rows_for_budget(max(n_spec, f_cols), 4 * 16, memory_mb))
    spans = [(s, min(s + rows, n)) for s in range(0, n, rows)]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < k:  # partial_fit needs >= k rows
        spans[-2:] = [(spans[-2][0], n)]

    if streaming:
        n_ep = max(1, int(epochs))
        bar = None
        if get_config()["progress"]:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_ep * len(spans), desc="MiniBatchKMeans", unit="batch", leave=False)
        for _ in range(n_ep):
            for s, e in spans:
                est.partial_fit(_features(frows.xp_rows(s, e), xp, engine))
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        labels_parts = [est.predict(_features(frows.xp_rows(s, e), xp, engine)) for s, e in spans]
    else:
        full = est.fit_predict(_features(frows.xp_rows(0, n), xp, engine))
        labels_parts = [full[s:e] for s, e in spans]
    # labels on the compute backend, mean responses and centroids accumulated per batch
    lab = [_to_xp_labels(p, xp, device) for p in labels_parts]
    cdt = xp.complex128 if drows.complex else xp.float64
    sums = xp.zeros((k, n_spec), dtype=cdt, device=device)
    fsum = xp.zeros((k, f_cols), dtype=xp.float64, device=device)
    counts = xp.zeros((k,), dtype=xp.float64, device=device)
    for (s, e), lb in zip(spans, lab, strict=True):
        blk = xp.astype(drows.xp_rows(s, e), cdt)
        sm, ct = _onehot_sums(lb, blk, k, xp)
        sums, counts = sums + sm, counts + ct
        fblk = _features_xp(frows.xp_rows(s, e) if frows is not drows else blk, xp)
        fsum = fsum + _onehot_sums(lb, fblk, k, xp)[0]
    safe = xp.where(counts > 0, counts, xp.ones_like(counts))
    mean = sums / xp.astype(xp.reshape(safe, (-1, 1)), cdt)
    cent = fsum / xp.reshape(safe, (-1, 1))
    labels = xp.concat(lab, axis=0) if len(lab) > 1 else lab[0]
    linkage = None
    if reorder and k > 1:
        order = dendrogram_order(np.asarray(to_host(cent)))
        inverse = np.empty_like(order)
        inverse[order] = np.arange(k)
        idx = from_host(order, xp, device=device)
        labels = xp.take(from_host(inverse.astype(np.int32), xp, device=device), labels)
        mean, cent, counts = xp.take(mean, idx, axis=0), xp.take(cent, idx, axis=0), xp.take(counts, idx)
        from scipy.cluster.hierarchy import linkage as _linkage

        linkage = _linkage(np.asarray(to_host(cent)), method="ward")
    return ClusterResult(
        labels=xp.astype(labels, xp.int32),
        mean_response=mean,
        centroids=cent,
        counts=counts,
        linkage=linkage,
        method=method,
        engine=engine,
        streamed=bool(streaming),
        estimator=est,
    )


def _features_xp(block: Array, xp: Namespace) -> Array:
    if xp.isdtype(block.dtype, "complex floating"):
        block = xp.concat([xp.real(block), xp.imag(block)], axis=1)
    return xp.astype(block, xp.float64)


def _to_xp_labels(p: Any, xp: Namespace, device: Any) -> Array:
    if isinstance(p, np.ndarray):
        return from_host(p.astype(np.int64), xp, device=device)
    return xp.astype(xp.asarray(p), xp.int64)  # cuML output stays on the device


def cluster_dataset(
    h5_main: Any,
    n_clusters: int = 4,
    method: str = "kmeans",
    *,
    components: int | None = None,
    streaming: bool | None = None,
    memory_mb: float | None = None,
    seed: int = 0,
    backend: str | None = None,
    override: bool = False,
    progress: bool | None = None,
) -> Any:
    """Cluster a USID Main dataset and write ``<Source>-Cluster_NNN`` with ``Labels`` and ``Mean_Response``.

    Parameters
    ----------
    h5_main : h5py.Dataset
        USID Main dataset ``(N_pos, N_spec)`` in a writable file.
    n_clusters : int
    method : str
        See :data:`CAPABILITIES`.
    components : int, optional
        Cluster the first ``components`` SVD abundance maps (``U S`` from
        :func:`~pycro_gpu.decomposition.svd_dataset`, computed or found) instead of the full spectra; the
        mean responses are still the raw spectra.
    streaming, memory_mb, seed
        As in :func:`cluster`.
    backend : str, optional
        Compute backend.
    override : bool
        Compute again even when a finished group with the same parameters exists.
    progress : bool, optional
        Progress bars of the SVD.

    Returns
    -------
    h5py.Group
        With Main datasets ``Labels`` ``(N_pos, 1)`` uint32 and ``Mean_Response`` ``(n_clusters, N_spec)``
        and the dataset ``Counts``.
    """
    from .decomposition import svd_dataset
    from .io.usid import Dimension, USIDataset, create_results_group, write_main, writing_results

    main = h5_main if isinstance(h5_main, USIDataset) else USIDataset(h5_main)
    params = {
        "n_clusters": int(n_clusters),
        "method": method,
        "components": components or 0,
        "seed": int(seed),
    }
    if method not in CAPABILITIES:
        msg = f"method must be one of {', '.join(CAPABILITIES)}; got {method!r}"
        raise ValueError(msg)
    xp = get_namespace(backend)
    feats = None
    if components:
        svd_grp = svd_dataset(main, int(components), memory_mb=memory_mb, backend=backend, progress=progress)
        feats = from_host(np.asarray(svd_grp["U"][()]) * np.asarray(svd_grp["S"][()]), xp)
    group, existing = create_results_group(main, CLUSTER_TOOL, params, override=override, status="running")
    if existing:
        return group
    with writing_results(group):
        res = cluster(
            main,
            n_clusters,
            method,
            features=feats,
            streaming=streaming,
            memory_mb=memory_mb,
            seed=seed,
            xp=xp,
        )
        k = int(n_clusters)
        labels = to_host(res.labels).astype(np.uint32).reshape(-1, 1)
        write_main(
            group,
            "Labels",
            labels,
            None,
            Dimension("Cluster", "a.u.", 1),
            "Cluster labels",
            "a.u.",
            h5_pos_inds=main.h5_pos_inds,
            h5_pos_vals=main.h5_pos_vals,
        )
        src_dtype = np.dtype(main.dtype) if main.dtype.kind in "fc" else np.dtype(np.float64)
        write_main(
            group,
            "Mean_Response",
            to_host(res.mean_response).astype(src_dtype, copy=False),
            Dimension("Cluster", "a.u.", k),
            None,
            main.quantity,
            main.units,
            h5_spec_inds=main.h5_spec_inds,
            h5_spec_vals=main.h5_spec_vals,
        )
        group.create_dataset("Counts", data=to_host(res.counts).astype(np.int64))
        if res.linkage is not None:
            group.create_dataset("Linkage", data=res.linkage)
        group.attrs["engine"] = res.engine
        group.attrs["streamed"] = res.streamed
    return group
