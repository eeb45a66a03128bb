"""Optional dependencies: import on demand, fail with one message that says what to install."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from ..errors import MissingDependencyError

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
}


def ml_engine(xp: Any, gpu_supported: bool) -> str:
    """``"cuml"`` for CuPy data when the method has a cuML estimator and cuML imports, else ``"sklearn"``.

    Parameters
    ----------
    xp : namespace
        Namespace of the data.
    gpu_supported : bool
        Whether the method (as it will be run) has a cuML estimator.
    """
    from ..backend import is_cupy_namespace

    if gpu_supported and is_cupy_namespace(xp):
        try:
            importlib.import_module("cuml")
        except ImportError:
            return "sklearn"
        return "cuml"
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
        top = module.split(".")[0]
        dist = package or top
        extra = EXTRA_OF.get(top)
        hint = f"pip install 'pycro-gpu[{extra}]'" if extra else f"pip install {dist}"
        msg = f"{feature} needs the optional package {dist!r} ({exc}); install it with: {hint}"
        raise MissingDependencyError(msg) from exc
