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
    "launch",
    "launch_stream",
    "numba_cuda",
    "numba_stream",
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


def numba_stream(ptr: int) -> Any:
    """A numba stream for the CUDA stream handle ``ptr`` (e.g. a CuPy stream's ``.ptr``).

    Under ``NUMBA_ENABLE_CUDASIM=1`` numba has no external streams (its ``external_stream`` raises):
    the simulator's own stream stands in, and the simulated launch on it runs synchronously.
    """
    cuda = numba_cuda()
    if in_cudasim():
        return cuda.stream()
    return cuda.external_stream(int(ptr))


def launch_stream() -> Any:
    """The stream for kernels over CuPy arrays: CuPy's current stream, or 0 where that is the default one.

    Code that runs CuPy work on an explicit stream (``with stream:``, as the streamed engine does) gets
    its kernels launched on that stream too, in order with the CuPy work around them; elsewhere the
    launch stays on the default stream as before.
    """
    import cupy

    ptr = cupy.cuda.get_current_stream().ptr
    return numba_stream(ptr) if ptr else 0


def launch(kernel: Callable, blocks: int, threads: int, args: tuple, stream: Any = 0) -> None:
    """``kernel[blocks, threads](*args)``, or on ``stream`` without numba's per-argument synchronisation.

    numba waits for the stream that a CUDA-array-interface argument (a CuPy array) names before every
    launch, argument by argument (``NUMBA_CUDA_ARRAY_INTERFACE_SYNC``). On an explicit ``stream`` the
    producer's work is ordered before the kernel by the stream itself, so CuPy arguments are passed as
    numba views made with ``as_cuda_array(a, sync=False)`` (no copy, no wait). ``stream`` 0 (or None)
    launches exactly as ``kernel[blocks, threads](*args)``.

    Parameters
    ----------
    kernel : numba CUDA kernel
    blocks, threads : int
        Grid and block sizes.
    args : tuple
        Kernel arguments (CuPy or numba device arrays, host arrays under the simulator, scalars).
    stream : numba stream or 0
        From :func:`launch_stream` or :func:`numba_stream`, or ``numba.cuda.stream()``.
    """
    if not stream:
        kernel[blocks, threads](*args)
        return
    if not in_cudasim():
        cuda = numba_cuda()
        args = tuple(cuda.as_cuda_array(a, sync=False) if _is_cupy_array(a) else a for a in args)
    kernel[blocks, threads, stream](*args)


def _is_cupy_array(a: Any) -> bool:
    return type(a).__module__.startswith("cupy") and has_cuda_interface(a)
