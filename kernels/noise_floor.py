"""Noise floor of spectra (pycroscopy's iterative Rayleigh-threshold estimate), one row per task.

The array-API version (:func:`pycro_gpu.filters.get_noise_floor`) makes a few full passes over the
batch per iteration (select, sum, temporaries). Here each row iterates on its own, summing the
weighted power of the bins under the current threshold in one pass per iteration without temporaries,
and stops as soon as that row has converged. CPU only (``prange`` over rows): on a GPU the batch-wide
array-API reductions (CuPy) are the better shape, one thread per row would leave the device idle.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from ._jit import cpu_device, cpu_parallel, cpu_serial

__all__ = ["noise_floor_rows", "row_noise_floor"]


def row_noise_floor(spectra, i, signal_length, log_term, rtol, max_iter):
    """Noise floor of row ``i`` of one-sided ``spectra`` (see ``get_noise_floor`` for the math)."""
    n_bins = spectra.shape[1]
    last_single = n_bins - 1 if signal_length % 2 == 0 else -1
    s = 0.0
    for j in range(n_bins):
        v = spectra[i, j]
        a2 = float(v.real) * float(v.real) + float(v.imag) * float(v.imag)
        s += a2 if (j == 0 or j == last_single) else 2.0 * a2
    sigma2 = s / (2.0 * signal_length)
    thr2 = sigma2 * log_term
    for _ in range(1, max_iter):
        s = 0.0
        for j in range(n_bins):
            v = spectra[i, j]
            a2 = float(v.real) * float(v.real) + float(v.imag) * float(v.imag)
            if a2 <= thr2:
                s += a2 if (j == 0 or j == last_single) else 2.0 * a2
        new2 = s / (2.0 * signal_length)
        residual = abs(math.sqrt(new2) - math.sqrt(sigma2))
        thr2 = new2 * log_term
        sigma2 = new2
        if not residual > rtol * math.sqrt(new2):
            break
    return math.sqrt(thr2)


_row_cpu = cpu_device(row_noise_floor)


def _noise_floor_rows(spectra, signal_length, log_term, rtol, max_iter, out):
    for i in prange(spectra.shape[0]):
        out[i] = _row_cpu(spectra, i, signal_length, log_term, rtol, max_iter)


_noise_floor_cpu = cpu_parallel(_noise_floor_rows, "noise_floor-parallel")
#: the same source without threads, for small batches (a parallel region has a fixed cost)
_noise_floor_cpu_serial = cpu_serial(_noise_floor_rows, "noise_floor-serial")

#: batches with fewer bins than this run on one thread
PARALLEL_MIN_BINS = 1 << 18


def noise_floor_rows(spectra, tolerance, signal_length, *, rtol=1e-2, max_iter=50):
    """Noise floor of each row of one-sided spectra (CPU kernel).

    Parameters
    ----------
    spectra : (n_rows, n_bins) complex NumPy array
        ``rfft`` of real signals of length ``signal_length``.
    tolerance : float
        In (0, 1): the probability with which pure noise exceeds the floor.
    signal_length : int
        Length of the signals (``n_bins == signal_length // 2 + 1``).
    rtol, max_iter
        Stopping rule, as in ``pycro_gpu.filters.get_noise_floor``.

    Returns
    -------
    (n_rows,) float64 NumPy array

    Examples
    --------
    >>> import numpy as np
    >>> from pycro_gpu.kernels import noise_floor_rows
    >>> x = np.random.default_rng(0).standard_normal((2, 4096))
    >>> floors = noise_floor_rows(np.fft.rfft(x), 1e-3, 4096)
    >>> bool(np.all((floors > 150) & (floors < 250)))
    True
    """
    if spectra.ndim != 2 or spectra.shape[1] != signal_length // 2 + 1:
        msg = (
            f"noise_floor_rows needs spectra (n_rows, {signal_length // 2 + 1}) for signal_length="
            f"{signal_length}, got shape {spectra.shape}"
        )
        raise ValueError(msg)
    out = np.empty(spectra.shape[0], dtype=np.float64)
    log_term = -2.0 * math.log(float(tolerance))
    run = _noise_floor_cpu if spectra.size >= PARALLEL_MIN_BINS else _noise_floor_cpu_serial
    run(spectra, int(signal_length), log_term, float(rtol), int(max_iter), out)
    return out
