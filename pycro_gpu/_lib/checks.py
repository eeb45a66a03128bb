"""Input checks shared by the routines: one clear error instead of a library's long message.

Parameter checks (:func:`check_int`, :func:`check_real`, :func:`check_positive_float`,
:func:`check_seed`, :func:`check_memory_mb`, :func:`check_choice`, :func:`check_real_vector`) raise
:class:`~pycro_gpu.errors.ParameterError` (a ``ValueError`` and a ``TypeError``) whose one-line
message names the parameter and repeats the bad value. Integer-like parameters take Python and NumPy
integers only: ``1.5``, ``3.0``, ``'3'`` and ``True`` are refused rather than rounded or parsed.

This module imports nothing of pycro_gpu but :mod:`pycro_gpu.errors` at load time, so that
:mod:`pycro_gpu._config` can use it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Collection
from typing import Any

import numpy as np

from ..errors import DataError, ParameterError
from .typing import Array

#: Largest seed scikit-learn's ``random_state`` takes (NumPy's generators take any int >= 0).
MAX_SEED = 2**32 - 1


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_)) or (isinstance(value, np.ndarray) and value.dtype.kind == "b")


def _range_text(minimum: Any, maximum: Any, min_open: bool, max_open: bool) -> str:
    """``">= 1"``, ``"> 0"``, ``"<= 5"``, ``"between 1 and 5"`` or ``"in (0, 1)"``."""
    if minimum is not None and maximum is not None:
        if not min_open and not max_open:
            return f"between {minimum} and {maximum}"
        return f"in {'(' if min_open else '['}{minimum}, {maximum}{')' if max_open else ']'}"
    if minimum is not None:
        return f"{'>' if min_open else '>='} {minimum}"
    return f"{'<' if max_open else '<='} {maximum}"


def _check_range(
    v: float, value: Any, name: str, minimum: Any, maximum: Any, min_open: bool, max_open: bool
) -> None:
    low = minimum is not None and (v <= minimum if min_open else v < minimum)
    high = maximum is not None and (v >= maximum if max_open else v > maximum)
    if low or high:
        msg = f"{name} must be {_range_text(minimum, maximum, min_open, max_open)}, got {value!r}"
        raise ParameterError(msg)


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an ``int`` after checking that it is an integer within ``[minimum, maximum]``.

    Parameters
    ----------
    value : int or numpy integer
        The parameter. Floats (even ``3.0``), strings and booleans are refused.
    name : str
        Name of the parameter, for the message.
    minimum, maximum : int, optional
        Inclusive bounds.

    Returns
    -------
    int

    Raises
    ------
    ParameterError
        Not an integer, or out of range; the message names ``name`` and ``value``.

    Examples
    --------
    >>> import numpy as np
    >>> from pycro_gpu._lib.checks import check_int
    >>> check_int(np.int64(3), "k", minimum=1)
    3
    >>> check_int(1.5, "k")
    Traceback (most recent call last):
    ...
    pycro_gpu.errors.ParameterError: k must be an integer, got 1.5
    """
    if _is_bool(value) or isinstance(value, (str, bytes)):
        v = None
    else:
        try:
            v = operator.index(value)
        except TypeError:
            v = None
    if v is None:
        msg = f"{name} must be an integer, got {value!r}"
        raise ParameterError(msg)
    _check_range(v, value, name, minimum, maximum, False, False)
    return int(v)


def check_real(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    min_open: bool = False,
    max_open: bool = False,
) -> float:
    """Return ``value`` as a finite ``float`` after checking its type and range.

    Parameters
    ----------
    value : int, float or numpy real scalar
        Strings, booleans, complex numbers, NaN and infinities are refused.
    name : str
        Name of the parameter, for the message.
    minimum, maximum : float, optional
        Bounds; inclusive unless ``min_open`` / ``max_open``.

    Returns
    -------
    float

    Raises
    ------
    ParameterError
        The message names ``name`` and ``value``.
    """
    ok = (
        not _is_bool(value)
        and isinstance(value, (int, float, np.integer, np.floating))
        and math.isfinite(float(value))
    )
    if not ok:
        msg = f"{name} must be a finite real number, got {value!r}"
        raise ParameterError(msg)
    v = float(value)
    _check_range(v, value, name, minimum, maximum, min_open, max_open)
    return v


def check_positive_float(value: Any, name: str) -> float:
    """:func:`check_real` with ``value > 0``: a positive finite number (a rate, a width, a budget)."""
    return check_real(value, name, minimum=0, min_open=True)


def check_seed(value: Any, name: str = "seed") -> int:
    """A random seed: an integer between 0 and :data:`MAX_SEED` (what NumPy and scikit-learn accept)."""
    return check_int(value, name, minimum=0, maximum=MAX_SEED)


def check_memory_mb(value: Any, name: str = "memory_mb") -> float | None:
    """``None`` (the configured budget), else a positive finite number of MiB as ``float``.

    Examples
    --------
    >>> from pycro_gpu._lib.checks import check_memory_mb
    >>> check_memory_mb(64)
    64.0
    >>> check_memory_mb(0)
    Traceback (most recent call last):
    ...
    pycro_gpu.errors.ParameterError: memory_mb must be a positive finite number of MiB, got 0
    """
    if value is None:
        return None
    ok = (
        not _is_bool(value)
        and isinstance(value, (int, float, np.integer, np.floating))
        and math.isfinite(float(value))
        and float(value) > 0
    )
    if not ok:
        msg = f"{name} must be a positive finite number of MiB, got {value!r}"
        raise ParameterError(msg)
    return float(value)


def check_choice(value: Any, name: str, choices: Collection[str]) -> str:
    """``value`` when it is one of ``choices`` (strings), else :class:`ParameterError` listing them."""
    if not isinstance(value, str) or value not in choices:
        msg = f"{name} must be one of {', '.join(choices)}; got {value!r}"
        raise ParameterError(msg)
    return value


def check_real_vector(values: Any, name: str, *, minimum: float | None = None, min_open: bool = False) -> Any:
    """A scalar or a 1-D sequence of finite real numbers as a 1-D float64 ndarray (at least one value).

    Parameters
    ----------
    values : float or sequence of float
        Strings, booleans, complex numbers, NaN, infinities and nested sequences are refused.
    name : str
        Name of the parameter, for the message.
    minimum : float, optional
        Lower bound of every value (inclusive unless ``min_open``).

    Returns
    -------
    (n,) float64 ndarray
    """
    arr = np.asarray(values) if not isinstance(values, (str, bytes)) else np.asarray([values])
    if arr.dtype.kind not in "iuf" or arr.ndim > 1 or arr.size == 0:
        msg = f"{name} must be a number or a non-empty 1-D sequence of real numbers, got {values!r}"
        raise ParameterError(msg)
    arr = np.atleast_1d(arr.astype(np.float64))
    if not np.all(np.isfinite(arr)):
        msg = f"{name} must hold finite numbers, got {values!r}"
        raise ParameterError(msg)
    if minimum is not None:
        bad = arr <= minimum if min_open else arr < minimum
        if np.any(bad):
            msg = f"{name} must hold numbers {'>' if min_open else '>='} {minimum}, got {values!r}"
            raise ParameterError(msg)
    return arr


def require_finite(a: Array, what: str) -> None:
    """Raise :class:`DataError` naming ``what`` if ``a`` holds NaN or infinite values.

    One pass over ``a`` on its own device (a boolean reduction; nothing is copied to the host).
    """
    from ..backend import array_namespace

    xp = array_namespace(a)
    if not bool(xp.all(xp.isfinite(a))):
        msg = f"{what} contain non-finite values (NaN or inf); mask or replace them first"
        raise DataError(msg)


def check_dataset_path(dataset_path: Any, function: str, first_parameter: str) -> None:
    """One clear error for the pre-0.4 call ``function(h5_main, <number>)``: parameters are keywords now."""
    if dataset_path is not None and not isinstance(dataset_path, str):
        msg = (
            f"{function}: dataset_path must be the path of the Main dataset (a str), got {dataset_path!r}; "
            f"give the tool's parameters as keywords, e.g. {function}(source, {first_parameter}=...)"
        )
        raise TypeError(msg)
