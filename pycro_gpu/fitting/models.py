"""Fit models in array-API form (NumPy, CuPy, array_api_strict) and the registry of batch-fit models.

Every evaluation function takes the abscissa ``(m,)`` and parameters ``(..., n_params)`` and returns the
model ``(..., m)`` in the namespace of its inputs. The same math, with analytic Jacobians, is compiled
into the Levenberg-Marquardt kernels (``pycro_gpu.kernels.model_*``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .._lib.typing import Array, Namespace
from ..backend import array_namespace

__all__ = [
    "MODEL_NAMES",
    "ModelSpec",
    "double_exponential",
    "erf",
    "exponential",
    "get_model",
    "loop",
    "peaks",
    "sho",
    "stretched_exponential",
]

_LN2_4 = 4.0 * math.log(2.0)


def _p(params: Array, k: int, xp: Namespace) -> Array:
    """Parameter ``k`` of ``params (..., n)`` as ``(..., 1)`` (broadcasts against the abscissa)."""
    return xp.expand_dims(params[..., k], axis=-1)


def sho(frequencies: Array, params: Array, *, xp: Namespace | None = None) -> Array:
    """Simple harmonic oscillator response of band excitation.

    Parameters
    ----------
    frequencies : (m,) real array
        Drive frequencies w (same unit as w0).
    params : (..., 4) real array
        ``(A, w0, Q, phi)``.

    Returns
    -------
    (..., m) complex array

    Notes
    -----
    ``H(w) = A e^{i phi} w0^2 / (w^2 - i w w0 / Q - w0^2)``: with this sign Q is positive on band
    excitation data (the convention of existing BE data and tools). At resonance ``|H| = A Q``.

    Examples
    --------
    >>> import numpy as np
    >>> from pycro_gpu.fitting import sho
    >>> h = sho(np.array([1.0]), np.array([2.0, 1.0, 10.0, 0.0]))
    >>> float(abs(h[0])), float(h[0].imag)
    (20.0, 20.0)
    """
    xp = array_namespace(frequencies, params) if xp is None else xp
    cdt = xp.complex64 if params.dtype == xp.float32 else xp.complex128
    w = xp.astype(frequencies, params.dtype)
    amp, w0, q, phi = (_p(params, k, xp) for k in range(4))
    num = xp.astype(amp * w0 * w0, cdt) * xp.exp(xp.astype(phi, cdt) * 1j)
    den = xp.astype((w - w0) * (w + w0), cdt) - 1j * xp.astype(w * w0 / q, cdt)
    return num / den


def erf(x: Array, *, xp: Namespace | None = None) -> Array:
    """Error function in array-API form (the standard has none).

    The Chebyshev-fitted ``erfc`` of Numerical Recipes (``erfcc``, fractional error below 1.2e-7), enough
    for model evaluation; the kernels use ``math.erf``.
    """
    xp = array_namespace(x) if xp is None else xp
    z = xp.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -1.26551223 + t * (
        1.00002368
        + t
        * (
            0.37409196
            + t
            * (
                0.09678418
                + t
                * (
                    -0.18628806
                    + t
                    * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))
                )
            )
        )
    )
    erfc = t * xp.exp(-z * z + poly)
    return xp.where(x >= 0, 1.0 - erfc, erfc - 1.0)


def loop(bias: Array, params: Array, *, xp: Namespace | None = None) -> Array:
    """Band-excitation hysteresis loop of 9 parameters on a two-branch bias vector.

    Parameters
    ----------
    bias : (m,) real array
        DC bias V; the first ``m // 2`` samples are branch 1, the rest branch 2.
    params : (..., 9) real array
        ``(a0, a1, a2, a3, a4, b0, b1, b2, b3)``.

    Returns
    -------
    (..., m) real array

    Notes
    -----
    Per branch (``a_sw, b_lo, b_hi`` = ``a2, b0, b1`` for branch 1 and ``a3, b2, b3`` for branch 2):
    ``g = (b_hi - b_lo)/2 (erf(1000 (V - a_sw)) + 1) + b_lo``,
    ``y = (g erf((V - a_sw)/g) + b_lo)/(b_lo + b_hi)``, ``f = a0 + a1 y + a4 V``.
    """
    xp = array_namespace(bias, params) if xp is None else xp
    v = xp.astype(bias, params.dtype)
    m = v.shape[0]
    half = m // 2
    first = xp.arange(m) < half

    def branch(a_sw, bl, bh):
        g = (bh - bl) / 2 * (erf(1000.0 * (v - a_sw), xp=xp) + 1.0) + bl
        return (g * erf((v - a_sw) / g, xp=xp) + bl) / (bl + bh)

    y1 = branch(_p(params, 2, xp), _p(params, 5, xp), _p(params, 6, xp))
    y2 = branch(_p(params, 3, xp), _p(params, 7, xp), _p(params, 8, xp))
    y = xp.where(first, y1, y2)
    return _p(params, 0, xp) + _p(params, 1, xp) * y + _p(params, 4, xp) * v


_PER_PEAK = {"gaussian": 3, "lorentzian": 3, "pseudo_voigt": 4}


def peaks(x: Array, params: Array, *, shape: str = "gaussian", xp: Namespace | None = None) -> Array:
    """Sum of K peaks on a linear background.

    Parameters
    ----------
    x : (m,) real array
    params : (..., per * K + 2) real array
        ``(h_1, c_1, w_1[, eta_1], ..., b0, b1)``: height, centre, full width at half maximum (and the
        Lorentzian fraction of a pseudo-Voigt) of each peak, then background offset and slope.
    shape : {'gaussian', 'lorentzian', 'pseudo_voigt'}

    Returns
    -------
    (..., m) real array

    Notes
    -----
    With ``z = (x - c) / w``: Gaussian ``exp(-4 ln2 z^2)``, Lorentzian ``1 / (1 + 4 z^2)``, pseudo-Voigt
    ``eta L + (1 - eta) G``; ``f = sum_k h_k P_k + b0 + b1 x``.
    """
    xp = array_namespace(x, params) if xp is None else xp
    if shape not in _PER_PEAK:
        msg = f"shape must be one of {sorted(_PER_PEAK)}, got {shape!r}"
        raise ValueError(msg)
    per = _PER_PEAK[shape]
    n = params.shape[-1]
    if n < per + 2 or (n - 2) % per:
        msg = f"params for {shape} peaks must have {per} K + 2 entries, got {n}"
        raise ValueError(msg)
    xv = xp.astype(x, params.dtype)
    nb = n - 2
    total = _p(params, nb, xp) + _p(params, nb + 1, xp) * xv
    for o in range(0, nb, per):
        z = (xv - _p(params, o + 1, xp)) / _p(params, o + 2, xp)
        g = xp.exp(-_LN2_4 * z * z)
        lor = 1.0 / (1.0 + 4.0 * z * z)
        if shape == "gaussian":
            shp = g
        elif shape == "lorentzian":
            shp = lor
        else:
            eta = _p(params, o + 3, xp)
            shp = eta * lor + (1.0 - eta) * g
        total = total + _p(params, o, xp) * shp
    return total


def exponential(t: Array, params: Array, *, xp: Namespace | None = None) -> Array:
    """``A exp(-t / tau) + c``; params ``(..., 3)`` = ``(A, tau, c)``; returns ``(..., m)``."""
    xp = array_namespace(t, params) if xp is None else xp
    tv = xp.astype(t, params.dtype)
    return _p(params, 0, xp) * xp.exp(-tv / _p(params, 1, xp)) + _p(params, 2, xp)


def double_exponential(t: Array, params: Array, *, xp: Namespace | None = None) -> Array:
    """``A1 exp(-t / tau1) + A2 exp(-t / tau2) + c``; params ``(..., 5)``; returns ``(..., m)``."""
    xp = array_namespace(t, params) if xp is None else xp
    tv = xp.astype(t, params.dtype)
    return (
        _p(params, 0, xp) * xp.exp(-tv / _p(params, 1, xp))
        + _p(params, 2, xp) * xp.exp(-tv / _p(params, 3, xp))
        + _p(params, 4, xp)
    )


def stretched_exponential(t: Array, params: Array, *, xp: Namespace | None = None) -> Array:
    """``A exp(-(t / tau)^beta) + c`` for ``t >= 0``; params ``(..., 4)`` = ``(A, tau, beta, c)``."""
    xp = array_namespace(t, params) if xp is None else xp
    tv = xp.astype(t, params.dtype)
    z = xp.clip(tv / _p(params, 1, xp), min=0.0)
    return _p(params, 0, xp) * xp.exp(-(z ** _p(params, 2, xp))) + _p(params, 3, xp)


@dataclass(frozen=True)
class ModelSpec:
    """A batch-fit model: names of its parameters, its array-API evaluation and its kernel model.

    Attributes
    ----------
    name : str
    param_names : tuple of str
    evaluate : callable
        ``evaluate(x, params, *, xp=None) -> (..., m)`` array.
    kernel_model : callable
        Returns the :class:`pycro_gpu.kernels.lm.Model` (imported lazily: numba compiles on first use).
    complex_data : bool
        True when the data are complex (fit as real and imaginary residuals).
    """

    name: str
    param_names: tuple[str, ...]
    evaluate: Callable
    kernel_model: Callable
    complex_data: bool = False


def _kernel(name: str) -> Callable:
    """The lazy getter of the kernel model ``name`` (importing the kernels loads numba)."""

    def get():
        from ..kernels.models import kernel_model

        return kernel_model(name)

    return get


def _peak_names(shape, k):
    per = ("height", "center", "fwhm", "eta")[: _PER_PEAK[shape]]
    return (*(f"{n}_{q}" for q in range(k) for n in per), "offset", "slope")


def _peak_eval(shape):
    def evaluate(x, params, *, xp=None):
        return peaks(x, params, shape=shape, xp=xp)

    return evaluate


#: Names accepted by :func:`get_model` (peak models also take ``n_peaks``).
MODEL_NAMES = (
    "double_exponential",
    "exponential",
    "gaussian",
    "lorentzian",
    "loop",
    "pseudo_voigt",
    "sho",
    "stretched_exponential",
)


def get_model(name: str, *, n_peaks: int = 1) -> ModelSpec:
    """Return the :class:`ModelSpec` of a model name (see :data:`MODEL_NAMES`).

    Examples
    --------
    >>> from pycro_gpu.fitting import get_model
    >>> get_model("sho").param_names
    ('amplitude', 'frequency', 'quality_factor', 'phase')
    """
    if name == "sho":
        return ModelSpec(
            "sho", ("amplitude", "frequency", "quality_factor", "phase"), sho, _kernel("sho"), True
        )
    if name == "loop":
        names = ("a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2", "b3")
        return ModelSpec("loop", names, loop, _kernel("loop"))
    if name == "exponential":
        return ModelSpec(name, ("amplitude", "tau", "offset"), exponential, _kernel(name))
    if name == "double_exponential":
        names = ("amplitude_1", "tau_1", "amplitude_2", "tau_2", "offset")
        return ModelSpec(name, names, double_exponential, _kernel(name))
    if name == "stretched_exponential":
        names = ("amplitude", "tau", "beta", "offset")
        return ModelSpec(name, names, stretched_exponential, _kernel(name))
    if name in _PER_PEAK:
        k = int(n_peaks)
        if k < 1:
            msg = f"n_peaks must be >= 1, got {n_peaks!r}"
            raise ValueError(msg)
        return ModelSpec(name, _peak_names(name, k), _peak_eval(name), _kernel(f"{name}_{k}"))
    msg = f"model must be one of {', '.join(MODEL_NAMES)}; got {name!r}"
    raise ValueError(msg)
