"""Input checks shared by the routines: one clear error instead of a library's long message."""

from __future__ import annotations

from typing import Any

from ..backend import array_namespace
from ..errors import DataError
from .typing import Array


def require_finite(a: Array, what: str) -> None:
    """Raise :class:`DataError` naming ``what`` if ``a`` holds NaN or infinite values.

    One pass over ``a`` on its own device (a boolean reduction; nothing is copied to the host).
    """
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
