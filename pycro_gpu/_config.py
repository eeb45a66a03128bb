"""Global configuration: compute backend and working-memory budget.

Defaults come from environment variables so that a job script or container can set them without code:

``PYCRO_GPU_BACKEND``
    ``auto`` (default), ``numpy`` or ``cupy``. ``auto`` uses CuPy only where ``cupy.is_available()``.
``PYCRO_GPU_MEMORY_MB``
    Working-memory budget in MiB (default 1024) that sets the size of streamed batches.
``PYCRO_GPU_PROGRESS``
    ``1`` (default) shows progress bars in long jobs, ``0`` hides them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ._lib.checks import check_memory_mb
from .errors import ParameterError

BACKENDS = ("auto", "numpy", "cupy")

_DEFAULT_MEMORY_MB = 1024.0


def _env_backend() -> str:
    return os.environ.get("PYCRO_GPU_BACKEND", "auto").strip().lower() or "auto"


def _env_memory_mb() -> float:
    raw = os.environ.get("PYCRO_GPU_MEMORY_MB", "").strip()
    if not raw:
        return _DEFAULT_MEMORY_MB
    try:
        return float(raw)
    except ValueError:
        msg = f"PYCRO_GPU_MEMORY_MB must be a number of MiB, got {raw!r}"
        raise ValueError(msg) from None


def _env_progress() -> bool:
    return os.environ.get("PYCRO_GPU_PROGRESS", "1").strip().lower() not in {
        "0",
        "false",
        "no",
        "off",
    }


def validate_backend(name: str) -> str:
    """Return ``name`` normalised, or raise ``ValueError`` naming the accepted backends."""
    norm = str(name).strip().lower()
    if norm not in BACKENDS:
        msg = f"backend must be one of {', '.join(BACKENDS)}; got {name!r}"
        raise ValueError(msg)
    return norm


def budget_mb(memory_mb: float | None = None) -> float:
    """The working-memory budget in MiB: ``memory_mb`` when given (checked), else the configured one."""
    return get_config()["memory_mb"] if memory_mb is None else validate_memory_mb(memory_mb)


def rows_for_budget(n_cols: int, bytes_per_value: float, memory_mb: float | None, *, reserve: int = 0) -> int:
    """Number of rows of a batch so that ``rows * n_cols * bytes_per_value`` fits the budget.

    Parameters
    ----------
    n_cols : int
        Values per row.
    bytes_per_value : float
        Bytes that one value of a batch costs in total (all copies that live at once).
    memory_mb : float or None
        Working-memory budget in MiB; ``None`` takes ``get_config()["memory_mb"]``.
    reserve : int
        Bytes of the budget already spent elsewhere (for example an ``n_cols x n_cols`` Gram matrix).
    """
    avail = max(budget_mb(memory_mb) * 2**20 - reserve, 0.0)
    return max(1, int(avail // max(1.0, n_cols * bytes_per_value)))


def validate_memory_mb(value: Any, name: str = "memory_mb") -> float:
    """Return ``value`` as a positive finite float number of MiB, or raise ``ParameterError``.

    Python and NumPy real numbers only: ``0``, negative numbers, NaN, infinities, strings, booleans
    and ``None`` are refused with one line naming ``name`` and the value.
    """
    mb = check_memory_mb(value, name)
    if mb is None:
        msg = f"{name} must be a positive number of MiB, got None"
        raise ParameterError(msg)
    return mb


class _Local(threading.local):
    def __init__(self) -> None:
        self.config: dict[str, Any] | None = None


_local = _Local()


def _config() -> dict[str, Any]:
    if _local.config is None:
        _local.config = {
            "backend": validate_backend(_env_backend()),
            "memory_mb": validate_memory_mb(_env_memory_mb(), "PYCRO_GPU_MEMORY_MB"),
            "progress": _env_progress(),
        }
    return _local.config


def get_config() -> dict[str, Any]:
    """Return a copy of the current configuration.

    Returns
    -------
    dict
        ``backend`` (str), ``memory_mb`` (float) and ``progress`` (bool).
    """
    return dict(_config())


def set_config(
    *, backend: str | None = None, memory_mb: float | None = None, progress: bool | None = None
) -> None:
    """Set configuration values for the current thread.

    Parameters
    ----------
    backend : {'auto', 'numpy', 'cupy'}, optional
        Compute backend for routines called without arrays (for example file-based jobs).
    memory_mb : float, optional
        Working-memory budget in MiB; streamed jobs size their batches from it.
    progress : bool, optional
        Show progress bars in long jobs.
    """
    cfg = _config()
    if backend is not None:
        cfg["backend"] = validate_backend(backend)
    if memory_mb is not None:
        cfg["memory_mb"] = validate_memory_mb(memory_mb)
    if progress is not None:
        cfg["progress"] = bool(progress)


@contextmanager
def config_context(
    *, backend: str | None = None, memory_mb: float | None = None, progress: bool | None = None
) -> Iterator[None]:
    """Temporarily change the configuration inside a ``with`` block.

    Examples
    --------
    >>> import pycro_gpu
    >>> with pycro_gpu.config_context(backend="numpy", memory_mb=64):
    ...     pycro_gpu.get_config()["memory_mb"]
    64.0
    """
    old = get_config()
    set_config(backend=backend, memory_mb=memory_mb, progress=progress)
    try:
        yield
    finally:
        _config().update(old)
