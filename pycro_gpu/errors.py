"""Exception and warning types raised by pycro_gpu.

Every error a user can cause (bad file, bad parameter, missing optional package, unusable device) is one
of these, so command-line tools can print a single line and scripts can catch them by kind.
:class:`GPUFallbackWarning` is the one warning of the library's own: a GPU library failed to import and
its CPU counterpart runs instead.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "DataError",
    "GPUFallbackWarning",
    "MissingDependencyError",
    "ParameterError",
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


class ParameterError(PycroGPUError, ValueError, TypeError):
    """A parameter of a public function has the wrong type or lies outside its range.

    A ``ValueError`` and a ``TypeError`` at once (as scikit-learn's ``InvalidParameterError``), so
    code that catches either keeps working; the message names the parameter and the bad value.
    """


class USIDError(DataError):
    """An HDF5 object does not follow the USID data model."""


class GPUFallbackWarning(RuntimeWarning):
    """A GPU library (cuML, cuCIM) failed to import; its CPU counterpart computes instead.

    Issued once per process and library, naming the library, the cause (e.g. a CUDA driver older than
    the library needs) and what runs instead. Silence it with
    ``warnings.filterwarnings("ignore", category=GPUFallbackWarning)``.
    """
