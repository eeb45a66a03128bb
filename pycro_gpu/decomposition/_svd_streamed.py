"""Truncated SVD of a matrix streamed by row batches, written against the array API.

Four algorithms, chosen by shape and memory budget (``method="auto"``, see :func:`choose_method`):

``"sketch"`` (tall and skinny with ``l = k + oversample`` at most a quarter of the columns)
    Warm-started subspace iteration that usually needs **one read** of the data for ``S``, ``V`` and
    ``U``. A sample of rows spread over the whole matrix (:meth:`sample`, 16 blocks, ~8k rows) gives the
    top right singular vectors of the sample; with a few random columns for safety they form the test
    matrix ``Omega`` (``n x l``, orthonormal). One read then accumulates ``Z = A^H (A Omega)`` and keeps
    the sketch ``Y = A Omega`` (``n_rows x l``, in the U sink). With ``T = Omega^H Z = Y^H Y =
    E diag(lam) E^H``, ``Q = Y E lam^-1/2`` is an orthonormal basis of the sketch and
    ``B = Q^H A = lam^-1/2 E^H Z^H`` (no second read); the SVD of the small ``B`` gives ``S``, ``V`` and
    ``U = Q U_B``, written by one pass over ``Y`` - randomized SVD with one power step's worth of
    accuracy in a single read.
    *Error estimate.* The Ritz pairs of ``A^H A`` in ``span(Omega)`` have residuals
    ``rho_i = ||Z e_i - lam_i Omega e_i||`` computable from ``Z`` alone; ``rho_i^2 / (2 lam_i delta_i)``
    (``delta_i`` the gap to the other Ritz values) estimates their relative singular-value error, and
    the returned values (Ritz values one power step further, in ``span(Z)``) were at least as accurate in
    every test (``tests/test_svd_sketch.py``). When the estimate exceeds ``tol`` another read follows
    with ``Omega <- qr(Z)``; ``method="auto"`` instead falls back to the Gram method as soon as the next
    power step is not expected to reach ``tol`` (slowly decaying spectra, ``k`` far into the noise), and
    before any read when a forecast on the row sample (the sketch run on it: warm start from its even
    rows, one read of its odd rows) expects two reads not to reach it.
``"gram"`` (tall and skinny: rows >= 4 x columns and the ``n x n`` Gram matrix fits half the budget)
    One read of the data accumulates ``G = A^H A`` in float64 (complex128 for complex data);
    ``eigh(G)`` gives ``S`` and ``V``. A second read computes ``U = A V / S``. Exact (no sketching),
    whatever the spectrum; its ``O(n_rows n^2)`` arithmetic is what makes it slower than one read.
``"randomized"`` (wide or square data, or a Gram matrix that would not fit)
    Range finding on the row space with power iterations: each read accumulates ``Y = A^H (A Q)``
    (``n x l`` with ``l = k + oversample``) and orthonormalises it, ``Q <- qr(Y)``; after ``n_iter + 1``
    reads the Rayleigh-Ritz projection ``Q^H A^H A Q`` gives ``S`` and ``V``, and the rows ``A Q`` of the
    last read, kept, give ``U``. Where the row sample is small against the data the start ``Q`` is
    warm: the range finder run in memory on the sample (:func:`~._svd_sketch.range_start`, with
    Gaussian columns for what the sample misses), which saves a read.
    Under ``method="auto"`` the reads stop as soon as the error estimate (as the sketch's) meets ``tol``
    and the estimated angle of the singular subspace ``ANGLE_TOL``.
``"dense"`` (data whose Gram matrix does not fit, or wide data, where the whole matrix fits the budget)
    One read of the whole matrix and LAPACK's SVD of it: exact up to rounding (the wide EELS spectrum
    images of a few hundred spectra take milliseconds).

Precision. Squaring the matrix (Gram or Rayleigh-Ritz of ``A^H A``) limits the relative accuracy of a
singular value to about ``eps * (s_1 / s_i)**2``. The Gram and randomized methods therefore also
accumulate, in the ``U`` read, the small ``k x k`` Gram matrix ``H`` of the normalised ``U = A V / S``
(well conditioned, close to the identity) and refine: with ``H = L L^H`` (Cholesky),
``A V = Q (L^H diag(S))`` for an orthonormal ``Q``, and the SVD of the ``k x k`` matrix
``L^H diag(S) = P Sigma Z^H`` gives ``S <- Sigma``, ``V <- V Z``, ``U <- U C`` with
``C = diag(S) Z Sigma^-1``: singular values then carry an error of about ``eps * s_1 / s_i`` (not
squared), at the cost of one pass over the small ``U`` (``n_rows x k``). The sketch re-orthonormalises
``U`` the same way when ``U^H U`` strays from the identity; for singular values spanning more than
``1e6`` use ``method="gram"``.

Single precision. Float32 and complex64 data multiply in their own precision in the randomized
method's reads (range-finder products, and ``U``; sums over batches stay in double precision) when the
error this adds, estimated on a row sample (``u s_1 / s_k``, or the measured difference of single- and
double-precision products of the sample if larger), takes at most half of ``tol``: two to three times
less arithmetic and memory traffic per read. The estimate is added to ``error_estimate`` and recorded as
``single_precision_error``; ``arithmetic`` records the choice. Data whose spectrum makes the rounding
visible multiply in double precision, as does every other dtype, and the sketch (its ``U = Y C``
amplifies rounding in ``Y`` through the noise-floor Ritz values: 1e-5 of ``s_1`` measured), Gram and
dense methods always do - except a first sketch read that the row sample's forecast expects to miss
``tol`` by far (``FORECAST_MARGIN``): it only points the second read (``Omega <- qr(Z)``), so it keeps
no rows and multiplies single-precision data in their own precision. Under ``auto`` the randomized
method samples ``2 k + oversample`` columns: its subspace angle converges as
``(s_{l+1} / s_k)^(2 reads)``, slowly on spectra that decay slowly.

Threads. On NumPy the reads are prefetched on a worker thread; the light passes (sketch, range finder,
``U``) leave that thread a core of its own by capping BLAS threads at ``cores - 1`` (on two cores this
makes a sketch pass cost about one read instead of two). The Gram pass, arithmetic-bound, keeps them all.

Memory: the Gram matrix (or the ``n x l`` sketch matrices) plus two read buffers and one compute copy
of a batch (sized from the budget), and ``U`` (or the sketch ``Y``) wherever the caller's sink keeps it;
the data never sits in memory as a whole.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from .._config import budget_mb, rows_for_budget
from .._lib.checks import (
    check_choice,
    check_int,
    check_memory_mb,
    check_real,
    check_seed,
    require_finite,
)
from .._lib.decomposition_methods import METHODS, SKETCH_TOL
from .._lib.linalg import herm, hermitian_part
from .._lib.typing import Array, Namespace
from ..backend import device_of, is_numpy_namespace, to_host
from ..errors import ParameterError
from ..process.passes import NoCheckpoint, PassSpec, run_pass
from ..process.rows import n_batches
from ._svd_sinks import ArrayUSink

__all__ = ["ArrayUSink", "StreamedSVD", "choose_method", "streamed_svd"]

#: ``method="auto"`` takes the Gram or sketch path only for matrices with at least this many rows per column.
GRAM_MIN_ASPECT = 4
#: ``method="auto"`` sketches when ``k + oversample`` is at most this fraction of the columns: below it,
#: two products with ``l`` columns cost less arithmetic than the Gram matrix.
SKETCH_MAX_FRACTION = 0.25
#: Rows of the sample that warm-starts the sketch (spread over the matrix in 16 blocks).
SKETCH_SAMPLE_ROWS = 8192
#: ``method="auto"``'s randomized reads stop early only when the estimated angle (radians) between the
#: top-k right singular subspace and the exact one is below this too (singular values converge twice as
#: fast as vectors: an error of 1e-5 in the values allows angles of ~3e-3).
ANGLE_TOL = 1e-4
#: Single-precision data take single-precision products in the randomized method's reads (their sums over
#: batches stay in double precision) when the error those products add, estimated on a row sample
#: (:func:`~._svd_sketch.single_precision_error`), takes at most this share of ``tol``; the estimate is
#: then added to the reported ``error_estimate``.
SINGLE_PRECISION_SHARE = 0.5
#: Floating-point operations per data element of a light read (two products with ``l`` columns: ``4 l``,
#: four times that for complex data) from which the read is bound by arithmetic and BLAS keeps every core:
#: complex BEPS data with ``l = 42`` (672) ran 1.4x faster on two cores uncapped, float32 data with
#: ``l`` of 20 and 42 (80, 168) no faster.
ARITHMETIC_BOUND_FLOPS = 256
#: On NumPy, batches of the light passes (sketch, range finder, ``U``) hold at most this many bytes: the
#: products then run on cache-resident data while the reader thread fills the other buffer.
LIGHT_BATCH_BYTES = 16 * 2**20


@dataclass
class StreamedSVD:
    """Result of :func:`streamed_svd`.

    Attributes
    ----------
    U : (n_rows, k) array or None
        Left singular vectors (abundance maps); ``None`` when written to a sink.
    S : (k,) array
        Singular values, descending.
    V : (k, n_cols) array
        Right singular vectors as rows (``Vh`` of ``numpy.linalg.svd``).
    method : str
        Algorithm used: ``"sketch"``, ``"gram"``, ``"randomized"`` or ``"dense"``.
    info : dict
        Batch rows, number of reads of the data, whether refinement was applied.
    """

    U: Array | None
    S: Array
    V: Array
    method: str
    info: dict[str, Any] = field(default_factory=dict)


def _compute_dtype(np_dtype: np.dtype, xp: Namespace) -> Any:
    return xp.complex128 if np.dtype(np_dtype).kind == "c" else xp.float64


def _itemsize(xp: Namespace, dtype: Any) -> int:
    return 16 if dtype == xp.complex128 else 8


def check_svd_arguments(shape: tuple[int, int], k: Any, method: str) -> int:
    """Return ``k`` as an int after checking it and ``method`` against a matrix of ``shape``.

    Raises
    ------
    ParameterError
        ``k`` not an integer or outside ``1 .. min(shape)``, or an unknown ``method`` (the message
        names the bad value).
    """
    m, n = int(shape[0]), int(shape[1])
    check_choice(method, "method", METHODS)
    k = check_int(k, "k", minimum=1)
    if k > min(m, n):
        msg = f"k must be between 1 and min(n_rows, n_cols) = {min(m, n)}, got {k}"
        raise ParameterError(msg)
    return k


def check_svd_parameters(
    *,
    k: Any,
    method: Any,
    n_iter: Any,
    oversample: Any = 0,
    tol: Any,
    memory_mb: Any,
    seed: Any,
) -> None:
    """Check the type and range of every scalar parameter of the SVD before anything is read.

    ``k``, ``n_iter``, ``oversample`` and ``seed`` are integers (``k >= 1``, the others ``>= 0``;
    ``k <= min(shape)`` is checked against the data by :func:`check_svd_arguments`), ``method`` one of
    :data:`METHODS`, ``tol`` in ``[0, 1]`` and ``memory_mb`` ``None`` or a positive number.

    Raises
    ------
    ParameterError
        The first parameter that is wrong, named with its value.
    """
    check_int(k, "k", minimum=1)
    check_choice(method, "method", METHODS)
    check_int(n_iter, "n_iter", minimum=0)
    check_int(oversample, "oversample", minimum=0)
    check_real(tol, "tol", minimum=0, maximum=1)
    check_memory_mb(memory_mb)
    check_seed(seed)


def _gram_fits(shape: tuple[int, int], np_dtype: Any, memory_mb: float | None) -> bool:
    """Tall (``GRAM_MIN_ASPECT``) and the Gram matrix with its ``eigh`` workspace fits half the budget."""
    m, n = int(shape[0]), int(shape[1])
    item = 16 if np.dtype(np_dtype).kind == "c" else 8
    return 3 * n * n * item <= 0.5 * budget_mb(memory_mb) * 2**20 and m >= GRAM_MIN_ASPECT * n


def _dense_fits(shape: tuple[int, int], np_dtype: Any, memory_mb: float | None) -> bool:
    """The whole matrix in the compute dtype, with the SVD's factors and workspace (about three copies),
    fits half of the budget."""
    m, n = int(shape[0]), int(shape[1])
    item = 16 if np.dtype(np_dtype).kind == "c" else 8
    return 3 * m * n * item <= 0.5 * budget_mb(memory_mb) * 2**20


def choose_method(
    shape: tuple[int, int],
    np_dtype: Any,
    memory_mb: float | None = None,
    *,
    k: int | None = None,
    oversample: int = 10,
) -> str:
    """Pick ``"sketch"``, ``"gram"``, ``"dense"`` or ``"randomized"`` for a matrix of ``shape`` under the
    memory budget.

    Tall data (at least ``GRAM_MIN_ASPECT`` times more rows than columns) whose ``n_cols x n_cols`` Gram
    matrix with its eigen-decomposition workspace (about three such matrices) fits half of the budget
    take ``"sketch"`` when ``k + oversample`` is at most ``SKETCH_MAX_FRACTION`` of the columns (one read
    of the data when its error estimate meets the tolerance, the Gram method otherwise) and ``"gram"``
    when more components are asked for (or ``k`` is not given). Everything else takes ``"dense"`` when
    the whole matrix with the SVD's factors and workspace (about three copies) fits half of the budget,
    else ``"randomized"``: on wide or square data the Gram matrix and its ``O(n_cols^3)``
    eigen-decomposition cost far more than a few range-finder passes (a 144 x 1536 matrix: 1.2 s
    against 0.013 s for k = 8).
    """
    if k is not None:
        check_int(k, "k", minimum=1)
    check_int(oversample, "oversample", minimum=0)
    check_memory_mb(memory_mb)
    if not _gram_fits(shape, np_dtype, memory_mb):
        return "dense" if _dense_fits(shape, np_dtype, memory_mb) else "randomized"
    n = int(shape[1])
    if k is not None and min(n, int(k) + max(0, int(oversample))) <= SKETCH_MAX_FRACTION * n:
        return "sketch"
    return "gram"


def _top_eigh(G: Array, k: int, xp: Namespace) -> tuple[Array, Array]:
    """Top-``k`` eigenpairs of a Hermitian PSD matrix: ``(S, V)`` with ``S = sqrt(lambda)`` descending."""
    w, E = xp.linalg.eigh(G)
    w = xp.flip(w)[:k]
    E = xp.flip(E, axis=1)[:, :k]
    S = xp.sqrt(xp.clip(w, 0.0, None))
    return S, E


def _check_finite(a: Array, xp: Namespace) -> None:
    # NaN or inf anywhere in the data propagates into the accumulated Gram / range-finder matrix
    require_finite(a, "data (seen in the SVD's accumulated matrix)")


def _phase_fix(V: Array, xp: Namespace) -> Array:
    """Unit factors ``c`` (k,) that make the largest-magnitude entry of each column of ``V`` real positive."""
    mag = xp.abs(V)
    idx = xp.argmax(mag, axis=0)
    pick = xp.take_along_axis(V, xp.reshape(idx, (1, -1)), axis=0)[0, :]
    if xp.isdtype(V.dtype, "complex floating"):
        return xp.conj(pick) / xp.astype(xp.abs(pick), V.dtype)
    return 1.0 - 2.0 * xp.astype(pick < 0, V.dtype)


def sketch_columns(k: int, oversample: int, *, widened: bool) -> int:
    """Columns of the sketch or range finder for ``k`` components (before capping at the matrix's):
    ``k + oversample``, or ``2 k + oversample`` ``widened`` (``method="auto"``'s randomized method).

    The subspace angle converges as ``(s_{l+1} / s_k)^(2 reads)``: on slowly decaying spectra (BEPS)
    ``k + 10`` columns left it above ``ANGLE_TOL`` after five reads, ``2 k + 10`` met it in four or five.
    """
    return (2 * int(k) if widened else int(k)) + max(0, int(oversample))


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _light_pass_threads(source: Any, xp: Namespace, l_cols: int = 0) -> Callable[[], Any]:
    """Context factory capping BLAS threads at ``cores - 1`` while a prefetching reader runs beside them.

    Light BLAS work (products with ``l << n`` columns) and the reader thread then each have their own
    cores instead of oversubscribing them; never raises a cap the caller already set. Reads whose two
    products with ``l_cols`` columns cost ``ARITHMETIC_BOUND_FLOPS`` or more per element are bound by
    arithmetic, not by the reader: they keep every core.
    """
    if not (is_numpy_namespace(xp) and getattr(source, "prefetch", False)):
        return contextlib.nullcontext
    if 4 * l_cols * (4 if np.dtype(source.dtype).kind == "c" else 1) >= ARITHMETIC_BOUND_FLOPS:
        return contextlib.nullcontext
    cores = _usable_cores()
    if cores < 2:
        return contextlib.nullcontext
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(user_api="blas")
    current = [int(info["num_threads"]) for info in blas.info()]
    limit = min([cores - 1, *current])
    if not current or limit >= max(current):
        return contextlib.nullcontext
    return lambda: blas.limit(limits=limit)


def streamed_svd(
    source: Any,
    k: int,
    *,
    method: str = "auto",
    n_iter: int = 4,
    oversample: int = 10,
    tol: float = SKETCH_TOL,
    refine: bool = True,
    memory_mb: float | None = None,
    seed: int = 0,
    u_sink: Any = None,
    compute_u: bool = True,
    progress: bool | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    checkpoint: Any = None,
) -> StreamedSVD:
    """Truncated SVD ``A ~= U diag(S) V`` of a row source (see :mod:`pycro_gpu.process.rows`).

    Parameters
    ----------
    source : row source
        ``shape (n_rows, n_cols)``, ``dtype``, ``xp``, ``batches(rows)`` and, optionally,
        ``sample(count)`` (else the sketch warm-starts from the first batch).
    k : int
        Number of singular triplets, ``1 <= k <= min(n_rows, n_cols)``.
    method : {'auto', 'sketch', 'gram', 'randomized', 'dense'}
        See the module notes; ``auto`` uses :func:`choose_method`, and falls back from the sketch to the
        Gram method when the sketch's error estimate is not expected to reach ``tol`` in one more read.
    n_iter : int
        Power iterations of the randomized method (it reads the data ``n_iter + 1`` times for ``S, V``);
        the explicit sketch method reads at most ``n_iter + 1`` times.
    oversample : int
        Extra columns of the randomized range finder and of the sketch.
    tol : float
        Sketch method: accepted estimate of the relative error of the singular values (module notes).
    refine : bool
        Refine ``S``, ``V`` and ``U`` in the ``U`` pass (see module notes).
    memory_mb : float, optional
        Working-memory budget; default ``get_config()["memory_mb"]``.
    seed : int
        Seed of the random test matrix (randomized and sketch methods).
    u_sink : object, optional
        Receives ``U`` (see :mod:`pycro_gpu.decomposition._svd_sinks`). Default: collect ``U`` in memory.
    compute_u : bool
        Skip the ``U`` pass (and refinement) when False.
    progress : bool, optional
        Progress bar (default from the configuration).
    on_batch : callable, optional
        Called as ``on_batch(done_rows, n_rows)`` after every batch of every pass.
    checkpoint : Checkpoint, optional
        Keeps the state between reads (:class:`pycro_gpu.process.passes.Checkpoint`) so that a killed
        job resumes; stages: ``sketch`` (through ``U``), ``gram``, ``range-start``, ``range-i``, ``U``.

    Returns
    -------
    StreamedSVD
        ``info`` holds ``batch_rows``, ``n_batches``, ``reads`` (of the data), ``refined`` and, when the
        sketch ran, ``sketch_reads``, ``error_estimate`` (largest, last read) and ``converged``.

    Warns
    -----
    RuntimeWarning
        The error estimate of the result is above ``tol`` (``info["converged"]`` is False): the
        randomized method's power iterations or the sketch's reads did not reach it.
    """
    check_svd_parameters(
        k=k, method=method, n_iter=n_iter, oversample=oversample, tol=tol, memory_mb=memory_mb, seed=seed
    )
    xp = source.xp
    m, n = source.shape
    k = check_svd_arguments((m, n), k, method)
    auto = method == "auto"
    if auto:
        method = choose_method((m, n), source.dtype, memory_mb, k=k, oversample=oversample)
    cdt = _compute_dtype(source.dtype, xp)
    device = getattr(source, "device", None)
    l_cols = min(n, sketch_columns(k, oversample, widened=auto and method == "randomized"))
    if method == "randomized" and n_iter < 1:
        msg = f"n_iter must be >= 1 for the randomized method, got {n_iter!r}"
        raise ParameterError(msg)
    rows, light_rows = _plan_rows(source, method, k, l_cols, memory_mb, cdt)
    first = rows if method == "gram" else light_rows  # rows per batch of the first read
    info: dict[str, Any] = {
        "batch_rows": first,
        "n_batches": n_batches(m, first),
        "reads": 0,
        "refined": False,
    }
    light = _light_pass_threads(source, xp, l_cols)
    ckpt = NoCheckpoint() if checkpoint is None else checkpoint
    cdt_name = "complex128" if cdt == xp.complex128 else "float64"

    def read(desc: str, spec: PassSpec, *, heavy: bool = False, on_rows: Any = None) -> dict[str, Array]:
        size = rows if heavy else light_rows
        with contextlib.nullcontext() if heavy else light():
            out = run_pass(
                source, spec, rows=size, desc=desc, progress=progress, on_rows=on_rows, on_batch=on_batch
            )
        info["reads"] += 1
        return out

    sink = ArrayUSink(xp) if u_sink is None else u_sink
    if method == "sketch":

        def sketch_stage() -> dict[str, Any]:
            out = _run_sketch(
                source, k, l_cols, xp=xp, cdt=cdt, device=device, seed=seed, tol=tol, memory_mb=memory_mb,
                max_reads=(2 if auto else 1 + max(0, int(n_iter))), fallback=auto, info=info,
                sink=sink if compute_u else None, read=read,
            )  # fmt: skip
            if out is None:
                sink.discard()  # the estimate says the spectrum needs more reads than the Gram method
                return {"fallback": True, **_info_payload(info)}
            S, V, C = out
            c = _phase_fix(V, xp)
            V, C = V * xp.reshape(c, (1, -1)), C * xp.reshape(c, (1, -1))
            if compute_u:
                H = sink.apply(C, gram=refine)
                if refine and H is not None and bool(xp.all(S > 0)):
                    _reorthonormalise(H, sink, xp, info)
            return {"fallback": False, "S": S, "V": V, **_info_payload(info)}

        with light():  # the sample's products too: threaded OpenBLAS on busy cores ran them 20x slower
            state = ckpt.stage("sketch", sketch_stage)
        _restore_info(state, info)
        if not state["fallback"]:
            U = sink.U if (u_sink is None and compute_u) else None
            return StreamedSVD(U, state["S"], herm(state["V"], xp), method, info)
        method = "gram"

    if method == "dense":
        state = ckpt.stage(
            "dense", lambda: _dense_stage(source, k, xp, cdt_name, sink, read, info, compute_u)
        )
        _restore_info(state, info)
        U = sink.U if (u_sink is None and compute_u) else None
        return StreamedSVD(U, state["S"], herm(state["V"], xp), method, info)
    if method == "gram":

        def gram_stage() -> dict[str, Any]:
            info["arithmetic"] = cdt_name  # exact up to rounding: double precision throughout
            spec = PassSpec(partial(gram_batch, cdt=cdt_name), sums={"G": ((n, n), np.dtype(cdt_name))})
            G = gram_result(read("SVD: Gram matrix", spec, heavy=True)["G"], xp)
            _check_finite(G, xp)
            S, V = _top_eigh(G, k, xp)
            # exact up to rounding: eps (s_1 / s_k)^2 from squaring, eps s_1 / s_k once refined with U
            _record_error(info, _rounding_error(S, squared=not refine), tol)
            return {"S": S, "V": V, **_info_payload(info)}

        state = ckpt.stage("gram", gram_stage)
    else:

        def start_stage() -> dict[str, Any]:
            from ._svd_sketch import range_start

            smp = _budget_sample(source, xp, cdt, memory_mb, min_rows=l_cols)
            Q = range_start(smp, m, xp, k, l_cols, cdt=cdt, device=device, seed=seed)
            _range_arithmetic(source.dtype, smp, Q, k, xp, tol, light_rows, info)
            return {"Q": Q, **_info_payload(info)}

        with light():  # the sample's products: as the sketch's
            start = ckpt.stage("range-start", start_stage)
        _restore_info(start, info)
        state = _range_finder(
            xp.asarray(start["Q"]), k, n_iter, xp, cdt_name, ckpt, read, info, tol,
            stop_early=auto, sink=sink if compute_u else None,
        )  # fmt: skip
    _restore_info(state, info)
    S, V = state["S"], state["V"]
    c = _phase_fix(V, xp)
    V = V * xp.reshape(c, (1, -1))
    if not compute_u:
        return _warn_unless_converged(StreamedSVD(None, S, herm(V, xp), method, info), tol)
    # the sink holds the rows A Q of the range finder's last read: U without another read
    kept = state["Z"] * xp.reshape(c, (1, -1)) if method == "randomized" else None
    state = ckpt.stage("U", lambda: _u_stage(S, V, k, xp, cdt, cdt_name, sink, refine, read, info, kept=kept))
    _restore_info(state, info)
    U = sink.U if u_sink is None else None
    return _warn_unless_converged(StreamedSVD(U, state["S"], herm(state["V"], xp), method, info), tol)


def _warn_unless_converged(result: StreamedSVD, tol: float) -> StreamedSVD:
    """``result``, after a warning when the Gram or randomized method's estimate is above ``tol`` (the
    sketch warns itself; the dense method is exact)."""
    info = result.info
    if not info.get("converged", True):
        warnings.warn(
            f"{result.method} SVD: estimated relative error of the singular values "
            f"{info.get('error_estimate', float('nan')):.1e} is above tol={tol:g}; raise n_iter, or use "
            "method='gram' (tall data) or 'dense' (data that fit in memory)",
            RuntimeWarning,
            stacklevel=3,
        )
    return result


def _plan_rows(
    source: Any, method: str, k: int, l_cols: int, memory_mb: float | None, cdt: Any
) -> tuple[int, int]:
    """Rows per batch of the heavy reads (Gram) and of the light ones (sketch, range finder, ``U``).

    The budget holds two read buffers and a compute copy of a batch plus the method's matrices (Gram
    matrix with its eigensolver workspace, or the sketch matrices); batches are whole HDF5 chunks. On
    NumPy the light reads use batches of at most ``LIGHT_BATCH_BYTES`` (cache-resident products).
    """
    xp = source.xp
    m, n = source.shape
    citem = _itemsize(xp, cdt)
    store = np.dtype(source.dtype).itemsize
    if method == "gram":
        reserve, l_batch = 3 * n * n * citem, k
    elif method == "sketch":
        reserve, l_batch = 3 * n * l_cols * citem, l_cols
    else:
        reserve, l_batch = 4 * n * l_cols * citem, l_cols
    rows = rows_for_budget(n, 2 * store + citem + 2 * l_batch * citem / n, memory_mb, reserve=reserve)
    rows = max(rows, 32)  # a budget spent on the Gram matrix (forced method) still reads usable batches
    chunk = int(getattr(source, "chunk_rows", 1))
    if chunk > 1 and rows > chunk:  # whole HDF5 chunks per read
        rows = (rows // chunk) * chunk
    rows = min(rows, m)
    light_rows = rows
    if is_numpy_namespace(xp):
        step = max(chunk, 1)
        light_rows = min(rows, max(step, LIGHT_BATCH_BYTES // (n * store) // step * step))
    return rows, light_rows


def _range_finder(
    Q: Array,
    k: int,
    n_iter: int,
    xp: Namespace,
    cdt_name: str,
    ckpt: Any,
    read: Callable[..., dict[str, Array]],
    info: dict[str, Any],
    tol: float,
    *,
    stop_early: bool = False,
    sink: Any = None,
) -> dict[str, Any]:
    """``S`` and ``V`` of the randomized method: up to ``n_iter + 1`` power reads from the orthonormal
    start ``Q`` (``n x l``, see :func:`~._svd_sketch.range_start`), each a checkpointed stage.

    The last read gives ``Y = A^H A Q``: the residuals of the Ritz pairs of ``Q^H Y`` estimate the
    relative error of the singular values, as for the sketch (recorded as ``error_estimate``). With
    ``stop_early`` (``method="auto"``) the estimate is computed after every read and the reads stop as
    soon as it meets ``tol`` and the estimated subspace angle ``ANGLE_TOL`` (a resumed run restores the
    same reads and stops at the same one); ``angle_estimate`` is recorded. ``info["arithmetic"]`` names
    the dtype of the reads' batch products (the sums stay in ``cdt_name``).

    With a ``sink``, every read also writes its rows ``A Q`` there (the previous read's are discarded),
    and the result's ``Z`` (``V = Q Z``) turns those of the last read into ``U`` without another read.
    A run that resumes after the last read (restored from the checkpoint) reads ``A Q`` once more, the
    same products bit for bit.
    """
    from ._svd_sketch import ritz_estimate, subspace_angle_estimate

    n, l_cols = int(Q.shape[0]), int(Q.shape[1])
    arith = info["arithmetic"]
    dt = np.dtype(cdt_name)
    T = None
    ran: list[int] = []  # the reads that ran here (the others came from the checkpoint)
    for it in range(n_iter + 1):

        def range_stage(Q: Array = Q, it: int = it) -> dict[str, Any]:
            Qa = xp.astype(Q, getattr(xp, arith))
            keep = sink is not None
            spec = PassSpec(
                partial(power_batch, Q=Qa, cdt=arith, keep_rows=keep),
                sums={"Y": ((n, l_cols), dt)},
                rows={"AQ": ((l_cols,), np.dtype(arith))} if keep else {},
            )
            if keep:
                sink.discard()
            on_rows = (lambda s, e, r: sink.write(s, e, r["AQ"])) if keep else None
            Y = read(f"SVD: range finder {it + 1}/{n_iter + 1}", spec, on_rows=on_rows)["Y"]
            _check_finite(Y, xp)
            ran.append(it)
            return {"Y": Y, **_info_payload(info)}

        step = ckpt.stage(f"range-{it + 1}", range_stage)
        _restore_info(step, info)
        if it == n_iter or stop_early:
            lam, _E, est, R = ritz_estimate(herm(step["Y"], xp), Q, k, xp)
            angle = subspace_angle_estimate(R, lam)
            # a converged Ritz estimate tends to 0: double-precision rounding of A^H A Q stays
            rounding = _rounding_error(xp.sqrt(lam[:k]), squared=True)
            worst = float(np.max(est)) + _rounding_share(info) + rounding
            if it == n_iter or (worst <= tol and angle <= ANGLE_TOL):
                T = hermitian_part(herm(Q, xp) @ step["Y"], xp)
                _record_error(info, worst, tol)
                info["angle_estimate"] = angle
                break
        Q, _ = xp.linalg.qr(step["Y"])
    S, Z = _top_eigh(T, k, xp)
    if sink is not None and not (ran and ran[-1] == it):  # the sink holds an earlier read's rows, or none
        sink.discard()
        Qa = xp.astype(Q, getattr(xp, arith))
        spec = PassSpec(partial(range_rows_batch, Q=Qa, cdt=arith), rows={"AQ": ((l_cols,), np.dtype(arith))})
        read("SVD: rows of the last range read", spec, on_rows=lambda s, e, r: sink.write(s, e, r["AQ"]))
    return {"S": S, "V": Q @ Z, "Z": Z}


def _dense_stage(
    source: Any,
    k: int,
    xp: Namespace,
    cdt_name: str,
    sink: Any,
    read: Callable[..., dict[str, Array]],
    info: dict[str, Any],
    compute_u: bool,
) -> dict[str, Any]:
    """One read of the whole matrix and LAPACK's SVD of it: exact (backward stable), for data that fit."""
    m, n = source.shape
    dt = np.dtype(cdt_name)
    info["arithmetic"] = cdt_name
    parts: list[Array] = []
    spec = PassSpec(partial(rows_batch, cdt=cdt_name), rows={"A": ((n,), dt)})
    read("SVD: data", spec, on_rows=lambda s, e, r: parts.append(xp.asarray(r["A"])))
    A = parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)
    _check_finite(A, xp)
    U, S, Vh = xp.linalg.svd(A, full_matrices=False)
    U, S, V = U[:, :k], S[:k], herm(Vh[:k, :], xp)
    c = _phase_fix(V, xp)
    V, U = (
        V * xp.reshape(c, (1, -1)),
        U * xp.reshape(xp.conj(c) if xp.isdtype(c.dtype, "complex floating") else c, (1, -1)),
    )
    if compute_u:
        sink.write(0, m, U)
        sink.apply(xp.eye(k, dtype=U.dtype, device=device_of(U)))
    _record_error(info, _rounding_error(S, squared=False), None)
    return {"S": S, "V": V, **_info_payload(info)}


def _rounding_error(S: Array, *, squared: bool) -> float:
    """Relative rounding error of the smallest kept singular value: ``eps s_1 / s_k`` (squared for Gram)."""
    s = np.asarray(to_host(S), dtype=np.float64)
    eps = float(np.finfo(np.float64).eps)
    if s.size == 0 or s[0] == 0:
        return 0.0
    ratio = s[0] / s[-1] if s[-1] > 0 else np.inf
    return float(min(1.0, eps * (ratio**2 if squared else ratio)))


def _record_error(info: dict[str, Any], estimate: float, tol: float | None) -> None:
    info["error_estimate"] = float(estimate)
    info["converged"] = bool(tol is None or estimate <= tol)


def _budget_sample(source: Any, xp: Namespace, cdt: Any, memory_mb: float | None, *, min_rows: int) -> Array:
    """The row sample of the sketch and of the precision check: a quarter of the budget at most."""
    from ._svd_sketch import row_sample

    n = int(source.shape[1])
    max_rows = max(1, int(budget_mb(memory_mb) * 2**20 / 4 // (n * _itemsize(xp, cdt))))
    return row_sample(source, cdt, max_rows=max_rows, sample_rows=SKETCH_SAMPLE_ROWS, min_rows=min_rows)


def _range_arithmetic(
    np_dtype: Any,
    smp: Array,
    omega: Array,
    k: int,
    xp: Namespace,
    tol: float,
    batch_rows: int,
    info: dict[str, Any],
) -> str:
    """Dtype name of the range finder's batch products (recorded as ``info["arithmetic"]``).

    Single-precision data (``np_dtype`` float32, complex64) take single-precision products when the
    error they add, estimated on the row sample ``smp`` (:func:`_budget_sample`, in double precision)
    with the test matrix ``omega``, is at most ``SINGLE_PRECISION_SHARE`` of ``tol`` (recorded as
    ``info["single_precision_error"]`` and added to the error estimate, see :func:`_rounding_share`):
    about 2x to 3x less arithmetic and memory traffic per read, and no double-precision copy of each
    batch. Everything else, and data whose spectrum makes single-precision rounding visible, multiply in
    double precision.
    """
    arith = "complex128" if np.dtype(np_dtype).kind == "c" else "float64"
    single = _single_precision(np_dtype)
    if single is not None:
        from ._svd_sketch import single_precision_error

        err = single_precision_error(smp, omega, k, xp, batch_rows=batch_rows)
        info["single_precision_error"] = err
        if err <= SINGLE_PRECISION_SHARE * tol:
            arith = single
    info["arithmetic"] = arith
    return arith


def _single_precision(np_dtype: Any) -> str | None:
    """The dtype name of single-precision data (float32, complex64), None for any other dtype."""
    name = np.dtype(np_dtype).name
    return name if name in ("float32", "complex64") else None


def _rounding_share(info: dict[str, Any]) -> float:
    """What single-precision products add to the error estimate (0 for double-precision ones)."""
    single = "arithmetic" in info and _single_precision(info["arithmetic"]) is not None
    return float(info.get("single_precision_error", 0.0)) if single else 0.0


def _u_stage(
    S: Array,
    V: Array,
    k: int,
    xp: Namespace,
    cdt: Any,
    cdt_name: str,
    sink: Any,
    refine: bool,
    read: Callable[..., dict[str, Array]],
    info: dict[str, Any],
    *,
    kept: Array | None = None,
) -> dict[str, Any]:
    """``U = A V / S`` into ``sink``, and the refinement of ``S``, ``V`` and ``U``.

    ``U`` comes from a read of the data in double precision (the Gram method), or, with ``kept``
    (``l x k``, ``V = Q kept``), from the rows ``A Q`` of the range finder's last read that ``sink``
    holds: ``U = (A Q) kept / S``, no read.
    """
    device = device_of(V)
    tiny = float(S[0]) * math.sqrt(float(np.finfo(np.float64).eps)) if float(S[0]) > 0 else 0.0
    good = tiny < S
    inv_s = xp.reshape(xp.astype(xp.astype(good, S.dtype) / xp.where(good, S, xp.ones_like(S)), cdt), (1, -1))
    if kept is not None:
        H = sink.apply(kept * inv_s, gram=True)
    else:
        dt = np.dtype(cdt_name)
        spec = PassSpec(
            partial(project_batch, W=V * inv_s, cdt=cdt_name),
            sums={"H": ((k, k), dt)},
            rows={"U": ((k,), dt)},
        )
        H = read("SVD: U", spec, on_rows=lambda s, e, r: sink.write(s, e, r["U"]))["H"]
    C = xp.eye(k, dtype=cdt, device=device)
    if refine and bool(xp.all(good)):
        L = xp.linalg.cholesky(hermitian_part(H, xp))
        M = herm(L, xp) * xp.reshape(xp.astype(S, cdt), (1, -1))
        _P, sig, Zh = xp.linalg.svd(M)
        Zm = herm(Zh, xp)
        c2 = _phase_fix(V @ Zm, xp)
        Zm = Zm * xp.reshape(c2, (1, -1))
        C = (xp.reshape(xp.astype(S, cdt), (-1, 1)) * Zm) / xp.reshape(xp.astype(sig, cdt), (1, -1))
        V = V @ Zm
        S = sig
        info["refined"] = True
    sink.apply(C)
    return {"S": S, "V": V, **_info_payload(info)}


#: ``info`` entries a stage saves with its arrays (a resumed run reports what the whole job did)
_INFO_KEYS = (
    "reads",
    "arithmetic",
    "single_precision_error",
    "refined",
    "sketch_reads",
    "sketch_columns",
    "sketch_forecast",
    "error_estimate",
    "angle_estimate",
    "converged",
)


def _info_payload(info: dict[str, Any]) -> dict[str, Any]:
    # a checkpoint holds arrays: text (the arithmetic) as bytes
    return {
        f"info_{key}": np.bytes_(info[key].encode()) if isinstance(info[key], str) else info[key]
        for key in _INFO_KEYS
        if key in info
    }


def _restore_info(state: dict[str, Any], info: dict[str, Any]) -> None:
    for key in _INFO_KEYS:
        if f"info_{key}" in state:
            value = state[f"info_{key}"]
            value = value.item() if isinstance(value, np.generic | np.ndarray) else value
            info[key] = value.decode() if isinstance(value, bytes) else value


# ----------------------------------------------------------------------------------------------------
# per-batch work of the reads: module-level (picklable for Dask), one batch in, partial results out
# ----------------------------------------------------------------------------------------------------


def _as_compute(a: Array, xp: Namespace, cdt: str) -> Array:
    return xp.astype(a, getattr(xp, cdt), copy=False)


def rows_batch(a: Array, xp: Namespace, start: int, stop: int, *, cdt: str) -> dict[str, Array]:
    """The batch itself in the compute dtype (the dense method reads the whole matrix)."""
    return {"A": _as_compute(a, xp, cdt)}


def gram_batch(a: Array, xp: Namespace, start: int, stop: int, *, cdt: str) -> dict[str, Array]:
    """This batch's part of ``A^H A``: for complex data on NumPy the upper triangle of its conjugate
    (BLAS ``herk``, Fortran order; see :func:`gram_result`), elsewhere the full matrix.

    Real data on NumPy take ``a.T @ a``, which NumPy hands to BLAS ``syrk`` itself (as fast as SciPy's
    ``dsyrk``, without the 0.2 to 0.4 s of importing ``scipy.linalg`` in every process).
    """
    a = _as_compute(a, xp, cdt)
    if is_numpy_namespace(xp):
        if cdt != "complex128":
            return {"G": a.T @ a}
        from scipy.linalg import blas

        return {"G": blas.zherk(1.0, a.T, trans=0, lower=0)}
    return {"G": herm(a, xp) @ a}


def gram_result(G: Array, xp: Namespace) -> Array:
    """The Hermitian ``A^H A`` from the summed :func:`gram_batch` parts."""
    if not (is_numpy_namespace(xp) and np.iscomplexobj(G)):
        return G
    full = np.triu(G) + np.triu(G, 1).conj().T
    return np.conj(full) if np.iscomplexobj(full) else full


def power_batch(
    a: Array, xp: Namespace, start: int, stop: int, *, Q: Array, cdt: str, keep_rows: bool = False
) -> dict[str, Array]:
    """This batch's part of ``A^H (A Q)`` (a range-finder power step), and its rows ``A Q`` with
    ``keep_rows``."""
    a = _as_compute(a, xp, cdt)
    aq = a @ xp.asarray(Q)
    return {"Y": herm(a, xp) @ aq, "AQ": aq} if keep_rows else {"Y": herm(a, xp) @ aq}


def range_rows_batch(
    a: Array, xp: Namespace, start: int, stop: int, *, Q: Array, cdt: str
) -> dict[str, Array]:
    """This batch's rows ``A Q`` alone, the same products as :func:`power_batch`'s."""
    return {"AQ": _as_compute(a, xp, cdt) @ xp.asarray(Q)}


def project_batch(a: Array, xp: Namespace, start: int, stop: int, *, W: Array, cdt: str) -> dict[str, Array]:
    """Rows ``U = A W`` of this batch and their part of ``U^H U``."""
    u = _as_compute(a, xp, cdt) @ xp.asarray(W)
    return {"U": u, "H": herm(u, xp) @ u}


def _run_sketch(
    source: Any,
    k: int,
    l_cols: int,
    *,
    xp: Namespace,
    cdt: Any,
    device: Any,
    seed: int,
    tol: float,
    memory_mb: float | None,
    max_reads: int,
    fallback: bool,
    info: dict[str, Any],
    sink: Any,
    read: Callable[..., dict[str, Array]],
) -> tuple[Array, Array, Array] | None:
    """Sketch reads until the error estimate meets ``tol``; ``(S, V, C)`` or None to fall back to Gram."""
    from ._svd_sketch import (
        FORECAST_MARGIN,
        finish_sketch,
        predicted_next,
        ritz_estimate,
        sketch_batch,
        warm_start,
    )

    n = source.shape[1]

    smp = _budget_sample(source, xp, cdt, memory_mb, min_rows=l_cols)
    omega, ahead = warm_start(
        smp,
        xp,
        k,
        l_cols,
        cdt=cdt,
        device=device,
        seed=seed,
        with_forecast=fallback,
        narrow_tol=tol if fallback else None,
    )
    l_cols = int(omega.shape[1])
    info["sketch_columns"] = l_cols
    if ahead is not None:
        info["sketch_forecast"] = ahead.first
        # not one read, and two not safely: the Gram method, no read lost (the second-read forecast is
        # right on spectra with a gap after k, 100x optimistic on power laws: hence the margin)
        if ahead.first > tol and ahead.second * FORECAST_MARGIN > tol:
            info["sketch_reads"] = 0
            return None
    dt = np.dtype("complex128" if cdt == xp.complex128 else "float64")
    # double precision: U = Y C, and C's columns for the Ritz values at the noise floor (lam^-1/2) would
    # amplify single-precision rounding in Y far beyond what it does to S (measured: 1e-5 of s_1)
    info["arithmetic"] = dt.name
    # a first read that the forecast expects to miss tol by far only points the second one (its Z gives
    # the next Omega): it keeps no rows, and single-precision data multiply in their own precision there
    scout = ahead is not None and ahead.first > FORECAST_MARGIN * tol and max_reads > 1
    single = _single_precision(source.dtype)
    for it in range(max(1, max_reads)):
        scouting = scout and it == 0
        arith = single if (scouting and single) else dt.name
        keep = sink is not None and not scouting
        if it and sink is not None:
            sink.discard()
        spec = PassSpec(
            partial(sketch_batch, omega_t=xp.astype(omega.mT, getattr(xp, arith)), cdt=arith, keep_rows=keep),
            sums={"ZH": ((l_cols, n), dt)},
            rows={"Y": ((l_cols,), dt)} if keep else {},
        )
        on_rows = (lambda s, e, r: sink.write(s, e, r["Y"])) if keep else None
        ZH = read(f"SVD: sketch {it + 1}", spec, on_rows=on_rows)["ZH"]
        _check_finite(ZH, xp)
        lam, E, est, _R = ritz_estimate(ZH, omega, k, xp)
        worst = float(np.max(est))
        info.update(sketch_reads=it + 1, error_estimate=worst, converged=worst <= tol and not scouting)
        if worst <= tol and not scouting:
            return finish_sketch(ZH, lam, E, k, xp)
        if fallback and predicted_next(est, lam) > tol:
            return None
        if it + 1 < max_reads:
            omega, _ = xp.linalg.qr(herm(ZH, xp))
    if fallback:
        return None
    warnings.warn(
        f"sketched SVD: estimated relative error of the singular values {worst:.1e} after {max_reads} reads"
        f" is above tol={tol:g}; raise n_iter or oversample, or use method='gram'",
        RuntimeWarning,
        stacklevel=3,
    )
    return finish_sketch(ZH, lam, E, k, xp)


def _reorthonormalise(H: Array, sink: Any, xp: Namespace, info: dict[str, Any]) -> None:
    """``U <- U L^-H`` (``U^H U = H = L L^H``) when ``U`` strays from orthonormality."""
    H = hermitian_part(H, xp)
    k = H.shape[0]
    eye = xp.eye(k, dtype=H.dtype, device=getattr(H, "device", None))
    if float(xp.max(xp.abs(H - eye))) <= 1e-12:
        return
    L = xp.linalg.cholesky(H)
    sink.apply(xp.linalg.inv(herm(L, xp)))
    info["refined"] = True
