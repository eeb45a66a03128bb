"""Exception types raised by pycro_gpu.

Every error a user can cause (bad file, bad parameter, missing optional package, unusable device) is one
of these, so command-line tools can print a single line and scripts can catch them by kind.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "DataError",
    "MissingDependencyError",
    "PycroGPUError",
    "USIDError",
]


class PycroGPUError(Exception):
    """Base class of every error raised on purpose by pycro_gpu."""


class BackendUnavailableError(PycroGPUError, RuntimeError):
    """The requested compute backend cannot run here (for example CuPy without a CUDA device)."""


class MissingDependencyError(PycroGPUError, ImportError):
    """An optional package needed by the called function is not installed."""


class DataError(PycroGPUError, ValueError):
    """Input data is malformed: wrong shape, non-finite values, truncated or corrupt file."""


class USIDError(DataError):
    """An HDF5 object does not follow the USID data model."""
