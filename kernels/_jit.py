"""Compilation helpers shared by the kernels: one Python source, a CPU and a CUDA build.

``numba.cuda`` is imported lazily (inside :func:`cuda_device` and :func:`cuda_kernel`) so that importing
the kernels never touches CUDA; the compiled objects are cached per source function, and numba itself
caches one specialisation per argument signature. Entry points called from Python (drivers and CUDA
kernels) and the compiled helpers they call also get a name and the on-disk cache of :mod:`.cache`, so
they compile once per machine.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import numba

from .cache import persistent

__all__ = [
    "cpu_device",
    "cpu_parallel",
    "cpu_serial",
    "cuda_device",
    "cuda_kernel",
    "has_cuda_interface",
    "in_cudasim",
    "numba_cuda",
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


def cpu_parallel(func: Callable, name: str) -> Callable:
    """Compile a CPU driver that loops with ``numba.prange`` over rows or fits, cached on disk as ``name``."""
    return persistent(numba.njit(parallel=True, fastmath=False, error_model="numpy", nogil=True)(func), name)


def cpu_serial(func: Callable, name: str) -> Callable:
    """Compile the source of a :func:`cpu_parallel` driver without threads (``prange`` runs serially).

    A parallel region has a fixed cost that small batches do not repay. Cached on disk as ``name``.
    """
    return persistent(numba.njit(fastmath=False, error_model="numpy", nogil=True)(func), name)


def numba_cuda() -> Any:
    """Import and return ``numba.cuda`` (the one place kernels import it, lazily).

    numba-cuda <= 0.30 registers a CUDA overload for ``numpy.row_stack``, which NumPy 2.5 removed, so
    its array support fails to import there (seen on a GPU machine with NumPy 2.5 and numba-cuda
    0.30.4). Where NumPy lacks it, ``row_stack`` is restored as the alias of ``vstack`` it always was.
    """
    import numpy as np

    if not hasattr(np, "row_stack"):
        setattr(np, "row_stack", np.vstack)  # noqa: B010 (ruff's NPY201 fix would rewrite np.row_stack)
    from numba import cuda

    return cuda


@functools.cache
def cuda_device(func: Callable) -> Callable:
    """Compile a scalar source function as a CUDA device function (lazy ``numba.cuda`` import)."""
    cuda = numba_cuda()
    return cuda.jit(device=True, inline="always")(func)


@functools.cache
def cuda_kernel(factory: Callable[..., Callable], *args: Any, cache_name: str | None = None) -> Callable:
    """Build and cache the CUDA kernel returned by ``factory(*args)`` (one per hashable ``args``).

    The kernel source must reach numba's CUDA module through the module-global name ``cuda`` (kernel
    modules declare ``cuda = None``): this binds it on first use, so importing a kernel module never
    imports ``numba.cuda``, and numba's simulator can swap the global for its fake CUDA module.
    ``args`` are the kernel's compile-time parameters (e.g. a fit model and a float type name);
    ``cache_name`` (stating all of them) puts the compiled kernel in the on-disk cache.
    """
    cuda = numba_cuda()
    factory.__globals__["cuda"] = cuda
    kernel = factory(*args)
    return kernel if cache_name is None else persistent(kernel, cache_name)
