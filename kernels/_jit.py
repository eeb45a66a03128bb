"""Compilation helpers shared by the kernels: one Python source, a CPU and a CUDA build.

``numba.cuda`` is imported lazily (inside :func:`cuda_device` and :func:`cuda_kernel`) so that importing
the kernels never touches CUDA; the compiled objects are cached per source function, and numba itself
caches one specialisation per argument signature.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import numba

__all__ = [
    "cpu_device",
    "cpu_parallel",
    "cuda_device",
    "cuda_kernel",
    "has_cuda_interface",
    "in_cudasim",
]


def in_cudasim() -> bool:
    """True when numba runs CUDA kernels in its CPU simulator (``NUMBA_ENABLE_CUDASIM=1``)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


def has_cuda_interface(x: Any) -> bool:
    """True for arrays in CUDA device memory (CuPy, numba device arrays)."""
    return hasattr(x, "__cuda_array_interface__")


@functools.cache
def cpu_device(func: Callable) -> Callable:
    """Compile a scalar source function for calls from other CPU kernels (inlined by LLVM)."""
    return numba.njit(inline="always", fastmath=False, error_model="numpy")(func)


def cpu_parallel(func: Callable) -> Callable:
    """Compile a CPU driver that loops with ``numba.prange`` over rows or fits."""
    return numba.njit(parallel=True, fastmath=False, error_model="numpy", nogil=True)(func)


@functools.cache
def cuda_device(func: Callable) -> Callable:
    """Compile a scalar source function as a CUDA device function (lazy ``numba.cuda`` import)."""
    from numba import cuda

    return cuda.jit(device=True, inline="always")(func)


@functools.cache
def cuda_kernel(factory: Callable[[], Callable]) -> Callable:
    """Build and cache the CUDA kernel returned by ``factory()``.

    The kernel source must reach numba's CUDA module through the module-global name ``cuda`` (kernel
    modules declare ``cuda = None``): this binds it on first use, so importing a kernel module never
    imports ``numba.cuda``, and numba's simulator can swap the global for its fake CUDA module.
    """
    from numba import cuda

    factory.__globals__["cuda"] = cuda
    return factory()
