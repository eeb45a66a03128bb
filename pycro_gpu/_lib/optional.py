"""Optional dependencies: import on demand, fail with one message that says what to install.

GPU libraries with a CPU counterpart (cuML / scikit-learn, cuCIM / scikit-image) are imported with
:func:`import_gpu_library`: *any* failure (not only ``ImportError``: a CUDA driver older than the
library needs raises ``RuntimeError`` or ``OSError`` while it imports, a half-installed RAPIDS stack
``AttributeError``) gives ``None``, and the caller runs the CPU library. The first failure of each
library in a process issues one :class:`~pycro_gpu.errors.GPUFallbackWarning` naming the library, the
cause and what runs instead; later calls (every batch of a streamed job) neither import again nor warn.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType
from typing import Any

from ..errors import GPUFallbackWarning, MissingDependencyError

#: pip extra that provides each optional top-level module.
EXTRA_OF = {
    "cupy": "gpu",
    "cupyx": "gpu",
    "cuml": "gpu",
    "cucim": "gpu",
    "igor2": "io",
    "gwyfile": "io",
    "rsciio": "io",
    "tifffile": "io",
    "xarray": "io",
    "dask": "dask",
    "distributed": "dask",
    "dask_cuda": "multigpu",
}


#: module name -> why its import failed ("" when not installed); a failed import is not retried.
_FAILED_IMPORTS: dict[str, str] = {}
#: top-level GPU libraries whose failure has been reported (one warning per process and library).
_REPORTED: set[str] = set()


def install_hint(module: str, package: str | None = None) -> str:
    """``pip install ...`` command that provides ``module`` (the pip extra where there is one)."""
    top = module.split(".")[0]
    extra = EXTRA_OF.get(top)
    return f"pip install 'pycro-gpu[{extra}]'" if extra else f"pip install {package or top}"


def import_gpu_library(module: str, *, instead: str, warn_if_missing: bool = True) -> ModuleType | None:
    """Import the GPU library ``module``, or return ``None`` when it fails for any reason.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"cuml"`` or ``"cucim.skimage.filters"``.
    instead : str
        What runs instead, for the warning (e.g. ``"scikit-learn on the host"``).
    warn_if_missing : bool
        Whether a library that is simply not installed warns too (``False`` where running the CPU
        library on GPU data is the documented behaviour). A library that is installed but fails to
        import always warns.

    Returns
    -------
    module or None
        ``None`` after a failure; the first failure of each top-level library in this process issues
        one :class:`~pycro_gpu.errors.GPUFallbackWarning`, and a failed module is not imported again.
    """
    top = module.split(".")[0]
    if module not in _FAILED_IMPORTS:
        try:
            return importlib.import_module(module)
        except Exception as exc:  # ImportError, or CUDA failing while the library initialises
            not_installed = isinstance(exc, ModuleNotFoundError) and exc.name == top
            _FAILED_IMPORTS[module] = "" if not_installed else f"{type(exc).__name__}: {exc}"
    cause = _FAILED_IMPORTS[module]
    if top in _REPORTED or (not cause and not warn_if_missing):
        return None
    _REPORTED.add(top)
    what = f"failed to import ({cause})" if cause else f"is not installed ({install_hint(top)})"
    msg = f"{top} {what}; using {instead} instead (this warning is shown once)"
    warnings.warn(msg, GPUFallbackWarning, stacklevel=3)
    return None


def ml_engine(xp: Any, gpu_supported: bool, *, instead: str = "scikit-learn on the host") -> str:
    """``"cuml"`` for CuPy data when the method has a cuML estimator and cuML imports, else ``"sklearn"``.

    cuML not installed gives scikit-learn silently; cuML installed but failing to import (a CUDA driver
    mismatch ...) gives scikit-learn with one :class:`~pycro_gpu.errors.GPUFallbackWarning`.

    Parameters
    ----------
    xp : namespace
        Namespace of the data.
    gpu_supported : bool
        Whether the method (as it will be run) has a cuML estimator.
    instead : str
        What runs when cuML fails to import, for the warning.
    """
    from ..backend import is_cupy_namespace

    if gpu_supported and is_cupy_namespace(xp):
        cuml = import_gpu_library("cuml", instead=instead, warn_if_missing=False)
        return "sklearn" if cuml is None else "cuml"
    return "sklearn"


def require(module: str, *, feature: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra that provides it.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"igor2.binarywave"``.
    feature : str
        What needs it, for the message (e.g. ``"read_ibw"``).
    package : str, optional
        Distribution name when it differs from the module's top-level name.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        dist = package or module.split(".")[0]
        hint = install_hint(module, package)
        msg = f"{feature} needs the optional package {dist!r} ({exc}); install it with: {hint}"
        raise MissingDependencyError(msg) from exc
