"""Fused spectral mask: multiply by a filter mask and zero what falls under a noise threshold.

A frequency-domain filter is ``irfft(threshold(rfft(x) * mask))``. Done as array operations, the mask
multiply, the magnitude, the comparison and the select each pass over the spectrum; this kernel does
them in one pass, in place, for a batch of spectra. Each row has its own threshold (a noise floor per
position, as the G-mode signal filter computes them).

The work of one bin is written once, :func:`mask_bin`, and compiled for the CPU (a ``prange`` loop over
rows) and for CUDA (one thread per bin on a 2-D grid).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import cpu_device, cpu_parallel, cpu_serial, cuda_device, cuda_kernel, has_cuda_interface
from ._jit import numba_cuda as _numba_cuda

__all__ = ["apply_spectral_mask", "mask_bin"]


def mask_bin(value, weight, threshold_sq):
    """Return ``value * weight``, or 0 where ``|value * weight|**2 < threshold_sq``."""
    v = value * weight
    if v.real * v.real + v.imag * v.imag < threshold_sq:
        return v * 0.0
    return v


_mask_bin_cpu = cpu_device(mask_bin)


def _apply_rows(spectra, mask, threshold_sq):
    n_rows, n_bins = spectra.shape
    for i in prange(n_rows):
        t = threshold_sq[i]
        for j in range(n_bins):
            spectra[i, j] = _mask_bin_cpu(spectra[i, j], mask[j], t)


_apply_cpu = cpu_parallel(_apply_rows, "spectral_mask-parallel")
#: the same source without threads: a parallel region costs more than small batches take
_apply_cpu_serial = cpu_serial(_apply_rows, "spectral_mask-serial")

#: batches with fewer bins than this run on one thread
PARALLEL_MIN_BINS = 1 << 18


#: numba.cuda, bound by ``cuda_kernel`` on first launch (a module global, as the simulator requires).
cuda = None


def _cuda_factory():
    mask_bin_dev = cuda_device(mask_bin)

    @cuda.jit
    def spectral_mask_rows_2d(spectra, mask, threshold_sq):
        i, j = cuda.grid(2)
        if i < spectra.shape[0] and j < spectra.shape[1]:
            spectra[i, j] = mask_bin_dev(spectra[i, j], mask[j], threshold_sq[i])

    return spectral_mask_rows_2d


def cuda_spectral_mask():
    """The compiled CUDA kernel ``spectral_mask_rows_2d(spectra, mask, threshold_sq)`` (cached)."""
    return cuda_kernel(_cuda_factory, cache_name="spectral_mask-cuda")


def _launch_cuda(spectra, mask, threshold_sq):
    kernel = cuda_spectral_mask()
    # Bins vary fastest along x (threadIdx.x -> j): consecutive threads touch consecutive bins.
    threads = (4, 64)
    blocks = (
        (spectra.shape[0] + threads[0] - 1) // threads[0],
        (spectra.shape[1] + threads[1] - 1) // threads[1],
    )
    kernel[blocks, threads](spectra, mask, threshold_sq)


def _row_thresholds_sq(threshold, n_rows):
    """Squared thresholds as a host float64 array of shape (n_rows,), or None for a device array."""
    if np.isscalar(threshold) or (isinstance(threshold, np.ndarray) and threshold.ndim == 0):
        t = float(threshold)
        return np.full(n_rows, t * t, dtype=np.float64)
    if isinstance(threshold, np.ndarray):
        if threshold.shape != (n_rows,):
            msg = f"threshold must be a number or an array of shape ({n_rows},), got shape {threshold.shape}"
            raise ValueError(msg)
        t = threshold.astype(np.float64)
        return np.ascontiguousarray(t * t)
    return None


def apply_spectral_mask(spectra, mask, threshold=0.0, *, target=None):
    """Multiply spectra by a mask and zero bins under a magnitude threshold, in place.

    Parameters
    ----------
    spectra : (n_rows, n_bins) complex array
        Spectra, modified in place (C-contiguous). NumPy arrays run on the CPU kernel; arrays in CUDA
        device memory (CuPy) run on the CUDA kernel without leaving the device.
    mask : (n_bins,) real array
        Filter weights, on the same device as ``spectra``.
    threshold : float or (n_rows,) real array, optional
        Bins whose masked magnitude is below this (one value for all rows, or one per row) are set to
        zero (0 keeps every bin). A per-row array must live where ``spectra`` lives.
    target : {'cpu', 'cuda'}, optional
        Force a kernel; ``'cuda'`` with host arrays copies them to the device and back (used by tests
        under ``NUMBA_ENABLE_CUDASIM=1``). Default: chosen from where ``spectra`` lives.

    Returns
    -------
    spectra : (n_rows, n_bins) complex array
        The same array, masked.

    Notes
    -----
    For every row ``i`` and bin ``j``: ``v = spectra[i, j] * mask[j]``; ``spectra[i, j] = v`` if
    ``|v| >= threshold[i]`` else ``0``. One read and one write of the spectrum in total.

    Examples
    --------
    >>> import numpy as np
    >>> from pycro_gpu.kernels import apply_spectral_mask
    >>> s = np.array([[1 + 1j, 0.1 + 0j, 2 + 0j]])
    >>> apply_spectral_mask(s, np.array([1.0, 1.0, 0.5]), threshold=0.5)
    array([[1.+1.j, 0.+0.j, 1.+0.j]])
    """
    if spectra.ndim != 2 or mask.ndim != 1 or mask.shape[0] != spectra.shape[1]:
        msg = (
            "apply_spectral_mask needs spectra (n_rows, n_bins) and mask (n_bins,); got "
            f"{tuple(spectra.shape)} and {tuple(mask.shape)}"
        )
        raise ValueError(msg)
    n_rows = spectra.shape[0]
    on_device = has_cuda_interface(spectra)
    target = target or ("cuda" if on_device else "cpu")
    if target not in ("cpu", "cuda"):
        msg = f"target must be 'cpu' or 'cuda', got {target!r}"
        raise ValueError(msg)
    thr_sq = _row_thresholds_sq(threshold, n_rows)
    if target == "cpu":
        if on_device or (thr_sq is None):
            msg = "apply_spectral_mask(target='cpu') got an array in CUDA device memory"
            raise ValueError(msg)
        if not spectra.flags.c_contiguous:
            msg = "apply_spectral_mask needs C-contiguous spectra (it writes them in place)"
            raise ValueError(msg)
        run = _apply_cpu if spectra.size >= PARALLEL_MIN_BINS else _apply_cpu_serial
        run(spectra, np.ascontiguousarray(mask, dtype=spectra.real.dtype), thr_sq)
        return spectra
    numba_cuda = _numba_cuda()

    if on_device:
        if thr_sq is None:  # a device array of per-row thresholds
            if tuple(threshold.shape) != (n_rows,):
                msg = f"threshold must be an array of shape ({n_rows},), got shape {tuple(threshold.shape)}"
                raise ValueError(msg)
            d_thr = threshold.astype("float64") ** 2  # stays on the device (CuPy)
        else:
            d_thr = numba_cuda.to_device(thr_sq)
        _launch_cuda(spectra, mask, d_thr)
        return spectra
    if thr_sq is None:
        msg = "apply_spectral_mask(target='cuda') with host spectra needs host thresholds"
        raise ValueError(msg)
    d_spectra = numba_cuda.to_device(spectra)
    d_mask = numba_cuda.to_device(np.ascontiguousarray(mask, dtype=spectra.real.dtype))
    _launch_cuda(d_spectra, d_mask, numba_cuda.to_device(thr_sq))
    d_spectra.copy_to_host(spectra)
    return spectra
