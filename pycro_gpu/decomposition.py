"""Decomposition of USID data: streamed truncated SVD with rebuild, and PCA / NMF / ICA estimators.

``svd`` works on an in-memory array of any array-API namespace or on an ``h5py.Dataset`` streamed by
position batches (peak memory set by the working-memory budget, never by the file). For the usual
tall-and-skinny USID matrix (many positions, up to a few thousand spectral points) and a few components
it reads the file once: a sketch warm-started from a sample of rows gives ``U``, ``S`` and ``V`` with a
residual-based error estimate, and falls back to the exact float64 Gram matrix (one read for ``S`` and
``V``, one for ``U``) when the estimate misses the tolerance; more components take the Gram method
directly, and wide data (Gram matrix over half the budget) a randomized range finder with power
iterations. See :mod:`pycro_gpu._svd_streamed` for the algorithms, their precision and the choice.

At the dataset level, :func:`svd_dataset` writes the results group ``<Source>-SVD_NNN`` as pycroscopy
does: Main datasets ``U`` (abundance maps, ``(N_pos, k)``, sharing the source's position ancillaries)
and ``V`` (components, ``(k, N_spec)``, sharing its spectroscopic ancillaries) and the plain dataset
``S``. :func:`rebuild` writes the denoised ``Rebuilt_Data`` (a new Main dataset) from chosen components.

:func:`decompose` (PCA, IncrementalPCA, TruncatedSVD, NMF, FastICA) uses cuML on CuPy data where cuML
is installed and scikit-learn otherwise; see :data:`CAPABILITIES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._checks import require_finite
from ._decompose import CAPABILITIES, Decomposition, decompose
from ._row_batches import ArrayRows, HDF5Rows, rows_for_budget
from ._svd_sinks import HDF5USink
from ._svd_streamed import SKETCH_TOL, StreamedSVD, check_svd_arguments, choose_method, streamed_svd
from ._typing import Namespace
from .backend import array_namespace, from_host, get_namespace, to_host
from .errors import DataError, USIDError

__all__ = [
    "CAPABILITIES",
    "Decomposition",
    "SVDResult",
    "choose_method",
    "decompose",
    "decompose_dataset",
    "rebuild",
    "svd",
    "svd_dataset",
]

#: Result of :func:`svd`: ``U`` (n_rows, k), ``S`` (k,), ``V`` (k, n_cols), ``method``, ``info``.
SVDResult = StreamedSVD

SVD_TOOL = "SVD"


def _is_h5_dataset(obj: Any) -> bool:
    import h5py

    return isinstance(obj, h5py.Dataset)


def svd(
    data: Any,
    k: int = 16,
    *,
    method: str = "auto",
    n_iter: int = 4,
    oversample: int = 10,
    tol: float = SKETCH_TOL,
    refine: bool = True,
    memory_mb: float | None = None,
    seed: int = 0,
    xp: Namespace | None = None,
    progress: bool | None = None,
) -> StreamedSVD:
    """Truncated SVD ``data ~= U diag(S) V`` streamed over position batches.

    Parameters
    ----------
    data : (n_positions, n_spectral) array or h5py.Dataset
        Real or complex. Arrays stay in their namespace and device; a dataset is read in batches
        sized by ``memory_mb`` and computed on the configured backend (or ``xp``).
    k : int
        Number of components.
    method : {'auto', 'sketch', 'gram', 'randomized'}
        ``auto`` (see :func:`choose_method`): tall data with ``k + oversample`` at most a quarter of the
        spectral points take ``sketch`` (one read of the data for ``U``, ``S`` and ``V`` when the error
        estimate meets ``tol``, else the Gram method); more components take ``gram`` (one read for
        ``S, V`` from the exact Gram matrix, one for ``U``); wide data, or a Gram matrix over half the
        budget, take ``randomized`` (``n_iter + 2`` reads).
    n_iter, oversample : int
        Power iterations and oversampling of the randomized method (oversampling of the sketch too).
    tol : float
        Sketch: accepted estimate of the singular values' relative error.
    refine : bool
        Rayleigh-Ritz refinement in the ``U`` read (restores the precision lost by squaring).
    memory_mb : float, optional
        Working-memory budget in MiB (default: configuration).
    seed : int
        Seed of the randomized method.
    xp : namespace, optional
        Namespace to compute in (default: the array's, or the configured backend for a dataset).
    progress : bool, optional
        Progress bars (default: configuration).

    Returns
    -------
    SVDResult
        ``U`` (n_positions, k), ``S`` (k,), ``V`` (k, n_spectral) in the compute namespace.

    Examples
    --------
    >>> import numpy as np
    >>> from pycro_gpu.decomposition import svd
    >>> a = np.outer(np.arange(1.0, 7.0), [1.0, 2.0, 2.0])
    >>> res = svd(a, 1, progress=False)
    >>> round(float(res.S[0]), 6) == round(float(np.linalg.norm(a, 2)), 6)
    True
    """
    if _is_h5_dataset(data):
        source = HDF5Rows(data, xp=xp)
    elif hasattr(data, "batches"):
        source = data
    else:
        # in memory, a finiteness pass is cheap; streamed data are checked through the accumulated matrix
        require_finite(data, "svd: data")
        source = ArrayRows(data, xp=xp if xp is not None else array_namespace(data))
    return streamed_svd(
        source,
        k,
        method=method,
        n_iter=n_iter,
        oversample=oversample,
        tol=tol,
        refine=refine,
        memory_mb=memory_mb,
        seed=seed,
        progress=progress,
    )


def _usid(dset: Any) -> Any:
    from .io.usid import USIDataset

    if isinstance(dset, USIDataset):
        return dset
    return USIDataset(dset)


def _result_dtypes(src_dtype: np.dtype) -> tuple[np.dtype, np.dtype]:
    """(stored dtype of U and V, stored dtype of S) for a source dtype."""
    single = src_dtype.itemsize <= (8 if src_dtype.kind == "c" else 4)
    if src_dtype.kind == "c":
        return np.dtype(np.complex64 if single else np.complex128), np.dtype(
            np.float32 if single else np.float64
        )
    real = np.dtype(np.float32 if single else np.float64)
    return real, real


def svd_dataset(
    h5_main: Any,
    k: int = 16,
    *,
    method: str = "auto",
    n_iter: int = 4,
    tol: float = SKETCH_TOL,
    refine: bool = True,
    memory_mb: float | None = None,
    seed: int = 0,
    backend: str | None = None,
    override: bool = False,
    progress: bool | None = None,
) -> Any:
    """Streamed SVD of a USID Main dataset, written as the results group ``<Source>-SVD_NNN``.

    Parameters
    ----------
    h5_main : h5py.Dataset
        USID Main dataset ``(N_pos, N_spec)``, real or complex, in a file opened for writing.
    k : int
        Number of components kept.
    method, n_iter, tol, refine, memory_mb, seed
        As in :func:`svd`.
    backend : {'auto', 'numpy', 'cupy'}, optional
        Compute backend (default: configuration).
    override : bool
        Compute again even if a finished group with the same parameters exists.
    progress : bool, optional
        Progress bars.

    Returns
    -------
    h5py.Group
        ``<Source>-SVD_NNN`` with Main datasets ``U`` ``(N_pos, k)`` (quantity ``Abundance``) and ``V``
        ``(k, N_spec)`` (the source's quantity), dataset ``S`` ``(k,)``, and attributes
        ``num_components``, ``method`` (asked), ``method_used``, ``reads`` (of the source), ``refined``
        and, where the sketch ran, ``sketch_reads`` and ``error_estimate``.
    """
    from .io.usid import Dimension, create_main, create_results_group, write_main, writing_results

    main = _usid(h5_main)
    n_pos, n_spec = main.shape
    if main.dtype.kind not in "fciu":
        msg = f"svd_dataset: {main.name} has dtype {main.dtype}; SVD needs real or complex numbers"
        raise DataError(msg)
    k = check_svd_arguments((n_pos, n_spec), k, method)  # before anything is written
    params = {
        "num_components": k,
        "method": method,
        "n_iter": int(n_iter),
        "tol": float(tol),
        "refine": bool(refine),
    }
    group, existing = create_results_group(main, SVD_TOOL, params, override=override, status="running")
    if existing:
        return group
    xp = get_namespace(backend)
    src_dtype = np.dtype(main.dtype) if main.dtype.kind in "fc" else np.dtype(np.float64)
    uv_dtype, s_dtype = _result_dtypes(src_dtype)
    comp = Dimension("Principal Component", "a.u.", k)
    with writing_results(group):
        h5_u = create_main(
            group,
            "U",
            None,
            comp,
            "Abundance",
            "a.u.",
            uv_dtype,
            h5_pos_inds=main.h5_pos_inds,
            h5_pos_vals=main.h5_pos_vals,
        )
        sink = HDF5USink(h5_u, xp, memory_mb=memory_mb)
        res = streamed_svd(
            HDF5Rows(main, xp=xp),
            k,
            method=method,
            n_iter=n_iter,
            tol=tol,
            refine=refine,
            memory_mb=memory_mb,
            seed=seed,
            u_sink=sink,
            progress=progress,
        )
        V = to_host(res.V).astype(uv_dtype, copy=False)
        write_main(
            group,
            "V",
            V,
            comp,
            None,
            main.quantity,
            main.units,
            h5_spec_inds=main.h5_spec_inds,
            h5_spec_vals=main.h5_spec_vals,
        )
        group.create_dataset("S", data=to_host(res.S).astype(s_dtype, copy=False))
        group.attrs["num_components"] = k
        group.attrs["method_used"] = res.method
        group.attrs["reads"] = int(res.info["reads"])
        group.attrs["refined"] = bool(res.info["refined"])
        for key in ("sketch_reads", "error_estimate"):
            if key in res.info:
                group.attrs[key] = res.info[key]
    return group


def _components_list(components: Any, k: int) -> list[int]:
    if components is None:
        comps = list(range(k))
    elif isinstance(components, (int, np.integer)):
        comps = list(range(int(components)))
    elif isinstance(components, slice):
        comps = list(range(k))[components]
    elif isinstance(components, (Sequence, np.ndarray)):
        comps = [int(c) for c in components]
    else:
        msg = f"components must be None, an int, a slice or a list of ints, got {components!r}"
        raise ValueError(msg)
    if not comps or any(c < 0 or c >= k for c in comps):
        msg = f"components must select among the {k} stored components (0..{k - 1}), got {components!r}"
        raise ValueError(msg)
    return comps


def rebuild(
    h5_svd_group: Any,
    components: Any = None,
    *,
    memory_mb: float | None = None,
    backend: str | None = None,
    progress: bool | None = None,
) -> Any:
    """Write ``U[:, c] diag(S[c]) V[c]`` as the Main dataset ``Rebuilt_Data`` (denoised data).

    Parameters
    ----------
    h5_svd_group : h5py.Group
        A group written by :func:`svd_dataset` (or pycroscopy's SVD) with ``U``, ``S``, ``V``.
    components : int, slice or sequence of int, optional
        Components to keep: ``n`` means the first ``n``; default all.
    memory_mb : float, optional
        Working-memory budget that sets the batch of positions rebuilt at once.
    backend : str, optional
        Compute backend.
    progress : bool, optional
        Progress bar.

    Returns
    -------
    USIDataset
        ``<svd group>/Rebuilt_Data_NNN/Rebuilt_Data``, shape and ancillaries of the source.
    """
    from .io.usid import create_main, writing_results

    for name in ("U", "S", "V"):
        if name not in h5_svd_group:
            msg = f"rebuild: {h5_svd_group.name} has no {name!r} dataset; pass a group written by svd_dataset"
            raise USIDError(msg)
    h5_u, h5_s, h5_v = h5_svd_group["U"], h5_svd_group["S"], h5_svd_group["V"]
    k = int(h5_s.shape[0])
    comps = _components_list(components, k)
    src_ref = h5_svd_group.attrs.get("source_000")
    if src_ref is not None:
        source = _usid(h5_svd_group.file[src_ref])
    else:
        source = _usid(h5_svd_group.file[h5_svd_group.attrs["source_path"]])
    xp = get_namespace(backend)
    S = to_host(h5_s[()]).astype(np.float64)[comps]
    V = np.asarray(h5_v[()])[comps, :]
    cdt = np.complex128 if (V.dtype.kind == "c" or h5_u.dtype.kind == "c") else np.float64
    SV = from_host((S[:, None] * V).astype(cdt), xp)
    used = [n for n in h5_svd_group if n.startswith("Rebuilt_Data_") and n[13:].isdigit()]
    index = max(int(n[13:]) for n in used) + 1 if used else 0
    grp = h5_svd_group.create_group(f"Rebuilt_Data_{index:03d}")
    with writing_results(grp):  # an error or interrupt leaves no half-written Rebuilt_Data behind
        grp.attrs["components_used"] = np.asarray(comps, dtype=np.int64)
        out_dtype = source.dtype if source.dtype.kind in "fc" else np.dtype(np.float32)
        if out_dtype.kind != "c" and cdt is np.complex128:
            out_dtype = np.dtype(np.complex64 if out_dtype.itemsize <= 4 else np.complex128)
        out = create_main(
            grp,
            "Rebuilt_Data",
            None,
            None,
            source.quantity,
            source.units,
            out_dtype,
            h5_pos_inds=source.h5_pos_inds,
            h5_pos_vals=source.h5_pos_vals,
            h5_spec_inds=source.h5_spec_inds,
            h5_spec_vals=source.h5_spec_vals,
        )
        n_pos, n_spec = source.shape
        rows = rows_for_budget(n_spec, 3 * np.dtype(cdt).itemsize, memory_mb)
        u_cols = np.asarray(comps)
        contiguous = list(comps) == list(range(comps[0], comps[-1] + 1))
        for start in range(0, n_pos, rows):
            stop = min(start + rows, n_pos)
            if contiguous:
                u = h5_u[start:stop, comps[0] : comps[-1] + 1]
            else:
                u = h5_u[start:stop, :][:, u_cols]
            block = from_host(np.asarray(u).astype(cdt, copy=False), xp) @ SV
            out[start:stop, :] = to_host(block).astype(out_dtype, copy=False)
    return out


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
    from .io.usid import Dimension, create_results_group, write_main, writing_results

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
