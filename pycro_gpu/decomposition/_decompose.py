"""``decompose``: PCA, IncrementalPCA, TruncatedSVD, NMF and FastICA behind one API.

The estimator comes from cuML when the data live in CuPy and cuML is installed, from scikit-learn
otherwise. scikit-learn runs on the host: data of another namespace (array_api_strict, or CuPy for a
CPU-only method) are copied to the host for the fit and the results are moved back to the input's
namespace and device (the CPU-only methods are listed in :data:`CAPABILITIES`).

Complex data are decomposed as real features ``[Re(X), Im(X)]`` (as pycroscopy does) and the
components are put back together as complex spectra.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from .._config import rows_for_budget
from .._lib.checks import check_choice, check_dataset_path, check_int, check_memory_mb, check_seed
from .._lib.decomposition_methods import CAPABILITIES
from .._lib.optional import ml_engine
from .._lib.typing import Array, Namespace
from ..backend import device_of, from_host, get_namespace, to_host
from ..errors import DataError
from ..process import JobResult
from ..process.rows import batch_rows_at_least, feature_rows

__all__ = ["CAPABILITIES", "Decomposition", "decompose"]


@dataclass
class Decomposition:
    """Result of :func:`decompose`.

    Attributes
    ----------
    method : str
    engine : str
        ``"cuml"`` or ``"sklearn"``.
    components : (n_components, n_features) array
        Component spectra (NMF/PCA/SVD ``components_``; FastICA: the mixing matrix transposed, i.e.
        the spectra whose weighted sum rebuilds the data).
    weights : (n_samples, n_components) array
        Abundance of each component at each position (``transform`` of the data).
    explained_variance_ratio : (n_components,) array or None
    estimator : object
        The fitted estimator.
    """

    method: str
    engine: str
    components: Array
    weights: Array
    explained_variance_ratio: Array | None
    estimator: Any = field(repr=False)


def _estimator(method: str, engine: str, n_components: int, seed: int, params: dict[str, Any]) -> Any:
    if engine == "cuml":
        import cuml

        cls = {"pca": cuml.PCA, "incremental_pca": cuml.IncrementalPCA, "truncated_svd": cuml.TruncatedSVD}[
            method
        ]
        kw = {"n_components": n_components, "output_type": "cupy", **params}
        if method == "truncated_svd":
            kw.setdefault("random_state", seed)
        return cls(**kw)
    from sklearn import decomposition as skd

    if method == "pca":
        return skd.PCA(n_components=n_components, random_state=seed, **params)
    if method == "incremental_pca":
        return skd.IncrementalPCA(n_components=n_components, **params)
    if method == "truncated_svd":
        return skd.TruncatedSVD(n_components=n_components, random_state=seed, **params)
    if method == "nmf":
        kw = {"init": "nndsvda", "max_iter": 1000, "random_state": seed, **params}
        return skd.NMF(n_components=n_components, **kw)
    kw = {"whiten": "unit-variance", "max_iter": 1000, "tol": 1e-5, "random_state": seed, **params}
    return skd.FastICA(n_components=n_components, **kw)


def _from_features(comp: Any, n: int, was_complex: bool) -> Any:
    return comp[:, :n] + 1j * comp[:, n:] if was_complex else comp


def check_method(method: str) -> None:
    """Raise :class:`~pycro_gpu.errors.ParameterError` naming the choices for an unknown method."""
    check_choice(method, "method", CAPABILITIES)


def check_n_components(n_components: Any, shape: tuple[int, int]) -> int:
    """``n_components`` as an int between 1 and ``min(shape)``, else ``ParameterError``."""
    return check_int(n_components, "n_components", minimum=1, maximum=min(int(s) for s in shape))


def check_decompose_parameters(*, method: Any, n_components: Any, memory_mb: Any, seed: Any) -> None:
    """Types and ranges of the scalar parameters of :func:`decompose` (before anything is read).

    ``n_components`` is checked for its type here, for its range against the data by
    :func:`check_n_components`.
    """
    check_method(method)
    check_int(n_components, "n_components")
    check_memory_mb(memory_mb)
    check_seed(seed)


def decompose(
    data: Any,
    method: str = "pca",
    n_components: int = 8,
    *,
    xp: Namespace | None = None,
    memory_mb: float | None = None,
    seed: int = 0,
    progress: bool | None = None,
    **params: Any,
) -> Decomposition:
    """Decompose ``data`` (positions x spectral points) into components and their abundances.

    Parameters
    ----------
    data : (n_samples, n_features) array or h5py.Dataset
        Real or complex (NMF: non-negative real). A dataset is loaded into the configured backend,
        except for ``incremental_pca``, which streams it in batches sized by ``memory_mb``.
    method : {'pca', 'incremental_pca', 'truncated_svd', 'nmf', 'fast_ica'}
        See :data:`CAPABILITIES` for the estimator behind each and which are CPU-only.
    n_components : int
        Number of components.
    xp : namespace, optional
        Namespace of the results for a dataset input (default: configured backend).
    memory_mb : float, optional
        Budget that sets the batches of the reads.
    seed : int
        Random state of the estimators that use one.
    progress : bool, optional
        Progress bars of the reads (default: configuration).
    **params
        Passed to the estimator.

    Returns
    -------
    Decomposition
        Arrays in the input's namespace (and device).

    Examples
    --------
    >>> import numpy as np
    >>> from pycro_gpu.decomposition import decompose
    >>> x = np.outer(np.linspace(0, 1, 50), [1.0, 0.5, 0.0, 2.0])
    >>> d = decompose(x, "pca", 1)
    >>> d.components.shape, d.weights.shape, d.engine
    ((1, 4), (50, 1), 'sklearn')
    """
    import h5py

    from ..process.rows import as_row_source

    check_decompose_parameters(method=method, n_components=n_components, memory_mb=memory_mb, seed=seed)
    if isinstance(data, h5py.Dataset):
        if data.ndim != 2 or data.dtype.kind not in "fciu":
            msg = (
                f"decompose: {data.name} must be a 2-D real or complex dataset, got {data.shape} {data.dtype}"
            )
            raise DataError(msg)
        xp = get_namespace() if xp is None else xp
    elif getattr(data, "ndim", 2) != 2:
        msg = f"decompose: data must be 2-D (positions x spectral points), got shape {tuple(data.shape)}"
        raise DataError(msg)
    return decompose_rows(
        as_row_source(data, xp=xp), method, n_components, memory_mb=memory_mb, seed=seed,
        progress=progress, params=params,
    )  # fmt: skip


def decompose_rows(
    source: Any,
    method: str,
    n_components: int,
    *,
    memory_mb: float | None = None,
    seed: int = 0,
    progress: bool | None = None,
    params: dict[str, Any] | None = None,
    checkpoint: Any = None,
) -> Decomposition:
    """:func:`decompose` on a row source (:mod:`pycro_gpu.process.rows` or a dataset job's runner).

    In-memory methods read the data once and fit. ``incremental_pca`` has two stages: ``fit``
    (``partial_fit`` over the batches; its components, mean and variances are checkpointed) and a read
    that projects every batch (``(X - mean) C^T``, as scikit-learn's ``transform``).
    """
    from ..process.passes import NoCheckpoint, PassSpec, run_pass

    check_decompose_parameters(method=method, n_components=n_components, memory_mb=memory_mb, seed=seed)
    ckpt = NoCheckpoint() if checkpoint is None else checkpoint
    xp = source.xp
    n_samples, n_features = source.shape
    k = check_n_components(n_components, (n_samples, n_features))
    engine = ml_engine(xp, CAPABILITIES[method]["gpu"] is not None)
    est = _estimator(method, engine, k, seed, dict(params or {}))
    was_complex = np.dtype(source.dtype).kind == "c"
    if method == "nmf" and was_complex:
        msg = "decompose: NMF needs non-negative real data, got complex values"
        raise DataError(msg)
    f_cols = n_features * (2 if was_complex else 1)
    rows = batch_rows_at_least(
        n_samples, rows_for_budget(n_features, 4 * 8 * (2 if was_complex else 1), memory_mb), k
    )
    features = PassSpec(partial(feature_rows, what="decompose"), rows={"F": ((f_cols,), np.float64)})

    def read(desc: str, each: Any) -> None:
        run_pass(source, features, rows=rows, desc=desc, progress=progress,
                 on_rows=lambda s, e, r: each(_to_engine(r["F"], xp, engine)))  # fmt: skip

    if method == "incremental_pca":
        comp, W, evr = _incremental_pca(source, est, k, rows, read, ckpt, progress)
    else:
        parts = []
        read(f"{method}: data", parts.append)
        X = _concat(parts, engine)
        if method == "nmf" and engine == "sklearn" and X.size and float(X.min()) < 0:
            msg = f"decompose: NMF needs non-negative data, got a minimum of {float(X.min())!r}"
            raise DataError(msg)
        W = est.fit_transform(X)
        comp = est.mixing_.T if method == "fast_ica" else est.components_
        evr = getattr(est, "explained_variance_ratio_", None)
    comp = _from_features(comp, n_features, was_complex)
    device = source.device
    return Decomposition(
        method=method,
        engine=engine,
        components=_back(comp, xp, device, engine),
        weights=_back(W, xp, device, engine),
        explained_variance_ratio=None if evr is None else _back(evr, xp, device, engine),
        estimator=est,
    )


def _incremental_pca(
    source: Any, est: Any, k: int, rows: int, read: Any, ckpt: Any, progress: bool | None
) -> tuple[np.ndarray, np.ndarray, Any]:
    """Stage ``fit`` (``partial_fit`` over every batch; components, mean and variances checkpointed),
    then one read projecting every batch: ``(components, weights, explained_variance_ratio)``."""
    from ..process.passes import PassSpec, run_pass

    def fit_stage() -> dict[str, Any]:
        read("IncrementalPCA: fit", est.partial_fit)
        return {
            "components": est.components_,
            "mean": est.mean_,
            "explained_variance": est.explained_variance_,
            "explained_variance_ratio": est.explained_variance_ratio_,
        }

    fit = ckpt.stage("fit", fit_stage)
    # C order whether the fit ran here or comes from the checkpoint: BLAS rounds by memory layout
    comp = np.ascontiguousarray(to_host(fit["components"]), dtype=np.float64)
    scale = None
    if bool(getattr(est, "whiten", False)):
        var = np.asarray(to_host(fit["explained_variance"]), dtype=np.float64)
        scale = np.maximum(np.sqrt(var), np.finfo(np.float64).eps)
    mean = np.ascontiguousarray(to_host(fit["mean"]))
    project = PassSpec(
        partial(project_rows, components=comp, mean=mean, scale=scale), rows={"W": ((k,), np.float64)}
    )
    parts: list[Any] = []
    run_pass(source, project, rows=rows, desc="IncrementalPCA: transform", progress=progress,
             on_rows=lambda s, e, r: parts.append(np.asarray(to_host(r["W"]))))  # fmt: skip
    W = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
    return comp, W, fit["explained_variance_ratio"]


def project_rows(
    block: Array, xp: Namespace, start: int, stop: int, *, components: Any, mean: Any, scale: Any
) -> dict[str, Array]:
    """``(X - mean) C^T`` of a batch (divided by ``scale`` when whitening), as PCA's ``transform``."""
    x = feature_rows(block, xp, start, stop, what="decompose")["F"]
    dev = device_of(x)
    C = from_host(np.asarray(components), xp, device=dev)
    w = x @ C.mT
    w = w - xp.reshape(from_host(np.asarray(mean, dtype=np.float64), xp, device=dev), (1, -1)) @ C.mT
    if scale is not None:
        w = w / xp.reshape(from_host(scale, xp, device=dev), (1, -1))
    return {"W": w}


def _to_engine(x: Array, xp: Namespace, engine: str) -> Any:
    """Features as the estimator takes them: host ndarray for scikit-learn, CuPy for cuML."""
    if engine == "cuml":
        return importlib.import_module("cupy").asarray(x)
    return np.asarray(to_host(x))


def _concat(parts: list[Any], engine: str) -> Any:
    if len(parts) == 1:
        return parts[0]
    lib = np if engine == "sklearn" else importlib.import_module("cupy")
    return lib.concatenate(parts, axis=0)


def _back(a: Any, xp: Namespace, device: Any, engine: str) -> Array:
    """Result to the caller's namespace and device (host results of a CPU-only method included)."""
    if engine == "cuml":
        return xp.asarray(a)
    return from_host(np.ascontiguousarray(a), xp, device=device)


def decompose_dataset(
    source: Any,
    dataset_path: str | None = None,
    *,
    results: Any = None,
    backend: str | None = None,
    memory_mb: float | None = None,
    executor: Any = None,
    override: bool = False,
    progress: bool | None = None,
    method: str = "pca",
    n_components: int = 8,
    seed: int = 0,
) -> JobResult:
    """Run :func:`decompose` on a USID Main dataset and write ``<Source>-Decomposition_NNN``.

    A multi-pass job (:func:`pycro_gpu.process.run_passes`): resumable after a kill (``incremental_pca``
    checkpoints its fit before the projection read; the in-memory methods read once and fit again),
    results elsewhere with ``results=``, reads on Dask workers with ``executor=``.

    Parameters
    ----------
    source : str, path-like or h5py.Dataset
        USID Main dataset ``(N_pos, N_spec)``, or the path of its file.
    dataset_path : str, optional
        Path of the Main dataset when ``source`` is a file path (default: the first ``Raw_Data``).
    results, backend, memory_mb, executor, override, progress
        As in :func:`pycro_gpu.process.run_job`.
    method, n_components, seed
        As in :func:`decompose`.

    Returns
    -------
    JobResult
        ``file`` and ``group`` of ``<Source>-Decomposition_NNN``: Main datasets ``Components``
        ``(n_components, N_spec)`` (source's spectroscopic dimensions) and ``Projection``
        ``(N_pos, n_components)`` (source's position dimensions), as pycroscopy.
    """
    from ..io.usid import Dimension, write_main
    from ..process import run_passes, source_ancillaries

    check_dataset_path(dataset_path, "decompose_dataset", "method")
    check_decompose_parameters(method=method, n_components=n_components, memory_mb=memory_mb, seed=seed)
    params = {"method": method, "n_components": int(n_components), "seed": int(seed)}

    def validate(main: Any) -> None:
        if main.dtype.kind not in "fciu":
            msg = f"decompose_dataset: {main.name} has dtype {main.dtype}; it needs real or complex numbers"
            raise DataError(msg)
        check_n_components(n_components, main.shape)

    def algorithm(runner: Any, checkpoint: Any, group: Any) -> None:
        main = runner.source
        res = decompose_rows(
            runner, method, n_components, memory_mb=memory_mb, seed=seed, progress=progress,
            checkpoint=checkpoint,
        )  # fmt: skip
        same_file = group.file.id == main.file.id
        pos = source_ancillaries(main, group, same_file, "Position")
        spec = source_ancillaries(main, group, same_file, "Spectroscopic")
        comp = Dimension("Component", "a.u.", int(n_components))
        write_main(
            group, "Components", to_host(res.components), comp, None, main.quantity, main.units,
            h5_spec_inds=spec[0], h5_spec_vals=spec[1],
        )  # fmt: skip
        write_main(
            group, "Projection", to_host(res.weights), None, comp, "Abundance", "a.u.",
            h5_pos_inds=pos[0], h5_pos_vals=pos[1],
        )  # fmt: skip
        group.attrs["engine"] = res.engine

    return run_passes(
        "Decomposition", params, algorithm, source, dataset_path, validate=validate,
        results=results, backend=backend, executor=executor, override=override,
        # components (and their checkpoint) and the projection, float64
        output_bytes=lambda main: 8 * (3 * main.shape[1] + main.shape[0]) * int(n_components),
    )  # fmt: skip
