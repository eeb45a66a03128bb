"""Input checks shared by the routines: one clear error instead of a library's long message."""

from __future__ import annotations

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
