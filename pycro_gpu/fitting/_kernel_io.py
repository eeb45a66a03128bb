"""Data in and out of the fit kernels: host abscissas, kernel arrays, the fit dtype, SHO scaling.

Shared by :mod:`pycro_gpu.fitting.api` (fits) and :mod:`pycro_gpu.fitting.guess` (guesses).
"""

from __future__ import annotations

import numpy as np

from .._lib.typing import Array, Namespace
from ..backend import is_cupy_namespace, to_host
from ..errors import DataError
from ._checks import abscissa, check_determined


def host_vector(x: Array, dtype=np.float64) -> np.ndarray:
    """The abscissa on the host (a few hundred values; explicit transfer where it lives on a device)."""
    return np.ascontiguousarray(to_host(x), dtype=dtype).reshape(-1)


def kernel_array(a: Array, xp: Namespace):
    """The array object the kernels take: CuPy arrays as they are, host arrays as NumPy (no copy)."""
    if is_cupy_namespace(xp):
        return a
    return np.asarray(to_host(a))


def float_dtype(dtype) -> np.dtype:
    """The float type a fit of data of ``dtype`` runs in: float32 for float32/complex64, else float64."""
    name = str(dtype).split(".")[-1]
    return np.dtype(np.float32 if name in ("float32", "complex64") else np.float64)


def prepare_sho(spectra: Array, frequencies: Array, xp: Namespace):
    """Scale SHO data for the kernels: frequencies by their mean, responses by their largest magnitude.

    Returns ``(y_view, x_scaled, fscale, ascale, dtype)`` with ``y_view`` the (n, 2 m) real view of the
    scaled spectra in kernel form (NumPy or CuPy).

    Raises
    ------
    DataError
        Spectra not 2-D complex; frequencies missing, not 1-D, non-finite, of another length than the
        spectra, constant, or fewer than 5 distinct values (the 4 SHO parameters would not be determined).
    """
    if spectra.ndim != 2:
        msg = f"spectra must be 2-D (n_positions, n_bins), got shape {tuple(spectra.shape)}"
        raise DataError(msg)
    if "complex" not in str(spectra.dtype):
        msg = f"spectra must be complex (SHO fits real and imaginary parts), got dtype {spectra.dtype}"
        raise DataError(msg)
    fdt = float_dtype(spectra.dtype)
    f = abscissa(frequencies, "frequencies", spectra.shape[1], "bin")
    check_determined(f, 4, model="SHO", name="frequencies")
    fscale = float(np.mean(np.abs(f))) or 1.0
    y = kernel_array(spectra, xp)
    ascale = 1.0
    if is_cupy_namespace(xp):
        import cupy

        if fdt == np.float32:
            # the CUDA float32 kernel: responses scaled to O(1) so that squares stay far from under/overflow
            mag = cupy.abs(y)
            ascale = cupy.max(cupy.where(cupy.isfinite(mag), mag, 0))
            ascale = cupy.where(ascale > 0, ascale, 1).astype(fdt)
            y = y / ascale
        y_view = cupy.ascontiguousarray(y).view(fdt)
    else:
        # the CPU kernels compute in float64 whatever the data type: no scaling, no copy
        y_view = np.ascontiguousarray(y).view(fdt)
    return y_view, f / fscale, fscale, ascale, fdt


def result_namespace_arrays(out, xp: Namespace, device):
    """The kernel arrays ``out`` as arrays of ``xp`` (on ``device`` for host namespaces)."""
    if is_cupy_namespace(xp):
        return tuple(xp.asarray(o) for o in out)
    return tuple(xp.asarray(o, device=device) for o in out)
