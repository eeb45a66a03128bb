"""Compute backends: the one module that imports array_api_compat and CuPy.

Every routine of pycro_gpu is written against the Python array API. This module turns a backend name
(``auto``, ``numpy``, ``cupy``) or a set of input arrays into an array namespace, and moves arrays
between host and device explicitly. CuPy is imported only when it is asked for, and a successful
``import cupy`` is never taken to mean that a GPU is present: ``cupy.is_available()`` decides.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import array_api_compat
import numpy as np

from ._config import get_config, validate_backend
from ._lib.typing import Array, Device, Namespace
from .errors import BackendUnavailableError

__all__ = [
    "BatchTransfers",
    "array_namespace",
    "cuda_devices",
    "cupy_available",
    "cupy_status",
    "device_of",
    "from_host",
    "get_namespace",
    "is_cupy_namespace",
    "is_numpy_namespace",
    "namespace_name",
    "resolve_backend",
    "synchronize",
    "to_host",
]

_CUPY_HINT = "install the GPU extra (pip install 'pycro-gpu[gpu]') on a machine with a CUDA device"


@functools.lru_cache(maxsize=1)
def cupy_status() -> tuple[bool, str]:
    """Return (usable, reason). Cached: probing CUDA is slow and its answer does not change."""
    if not _cuda_driver_loadable():
        # CuPy needs the CUDA driver library: without it no device is usable, and importing CuPy to
        # find that out costs ~0.2 s of every command's start on a CPU machine.
        return False, "no CUDA driver library (libcuda) on this machine"
    try:
        import cupy
    except Exception as exc:  # ImportError, or a CUDA library that fails to load
        return False, f"cupy is not importable ({type(exc).__name__}: {exc})"
    try:
        ok = bool(cupy.is_available())
    except Exception as exc:
        return False, f"cupy cannot reach a CUDA device ({type(exc).__name__}: {exc})"
    if not ok:
        return False, "cupy is installed but no CUDA device is available"
    return True, ""


def _cuda_driver_loadable() -> bool:
    """False where the CUDA driver library cannot be loaded (Linux; elsewhere CuPy decides)."""
    if not sys.platform.startswith("linux"):
        return True
    import ctypes

    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def cupy_available() -> bool:
    """Return True when CuPy imports and a CUDA device is usable.

    Examples
    --------
    >>> from pycro_gpu.backend import cupy_available
    >>> isinstance(cupy_available(), bool)
    True
    """
    return cupy_status()[0]


def cuda_devices() -> list[str]:
    """The CUDA devices this process can use, named as ``CUDA_VISIBLE_DEVICES`` names them.

    ``[]`` where no device is usable (see :func:`cupy_status` for why). The names are the first
    entries of ``CUDA_VISIBLE_DEVICES`` (indices or ``GPU-<uuid>``), as many as CUDA counts, or
    ``"0"``, ``"1"``, ... when the variable is unset: what ``dask_cuda.LocalCUDACluster`` takes.

    Examples
    --------
    >>> from pycro_gpu.backend import cuda_devices
    >>> isinstance(cuda_devices(), list)
    True
    """
    if not cupy_available():
        return []
    import cupy

    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # a driver that answered is_available() but fails now
        return []
    visible = [name.strip() for name in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if name.strip()]
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return visible[:count]
    return [str(i) for i in range(count)]


def resolve_backend(backend: str | None = None) -> str:
    """Resolve a backend request to ``"numpy"`` or ``"cupy"``.

    Parameters
    ----------
    backend : {'auto', 'numpy', 'cupy'}, optional
        Requested backend; ``None`` takes the configured one (``PYCRO_GPU_BACKEND`` or
        :func:`pycro_gpu.config_context`).

    Returns
    -------
    str
        ``"cupy"`` when requested (or ``auto``) and usable, otherwise ``"numpy"``.

    Raises
    ------
    BackendUnavailableError
        ``"cupy"`` was requested explicitly and no CUDA device is usable.
    """
    name = validate_backend(get_config()["backend"] if backend is None else backend)
    if name == "numpy":
        return "numpy"
    usable, reason = cupy_status()
    if name == "auto":
        return "cupy" if usable else "numpy"
    if not usable:
        msg = f"backend 'cupy' is not usable: {reason}; {_CUPY_HINT}, or use backend 'numpy'"
        raise BackendUnavailableError(msg)
    return "cupy"


def get_namespace(backend: str | None = None) -> Namespace:
    """Return the array-API namespace of a backend (see :func:`resolve_backend`).

    Examples
    --------
    >>> from pycro_gpu.backend import get_namespace
    >>> xp = get_namespace("numpy")
    >>> float(xp.sum(xp.ones(3)))
    3.0
    """
    if resolve_backend(backend) == "cupy":
        import array_api_compat.cupy as cpx

        return cpx
    return _numpy_namespace()


def _numpy_namespace() -> Namespace:
    """NumPy itself where it implements the 2023.12 standard (NumPy >= 2.1), else array_api_compat's wrapper.

    The wrapper costs about 0.2 s per process to import (it touches every lazily loaded NumPy submodule):
    most of what a small file's whole command takes.
    """
    if getattr(np, "__array_api_version__", "") >= "2023.12":
        return np
    import array_api_compat.numpy as npx

    return npx


def array_namespace(*arrays: Any) -> Namespace:
    """Return the array-API namespace shared by ``arrays``.

    Python scalars and ``None`` are ignored. Arrays of different libraries (e.g. NumPy and CuPy) are
    rejected with a ``TypeError`` that names them.
    """
    arrays = tuple(a for a in arrays if a is not None and not isinstance(a, (int, float, complex)))
    if not arrays:
        return get_namespace()
    if all(isinstance(a, (np.ndarray, np.generic)) for a in arrays):
        return _numpy_namespace()
    try:
        return array_api_compat.array_namespace(*arrays)
    except TypeError as exc:
        kinds = sorted({type(a).__module__ + "." + type(a).__name__ for a in arrays})
        msg = f"inputs must share one array library, got {', '.join(kinds)}"
        raise TypeError(msg) from exc


def namespace_name(xp: Namespace) -> str:
    """Short name of a namespace: ``numpy``, ``cupy``, ``array_api_strict``, ..."""
    if array_api_compat.is_numpy_namespace(xp):
        return "numpy"
    if array_api_compat.is_cupy_namespace(xp):
        return "cupy"
    return xp.__name__.split(".")[-1]


def is_numpy_namespace(xp: Namespace) -> bool:
    """True for NumPy (plain or wrapped by array_api_compat)."""
    return bool(array_api_compat.is_numpy_namespace(xp))


def is_cupy_namespace(xp: Namespace) -> bool:
    """True for CuPy (plain or wrapped by array_api_compat)."""
    return bool(array_api_compat.is_cupy_namespace(xp))


def device_of(*arrays: Array) -> Device:
    """Return the device shared by ``arrays``; raise ``ValueError`` if they live on different ones."""
    devices = []
    for a in arrays:
        if a is None or isinstance(a, (int, float, complex)):
            continue
        d = array_api_compat.device(a)
        if all(d != known for known in devices):
            devices.append(d)
    if len(devices) > 1:
        msg = f"inputs live on different devices: {devices}"
        raise ValueError(msg)
    return devices[0] if devices else None


def to_host(x: Array) -> np.ndarray:
    """Copy an array of any backend to a NumPy array (an explicit device-to-host transfer).

    Library code calls this only where data must leave the device (writing HDF5, plotting).
    """
    if isinstance(x, np.ndarray):
        return x
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if np.isscalar(x):
        return np.asarray(x)
    return np.from_dlpack(x)


def from_host(a: Any, xp: Namespace, *, device: Device = None, dtype: Any = None) -> Array:
    """Move host data ``a`` into namespace ``xp`` (on ``device`` if given)."""
    if device is None:
        return xp.asarray(a, dtype=dtype)
    return xp.asarray(a, dtype=dtype, device=device)


def synchronize(xp: Namespace) -> None:
    """Wait for the device of ``xp`` to finish queued work (no-op on CPU namespaces)."""
    if is_cupy_namespace(xp):
        import cupy

        cupy.cuda.get_current_stream().synchronize()


class BatchTransfers:
    """Host-device traffic of a pipelined batch loop: one stream, page-locked buffers, one copy back.

    On CuPy: one CUDA stream of its own (an ordinary stream, ordered with the legacy default stream, so
    kernels that other code launches on stream 0 still see its results), page-locked (pinned) host
    buffers, uploads queued on the stream without waiting, the compute's CuPy work and numba kernels on
    that stream (:meth:`active`; the kernels launch on CuPy's current stream, see
    ``pycro_gpu.kernels._jit.launch_stream``), and the outputs of a batch packed into one device buffer
    and copied back in one asynchronous copy followed by one wait (:meth:`download`). On host
    namespaces the same steps are plain copies (the engine does not use them there; tests do).

    Parameters
    ----------
    xp : namespace
        The compute namespace (CuPy, or a host namespace).

    Examples
    --------
    >>> import numpy as np
    >>> import array_api_compat.numpy as xp
    >>> t = BatchTransfers(xp)
    >>> with t.active():
    ...     d = t.upload(np.arange(6.0).reshape(2, 3))
    ...     host = t.download([d.sum(axis=1), d > 2])
    >>> [h.tolist() for h in host]
    [[3.0, 12.0], [[False, False, False], [True, True, True]]]
    """

    def __init__(self, xp: Namespace) -> None:
        self.on_device = is_cupy_namespace(xp)
        if self.on_device:
            import cupy

            self._lib = cupy
            self.stream = cupy.cuda.Stream(non_blocking=False)
        else:
            self._lib = np
            self.stream = None
        self._staging = np.empty(0, np.uint8)

    def empty_host(self, shape: Any, dtype: Any) -> np.ndarray:
        """A host array for data on its way to or from the device: page-locked on CuPy."""
        if self.on_device:
            import cupyx

            return cupyx.empty_pinned(shape, dtype=dtype)
        return np.empty(shape, dtype=dtype)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Make the stream CuPy's current one; on an error, wait for the work queued on it."""
        if self.stream is None:
            yield
            return
        try:
            with self.stream:
                yield
        except BaseException:
            with contextlib.suppress(Exception):
                self.stream.synchronize()  # nothing may still read a host buffer that is reused next
            raise

    def upload(self, host: np.ndarray) -> Array:
        """Queue the copy of a C-contiguous host array (pinned: asynchronous) to the device."""
        if not self.on_device:
            return np.array(host)
        out = self._lib.empty(host.shape, dtype=host.dtype)
        out.set(host, stream=self.stream)
        return out

    def download(self, values: Sequence[Any]) -> list[np.ndarray]:
        """Host copies of ``values`` (arrays of the namespace) after one device-to-host copy of all.

        The values' bytes are packed into one device buffer (one concatenation), copied into a reused
        page-locked buffer with one asynchronous copy, and the stream is waited for once; each value is
        then copied out of that buffer (which the next batch overwrites).
        """
        lib = self._lib
        arrays = [lib.ascontiguousarray(lib.asarray(v)) for v in values]
        parts = [a.reshape(-1).view(lib.uint8) for a in arrays]
        total = sum(int(p.size) for p in parts)
        if self._staging.size < total:
            self._staging = self.empty_host((total,), np.uint8)
        staged = self._staging[:total]
        if total:
            packed = lib.concatenate(parts)
            if self.on_device:
                packed.get(stream=self.stream, out=staged, blocking=False)
            else:
                staged[...] = packed
        if self.stream is not None:
            self.stream.synchronize()
        out, offset = [], 0
        for a, part in zip(arrays, parts, strict=True):
            n = int(part.size)
            out.append(staged[offset : offset + n].view(a.dtype).reshape(a.shape).copy())
            offset += n
        return out
