"""Flattening of scanned images (array API): remove a fitted plane, or a polynomial from every scan line.

Scanning-probe images carry a sample tilt (a plane) and line-to-line offsets (each fast-scan line
shifted or tilted by drift): :func:`flatten_plane` subtracts the least-squares plane
``a + b x + c y`` of the whole image, :func:`flatten_lines` the least-squares polynomial of each row
(Gwyddion's "align rows", polynomial). Both take a stack ``(..., ny, nx)`` (one fit per image) and
return the images in their own namespace and dtype (float64 for integer images).
"""

from __future__ import annotations

from typing import Any

from .._lib.typing import Array, Namespace
from ..backend import array_namespace, device_of

__all__ = ["flatten_lines", "flatten_plane"]


def _float(image: Array, xp: Namespace) -> Array:
    if image.ndim < 2:
        msg = f"flattening needs images (..., ny, nx), got shape {tuple(image.shape)}"
        raise ValueError(msg)
    return image if xp.isdtype(image.dtype, "real floating") else xp.astype(image, xp.float64)


def _vandermonde(n: int, order: int, xp: Namespace, dtype: Any, device: Any) -> Array:
    """``(n, order + 1)`` powers of the centred, scaled coordinate ``t`` in ``[-1, 1]`` (well conditioned)."""
    t = (
        xp.linspace(-1.0, 1.0, n, dtype=dtype, device=device)
        if n > 1
        else xp.zeros(1, dtype=dtype, device=device)
    )
    return xp.stack([t**p for p in range(order + 1)], axis=1)


def flatten_plane(image: Array, *, xp: Namespace | None = None) -> Array:
    """Subtract the least-squares plane ``a + b x + c y`` from each image.

    Parameters
    ----------
    image : (..., ny, nx) real array

    Returns
    -------
    (..., ny, nx) array
        The residual: zero mean, no tilt.

    Examples
    --------
    >>> import numpy as np
    >>> y, x = np.mgrid[0:4, 0:5]
    >>> out = flatten_plane(3.0 + 0.5 * x - 2.0 * y)
    >>> bool(np.abs(out).max() < 1e-12)
    True
    """
    if xp is None:
        xp = array_namespace(image)
    img = _float(image, xp)
    ny, nx = int(img.shape[-2]), int(img.shape[-1])
    dt, dev = img.dtype, device_of(img)
    ty = _vandermonde(ny, 1, xp, dt, dev)[:, 1]
    tx = _vandermonde(nx, 1, xp, dt, dev)[:, 1]
    ones = xp.ones((ny, nx), dtype=dt, device=dev)
    X = xp.stack(
        [xp.reshape(ones, (-1,)), xp.reshape(ones * tx, (-1,)), xp.reshape(ones * ty[:, None], (-1,))], axis=1
    )
    flat = xp.reshape(img, (-1, ny * nx))  # one row per image
    coef = xp.linalg.solve(X.mT @ X, X.mT @ flat.mT)  # (3, n_images)
    fitted = (X @ coef).mT
    return xp.reshape(flat - fitted, img.shape)


def flatten_lines(image: Array, order: int = 1, *, xp: Namespace | None = None) -> Array:
    """Subtract from every row (fast-scan line) its least-squares polynomial of degree ``order``.

    Parameters
    ----------
    image : (..., ny, nx) real array
    order : int
        0 removes each line's mean (offsets), 1 also its slope, ...

    Returns
    -------
    (..., ny, nx) array

    Examples
    --------
    >>> import numpy as np
    >>> img = np.arange(12.0).reshape(3, 4) + np.array([[0.0], [5.0], [-2.0]])
    >>> bool(np.abs(flatten_lines(img, 1)).max() < 1e-12)
    True
    """
    if isinstance(order, bool) or int(order) != order or order < 0:
        msg = f"order must be an integer >= 0, got {order!r}"
        raise ValueError(msg)
    if xp is None:
        xp = array_namespace(image)
    img = _float(image, xp)
    nx = int(img.shape[-1])
    if int(order) >= nx:
        msg = f"order {order} needs more than {order} points per line, the lines have {nx}"
        raise ValueError(msg)
    V = _vandermonde(nx, int(order), xp, img.dtype, device_of(img))  # (nx, order + 1)
    rows = xp.reshape(img, (-1, nx))
    coef = xp.linalg.solve(V.mT @ V, V.mT @ rows.mT)
    return xp.reshape(rows - (V @ coef).mT, img.shape)
