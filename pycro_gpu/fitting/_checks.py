"""Checks of the fitting API's inputs: one clear error naming the parameter and its value.

Shared by :mod:`pycro_gpu.fitting.api` (array fits) and :mod:`pycro_gpu.fitting.dataset` (dataset fits,
checked before any output is allocated).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ..backend import to_host
from ..errors import DataError


def check_maxiter(maxiter: Any) -> int:
    """``maxiter`` as an int; refuses anything but an integer >= 1 (``0``, ``-1``, ``1.5``, ``True``)."""
    if isinstance(maxiter, (bool, np.bool_)) or not isinstance(maxiter, (int, np.integer)) or maxiter < 1:
        msg = f"maxiter must be an integer >= 1, got {maxiter!r}"
        raise ValueError(msg)
    return int(maxiter)


def check_tolerance(value: Any, name: str) -> float | None:
    """A stopping tolerance (``ftol``, ``xtol``): ``None`` (the default) or a finite number > 0."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        msg = f"{name} must be a positive finite number or None, got {value!r}"
        raise ValueError(msg)
    if not (math.isfinite(float(value)) and float(value) > 0):
        msg = f"{name} must be a positive finite number or None, got {value!r}"
        raise ValueError(msg)
    return float(value)


def check_data(a: Any, name: str) -> Any:
    """The batch of data to fit: an array (lists and tuples become NumPy arrays), 2-D."""
    if isinstance(a, (list, tuple)):
        a = np.asarray(a)
    if a is None or not (hasattr(a, "shape") and hasattr(a, "dtype")) or isinstance(a, np.generic):
        msg = f"{name} must be a 2-D array (n_fits, n_samples), got {type(a).__name__}"
        raise DataError(msg)
    if len(a.shape) != 2:
        msg = f"{name} must be 2-D (n_fits, n_samples), got shape {tuple(a.shape)}"
        raise DataError(msg)
    return a


def abscissa(x: Any, name: str, n_samples: int, sample: str = "sample") -> np.ndarray:
    """The abscissa of a fit on the host: a finite real 1-D array of ``n_samples`` values (float64).

    ``sample`` names one sample in the error message (``"bin"`` for spectra).

    Raises
    ------
    DataError
        ``x`` is missing (None), not 1-D, not real, of the wrong length, or holds NaN or inf.
    """
    if x is None or isinstance(x, (str, bytes)):
        msg = f"{name} must be a 1-D real array of {n_samples} values, got {x!r}"
        raise DataError(msg)
    host = np.asarray(to_host(x)) if hasattr(x, "shape") and hasattr(x, "dtype") else np.asarray(x)
    if host.ndim != 1:
        msg = f"{name} must be a 1-D array of {n_samples} values, got shape {host.shape}"
        raise DataError(msg)
    if host.dtype.kind not in "iuf":
        msg = f"{name} must be real numbers, got dtype {host.dtype}"
        raise DataError(msg)
    if host.shape[0] != n_samples:
        msg = f"{name} must have one value per {sample} ({n_samples}), got {host.shape[0]}"
        raise DataError(msg)
    host = np.ascontiguousarray(host, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(host))
    if bad.size:
        msg = f"{name} contains non-finite values (NaN or inf) at indices {bad[:10].tolist()}"
        raise DataError(msg)
    return host


def distinct_samples(x: np.ndarray, branches: int = 1) -> int:
    """Distinct abscissa values of a fit: summed over ``branches`` equal parts (the loop's two branches,
    split at ``m // 2`` as the loop model does), where the same value in two branches counts twice."""
    m = x.shape[0]
    if branches == 1:
        return int(np.unique(x).size)
    half = m // 2
    return int(np.unique(x[:half]).size + np.unique(x[half:]).size)


def check_determined(x: np.ndarray, n_params: int, *, model: str, name: str, branches: int = 1) -> None:
    """Refuse a fit whose samples per position cannot determine its parameters.

    A fit needs more distinct abscissa values (per branch of the loop) than parameters: with as many
    or fewer, any data is matched exactly (R^2 = 1, "converged") and the parameters mean nothing. A
    constant abscissa is refused in its own words.

    Raises
    ------
    DataError
    """
    m = x.shape[0]
    if m > 0 and np.all(x == x[0]):
        msg = f"{name} is constant ({x[0]:g} at all {m} samples): a {model} fit needs distinct values"
        raise DataError(msg)
    n = distinct_samples(x, branches)
    if n <= n_params:
        per = " (per branch, summed)" if branches > 1 else ""
        msg = (
            f"a {model} fit has {n_params} parameters but {name} has only {n} distinct values{per}; it "
            f"needs at least {n_params + 1} to determine them"
        )
        raise DataError(msg)
