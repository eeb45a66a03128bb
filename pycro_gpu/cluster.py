"""Clustering of USID data: KMeans & co on cuML or scikit-learn, labels ordered by a dendrogram.

:func:`cluster` labels every position (row) of a matrix from its *features* (by default the spectra
themselves; complex spectra as ``[Re, Im]``; or, e.g., SVD abundance maps) and returns the mean
response (mean spectrum of the data) of each cluster. Clusters are renumbered so that neighbours in a
dendrogram of their centroids (Ward linkage, :func:`ward_linkage`) get neighbouring labels, as
pycroscopy does: labels are then comparable between runs and the mean responses plot in a sensible
order.

KMeans uses cuML when the features are CuPy arrays and cuML is installed, and otherwise the KMeans of
:mod:`pycro_gpu._lib.kmeans`: scikit-learn's algorithm (greedy k-means++, ``n_init=10``, Lloyd) written
against the array API, so it runs on the data's namespace (CuPy included) and spares every process
scikit-learn's ~3 s import. Data too large for the memory budget stream: ``MiniBatchKMeans.partial_fit``
over position batches (the array-API mini-batch KMeans, which cuML lacks), then a second pass that
predicts labels and accumulates the mean responses on the compute backend. Agglomerative, Birch and spectral
clustering are CPU-only (scikit-learn) and need the features in memory; see :data:`CAPABILITIES`.

:func:`cluster_dataset` writes ``<Source>-Cluster_NNN`` with the Main datasets ``Labels``
``(N_pos, 1)`` and ``Mean_Response`` ``(n_clusters, N_spec)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from ._config import budget_mb, rows_for_budget
from ._lib.checks import (
    check_choice,
    check_dataset_path,
    check_int,
    check_memory_mb,
    check_seed,
    require_finite,
)
from ._lib.cluster_methods import CAPABILITIES
from ._lib.kmeans import onehot_sums
from ._lib.optional import ml_engine
from ._lib.typing import Array, Namespace
from .backend import array_namespace, device_of, from_host, get_namespace, to_host
from .errors import DataError, ParameterError
from .process.rows import batch_rows_at_least, feature_rows, real_features

__all__ = ["CAPABILITIES", "ClusterResult", "cluster", "cluster_dataset", "dendrogram_order", "ward_linkage"]

CLUSTER_TOOL = "Cluster"
#: engine of streamed KMeans on non-NumPy namespaces (CuPy): :mod:`pycro_gpu._lib.kmeans`
ARRAY_API_ENGINE = "array-api"


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


def ward_linkage(centroids: np.ndarray) -> np.ndarray:
    """Ward linkage of cluster centroids, as ``scipy.cluster.hierarchy.linkage(centroids, "ward")``.

    Computed here (a few centroids: merging the closest pair each time, ``O(k^3)``) because importing
    ``scipy.cluster.hierarchy`` costs about 0.3 s of every clustering command. Complex centroids are
    taken as their ``[real, imag]`` features.

    Parameters
    ----------
    centroids : (k, n_features) ndarray (host), k >= 2

    Returns
    -------
    (k - 1, 4) ndarray
        Row ``i`` merges clusters ``Z[i, 0] < Z[i, 1]`` (new clusters numbered ``k, k + 1, ...``) at the
        Ward distance ``Z[i, 2]`` into a cluster of ``Z[i, 3]`` centroids, in increasing distance.
    """
    c = np.asarray(centroids)
    if np.iscomplexobj(c):
        c = np.concatenate([c.real, c.imag], axis=1)
    c = c.astype(np.float64)
    k = c.shape[0]
    active = {i: (c[i], 1) for i in range(k)}  # id -> (centroid, size)
    Z = np.empty((k - 1, 4))
    for step, new_id in enumerate(range(k, 2 * k - 1)):
        ids = sorted(active)
        best = None
        for pos, a in enumerate(ids):
            ca, na = active[a]
            for b in ids[pos + 1 :]:
                cb, nb = active[b]
                d2 = 2.0 * na * nb / (na + nb) * float(np.sum((ca - cb) ** 2))  # squared Ward distance
                if best is None or d2 < best[0]:
                    best = (d2, a, b)
        d2, a, b = best
        (ca, na), (cb, nb) = active.pop(a), active.pop(b)
        active[new_id] = ((na * ca + nb * cb) / (na + nb), na + nb)
        Z[step] = (a, b, np.sqrt(d2), na + nb)
    return Z


def dendrogram_order(centroids: np.ndarray) -> np.ndarray:
    """Order of clusters given by the leaves of a Ward dendrogram of their centroids
    (``scipy.cluster.hierarchy.leaves_list`` of :func:`ward_linkage`).

    Parameters
    ----------
    centroids : (n_clusters, n_features) ndarray (host)

    Returns
    -------
    (n_clusters,) ndarray of int
        ``order[i]`` is the old label that becomes label ``i``.
    """
    k = np.asarray(centroids).shape[0]
    if k < 2:
        return np.arange(k)
    Z = ward_linkage(centroids).astype(np.int64)
    order: list[int] = []
    stack = [2 * k - 2]
    while stack:  # pre-order, the smaller id (left child) first
        node = stack.pop()
        if node < k:
            order.append(node)
        else:
            stack.extend((Z[node - k, 1], Z[node - k, 0]))
    return np.asarray(order, dtype=np.int64)


def _estimator(method: str, engine: str, k: int, seed: int, params: dict[str, Any], streamed: bool) -> Any:
    if engine == ARRAY_API_ENGINE:
        from ._lib.kmeans import KMeans, MiniBatchKMeans

        if method == "minibatch_kmeans" or streamed:
            return MiniBatchKMeans(k, random_state=seed, n_init=3, **params)
        return KMeans(k, random_state=seed, n_init=10, **params)
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
    progress: bool | None = None,
    **params: Any,
) -> ClusterResult:
    """Cluster the positions (rows) of ``data`` and compute the mean response of each cluster.

    Parameters
    ----------
    data : (n_positions, n_spectral) array or h5py.Dataset
        Spectra; the mean responses are means of these rows. Real or complex.
    n_clusters : int
    method : {'kmeans', 'minibatch_kmeans', 'agglomerative', 'birch', 'spectral'}
    features : (n_positions, n_features) array, optional
        What is clustered (default: ``data``; e.g. SVD abundance maps ``U S``), in memory.
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
    progress : bool, optional
        Progress bars of the reads (default: configuration).
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
    from .process.rows import as_row_source

    check_cluster_parameters(
        n_clusters=n_clusters, method=method, memory_mb=memory_mb, seed=seed, epochs=epochs
    )
    if isinstance(features, (list, tuple)) or (features is not None and not hasattr(features, "shape")):
        msg = f"features must be a 2-D array, got {type(features).__name__}"
        raise DataError(msg)
    import h5py

    if isinstance(features, h5py.Dataset):
        features = features[()]
    xp_data = get_namespace() if xp is None and isinstance(data, h5py.Dataset) else xp
    source = as_row_source(data, xp=xp_data)
    return cluster_rows(
        source, n_clusters, method, features=features, streaming=streaming, memory_mb=memory_mb,
        seed=seed, epochs=epochs, reorder=reorder, progress=progress, params=params,
    )  # fmt: skip


#: ``cluster_dataset(components="auto")`` clusters SVD scores for spectra of at least this many points
SVD_FEATURES_MIN_SPECTRAL = 64
#: ... taking this many components (at most a quarter of the spectral points)
SVD_FEATURES_COMPONENTS = 16


def auto_components(shape: tuple[int, int]) -> int | None:
    """SVD components that ``components="auto"`` clusters for a ``(N_pos, N_spec)`` dataset, or None."""
    n_pos, n_spec = int(shape[0]), int(shape[1])
    if n_spec < SVD_FEATURES_MIN_SPECTRAL:
        return None
    return max(1, min(SVD_FEATURES_COMPONENTS, n_spec // 4, n_pos))


def _svd_components(components: int | str | None, shape: tuple[int, int]) -> int:
    """The SVD components a cluster job computes (0: it clusters the spectra)."""
    if components == "auto":
        return auto_components(shape) or 0
    return int(components or 0)


def check_method(method: str) -> None:
    """Raise :class:`~pycro_gpu.errors.ParameterError` naming the choices for an unknown method."""
    check_choice(method, "method", CAPABILITIES)


def check_n_clusters(n_clusters: Any, n_positions: int) -> int:
    """``n_clusters`` as an int between 1 and the number of positions, else ``ParameterError``."""
    k = check_int(n_clusters, "n_clusters")
    if not 1 <= k <= n_positions:
        msg = f"n_clusters must be between 1 and the number of positions {n_positions}, got {n_clusters!r}"
        raise ParameterError(msg)
    return k


def check_cluster_parameters(
    *, n_clusters: Any, method: Any, memory_mb: Any, seed: Any, epochs: Any = 1
) -> None:
    """Types and ranges of the scalar parameters of :func:`cluster` (before anything is read).

    ``n_clusters`` is checked for its type here, for its range against the data by :func:`check_n_clusters`.
    """
    check_int(n_clusters, "n_clusters")
    check_method(method)
    check_memory_mb(memory_mb)
    check_seed(seed)
    check_int(epochs, "epochs", minimum=1)


def cluster_rows(
    source: Any,
    n_clusters: int,
    method: str,
    *,
    features: Any = None,
    streaming: bool | None = None,
    memory_mb: float | None = None,
    seed: int = 0,
    epochs: int = 3,
    reorder: bool = True,
    progress: bool | None = None,
    params: dict[str, Any] | None = None,
    checkpoint: Any = None,
) -> ClusterResult:
    """:func:`cluster` on a row source (:mod:`pycro_gpu.process.rows` or a dataset job's runner).

    Two stages: ``fit`` (features read, or taken from ``features``, and clustered: the labels) and the
    read that sums the data and features per cluster (mean responses, centroids, counts).
    """
    from .process.passes import NoCheckpoint, PassSpec, run_pass

    check_cluster_parameters(
        n_clusters=n_clusters, method=method, memory_mb=memory_mb, seed=seed, epochs=epochs
    )
    xp = source.xp
    ckpt = NoCheckpoint() if checkpoint is None else checkpoint
    n, n_spec = source.shape
    complex_ = np.dtype(source.dtype).kind == "c"
    if features is not None:
        features = features if hasattr(features, "__array_namespace__") else np.asarray(features)
        if features.ndim != 2 or int(features.shape[0]) != n:
            msg = f"features must have one row per position ({n}), got shape {tuple(features.shape)}"
            raise DataError(msg)
    k = check_n_clusters(n_clusters, n)
    f_complex = complex_ if features is None else _is_complex_array(features)
    f_cols = (n_spec if features is None else int(features.shape[1])) * (2 if f_complex else 1)
    if streaming is None:
        streaming = CAPABILITIES[method]["streams"] and n * f_cols * 8 > budget_mb(memory_mb) * 2**20
    if streaming and not CAPABILITIES[method]["streams"]:
        msg = (
            f"method {method!r} cannot stream; use 'kmeans' or 'minibatch_kmeans', or cluster fewer features"
        )
        raise ValueError(msg)
    cpu = str(CAPABILITIES[method]["cpu"])
    engine = ml_engine(
        xp,
        not streaming and str(CAPABILITIES[method]["gpu"]).startswith("cuml"),
        instead="the array-API KMeans" if cpu.startswith("pycro_gpu") else "scikit-learn on the host",
    )
    if engine != "cuml" and cpu.startswith("pycro_gpu"):
        engine = ARRAY_API_ENGINE  # KMeans without scikit-learn's ~3 s import, on the data's namespace
    rows = batch_rows_at_least(n, rows_for_budget(max(n_spec, f_cols), 4 * 16, memory_mb), k)
    feature_pass = PassSpec(partial(feature_rows, what="cluster"), rows={"F": ((f_cols,), np.float64)})

    def read_features(desc: str, each: Any) -> None:
        run_pass(source, feature_pass, rows=rows, desc=desc, progress=progress,
                 on_rows=lambda s, e, r: each(_for_engine(r["F"], xp, engine)))  # fmt: skip

    def fit_stage() -> dict[str, Any]:
        est = _estimator(method, engine, k, seed, dict(params or {}), streaming)
        if features is not None:
            X = _for_engine(_host_features(features), xp, engine)
            return {"labels": _labels_host(est.fit_predict(X))}
        if not streaming:
            parts: list[Any] = []
            read_features("cluster: features", parts.append)
            return {"labels": _labels_host(est.fit_predict(_concat(parts, engine, xp)))}
        for epoch in range(int(epochs)):
            read_features(f"MiniBatchKMeans {epoch + 1}/{int(epochs)}", est.partial_fit)
        labels: list[Any] = []
        read_features("MiniBatchKMeans: labels", lambda X: labels.append(_labels_host(est.predict(X))))
        return {"labels": np.concatenate(labels)}

    labels = np.asarray(to_host(ckpt.stage("fit", fit_stage)["labels"]), dtype=np.int64)
    sums_pass = PassSpec(
        partial(cluster_sums, labels=labels, k=k, complex_=complex_, features=_host_or_none(features)),
        sums={
            "sums": ((k, n_spec), np.complex128 if complex_ else np.float64),
            "fsum": ((k, f_cols), np.float64),
            "counts": ((k,), np.float64),
        },
    )
    out = run_pass(source, sums_pass, rows=rows, desc="cluster: mean responses", progress=progress)
    mean, cent, counts, labels_x, linkage = _cluster_means(out, labels, xp, complex_, reorder)
    return ClusterResult(
        labels=labels_x,
        mean_response=mean,
        centroids=cent,
        counts=counts,
        linkage=linkage,
        method=method,
        engine=engine,
        streamed=bool(streaming),
    )


def _cluster_means(
    out: dict[str, Array], labels: np.ndarray, xp: Namespace, complex_: bool, reorder: bool
) -> tuple:
    """Mean responses, centroids, counts and int32 labels from the summed read, in dendrogram order
    (with its Ward linkage) when ``reorder``."""
    sums, fsum, counts = out["sums"], out["fsum"], out["counts"]
    k = int(counts.shape[0])
    device = device_of(sums)
    cdt = xp.complex128 if complex_ else xp.float64
    safe = xp.where(counts > 0, counts, xp.ones_like(counts))
    mean = sums / xp.astype(xp.reshape(safe, (-1, 1)), cdt)
    cent = fsum / xp.reshape(safe, (-1, 1))
    labels_x = from_host(labels, xp, device=device)
    linkage = None
    if reorder and k > 1:
        order = dendrogram_order(np.asarray(to_host(cent)))
        inverse = np.empty_like(order)
        inverse[order] = np.arange(k)
        idx = from_host(order, xp, device=device)
        labels_x = xp.take(from_host(inverse.astype(np.int32), xp, device=device), labels_x)
        mean, cent, counts = xp.take(mean, idx, axis=0), xp.take(cent, idx, axis=0), xp.take(counts, idx)
        linkage = ward_linkage(np.asarray(to_host(cent)))
    return mean, cent, counts, xp.astype(labels_x, xp.int32), linkage


def cluster_sums(
    block: Array,
    xp: Namespace,
    start: int,
    stop: int,
    *,
    labels: np.ndarray,
    k: int,
    complex_: bool,
    features: Any,
) -> dict[str, Array]:
    """Per-cluster sums of a batch's spectra and features, and the cluster counts."""
    require_finite(block, f"cluster: rows {start}:{stop} of the data")
    blk = xp.astype(block, xp.complex128 if complex_ else xp.float64)
    lb = from_host(labels[start:stop], xp, device=device_of(blk))
    sums, counts = onehot_sums(lb, blk, k, xp)
    fblk = real_features(
        blk if features is None else from_host(features[start:stop], xp, device=device_of(blk)), xp
    )
    return {"sums": sums, "fsum": onehot_sums(lb, fblk, k, xp)[0], "counts": counts}


def _is_complex_array(a: Any) -> bool:
    kind = getattr(getattr(a, "dtype", None), "kind", None)
    if kind is not None:
        return kind == "c"
    return bool(array_namespace(a).isdtype(a.dtype, "complex floating"))


def _host_features(features: Any) -> np.ndarray:
    f = np.asarray(to_host(features))
    if f.dtype.kind == "c":
        f = np.concatenate([f.real, f.imag], axis=1)
    return f.astype(np.float64, copy=False)


def _host_or_none(features: Any) -> np.ndarray | None:
    return None if features is None else np.asarray(to_host(features))


def _for_engine(block: Array, xp: Namespace, engine: str) -> Any:
    """Features as the estimator takes them: host ndarray for scikit-learn, CuPy for cuML, the data's
    namespace for the array-API estimator."""
    if engine == ARRAY_API_ENGINE:
        return xp.asarray(block)
    if engine == "cuml":
        import cupy

        return cupy.asarray(block)
    return np.asarray(to_host(block))


def _concat(parts: list[Any], engine: str, xp: Namespace) -> Any:
    if len(parts) == 1:
        return parts[0]
    if engine == ARRAY_API_ENGINE:
        return xp.concat(parts, axis=0)
    if engine == "cuml":
        import cupy

        return cupy.concatenate(parts, axis=0)
    return np.concatenate(parts, axis=0)


def _labels_host(labels: Any) -> np.ndarray:
    return np.asarray(to_host(labels)).astype(np.int64)


def cluster_dataset(
    source: Any,
    dataset_path: str | None = None,
    *,
    results: Any = None,
    backend: str | None = None,
    memory_mb: float | None = None,
    executor: Any = None,
    override: bool = False,
    progress: bool | None = None,
    n_clusters: int = 4,
    method: str = "kmeans",
    components: int | str | None = "auto",
    streaming: bool | None = None,
    seed: int = 0,
) -> Any:
    """Cluster a USID Main dataset and write ``<Source>-Cluster_NNN`` with ``Labels`` and ``Mean_Response``.

    A multi-pass job (:func:`pycro_gpu.process.run_passes`): resumable after a kill (the labels are
    checkpointed before the mean responses are read), results elsewhere with ``results=``, reads on
    Dask workers with ``executor=``.

    Parameters
    ----------
    source : str, path-like or h5py.Dataset
        USID Main dataset ``(N_pos, N_spec)``, or the path of its file.
    dataset_path : str, optional
        Path of the Main dataset when ``source`` is a file path (default: the first ``Raw_Data``).
    results, backend, memory_mb, executor, override, progress
        As in :func:`pycro_gpu.process.run_job`.
    n_clusters : int
    method : str
        See :data:`CAPABILITIES`.
    components : int, 'auto' or None
        Cluster the first ``components`` SVD scores (``U S`` of
        :func:`~pycro_gpu.decomposition.svd_dataset`, computed or found next to the results) instead of
        the full spectra; the mean responses are still the raw spectra. ``'auto'`` (default): the first
        :data:`SVD_FEATURES_COMPONENTS` scores for spectra of at least
        :data:`SVD_FEATURES_MIN_SPECTRAL` points (a streamed SVD and KMeans on an ``N x 16`` matrix
        instead of ``N x N_spec``: many times faster, same clusters where the structure lies in the
        leading components), the spectra themselves for shorter ones; ``None``: the spectra.
    streaming, seed
        As in :func:`cluster`.

    Returns
    -------
    JobResult
        ``file`` and ``group`` of ``<Source>-Cluster_NNN``: Main datasets ``Labels`` ``(N_pos, 1)``
        uint32 and ``Mean_Response`` ``(n_clusters, N_spec)``, datasets ``Counts`` and ``Linkage``.
    """
    from .decomposition import svd_dataset
    from .io.usid import Dimension, write_main
    from .process import run_passes, source_ancillaries

    check_dataset_path(dataset_path, "cluster_dataset", "n_clusters")
    check_cluster_parameters(n_clusters=n_clusters, method=method, memory_mb=memory_mb, seed=seed)
    if components is not None and components != "auto":
        check_int(components, "components", minimum=1)
    params = {
        "n_clusters": int(n_clusters),
        "method": method,
        "components": components if components == "auto" else int(components or 0),
        "seed": int(seed),
    }

    def validate(main: Any) -> None:
        if main.dtype.kind not in "fciu":
            msg = (
                f"cluster_dataset: {main.name} has dtype {main.dtype}; clustering needs real or complex data"
            )
            raise DataError(msg)
        check_n_clusters(n_clusters, main.shape[0])
        if components is not None and components != "auto":
            check_int(components, "components", minimum=1, maximum=min(main.shape))

    def algorithm(runner: Any, checkpoint: Any, group: Any) -> None:
        main = runner.source
        feats = None
        k_svd = _svd_components(components, main.shape)
        if k_svd:
            svd = svd_dataset(
                main, results=group.parent, backend=runner.backend, memory_mb=memory_mb,
                executor=runner.executor, progress=progress, k=int(k_svd),
            )  # fmt: skip
            g = group.file[svd.group]
            feats = np.asarray(g["U"][()]) * np.asarray(g["S"][()])
        group.attrs["features"] = f"SVD scores ({int(k_svd)} components)" if k_svd else "spectra"
        res = cluster_rows(
            runner, n_clusters, method, features=feats, streaming=streaming, memory_mb=memory_mb,
            seed=seed, progress=progress, checkpoint=checkpoint,
        )  # fmt: skip
        same_file = group.file.id == main.file.id
        pos = source_ancillaries(main, group, same_file, "Position")
        spec = source_ancillaries(main, group, same_file, "Spectroscopic")
        write_main(
            group, "Labels", to_host(res.labels).astype(np.uint32).reshape(-1, 1), None,
            Dimension("Cluster", "a.u.", 1), "Cluster labels", "a.u.", h5_pos_inds=pos[0], h5_pos_vals=pos[1],
        )  # fmt: skip
        src_dtype = np.dtype(main.dtype) if main.dtype.kind in "fc" else np.dtype(np.float64)
        write_main(
            group, "Mean_Response", to_host(res.mean_response).astype(src_dtype, copy=False),
            Dimension("Cluster", "a.u.", int(n_clusters)), None, main.quantity, main.units,
            h5_spec_inds=spec[0], h5_spec_vals=spec[1],
        )  # fmt: skip
        group.create_dataset("Counts", data=to_host(res.counts).astype(np.int64))
        if res.linkage is not None:
            group.create_dataset("Linkage", data=res.linkage)
        group.attrs["engine"] = res.engine
        group.attrs["streamed"] = res.streamed

    return run_passes(
        CLUSTER_TOOL, params, algorithm, source, dataset_path, validate=validate,
        results=results, backend=backend, executor=executor, override=override,
        # labels (checkpoint and result), SVD features (`components`), mean responses; 16 bytes a value
        output_bytes=lambda m: 16
        * (m.shape[0] * (2 + _svd_components(components, m.shape)) + int(n_clusters) * m.shape[1]),
    )  # fmt: skip
