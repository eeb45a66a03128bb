"""Truncated SVD of an array or a streamed HDF5 dataset, and the SVD results group of a USID dataset."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._lib.checks import check_dataset_path, require_finite
from .._lib.typing import Namespace
from ..backend import array_namespace, to_host
from ..errors import DataError
from ..process import JobResult, source_ancillaries
from ..process.rows import ArrayRows, HDF5Rows
from ._svd_sinks import HDF5USink
from ._svd_streamed import (
    SKETCH_TOL,
    StreamedSVD,
    check_svd_arguments,
    check_svd_parameters,
    sketch_columns,
    streamed_svd,
)

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
    check_svd_parameters(
        k=k, method=method, n_iter=n_iter, oversample=oversample, tol=tol, memory_mb=memory_mb, seed=seed
    )
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
    from ..io.usid import USIDataset

    if isinstance(dset, USIDataset):
        return dset
    return USIDataset(dset)


def _uv_dtype(src_dtype: np.dtype) -> np.dtype:
    """Stored dtype of U and V: the source's precision (complex for complex data).

    ``S`` is stored in float64 whatever the source: ``k`` numbers, and the group's ``error_estimate``
    describes them as computed (a float32 copy would add up to 6e-8 of relative rounding to an exact
    Gram or dense result).
    """
    single = src_dtype.itemsize <= (8 if src_dtype.kind == "c" else 4)
    if src_dtype.kind == "c":
        return np.dtype(np.complex64 if single else np.complex128)
    return np.dtype(np.float32 if single else np.float64)


def _source_float_dtype(main: Any) -> np.dtype:
    return np.dtype(main.dtype) if main.dtype.kind in "fc" else np.dtype(np.float64)


def svd_dataset(
    source: Any,
    dataset_path: str | None = None,
    *,
    results: Any = None,
    backend: str | None = None,
    memory_mb: float | None = None,
    executor: Any = None,
    override: bool = False,
    progress: bool | None = None,
    k: int = 16,
    method: str = "auto",
    n_iter: int = 4,
    tol: float = SKETCH_TOL,
    refine: bool = True,
    seed: int = 0,
) -> JobResult:
    """Streamed SVD of a USID Main dataset, written as the results group ``<Source>-SVD_NNN``.

    A multi-pass job (:func:`pycro_gpu.process.run_passes`): resumable after a kill (the state between
    reads is checkpointed in the group), results elsewhere with ``results=``, reads on Dask workers
    with ``executor=``.

    Parameters
    ----------
    source : str, path-like or h5py.Dataset
        USID Main dataset ``(N_pos, N_spec)``, real or complex, or the path of its file.
    dataset_path : str, optional
        Path of the Main dataset when ``source`` is a file path (default: the first ``Raw_Data``).
    results, backend, memory_mb, executor, override, progress
        As in :func:`pycro_gpu.process.run_job`.
    k : int
        Number of components kept.
    method, n_iter, tol, refine, seed
        As in :func:`svd`.

    Returns
    -------
    JobResult
        ``file`` and ``group`` of ``<Source>-SVD_NNN``: Main datasets ``U`` ``(N_pos, k)`` (quantity
        ``Abundance``) and ``V`` ``(k, N_spec)`` (the source's quantity), dataset ``S`` ``(k,)``, and
        attributes ``num_components``, ``method`` (asked), ``method_used``, ``reads`` (of the source),
        ``refined``, ``error_estimate`` and ``converged`` (the estimate meets ``tol``) and, where the sketch
        ran, ``sketch_reads`` and ``sketch_forecast`` (the error it expected from the row sample).
    """
    from ..io.usid import Dimension, create_main, write_main
    from ..process import run_passes
    from ..process.passes import PassRunner

    check_dataset_path(dataset_path, "svd_dataset", "k")
    check_svd_parameters(k=k, method=method, n_iter=n_iter, tol=tol, memory_mb=memory_mb, seed=seed)
    params = {
        "num_components": int(k),
        "method": method,
        "n_iter": int(n_iter),
        "tol": float(tol),
        "refine": bool(refine),
    }

    def validate(main: Any) -> None:
        if main.dtype.kind not in "fciu":
            msg = f"svd_dataset: {main.name} has dtype {main.dtype}; SVD needs real or complex numbers"
            raise DataError(msg)
        check_svd_arguments(main.shape, k, method)

    def components(main: Any) -> Any:
        return Dimension("Principal Component", "a.u.", int(k))

    def setup(group: Any, main: Any, same_file: bool) -> None:
        inds, vals = source_ancillaries(main, group, same_file, "Position")
        uv_dtype = _uv_dtype(_source_float_dtype(main))
        create_main(
            group, "U", None, components(main), "Abundance", "a.u.", uv_dtype,
            early_allocation=True, h5_pos_inds=inds, h5_pos_vals=vals,
        )  # fmt: skip

    def algorithm(runner: PassRunner, checkpoint: Any, group: Any) -> None:
        main = runner.source
        same_file = group.file.id == main.file.id
        uv_dtype = _uv_dtype(_source_float_dtype(main))
        xp = runner.xp
        sink = HDF5USink(group["U"], xp, memory_mb=memory_mb)
        try:
            res = streamed_svd(
                runner, int(k), method=method, n_iter=n_iter, tol=tol, refine=refine, memory_mb=memory_mb,
                seed=seed, u_sink=sink, progress=progress, checkpoint=checkpoint,
            )  # fmt: skip
        except BaseException:
            sink.discard()  # its spill store: a temporary file until closed
            raise
        spec_inds, spec_vals = source_ancillaries(main, group, same_file, "Spectroscopic")
        write_main(
            group, "V", to_host(res.V).astype(uv_dtype, copy=False), components(main), None,
            main.quantity, main.units, h5_spec_inds=spec_inds, h5_spec_vals=spec_vals,
        )  # fmt: skip
        group.create_dataset("S", data=to_host(res.S).astype(np.float64, copy=False))
        group.attrs["num_components"] = int(k)
        group.attrs["method_used"] = res.method
        group.attrs["reads"] = int(res.info["reads"])
        group.attrs["refined"] = bool(res.info["refined"])
        for key in (
            "sketch_reads",
            "sketch_forecast",
            "error_estimate",
            "angle_estimate",
            "converged",
            "arithmetic",
            "single_precision_error",
        ):
            if key in res.info:
                group.attrs[key] = res.info[key]

    width = sketch_columns(int(k), 10, widened=method == "auto")  # streamed_svd's default oversample
    return run_passes(
        SVD_TOOL,
        params, algorithm, source, dataset_path, setup=setup, validate=validate,
        equivalent=lambda main, parent: foreign_svd_group(main, parent, int(k), params),
        results=results, backend=backend, executor=executor, override=override,
        # U, V, S and the checkpointed sketches (k + 10 columns, 2 k + 10 for auto's randomized method),
        # complex128 at most
        output_bytes=lambda main: 16 * (main.shape[0] + 3 * main.shape[1]) * width,
    )  # fmt: skip


def foreign_svd_group(main: Any, parent: Any, k: int, parameters: dict[str, Any]) -> Any:
    """A finished SVD group of ``k`` components written by pycroscopy / pyUSID next to ``main``, or None.

    pycroscopy's SVD writes ``<Source>-SVD_NNN`` with ``U``, ``S``, ``V`` and the attributes ``tool``
    and ``num_components`` (no ``parameters_json``, which only pycro_gpu writes) and marks it finished
    with ``last_pixel`` (or a full ``completed_positions``). Such a group holds the same truncated SVD, so
    it is reused instead of computed again; a finished pycro_gpu group with the same parameters comes
    first (None is returned so that it is found the usual way).
    """
    from ..io.usid import find_results

    if find_results(main, SVD_TOOL, parameters, h5_parent=parent, status="complete"):
        return None
    n_pos, n_spec = main.shape
    for g in find_results(main, SVD_TOOL, None, h5_parent=parent, status=None):
        if "parameters_json" in g.attrs or not all(n in g for n in ("U", "S", "V")):
            continue
        if int(np.asarray(g.attrs.get("num_components", -1)).reshape(-1)[0]) != k:
            continue
        if g["U"].shape != (n_pos, k) or g["S"].shape != (k,) or g["V"].shape != (k, n_spec):
            continue
        done = int(np.asarray(g.attrs.get("last_pixel", 0)).reshape(-1)[0]) >= n_pos
        status = g.get("completed_positions")
        if status is not None and status.shape == (n_pos,):
            done = done or bool(np.all(status[()] == 1))
        if done:
            return g
    return None
