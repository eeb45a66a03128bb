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
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._config import rows_for_budget
from .._lib.checks import require_finite
from .._lib.optional import ml_engine
from .._lib.typing import Array, Namespace
from ..backend import array_namespace, device_of, from_host, get_namespace, to_host
from ..errors import DataError
from ._svd import _usid

__all__ = ["CAPABILITIES", "Decomposition", "decompose"]

#: method -> CPU estimator, GPU estimator (None: CPU-only, runs on the host and returns to the device),
#: and whether it streams over position batches (``partial_fit``) instead of loading the data.
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


def _to_features(x: Any, engine: str) -> Any:
    """Host or CuPy 2-D array of real features (complex -> [Re, Im])."""
    if engine == "sklearn":
        x = np.asarray(to_host(x))
    if x.dtype.kind == "c":
        lib = np if engine == "sklearn" else importlib.import_module("cupy")
        x = lib.concatenate([x.real, x.imag], axis=1)
    return x


def _from_features(comp: Any, n: int, was_complex: bool) -> Any:
    return comp[:, :n] + 1j * comp[:, n:] if was_complex else comp


def _row_slices(n_rows: int, rows: int, min_rows: int) -> list[tuple[int, int]]:
    """Batches of about ``rows`` rows, none shorter than ``min_rows`` (partial_fit needs that)."""
    rows = max(rows, min_rows)
    nb = max(1, n_rows // rows)
    size = math.ceil(n_rows / nb)
    return [(s, min(s + size, n_rows)) for s in range(0, n_rows, size)]


def decompose(
    data: Any,
    method: str = "pca",
    n_components: int = 8,
    *,
    xp: Namespace | None = None,
    memory_mb: float | None = None,
    seed: int = 0,
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
        Budget that sets the ``incremental_pca`` batches.
    seed : int
        Random state of the estimators that use one.
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
    if method not in CAPABILITIES:
        msg = f"method must be one of {', '.join(CAPABILITIES)}; got {method!r}"
        raise ValueError(msg)
    import h5py

    is_file = isinstance(data, h5py.Dataset)
    if is_file:
        xp = get_namespace() if xp is None else xp
        device = None
        if data.ndim != 2 or data.dtype.kind not in "fciu":
            msg = (
                f"decompose: {data.name} must be a 2-D real or complex dataset, got {data.shape} {data.dtype}"
            )
            raise DataError(msg)
    else:
        xp = array_namespace(data) if xp is None else xp
        device = device_of(data)
        if data.ndim != 2:
            msg = f"decompose: data must be 2-D (positions x spectral points), got shape {tuple(data.shape)}"
            raise DataError(msg)
    n_samples, n_features = (int(s) for s in data.shape)
    k = int(n_components)
    if not 1 <= k <= min(n_samples, n_features):
        msg = f"n_components must be between 1 and {min(n_samples, n_features)}, got {n_components!r}"
        raise ValueError(msg)
    engine = ml_engine(xp, CAPABILITIES[method]["gpu"] is not None)
    est = _estimator(method, engine, k, seed, params)
    was_complex = data.dtype.kind == "c" if is_file else _is_complex(data, xp)
    if method == "nmf" and was_complex:
        msg = "decompose: NMF needs non-negative real data, got complex values"
        raise DataError(msg)

    def load(s: int, e: int) -> Any:
        block = data[s:e] if is_file else data[s:e, :]
        require_finite(block, f"decompose: rows {s}:{e} of the data")
        if engine == "cuml":
            return _to_features(from_host(block, xp) if is_file else block, engine)
        return _to_features(block, engine)

    if method == "incremental_pca":
        rows = rows_for_budget(n_features, 4 * 8 * (2 if was_complex else 1), memory_mb)
        spans = _row_slices(n_samples, rows, k)
        for s, e in spans:
            est.partial_fit(load(s, e))
        weights = [est.transform(load(s, e)) for s, e in spans]
        lib = np if engine == "sklearn" else importlib.import_module("cupy")
        W = lib.concatenate(weights, axis=0)
    else:
        X = load(0, n_samples)
        if method == "nmf" and engine == "sklearn" and X.size and float(X.min()) < 0:
            msg = f"decompose: NMF needs non-negative data, got a minimum of {float(X.min())!r}"
            raise DataError(msg)
        W = est.fit_transform(X)
    comp = est.mixing_.T if method == "fast_ica" else est.components_
    comp = _from_features(comp, n_features, was_complex)
    evr = getattr(est, "explained_variance_ratio_", None)
    return Decomposition(
        method=method,
        engine=engine,
        components=_back(comp, xp, device, engine),
        weights=_back(W, xp, device, engine),
        explained_variance_ratio=None if evr is None else _back(evr, xp, device, engine),
        estimator=est,
    )


def _is_complex(a: Array, xp: Namespace) -> bool:
    return bool(xp.isdtype(a.dtype, "complex floating"))


def _back(a: Any, xp: Namespace, device: Any, engine: str) -> Array:
    """Result to the caller's namespace and device (host results of a CPU-only method included)."""
    if engine == "cuml":
        return xp.asarray(a)
    return from_host(np.ascontiguousarray(a), xp, device=device)


def decompose_dataset(
    h5_main: Any,
    method: str = "pca",
    n_components: int = 8,
    *,
    memory_mb: float | None = None,
    seed: int = 0,
    backend: str | None = None,
    override: bool = False,
) -> Any:
    """Run :func:`decompose` on a USID Main dataset and write ``<Source>-Decomposition_NNN``.

    Parameters
    ----------
    h5_main : h5py.Dataset
        USID Main dataset ``(N_pos, N_spec)`` in a writable file.
    method, n_components, memory_mb, seed
        As in :func:`decompose`.
    backend : str, optional
        Compute backend.
    override : bool
        Compute again even when a finished group with the same parameters exists.

    Returns
    -------
    h5py.Group
        Main datasets ``Components`` ``(n_components, N_spec)`` (source's spectroscopic ancillaries)
        and ``Projection`` ``(N_pos, n_components)`` (source's position ancillaries), as pycroscopy.
    """
    from ..io.usid import Dimension, create_results_group, write_main, writing_results

    main = _usid(h5_main)
    if method not in CAPABILITIES:
        msg = f"method must be one of {', '.join(CAPABILITIES)}; got {method!r}"
        raise ValueError(msg)
    params = {"method": method, "n_components": int(n_components), "seed": int(seed)}
    group, existing = create_results_group(main, "Decomposition", params, override=override, status="running")
    if existing:
        return group
    with writing_results(group):
        res = decompose(main, method, n_components, xp=get_namespace(backend), memory_mb=memory_mb, seed=seed)
        comp = Dimension("Component", "a.u.", int(n_components))
        C = to_host(res.components)
        write_main(
            group,
            "Components",
            C,
            comp,
            None,
            main.quantity,
            main.units,
            h5_spec_inds=main.h5_spec_inds,
            h5_spec_vals=main.h5_spec_vals,
        )
        write_main(
            group,
            "Projection",
            to_host(res.weights),
            None,
            comp,
            "Abundance",
            "a.u.",
            h5_pos_inds=main.h5_pos_inds,
            h5_pos_vals=main.h5_pos_vals,
        )
        group.attrs["engine"] = res.engine
    return group
