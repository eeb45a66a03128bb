"""Truncated SVD of a matrix streamed by row batches, written against the array API.

Two algorithms, chosen by shape and memory budget (``method="auto"``):

``"gram"`` (tall and skinny: rows >= 4 x columns and the ``n x n`` Gram matrix fits half the budget)
    One read of the data accumulates ``G = A^H A`` in float64 (complex128 for complex data);
    ``eigh(G)`` gives ``S`` and ``V``. A second read computes ``U = A V / S``.
``"randomized"`` (wide or square data, or a Gram matrix that would not fit)
    Range finding on the row space with power iterations: each read accumulates ``Y = A^H (A Q)``
    (``n x l`` with ``l = k + oversample``) and orthonormalises it, ``Q <- qr(Y)``; after ``n_iter + 1``
    reads the Rayleigh-Ritz projection ``Q^H A^H A Q`` gives ``S`` and ``V``. A last read computes ``U``.

Precision. Squaring the matrix (Gram or Rayleigh-Ritz of ``A^H A``) limits the relative accuracy of a
singular value to about ``eps * (s_1 / s_i)**2``. The ``U`` read therefore also accumulates the small
``k x k`` Gram matrix ``H`` of the normalised ``U = A V / S`` (well conditioned, close to the identity)
and refines: with ``H = L L^H`` (Cholesky), ``A V = Q (L^H diag(S))`` for an orthonormal ``Q``, and the SVD
of the ``k x k`` matrix ``L^H diag(S) = P Sigma Z^H`` gives ``S <- Sigma``, ``V <- V Z``, ``U <- U C`` with
``C = diag(S) Z Sigma^-1``: singular values then carry an error of about ``eps * s_1 / s_i`` (not squared),
at the cost of one pass over the small ``U`` (``n_rows x k``).

Memory: the Gram matrix plus two read buffers and one compute copy of a batch (sized from the
budget), and ``U`` wherever the caller's sink keeps it; the data never sits in memory as a whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._checks import require_finite
from ._config import get_config
from ._row_batches import n_batches, rows_for_budget
from ._typing import Array, Namespace
from .backend import from_host, is_numpy_namespace

__all__ = ["ArrayUSink", "StreamedSVD", "choose_method", "streamed_svd"]

METHODS = ("auto", "gram", "randomized")
#: ``method="auto"`` takes the Gram path only for matrices with at least this many rows per column.
GRAM_MIN_ASPECT = 4


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
        Algorithm used: ``"gram"`` or ``"randomized"``.
    info : dict
        Batch rows, number of reads of the data, whether refinement was applied.
    """

    U: Array | None
    S: Array
    V: Array
    method: str
    info: dict[str, Any] = field(default_factory=dict)


class ArrayUSink:
    """Collects ``U`` batches in memory (namespace ``xp``) and applies the final ``k x k`` correction."""

    def __init__(self, xp: Namespace) -> None:
        self.xp = xp
        self.blocks: list[Array] = []
        self.U: Array | None = None

    def write(self, start: int, stop: int, block: Array) -> None:
        self.blocks.append(block)

    def apply(self, C: Array) -> None:
        U = self.xp.concat(self.blocks, axis=0) if len(self.blocks) > 1 else self.blocks[0]
        self.blocks = []
        self.U = U @ C


def _compute_dtype(np_dtype: np.dtype, xp: Namespace) -> Any:
    return xp.complex128 if np.dtype(np_dtype).kind == "c" else xp.float64


def _itemsize(xp: Namespace, dtype: Any) -> int:
    return 16 if dtype == xp.complex128 else 8


def check_svd_arguments(shape: tuple[int, int], k: Any, method: str) -> int:
    """Return ``k`` as an int after checking it and ``method`` against a matrix of ``shape``.

    Raises
    ------
    ValueError
        ``k`` outside ``1 .. min(shape)`` or an unknown ``method`` (the message names the bad value).
    """
    m, n = int(shape[0]), int(shape[1])
    k = int(k)
    if not 1 <= k <= min(m, n):
        msg = f"k must be between 1 and min(n_rows, n_cols) = {min(m, n)}, got {k}"
        raise ValueError(msg)
    if method not in METHODS:
        msg = f"method must be one of {', '.join(METHODS)}; got {method!r}"
        raise ValueError(msg)
    return k


def choose_method(shape: tuple[int, int], np_dtype: Any, memory_mb: float | None = None) -> str:
    """Pick ``"gram"`` or ``"randomized"`` for a matrix of ``shape`` under the memory budget.

    ``"gram"`` for tall data (at least ``GRAM_MIN_ASPECT`` times more rows than columns) whose
    ``n_cols x n_cols`` Gram matrix with its eigen-decomposition workspace (about three such matrices)
    fits half of the budget; ``"randomized"`` otherwise. On wide or square data the Gram matrix and its
    ``O(n_cols^3)`` eigen-decomposition cost far more than a few range-finder passes (a 144 x 1536
    matrix: 1.2 s against 0.013 s for k = 8).
    """
    mb = get_config()["memory_mb"] if memory_mb is None else float(memory_mb)
    m, n = int(shape[0]), int(shape[1])
    item = 16 if np.dtype(np_dtype).kind == "c" else 8
    fits = 3 * n * n * item <= 0.5 * mb * 2**20
    return "gram" if fits and m >= GRAM_MIN_ASPECT * n else "randomized"


def _herm(a: Array, xp: Namespace) -> Array:
    """Conjugate transpose of a 2-D array."""
    t = a.mT
    return xp.conj(t) if xp.isdtype(a.dtype, "complex floating") else t


def _progress(total: int, desc: str, enabled: bool | None) -> Any:
    if enabled is None:
        enabled = get_config()["progress"]
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=False)


class _GramAccumulator:
    """Accumulates ``A^H A`` over batches; BLAS ``syrk``/``herk`` on NumPy, ``matmul`` elsewhere."""

    def __init__(self, n: int, cdt: Any, xp: Namespace, device: Any) -> None:
        self.xp = xp
        self.fast = is_numpy_namespace(xp)
        if self.fast:
            from scipy.linalg import blas

            self.complex = cdt == xp.complex128
            self.rk = blas.zherk if self.complex else blas.dsyrk
            # Accumulates M = sum a^T conj(a) = conj(A^H A) in the upper triangle (Fortran order).
            self.G = np.zeros((n, n), dtype=np.complex128 if self.complex else np.float64, order="F")
        else:
            self.G = xp.zeros((n, n), dtype=cdt, device=device)

    def add(self, a: Array) -> None:
        if self.fast:
            self.G = self.rk(1.0, a.T, beta=1.0, c=self.G, trans=0, lower=0, overwrite_c=1)
        else:
            self.G = self.G + _herm(a, self.xp) @ a

    def result(self) -> Array:
        if not self.fast:
            return self.G
        M = self.G
        upper = np.triu(M)
        full = upper + np.triu(M, 1).conj().T
        return np.conj(full) if self.complex else full


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


def streamed_svd(
    source: Any,
    k: int,
    *,
    method: str = "auto",
    n_iter: int = 4,
    oversample: int = 10,
    refine: bool = True,
    memory_mb: float | None = None,
    seed: int = 0,
    u_sink: Any = None,
    compute_u: bool = True,
    progress: bool | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> StreamedSVD:
    """Truncated SVD ``A ~= U diag(S) V`` of a row source (see :mod:`pycro_gpu._row_batches`).

    Parameters
    ----------
    source : row source
        ``shape (n_rows, n_cols)``, ``dtype``, ``xp``, ``batches(rows)``.
    k : int
        Number of singular triplets, ``1 <= k <= min(n_rows, n_cols)``.
    method : {'auto', 'gram', 'randomized'}
        See the module notes; ``auto`` uses :func:`choose_method`.
    n_iter : int
        Power iterations of the randomized method (it reads the data ``n_iter + 1`` times for ``S, V``).
    oversample : int
        Extra columns of the randomized range finder.
    refine : bool
        Refine ``S``, ``V`` and ``U`` in the ``U`` pass (see module notes).
    memory_mb : float, optional
        Working-memory budget; default ``get_config()["memory_mb"]``.
    seed : int
        Seed of the random test matrix (randomized method).
    u_sink : object, optional
        Receives ``U``: ``write(start, stop, block)`` per batch, then ``apply(C)`` with the ``(k, k)``
        correction to right-multiply every row by. Default: collect ``U`` in memory.
    compute_u : bool
        Skip the ``U`` pass (and refinement) when False.
    progress : bool, optional
        Progress bar (default from the configuration).
    on_batch : callable, optional
        Called as ``on_batch(done_rows, n_rows)`` after every batch of every pass.

    Returns
    -------
    StreamedSVD
    """
    xp = source.xp
    m, n = source.shape
    k = check_svd_arguments((m, n), k, method)
    if method == "auto":
        method = choose_method((m, n), source.dtype, memory_mb)
    cdt = _compute_dtype(source.dtype, xp)
    citem = _itemsize(xp, cdt)
    store = np.dtype(source.dtype).itemsize
    device = getattr(source, "device", None)
    if method == "gram":
        reserve = 3 * n * n * citem
        l_cols = k
    else:
        if n_iter < 1:
            msg = f"n_iter must be >= 1 for the randomized method, got {n_iter}"
            raise ValueError(msg)
        l_cols = min(n, k + max(0, int(oversample)))
        reserve = 4 * n * l_cols * citem
    rows = rows_for_budget(n, 2 * store + citem + 2 * l_cols * citem / n, memory_mb, reserve=reserve)
    rows = max(rows, 32)  # a budget spent on the Gram matrix (forced method) still reads usable batches
    chunk = int(getattr(source, "chunk_rows", 1))
    if chunk > 1 and rows > chunk:  # whole HDF5 chunks per read
        rows = (rows // chunk) * chunk
    rows = min(rows, m)
    nb = n_batches(m, rows)
    reads = 0

    def run_pass(desc: str, body: Callable[[int, int, Array], None]) -> None:
        nonlocal reads
        bar = _progress(nb, desc, progress)
        try:
            for start, stop, blk in source.batches(rows):
                body(start, stop, xp.astype(blk, cdt, copy=False))
                if bar is not None:
                    bar.update(1)
                if on_batch is not None:
                    on_batch(stop, m)
        finally:
            if bar is not None:
                bar.close()
        reads += 1

    if method == "gram":
        acc = _GramAccumulator(n, cdt, xp, device)
        run_pass("SVD: Gram matrix", lambda s, e, a: acc.add(a))
        G = acc.result()
        _check_finite(G, xp)
        S, V = _top_eigh(G, k, xp)
    else:
        rng = np.random.default_rng(seed)
        omega = rng.standard_normal((n, l_cols))
        Q, _ = xp.linalg.qr(from_host(omega, xp, device=device, dtype=cdt))
        T = None
        for it in range(n_iter + 1):
            Y = xp.zeros((n, l_cols), dtype=cdt, device=device)

            def power(s: int, e: int, a: Array, Q=Q) -> None:
                nonlocal Y
                Y = Y + _herm(a, xp) @ (a @ Q)

            run_pass(f"SVD: range finder {it + 1}/{n_iter + 1}", power)
            _check_finite(Y, xp)
            if it == n_iter:
                T = _herm(Q, xp) @ Y
                T = (T + _herm(T, xp)) / 2
            else:
                Q, _ = xp.linalg.qr(Y)
        S, Z = _top_eigh(T, k, xp)
        V = Q @ Z
    c = _phase_fix(V, xp)
    V = V * xp.reshape(c, (1, -1))
    info: dict[str, Any] = {"batch_rows": rows, "n_batches": nb, "refined": False}
    if not compute_u:
        info["reads"] = reads
        return StreamedSVD(None, S, _herm(V, xp), method, info)

    tiny = float(S[0]) * math.sqrt(float(np.finfo(np.float64).eps)) if float(S[0]) > 0 else 0.0
    good = tiny < S
    inv_s = xp.astype(good, S.dtype) / xp.where(good, S, xp.ones_like(S))
    W = V * xp.reshape(xp.astype(inv_s, cdt), (1, -1))
    H = xp.zeros((k, k), dtype=cdt, device=device)
    sink = ArrayUSink(xp) if u_sink is None else u_sink

    def project(s: int, e: int, a: Array) -> None:
        nonlocal H
        u = a @ W
        H = H + _herm(u, xp) @ u
        sink.write(s, e, u)

    run_pass("SVD: U", project)
    C = xp.eye(k, dtype=cdt, device=device)
    if refine and bool(xp.all(good)):
        H = (H + _herm(H, xp)) / 2
        L = xp.linalg.cholesky(H)
        M = _herm(L, xp) * xp.reshape(xp.astype(S, cdt), (1, -1))
        _P, sig, Zh = xp.linalg.svd(M)
        Zm = _herm(Zh, xp)
        c2 = _phase_fix(V @ Zm, xp)
        Zm = Zm * xp.reshape(c2, (1, -1))
        C = (xp.reshape(xp.astype(S, cdt), (-1, 1)) * Zm) / xp.reshape(xp.astype(sig, cdt), (1, -1))
        V = V @ Zm
        S = sig
        info["refined"] = True
    sink.apply(C)
    info["reads"] = reads
    U = sink.U if u_sink is None else None
    return StreamedSVD(U, S, _herm(V, xp), method, info)
