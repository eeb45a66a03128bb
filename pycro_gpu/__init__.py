"""pycro_gpu: microscopy and spectroscopy data in USID/HDF5, processed on CPU or GPU from one code base.

Importing the package imports neither CuPy nor cuML nor cuCIM: GPU libraries load only when a GPU
path runs. Choose the backend with ``PYCRO_GPU_BACKEND``, :func:`set_config` or
:func:`config_context`; ``auto`` uses CuPy only where a CUDA device is usable.
"""

from __future__ import annotations

from ._config import config_context, get_config, set_config
from ._version import __version__
from .backend import array_namespace, cupy_available, get_namespace, resolve_backend, to_host
from .errors import (
    BackendUnavailableError,
    DataError,
    GPUFallbackWarning,
    MissingDependencyError,
    ParameterError,
    PycroGPUError,
    USIDError,
)

#: Sub-modules loaded on first attribute access (``pycro_gpu.fitting.fit_sho(...)``), so that
#: ``import pycro_gpu`` stays light and imports no GPU library.
_SUBMODULES = (
    "backend",
    "cluster",
    "datasets",
    "decomposition",
    "distributed",
    "filters",
    "fitting",
    "io",
    "kernels",
    "process",
)


def __getattr__(name: str):
    if name in _SUBMODULES:
        import importlib

        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))


__all__ = [
    "BackendUnavailableError",
    "DataError",
    "GPUFallbackWarning",
    "MissingDependencyError",
    "ParameterError",
    "PycroGPUError",
    "USIDError",
    "__version__",
    "array_namespace",
    "backend",
    "cluster",
    "config_context",
    "cupy_available",
    "datasets",
    "decomposition",
    "distributed",
    "filters",
    "fitting",
    "get_config",
    "get_namespace",
    "io",
    "kernels",
    "process",
    "resolve_backend",
    "set_config",
    "to_host",
]
