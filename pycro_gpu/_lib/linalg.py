"""Linear-algebra helpers shared by the streamed SVD and its sketch (any array-API namespace)."""

from __future__ import annotations

from .typing import Array, Namespace


def herm(a: Array, xp: Namespace) -> Array:
    """Conjugate transpose of a 2-D array."""
    t = a.mT
    return xp.conj(t) if xp.isdtype(a.dtype, "complex floating") else t


def hermitian_part(a: Array, xp: Namespace) -> Array:
    """``(a + a^H) / 2``: a square matrix accumulated in floating point, made exactly Hermitian."""
    return (a + herm(a, xp)) / 2
