"""Fused spectral mask: multiply by a filter mask and zero what falls under a noise threshold.

A frequency-domain filter is ``irfft(threshold(rfft(x) * mask))``. Done as array operations, the mask
multiply, the magnitude, the comparison and the select each pass over the spectrum; this kernel does
them in one pass, in place, for a batch of spectra.

The work of one bin is written once, :func:`mask_bin`, and compiled for the CPU (a ``prange`` loop over
rows) and for CUDA (one thread per bin on a 2-D grid).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import cpu_device, cpu_parallel, cuda_device, cuda_kernel, has_cuda_interface

__all__ = ["apply_spectral_mask", "mask_bin"]


def mask_bin(value, weight, threshold_sq):
    """Return ``value * weight``, or 0 where ``|value * weight|**2 < threshold_sq``."""
    v = value * weight
    if v.real * v.real + v.imag * v.imag < threshold_sq:
        return v * 0.0
    return v


_mask_bin_cpu = cpu_device(mask_bin)


@cpu_parallel
def _apply_cpu(spectra, mask, threshold_sq):
    n_rows, n_bins = spectra.shape
    for i in prange(n_rows):
        for j in range(n_bins):
            spectra[i, j] = _mask_bin_cpu(spectra[i, j], mask[j], threshold_sq)


#: numba.cuda, bound by ``cuda_kernel`` on first launch (a module global, as the simulator requires).
cuda = None


def _cuda_factory():
    mask_bin_dev = cuda_device(mask_bin)

    @cuda.jit
    def spectral_mask_2d(spectra, mask, threshold_sq):
        i, j = cuda.grid(2)
        if i < spectra.shape[0] and j < spectra.shape[1]:
            spectra[i, j] = mask_bin_dev(spectra[i, j], mask[j], threshold_sq)

    return spectral_mask_2d


def cuda_spectral_mask():
    """The compiled CUDA kernel ``spectral_mask_2d(spectra, mask, threshold_sq)`` (cached)."""
    return cuda_kernel(_cuda_factory)


def _launch_cuda(spectra, mask, threshold_sq):
    kernel = cuda_spectral_mask()
    threads = (8, 32)
    blocks = (
        (spectra.shape[0] + threads[0] - 1) // threads[0],
        (spectra.shape[1] + threads[1] - 1) // threads[1],
    )
    kernel[blocks, threads](spectra, mask, threshold_sq)


def apply_spectral_mask(spectra, mask, threshold=0.0, *, target=None):
    """Multiply spectra by a mask and zero bins under a magnitude threshold, in place.

    Parameters
    ----------
    spectra : (n_rows, n_bins) complex array
        Spectra, modified in place. NumPy arrays run on the CPU kernel; arrays in CUDA device memory
        (CuPy) run on the CUDA kernel without leaving the device.
    mask : (n_bins,) real array
        Filter weights, on the same device as ``spectra``.
    threshold : float, optional
        Bins whose masked magnitude is below this are set to zero (0 keeps every bin).
    target : {'cpu', 'cuda'}, optional
        Force a kernel; ``'cuda'`` with host arrays copies them to the device and back (used by tests
        under ``NUMBA_ENABLE_CUDASIM=1``). Default: chosen from where ``spectra`` lives.

    Returns
    -------
    spectra : (n_rows, n_bins) complex array
        The same array, masked.

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
    threshold_sq = float(threshold) ** 2
    on_device = has_cuda_interface(spectra)
    target = target or ("cuda" if on_device else "cpu")
    if target == "cpu":
        if on_device:
            msg = "apply_spectral_mask(target='cpu') got an array in CUDA device memory"
            raise ValueError(msg)
        _apply_cpu(spectra, np.ascontiguousarray(mask, dtype=spectra.real.dtype), threshold_sq)
        return spectra
    if target != "cuda":
        msg = f"target must be 'cpu' or 'cuda', got {target!r}"
        raise ValueError(msg)
    if on_device:
        _launch_cuda(spectra, mask, threshold_sq)
        return spectra
    from numba import cuda

    d_spectra = cuda.to_device(spectra)
    _launch_cuda(d_spectra, cuda.to_device(np.ascontiguousarray(mask)), threshold_sq)
    d_spectra.copy_to_host(spectra)
    return spectra
