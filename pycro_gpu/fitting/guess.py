"""Start points for the batch fits, vectorized over the batch.

* SHO: the two-point analytic inversion over pairs of the strongest bins, error-weighted, with a
  fallback (a compiled kernel, :mod:`pycro_gpu.kernels.model_sho`; CPU or CUDA by where the data live).
* Loop: levels from the extreme-bias samples, switching voltages from the area under each normalised
  branch (the branch intercepts), widths from the bias range.
* Peaks: maxima and half widths, peak by peak on the residual of a linear background.
* Relaxation: offset from the tail, amplitude from the start, time constant from the area.

All functions take and return arrays of one namespace (``xp`` detected once from the inputs).
"""

from __future__ import annotations

import math

import numpy as np

from .._lib.typing import Array, Namespace
from ..backend import array_namespace, device_of, from_host, is_cupy_namespace
from ._kernel_io import host_vector, prepare_sho, result_namespace_arrays

__all__ = [
    "double_exponential_guess",
    "exponential_guess",
    "loop_guess",
    "peaks_guess",
    "sho_guess",
    "stretched_exponential_guess",
]


def _sho_guess_scaled(y_view, x_scaled: np.ndarray, xp: Namespace):
    """Guess on scaled data ``y_view`` (n, 2 m) real view; returns (n, 4) of y_view's library."""
    from ..kernels.model_sho import sho_guess_batch, sho_guess_cuda

    n = int(y_view.shape[0])
    dt = np.dtype(str(y_view.dtype))
    if is_cupy_namespace(xp):
        import cupy

        out = cupy.empty((n, 4), dtype=dt)
        sho_guess_cuda(cupy.asarray(x_scaled, dtype=dt), y_view, out)
        return out
    out = np.empty((n, 4), dtype=dt)
    sho_guess_batch(np.ascontiguousarray(x_scaled, dtype=dt), y_view, out)
    return out


def sho_guess(spectra: Array, frequencies: Array, *, xp: Namespace | None = None) -> Array:
    """Analytic SHO start points for a batch of band-excitation spectra.

    Parameters
    ----------
    spectra : (n, m) complex array
        Responses; CuPy input runs the CUDA kernel, host input the CPU kernel.
    frequencies : (m,) real array
        Drive frequencies.

    Returns
    -------
    (n, 4) real array
        ``(A, w0, Q, phi)`` per spectrum, same namespace and precision as ``spectra``; NaN rows for
        spectra with non-finite values.

    Notes
    -----
    ``H(w) (w^2 - d - i w c) = K`` with ``d = w0^2``, ``c = w0 / Q``, ``K = A e^{i phi} w0^2``; two bins
    give a 2x2 real system for ``(d, c)`` after ``K`` is eliminated. The inversion runs over every pair of
    the 4 strongest bins (found within 4 bins of the strongest); admissible pairs (``d > 0``) are averaged
    with weights ``(e_min / e)^4`` of their squared error ``e`` over the spectrum (every second bin).
    Fallback (no admissible pair, or w0 outside the band): w0 at the strongest bin, Q from the half-power
    width, A and phi from the peak value.

    Examples
    --------
    >>> import numpy as np
    >>> from pycro_gpu.fitting import sho, sho_guess
    >>> f = np.linspace(0.9, 1.1, 64)
    >>> truth = np.array([[1.0, 1.01, 50.0, 0.3]])
    >>> np.round(sho_guess(sho(f, truth), f), 6)
    array([[ 1.  ,  1.01, 50.  ,  0.3 ]])
    """
    xp = array_namespace(spectra) if xp is None else xp
    y_view, x_scaled, fscale, ascale, _ = prepare_sho(spectra, frequencies, xp)
    (g,) = result_namespace_arrays((_sho_guess_scaled(y_view, x_scaled, xp),), xp, device_of(spectra))
    return _sho_unscale(g, fscale, ascale, xp)


def _sho_unscale(p: Array, fscale: float, ascale, xp: Namespace) -> Array:
    """Kernel units to the input's: A times ``ascale``, w0 times ``fscale``, phi wrapped to [-pi, pi]."""
    phase = p[:, 3]
    two_pi = 2 * math.pi
    amp = p[:, 0] if isinstance(ascale, float) and ascale == 1.0 else p[:, 0] * ascale
    return xp.stack([amp, p[:, 1] * fscale, p[:, 2], phase - two_pi * xp.round(phase / two_pi)], axis=1)


def _segment_mean(y: Array, mask: np.ndarray, xp: Namespace) -> Array:
    """Row means of ``y (n, m)`` over the columns selected by a host boolean ``mask``."""
    idx = from_host(np.flatnonzero(mask), xp, device=device_of(y))
    return xp.mean(xp.take(y, idx, axis=1), axis=1)


def loop_guess(bias: Array, loops: Array, *, xp: Namespace | None = None) -> Array:
    """Start points of the 9-parameter loop model.

    Parameters
    ----------
    bias : (m,) real array
        DC bias, first half branch 1, second half branch 2.
    loops : (n, m) real array
        Loop responses.

    Returns
    -------
    (n, 9) real array
        ``(a0, a1, a2, a3, a4, b0, b1, b2, b3)``.

    Notes
    -----
    a0 and a0 + a1 are the mean responses at the lowest and highest 10% of the bias range; a4 = 0. With
    ``t = clip((f - a0) / a1, 0, 1)`` on a branch sorted by bias, its switching voltage is
    ``V_min + integral (1 - t) dV`` (exact for a step); b = 1/10 of the bias range.
    """
    xp = array_namespace(loops) if xp is None else xp
    v = host_vector(bias)
    m = v.shape[0]
    half = m // 2
    vmin, vmax = float(v.min()), float(v.max())
    span = vmax - vmin if vmax > vmin else 1.0
    dev = device_of(loops)
    lo_level = _segment_mean(loops, v <= vmin + 0.1 * span, xp)
    hi_level = _segment_mean(loops, v >= vmax - 0.1 * span, xp)
    a1 = hi_level - lo_level
    a1 = xp.where(a1 == 0, xp.asarray(1e-12, dtype=loops.dtype, device=dev), a1)
    switch = []
    for sl in (slice(0, half), slice(half, m)):
        vb = v[sl]
        order = np.argsort(vb, kind="stable") + sl.start
        vs = v[order]
        idx = from_host(order, xp, device=dev)
        t = xp.clip((xp.take(loops, idx, axis=1) - lo_level[:, None]) / a1[:, None], min=0.0, max=1.0)
        dv = from_host(np.diff(vs), xp, device=dev, dtype=loops.dtype)
        area = xp.sum((1.0 - 0.5 * (t[:, 1:] + t[:, :-1])) * dv, axis=1)
        switch.append(float(vs[0]) + area)
    b = xp.full_like(lo_level, 0.1 * span)
    zero = xp.zeros_like(lo_level)
    return xp.stack([lo_level, a1, switch[0], switch[1], zero, b, b, b, b], axis=1)


def peaks_guess(
    x: Array, y: Array, *, shape: str = "gaussian", n_peaks: int = 1, xp: Namespace | None = None
) -> Array:
    """Start points of K peaks on a linear background, from maxima and half widths.

    Parameters
    ----------
    x : (m,) real array
    y : (n, m) real array
    shape : {'gaussian', 'lorentzian', 'pseudo_voigt'}
    n_peaks : int

    Returns
    -------
    (n, per * K + 2) real array
        ``(h, c, w[, eta])`` per peak (eta = 0.5) then background ``(b0, b1)``.

    Notes
    -----
    The background is the line through the mean of the first and last 5% of samples. Peaks are found
    one at a time on the residual: height and centre at its maximum, FWHM from the number of samples
    above half height within the peak's neighbourhood; the Gaussian estimate is then subtracted.
    """
    xp = array_namespace(y) if xp is None else xp
    xh = host_vector(x)
    m = xh.shape[0]
    dev = device_of(y)
    edge = max(1, m // 20)
    left = np.zeros(m, dtype=bool)
    left[:edge] = True
    right = np.zeros(m, dtype=bool)
    right[-edge:] = True
    yl = _segment_mean(y, left, xp)
    yr = _segment_mean(y, right, xp)
    xl, xr = float(xh[:edge].mean()), float(xh[-edge:].mean())
    b1 = (yr - yl) / (xr - xl if xr != xl else 1.0)
    b0 = yl - b1 * xl
    xd = from_host(xh, xp, device=dev, dtype=y.dtype)
    resid = y - (b0[:, None] + b1[:, None] * xd)
    dx = abs(xh[-1] - xh[0]) / max(m - 1, 1)
    window = abs(xh[-1] - xh[0]) / (2 * int(n_peaks))
    cols = []
    for _ in range(int(n_peaks)):
        i = xp.argmax(resid, axis=1)
        h = xp.max(resid, axis=1)
        c = xp.take(xd, i)
        near = xp.abs(xd - c[:, None]) <= window
        above = xp.logical_and(near, resid >= 0.5 * h[:, None])
        w = xp.maximum(xp.astype(xp.sum(xp.astype(above, y.dtype), axis=1), y.dtype) * dx, 2 * dx)
        cols += [h, c, w]
        if shape == "pseudo_voigt":
            cols.append(xp.full_like(h, 0.5))
        z = (xd - c[:, None]) / w[:, None]
        resid = resid - h[:, None] * xp.exp(-4.0 * math.log(2.0) * z * z)
    return xp.stack([*cols, b0, b1], axis=1)


def _relax_basics(t: Array, y: Array, xp: Namespace):
    th = host_vector(t)
    m = th.shape[0]
    dev = device_of(y)
    tail = np.zeros(m, dtype=bool)
    tail[-max(1, m // 10) :] = True
    head = np.zeros(m, dtype=bool)
    head[: max(1, m // 50)] = True
    c = _segment_mean(y, tail, xp)
    a = _segment_mean(y, head, xp) - c
    a = xp.where(a == 0, xp.asarray(1e-12, dtype=y.dtype, device=dev), a)
    dt = from_host(np.diff(th), xp, device=dev, dtype=y.dtype)
    yc = y - c[:, None]
    area = xp.sum(0.5 * (yc[:, 1:] + yc[:, :-1]) * dt, axis=1)
    span = float(th.max() - th.min()) or 1.0
    tau = area / a
    tau = xp.where(tau > 0, xp.clip(tau, max=span * 10), xp.asarray(span / 5, dtype=y.dtype, device=dev))
    return a, tau, c


def exponential_guess(t: Array, y: Array, *, xp: Namespace | None = None) -> Array:
    """``(A, tau, c)``: tail mean, start minus tail, and the area under ``y - c`` divided by A.

    Parameters
    ----------
    t : (m,) real array
    y : (n, m) real array

    Returns
    -------
    (n, 3) real array
    """
    xp = array_namespace(y) if xp is None else xp
    a, tau, c = _relax_basics(t, y, xp)
    return xp.stack([a, tau, c], axis=1)


def double_exponential_guess(t: Array, y: Array, *, xp: Namespace | None = None) -> Array:
    """``(A/2, tau/3, A/2, 3 tau, c)`` from the single-exponential guess; returns ``(n, 5)``."""
    xp = array_namespace(y) if xp is None else xp
    a, tau, c = _relax_basics(t, y, xp)
    return xp.stack([0.5 * a, tau / 3.0, 0.5 * a, 3.0 * tau, c], axis=1)


def stretched_exponential_guess(t: Array, y: Array, *, xp: Namespace | None = None) -> Array:
    """``(A, tau, 1, c)`` from the single-exponential guess; returns ``(n, 4)``."""
    xp = array_namespace(y) if xp is None else xp
    a, tau, c = _relax_basics(t, y, xp)
    return xp.stack([a, tau, xp.ones_like(a), c], axis=1)
