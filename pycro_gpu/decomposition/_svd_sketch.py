"""Pieces of the sketch method of :func:`~pycro_gpu.decomposition._svd_streamed.streamed_svd` (array API
throughout).

See :mod:`pycro_gpu.decomposition._svd_streamed` for the algorithm. Notation: ``A`` is ``m x n`` (rows x
columns), ``Omega`` the ``n x l`` orthonormal test matrix, ``Y = A Omega``, ``Z = A^H Y`` (kept as
``Z^H``), ``T = Omega^H Z = Y^H Y = E diag(lam) E^H``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._lib.checks import require_finite
from .._lib.linalg import herm, hermitian_part
from .._lib.typing import Array, Namespace
from ..backend import device_of, from_host, to_host

__all__ = [
    "SketchForecast",
    "finish_sketch",
    "forecast",
    "predicted_next",
    "range_start",
    "ritz_estimate",
    "row_sample",
    "single_precision_error",
    "sketch_batch",
    "subspace_angle_estimate",
    "warm_start",
]

#: Ritz values of ``T`` below this fraction of the largest are numerically zero (rank deficiency).
_LAM_FLOOR = 1e3 * float(np.finfo(np.float64).eps)
#: Ritz values closer than this (relative) form one cluster: the gap is taken to the next cluster.
_CLUSTER = math.sqrt(float(np.finfo(np.float64).eps))
#: How much larger the half-sample error estimate of :func:`forecast` came out than the first read's.
HALF_SAMPLE_PESSIMISM = 4.0
#: Columns beyond ``k`` of a narrowed sketch (:func:`warm_start`): two from the sample, two random.
NARROW_OVERSAMPLE = 4
#: What the forecast must beat the tolerance by: for a narrowed sketch, and for a second read under auto.
FORECAST_MARGIN = 10.0
#: Power steps the randomized method's warm start takes on the row sample in memory (:func:`range_start`).
SAMPLE_POWER_STEPS = 2


def _sample(source: Any, count: int) -> Array:
    if hasattr(source, "sample"):
        return source.sample(count)
    gen = source.batches(count)  # a foreign row source: its first batch
    try:
        _, _, block = next(iter(gen))
        return source.xp.asarray(block, copy=True)  # the source may reuse its buffer
    finally:
        close = getattr(gen, "close", None)
        if close is not None:
            close()


def _right_vectors(smp: Array, xp: Namespace) -> Array:
    """Right singular vectors of ``smp``, largest singular value first (eigenvectors of its Gram matrix)."""
    _w, E = xp.linalg.eigh(herm(smp, xp) @ smp)
    return xp.flip(E, axis=1)


def _test_matrix(
    vectors: Array, xp: Namespace, k: int, l_cols: int, *, cdt: Any, device: Any, seed: int
) -> Array:
    """Orthonormal ``n x l``: the leading columns of ``vectors`` (:func:`_right_vectors` of a sample)
    plus Gaussian columns."""
    n = vectors.shape[0]
    n_rand = max(1, (l_cols - k) // 2) if l_cols > k else 0
    E = vectors[:, : l_cols - n_rand]
    if n_rand:
        rng = np.random.default_rng(seed)
        R = rng.standard_normal((n, n_rand))
        if xp.isdtype(cdt, "complex floating"):
            R = R + 1j * rng.standard_normal((n, n_rand))
        E = xp.concat([E, from_host(R, xp, device=device, dtype=cdt)], axis=1)
    Q, _ = xp.linalg.qr(E)
    return Q


def range_start(
    smp: Array, n_rows: int, xp: Namespace, k: int, l_cols: int, *, cdt: Any, device: Any, seed: int
) -> Array:
    """Orthonormal ``n x l`` start of the randomized range finder of an ``n_rows``-row matrix, warm from
    its row sample ``smp`` where that is cheap.

    The range finder runs on the sample in memory first (``SAMPLE_POWER_STEPS`` power steps from a
    Gaussian start, then Rayleigh-Ritz for the order of its vectors); its leading vectors and Gaussian
    columns form the start as in :func:`warm_start`. The top-``k`` subspace of a representative sample
    lies within its sampling noise of the data's: on the complex BEPS case of
    ``benchmarks/bench_svd.py`` the first read then reaches what a Gaussian start's second did, and the
    method one read fewer. The steps cost products with ``l`` columns of the sample (no ``n x n``
    matrix, so wide data take it too): where they would cost more than half a read of the data (a sample
    of more than ``n_rows / (2 SAMPLE_POWER_STEPS)`` rows) the start is the Gaussian one.
    """
    n = int(smp.shape[1])
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((n, l_cols))
    if xp.isdtype(cdt, "complex floating"):
        G = G + 1j * rng.standard_normal((n, l_cols))
    Q, _ = xp.linalg.qr(from_host(G, xp, device=device, dtype=cdt))
    if 2 * SAMPLE_POWER_STEPS * int(smp.shape[0]) > n_rows:
        return Q
    for _ in range(SAMPLE_POWER_STEPS):
        Q, _ = xp.linalg.qr(herm(smp, xp) @ (smp @ Q))
    aq = smp @ Q
    _w, E = xp.linalg.eigh(hermitian_part(herm(aq, xp) @ aq, xp))
    return _test_matrix(Q @ xp.flip(E, axis=1), xp, k, l_cols, cdt=cdt, device=device, seed=seed + 1)


@dataclass(frozen=True)
class SketchForecast:
    """Error estimates a sketch read is expected to reach, forecast from the row sample alone.

    Attributes
    ----------
    first : float
        Expected largest error estimate after the first read.
    second : float
        Expected after a second read (one more power step).
    """

    first: float
    second: float


def forecast(
    smp: Array,
    xp: Namespace,
    k: int,
    l_cols: int,
    *,
    cdt: Any,
    device: Any,
    seed: int,
    even_vectors: Array | None = None,
) -> SketchForecast | None:
    """Forecast the sketch's error estimates by running it on the sample: warm start from the even rows,
    one read of the odd ones (``None`` when the sample is too small to split).

    Both halves carry their own sampling noise, so the half-sample estimate is pessimistic: it was 4 to 9
    times the estimate of the first real read on every spectrum tried (rank 8 and 16 plus noise of 0.1 to
    20 times the weakest component); the forecast divides it by :data:`HALF_SAMPLE_PESSIMISM` and stays
    within 4x of the real estimate (``tests/test_svd_sketch.py``), erring towards the Gram method.
    ``even_vectors``: :func:`_right_vectors` of the even rows, when already computed.
    """
    if smp.shape[0] < 4 * l_cols:
        return None
    odd = smp[1::2, :]
    if even_vectors is None:
        even_vectors = _right_vectors(smp[0::2, :], xp)
    omega = _test_matrix(even_vectors, xp, k, l_cols, cdt=cdt, device=device, seed=seed)
    zh = herm(odd @ omega, xp) @ odd
    lam, _E, est, _R = ritz_estimate(zh, omega, k, xp)
    first = float(np.max(est)) / HALF_SAMPLE_PESSIMISM
    return SketchForecast(first, predicted_next(est, lam) / HALF_SAMPLE_PESSIMISM)


def row_sample(source: Any, cdt: Any, *, max_rows: int, sample_rows: int, min_rows: int = 1) -> Array:
    """Rows spread over the whole matrix (``sample_rows`` at most, ``max_rows`` by the budget, at least
    ``min_rows``) in the compute dtype ``cdt``, checked finite."""
    xp = source.xp
    m = int(source.shape[0])
    count = max(min(m, min_rows), min(m, sample_rows, max_rows))
    smp = xp.astype(_sample(source, count), cdt, copy=False)
    require_finite(smp, "data (seen in the SVD's row sample)")
    return smp


def single_precision_error(smp: Array, omega: Array, k: int, xp: Namespace, *, batch_rows: int) -> float:
    """Relative singular-value error that single-precision batch products would add (an estimate).

    ``smp`` holds rows of single-precision data in double precision (exactly). The larger of two terms:

    * ``u s_1 / s_k`` (``u`` the single-precision unit roundoff, ``s`` the top-``k`` Ritz values of the
      sample): a product computed in single precision is the exact product of data perturbed by about
      ``u`` relative, which moves ``s_k`` by up to ``u s_1``;
    * the measured effect: the top-``k`` Ritz values of ``T = (S Omega)^H S Omega`` from single- and from
      double-precision products of the sample ``S``, their largest relative difference, scaled by
      ``sqrt(batch_rows / sample rows)`` for the longer sums of a read's batches (random rounding grows
      as the square root of a sum's length).

    On the complex BEPS case of ``benchmarks/bench_svd.py`` it was 12x the real error (1.6e-6 against
    1.4e-7); ``tests/test_svd_suite.py`` checks that it bounds the real difference on the suite's small
    single-precision cases. The reads add their batches up in double precision.
    """
    single = xp.complex64 if xp.isdtype(smp.dtype, "complex floating") else xp.float32
    s1, o1 = xp.astype(smp, single), xp.astype(omega, single)
    z_single = xp.astype(herm(s1 @ o1, xp) @ s1, smp.dtype)
    z_double = herm(smp @ omega, xp) @ smp
    lam = [
        np.sort(np.asarray(to_host(xp.linalg.eigvalsh(hermitian_part(z @ omega, xp))), np.float64))[::-1]
        for z in (z_single, z_double)
    ]
    kk = min(k, int(np.count_nonzero(lam[1] > _LAM_FLOOR * max(lam[1][0], 0.0))))
    if kk == 0:
        return 0.0
    s_single, s_double = (np.sqrt(np.clip(w[:kk], 0.0, None)) for w in lam)
    measured = float(np.max(np.abs(s_single - s_double) / s_double))
    measured *= math.sqrt(max(1.0, batch_rows / int(smp.shape[0])))
    u = float(np.finfo(np.float32).eps) / 2
    return max(measured, u * float(s_double[0] / s_double[kk - 1]))


def warm_start(
    smp: Array,
    xp: Namespace,
    k: int,
    l_cols: int,
    *,
    cdt: Any,
    device: Any,
    seed: int,
    with_forecast: bool = False,
    narrow_tol: float | None = None,
) -> tuple[Array, SketchForecast | None]:
    """Orthonormal ``n x l`` test matrix: top right singular vectors of the row sample ``smp`` (see
    :func:`row_sample`), plus random columns, and (``with_forecast``) the :func:`forecast` of the sketch's
    error from the same sample.

    ``max(1, (l - k) // 2)`` of the ``l`` columns are Gaussian (none when ``l == k``) so that directions
    the sample missed still reach the sketch and show in the error estimate. With ``narrow_tol`` the
    sketch takes only ``k + NARROW_OVERSAMPLE`` columns when their forecast stays below
    ``narrow_tol / FORECAST_MARGIN`` (a spectrum that drops into flat noise after ``k`` gains nothing from
    more columns, and each column costs arithmetic on every row); the returned matrix says which.
    """
    narrow = min(l_cols, k + NARROW_OVERSAMPLE)
    opts = {"cdt": cdt, "device": device, "seed": seed}
    # each sample's Gram matrix and eigen-decomposition once, whichever widths are tried
    even = _right_vectors(smp[0::2, :], xp) if with_forecast and smp.shape[0] >= 4 * narrow else None
    vectors = _right_vectors(smp, xp)
    if with_forecast and narrow_tol is not None and narrow < l_cols:
        ahead = forecast(smp, xp, k, narrow, even_vectors=even, **opts)
        if ahead is not None and ahead.first * FORECAST_MARGIN <= narrow_tol:
            return _test_matrix(vectors, xp, k, narrow, **opts), ahead
    omega = _test_matrix(vectors, xp, k, l_cols, **opts)
    ahead = forecast(smp, xp, k, l_cols, even_vectors=even, **opts) if with_forecast else None
    return omega, ahead


def sketch_batch(
    a: Array, xp: Namespace, start: int, stop: int, *, omega_t: Array, cdt: str, keep_rows: bool = True
) -> dict[str, Array]:
    """One batch of a sketch read: its part ``conj(Y_b)^T A_b`` of ``Z^H`` and, with ``keep_rows``, its
    rows ``Y_b = A_b Omega``.

    ``omega_t`` is ``Omega^T`` (``l x n``): ``Y_b^T = Omega^T A_b^T`` keeps the long dimension last.
    """
    a = xp.astype(a, getattr(xp, cdt), copy=False)
    yt = xp.asarray(omega_t) @ a.mT
    zh = (xp.conj(yt) if xp.isdtype(yt.dtype, "complex floating") else yt) @ a
    return {"ZH": zh, "Y": yt.mT} if keep_rows else {"ZH": zh}


def ritz_estimate(ZH: Array, omega: Array, k: int, xp: Namespace) -> tuple[Array, Array, np.ndarray, Array]:
    """Ritz values ``lam`` (descending, numerically non-zero), vectors ``E`` and error estimates.

    Returns
    -------
    lam : (l',) array
        Eigenvalues of ``T = Omega^H Z`` above ``_LAM_FLOOR * lam_1``.
    E : (l, l') array
        Their eigenvectors.
    est : (k,) numpy array
        Estimated relative error of the singular values ``sqrt(lam_i)``:
        ``rho_i^2 / (2 lam_i delta_i)`` with ``rho_i = ||Z e_i - lam_i Omega e_i||`` and ``delta_i`` the
        distance to the nearest other cluster of Ritz values (or to zero); 0 for components beyond the
        numerical rank.
    R : (n, k') array
        Residuals ``Z E_k - Omega E_k diag(lam_k)`` of the top ``k' = min(k, l')`` Ritz pairs (for
        :func:`subspace_angle_estimate`).
    """
    Z = herm(ZH, xp)
    T = hermitian_part(herm(omega, xp) @ Z, xp)
    w, E = xp.linalg.eigh(T)
    w, E = xp.flip(w), xp.flip(E, axis=1)
    w_host = to_host(w)
    keep = int(np.count_nonzero(w_host > _LAM_FLOOR * max(float(w_host[0]), 0.0))) if w_host[0] > 0 else 0
    keep = max(keep, 1)
    lam, E = w[:keep], E[:, :keep]
    kk = min(k, keep)
    Ek = E[:, :kk]
    lam_k = xp.astype(lam[:kk], Z.dtype)
    R = Z @ Ek - (omega @ Ek) * xp.reshape(lam_k, (1, -1))
    rho = to_host(xp.linalg.vector_norm(R, axis=0))
    lam_h = to_host(lam)
    lam_x = np.concatenate([lam_h, [0.0]])
    est = np.zeros(k)
    for i in range(kk):
        far = np.abs(lam_x - lam_h[i]) > _CLUSTER * lam_h[i]
        delta = float(np.min(np.abs(lam_x[far] - lam_h[i]))) if np.any(far) else lam_h[i]
        est[i] = rho[i] ** 2 / (2.0 * lam_h[i] * delta) if lam_h[i] > 0 else np.inf
    return lam, E, est, R


def subspace_angle_estimate(R: Array, lam: Array) -> float:
    """Estimated largest principal angle (radians) between the top-``k`` Ritz subspace ``span(Omega E_k)``
    and the top-``k`` right singular subspace, from the residuals ``R`` of :func:`ritz_estimate`:
    ``arcsin(||R_k||_2 / (lam_k - lam_{k+1}))`` (Davis-Kahan, with the Ritz gap after ``k``; ``lam_k``
    itself where no Ritz value follows), at most ``pi / 2``.
    """
    lam_h = np.asarray(to_host(lam), dtype=np.float64)
    kk = int(R.shape[1])
    if kk == 0:
        return 0.0
    norm = float(np.linalg.norm(np.asarray(to_host(R)), 2))
    gap = lam_h[kk - 1] - (lam_h[kk] if lam_h.shape[0] > kk else 0.0)
    return float(np.arcsin(min(1.0, norm / gap))) if gap > 0 else float(np.pi / 2)


def predicted_next(est: np.ndarray, lam: Array) -> float:
    """Largest error estimate expected after one more power step (eigenvalue error ~ (lam_l / lam_i)^2)."""
    lam_h = to_host(lam)
    kk = min(est.shape[0], lam_h.shape[0])
    ratio = (lam_h[-1] / lam_h[:kk]) ** 2
    return float(np.max(est[:kk] * ratio)) if kk else 0.0


def finish_sketch(ZH: Array, lam: Array, E: Array, k: int, xp: Namespace) -> tuple[Array, Array, Array]:
    """``S`` (k,), ``V`` (n, k) and ``C`` (l, k) with ``U = Y C`` from one sketch read.

    ``B = lam^-1/2 E^H Z^H`` is ``Q^H A`` for the orthonormal ``Q = Y E lam^-1/2``; its SVD
    ``B = U_B diag(S) V^H`` gives ``U = Q U_B``. Below the numerical rank (``l' < k``) the missing
    singular values are 0, their ``U`` columns 0 and their ``V`` columns complete an orthonormal basis.
    """
    inv = 1.0 / xp.sqrt(lam)
    Einv = E * xp.reshape(xp.astype(inv, E.dtype), (1, -1))
    B = herm(Einv, xp) @ ZH
    Ub, sig, Vh = xp.linalg.svd(B, full_matrices=False)
    kk = min(k, int(sig.shape[0]))
    S, V, C = sig[:kk], herm(Vh[:kk, :], xp), Einv @ Ub[:, :kk]
    if kk < k:
        dev = device_of(V)
        n = V.shape[0]
        rng = np.random.default_rng(0)
        fill = from_host(rng.standard_normal((n, k - kk)), xp, device=dev, dtype=V.dtype)
        Qf, _ = xp.linalg.qr(xp.concat([V, fill], axis=1))
        V = xp.concat([V, Qf[:, kk:k]], axis=1)
        S = xp.concat([S, xp.zeros(k - kk, dtype=S.dtype, device=dev)])
        C = xp.concat([C, xp.zeros((C.shape[0], k - kk), dtype=C.dtype, device=dev)], axis=1)
    return S, V, C
