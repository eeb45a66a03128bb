"""Windows over an image (optionally the FFT of each) and window-based SVD denoising.

As pycroscopy's ``ImageWindowing``: square or rectangular windows of ``window_size`` slide over an image
with ``step``; a last window flush with the far edge is added where the steps do not reach it, so the
windows always cover every pixel. :func:`svd_denoise` keeps the leading singular components of the
(windows x pixels) matrix and puts the windows back, averaging where they overlap.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._lib.checks import check_int
from .._lib.typing import Array, Namespace
from ..backend import array_namespace, device_of, from_host
from ..errors import ParameterError

__all__ = ["extract_windows", "stitch_windows", "svd_denoise", "window_starts"]


def _pair(value: Any, name: str) -> tuple[int, int]:
    """``value`` (an int or a pair of ints, each >= 1) as ``(rows, cols)``, else ``ParameterError``."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        v = check_int(value, name, minimum=1)
        return v, v
    if len(value) != 2:
        msg = f"{name} must be a positive integer or a pair of them, got {value!r}"
        raise ParameterError(msg)
    return check_int(value[0], f"{name}[0]", minimum=1), check_int(value[1], f"{name}[1]", minimum=1)


def _starts(n: int, w: int, step: int) -> list[int]:
    starts = list(range(0, n - w + 1, step))
    if starts[-1] != n - w:
        starts.append(n - w)
    return starts


def window_starts(
    image_shape: Sequence[int], window_size: int | Sequence[int], step: int | Sequence[int] | None = None
) -> tuple[list[int], list[int]]:
    """Top-left corners of the windows along rows and columns.

    Parameters
    ----------
    image_shape : (..., ny, nx)
    window_size : int or (wy, wx)
    step : int or (sy, sx), optional
        Default: half the window (50 % overlap).

    Returns
    -------
    rows, cols : list of int
        Window ``(i, j)`` covers ``image[rows[i]:rows[i] + wy, cols[j]:cols[j] + wx]``.
    """
    ny, nx = int(image_shape[-2]), int(image_shape[-1])
    wy, wx = _pair(window_size, "window_size")
    if wy > ny or wx > nx:
        msg = f"window_size {(wy, wx)} is larger than the image {(ny, nx)}"
        raise ValueError(msg)
    sy, sx = _pair(step if step is not None else (max(1, wy // 2), max(1, wx // 2)), "step")
    return _starts(ny, wy, sy), _starts(nx, wx, sx)


#: taper name -> NumPy window function.
_TAPERS = {"hann": np.hanning, "blackman": np.blackman, "hamming": np.hamming}


def extract_windows(
    image: Array,
    window_size: int | Sequence[int],
    step: int | Sequence[int] | None = None,
    *,
    fft: str | None = None,
    taper: str | None = None,
    xp: Namespace | None = None,
) -> Array:
    """Cut an image into windows, optionally returning the 2-D FFT of each.

    Parameters
    ----------
    image : (ny, nx) array
    window_size : int or (wy, wx)
    step : int or (sy, sx), optional
        Default: half the window.
    fft : {None, 'magnitude', 'complex'}, optional
        ``'magnitude'``: ``|fftshift(fft2(window))|`` (zero frequency at the window's centre, as
        pycroscopy's windowing); ``'complex'``: ``fft2(window)`` unshifted.
    taper : {None, 'hann', 'blackman', 'hamming'}, optional
        Multiply each window by this separable taper first (reduces edge leakage in the FFT).

    Returns
    -------
    (n_rows * n_cols, wy, wx) array
        Windows in row-major order of :func:`window_starts`.
    """
    if xp is None:
        xp = array_namespace(image)
    if image.ndim != 2:
        msg = f"image must be 2-D (ny, nx), got shape {tuple(image.shape)}"
        raise ValueError(msg)
    wy, wx = _pair(window_size, "window_size")
    rows, cols = window_starts(image.shape, (wy, wx), step)
    device = device_of(image)
    iy = from_host(np.concatenate([np.arange(r, r + wy) for r in rows]), xp, device=device, dtype=xp.int64)
    ix = from_host(np.concatenate([np.arange(c, c + wx) for c in cols]), xp, device=device, dtype=xp.int64)
    band = xp.reshape(xp.take(image, iy, axis=0), (len(rows), wy, image.shape[1]))
    win = xp.reshape(xp.take(band, ix, axis=2), (len(rows), wy, len(cols), wx))
    win = xp.reshape(xp.permute_dims(win, (0, 2, 1, 3)), (len(rows) * len(cols), wy, wx))
    if taper is not None:
        if taper not in _TAPERS:
            msg = f"taper must be one of {', '.join(_TAPERS)} or None; got {taper!r}"
            raise ValueError(msg)
        t2 = np.outer(_TAPERS[taper](wy), _TAPERS[taper](wx))
        rdt = win.dtype if xp.isdtype(win.dtype, "real floating") else xp.float64
        win = xp.astype(win, rdt) * from_host(t2, xp, device=device, dtype=rdt)
    if fft is None:
        return win
    if fft not in ("magnitude", "complex"):
        msg = f"fft must be None, 'magnitude' or 'complex'; got {fft!r}"
        raise ValueError(msg)
    cdt = xp.complex64 if win.dtype == xp.float32 else xp.complex128
    spec = xp.fft.fftn(xp.astype(win, cdt), axes=(-2, -1))  # the standard's fftn takes complex input
    if fft == "complex":
        return spec
    return xp.abs(xp.fft.fftshift(spec, axes=(-2, -1)))


def stitch_windows(
    windows: Array,
    image_shape: Sequence[int],
    step: int | Sequence[int] | None = None,
    *,
    xp: Namespace | None = None,
) -> Array:
    """Put windows back into an image, averaging where they overlap (inverse of :func:`extract_windows`).

    Parameters
    ----------
    windows : (n_windows, wy, wx) real array
        In the order of :func:`extract_windows` with the same ``step``.
    image_shape : (ny, nx)

    Returns
    -------
    (ny, nx) array
    """
    if xp is None:
        xp = array_namespace(windows)
    n_win, wy, wx = windows.shape
    rows, cols = window_starts(image_shape, (wy, wx), step)
    if n_win != len(rows) * len(cols):
        msg = (
            f"windows holds {n_win} windows, but image_shape {tuple(image_shape)} with window {(wy, wx)} "
            f"and step {step!r} gives {len(rows) * len(cols)}"
        )
        raise ValueError(msg)
    ny, nx = int(image_shape[-2]), int(image_shape[-1])
    device = device_of(windows)
    counts = np.zeros((ny, nx))
    out = xp.zeros((ny, nx), dtype=windows.dtype, device=device)
    for k, (r, c) in enumerate(itertools.product(rows, cols)):
        counts[r : r + wy, c : c + wx] += 1
        out[r : r + wy, c : c + wx] += windows[k, ...]
    return out / from_host(counts, xp, device=device, dtype=windows.dtype)


def svd_denoise(
    image: Array,
    window_size: int | Sequence[int],
    n_components: int,
    step: int | Sequence[int] | None = None,
    *,
    return_spectrum: bool = False,
    xp: Namespace | None = None,
) -> Array | tuple[Array, Array]:
    """Denoise an image by a low-rank approximation of its windows.

    Parameters
    ----------
    image : (ny, nx) real array
    window_size : int or (wy, wx)
    n_components : int
        Singular components kept (1 <= n_components <= min(n_windows, wy * wx)).
    step : int or (sy, sx), optional
        Default: half the window.
    return_spectrum : bool, optional
        Also return all singular values (to choose ``n_components``).

    Returns
    -------
    cleaned : (ny, nx) real array
    singular_values : (min(n_windows, wy * wx),) real array
        Only with ``return_spectrum``.

    Notes
    -----
    With ``X`` the (n_windows, wy * wx) matrix of windows and ``X = U S V^T``, the cleaned windows are
    ``U[:, :k] S[:k] V[:k]^T``; each pixel is the mean over the windows that cover it. Repeating
    structure (a lattice) lives in few components; white noise spreads over all.
    """
    k = check_int(n_components, "n_components")
    if xp is None:
        xp = array_namespace(image)
    if not xp.isdtype(image.dtype, "real floating"):
        image = xp.astype(image, xp.float64)
    win = extract_windows(image, window_size, step, xp=xp)
    n_win, wy, wx = win.shape
    if not 1 <= k <= min(n_win, wy * wx):
        msg = f"n_components must be in [1, {min(n_win, wy * wx)}] for {n_win} windows of {wy}x{wx}, got {k}"
        raise ParameterError(msg)
    u, s, vh = xp.linalg.svd(xp.reshape(win, (n_win, wy * wx)), full_matrices=False)
    low = (u[:, :k] * s[:k]) @ vh[:k, :]
    cleaned = stitch_windows(xp.reshape(low, (n_win, wy, wx)), image.shape, step, xp=xp)
    if return_spectrum:
        return cleaned, s
    return cleaned
