"""Batch-fit API: one bounded Levenberg-Marquardt fit per spectrum on the CPU or the GPU.

The data stay where they are: NumPy (and other host namespaces such as array_api_strict) run the
parallel CPU kernel; CuPy arrays run the CUDA kernel, one thread per fit, reading the CuPy memory
directly. Results come back in the namespace and on the device of the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._lib.typing import Array, Namespace
from ..backend import (
    array_namespace,
    device_of,
    from_host,
    get_namespace,
    is_cupy_namespace,
    namespace_name,
    resolve_backend,
    to_host,
)
from ..errors import DataError
from . import guess as _guess
from ._checks import abscissa, check_data, check_determined, check_maxiter, check_tolerance
from ._kernel_io import float_dtype, kernel_array, prepare_sho, result_namespace_arrays
from .models import ModelSpec, get_model

__all__ = [
    "STATUS_CODES",
    "STATUS_CONSTANT_DATA",
    "STATUS_CONVERGED",
    "STATUS_MAX_ITER",
    "STATUS_NONFINITE",
    "FitResult",
    "default_bounds",
    "fit",
    "fit_loop",
    "fit_sho",
    "loop_metrics",
]

#: :attr:`FitResult.status` of a converged fit
STATUS_CONVERGED = 0
#: the iteration limit ``maxiter`` was reached before the fit converged
STATUS_MAX_ITER = 1
#: NaN or inf in the data or the start point: the fit was skipped
STATUS_NONFINITE = 2
#: the data do not vary along the abscissa (an all-zero or constant spectrum): R^2 is undefined and
#: no parameter is determined
STATUS_CONSTANT_DATA = 3

#: Meaning of each :attr:`FitResult.status` code (also the ``status_codes`` attribute of dataset fits).
STATUS_CODES = {
    STATUS_CONVERGED: "converged",
    STATUS_MAX_ITER: "not converged: iteration limit (maxiter) reached",
    STATUS_NONFINITE: "skipped: NaN or inf in the data or the start point",
    STATUS_CONSTANT_DATA: "not converged: the data do not vary (all-zero or constant), R^2 undefined",
}


@dataclass
class FitResult:
    """Results of a batch fit (arrays in the namespace and on the device of the input).

    Attributes
    ----------
    params : (n, n_params) real array
        Fitted parameters (for SHO: ``A, w0, Q, phi`` with phi wrapped to (-pi, pi]).
    r2 : (n,) real array
        Coefficient of determination ``1 - chi2 / sum|y - mean(y)|^2`` (NaN for skipped fits).
    chi2 : (n,) real array
        Sum of squared residuals (real and imaginary parts for complex data).
    converged : (n,) bool array
        ``status == 0``.
    niter : (n,) int32 array
        Levenberg-Marquardt iterations.
    status : (n,) int8 array
        See :data:`STATUS_CODES`.
    guess : (n, n_params) real array
        Start points.
    param_names : tuple of str
    model : str
    guess_r2 : (n,) real array or None
        R^2 of the start points (within the bounds), where the fit was asked for it.
    """

    params: Array
    r2: Array
    chi2: Array
    converged: Array
    niter: Array
    status: Array
    guess: Array
    param_names: tuple
    model: str
    guess_r2: Array | None = None


def _to_backend(a: Array, backend: str | None, xp: Namespace) -> tuple[Array, Namespace]:
    """Move ``a`` to the requested backend (explicit transfer), or keep it where it is."""
    if backend is None:
        return a, xp
    target = resolve_backend(backend)
    if namespace_name(xp) == target:
        return a, xp
    txp = get_namespace(target)
    return from_host(to_host(a), txp), txp


def fit_sho(
    spectra: Array,
    frequencies: Array,
    *,
    guess: Array | None = None,
    bounds: tuple | None = None,
    maxiter: int = 100,
    ftol: float | None = None,
    xtol: float | None = None,
    backend: str | None = None,
    guess_r2: bool = False,
) -> FitResult:
    """Fit the simple harmonic oscillator to every band-excitation spectrum of a batch.

    Parameters
    ----------
    spectra : (n, m) complex array
        Responses (complex64 fits in float32, complex128 in float64). NumPy/host arrays run the
        parallel CPU kernel, CuPy arrays the CUDA kernel (one thread per fit) without leaving the device.
    frequencies : (m,) real array
        Drive frequencies (any unit; w0 comes back in it).
    guess : (n, 4) real array, optional
        Start points ``(A, w0, Q, phi)``; default :func:`sho_guess`.
    bounds : (lower, upper), optional
        Each a length-4 sequence; default ``A >= 0``, w0 within the band, Q and phi free.
    maxiter : int
        Iteration limit per fit (an integer >= 1).
    ftol, xtol : float, optional
        Stop when a step changes chi-square by less than ``ftol`` (relative) or every parameter by less
        than ``xtol`` (relative); default 1e-5 in float32, 1e-7 in float64.
    backend : {'numpy', 'cupy', 'auto'}, optional
        Move the data to this backend first (explicit transfer); default: where ``spectra`` lives.
    guess_r2 : bool, optional
        Also return the R^2 of the start points (``FitResult.guess_r2``), from one pass of the kernel.

    Returns
    -------
    FitResult
        ``params`` (n, 4) = ``(A, w0, Q, phi)``, ``r2``, ``chi2``, ``converged``, ``niter``, ``status``.
        Spectra with NaN/Inf are flagged (status 2, skipped), spectra that do not vary (all zero) too
        (status 3, R^2 NaN); neither is converged and neither stops the batch.

    Raises
    ------
    DataError
        Spectra not a 2-D complex array; frequencies missing, not 1-D, non-finite, of another length,
        constant, or with fewer than 5 distinct values (4 parameters per spectrum).
    ValueError
        ``maxiter`` not an integer >= 1, ``ftol``/``xtol`` not positive, bad ``bounds``.

    Notes
    -----
    ``H(w) = A e^{i phi} w0^2 / (w^2 - i w w0 / Q - w0^2)``; residuals are the real and imaginary
    parts of ``H - y``. Frequencies are divided by their mean and responses by their largest magnitude
    inside the kernel so that float32 keeps its precision; results are in the input units.

    Examples
    --------
    >>> import numpy as np
    >>> from pycro_gpu.fitting import fit_sho, sho
    >>> f = np.linspace(300e3, 400e3, 87)
    >>> truth = np.array([[1e-3, 352e3, 120.0, 0.5]])
    >>> res = fit_sho(sho(f, truth), f)
    >>> np.allclose(res.params, truth, rtol=1e-6), bool(res.converged[0])
    (True, True)
    """
    spectra = check_data(spectra, "spectra")
    maxiter, ftol, xtol = _check_stopping(maxiter, ftol, xtol)
    xp = array_namespace(spectra)
    spectra, xp = _to_backend(spectra, backend, xp)
    device = device_of(spectra)
    y_view, x_scaled, fscale, ascale, fdt = prepare_sho(spectra, frequencies, xp)
    if guess is None:
        g = _guess._sho_guess_scaled(y_view, x_scaled, xp)
    else:
        if not hasattr(guess, "shape") or tuple(guess.shape) != (spectra.shape[0], 4):
            msg = f"guess must have shape ({spectra.shape[0]}, 4), got {getattr(guess, 'shape', guess)!r}"
            raise DataError(msg)
        g = kernel_array(_to_backend(guess, backend, array_namespace(guess))[0], xp)
        g = g.astype(fdt, copy=True)
        g[:, 0] /= ascale
        g[:, 1] /= fscale
    lo, hi = _bounds_array(bounds, 4, default_bounds("sho", 4, x_scaled))
    if bounds is not None:
        scale = np.array([1.0 / _host_scalar(ascale), 1.0 / fscale, 1.0, 1.0])
        lo, hi = lo * scale, hi * scale
    spec = get_model("sho")
    # the kernel's first pass evaluates the start's R^2: returned from the same launch when asked for
    out = _run_kernel(spec, x_scaled, y_view, g, lo, hi, maxiter, ftol, xtol, xp, fdt, start_r2=guess_r2)
    params, g_x, chi2, r2, niter, status, *g_r2 = result_namespace_arrays((out[0], g, *out[1:]), xp, device)
    g_r2 = g_r2[0] if guess_r2 else None
    params = _guess._sho_unscale(params, fscale, ascale, xp)
    g_x = _guess._sho_unscale(xp.astype(g_x, params.dtype), fscale, ascale, xp)
    return FitResult(
        params=params,
        r2=r2,
        chi2=chi2 if isinstance(ascale, float) else chi2 * (ascale * ascale),
        converged=status == 0,
        niter=niter,
        status=status,
        guess=g_x,
        param_names=spec.param_names,
        model="sho",
        guess_r2=g_r2,
    )


def _check_stopping(maxiter, ftol, xtol) -> tuple[int, float | None, float | None]:
    """``maxiter`` (an integer >= 1) and the tolerances (positive or None), checked."""
    return check_maxiter(maxiter), check_tolerance(ftol, "ftol"), check_tolerance(xtol, "xtol")


def _flag_constant_data(status, r2) -> None:
    """Mark fits of data without variation (R^2 undefined) :data:`STATUS_CONSTANT_DATA`, in place.

    The kernel reports such a fit converged (nothing to improve), with R^2 NaN; it is not a fit.
    """
    lib = array_namespace(status)
    status[(status != STATUS_NONFINITE) & ~lib.isfinite(r2)] = STATUS_CONSTANT_DATA


def _host_scalar(a) -> float:
    return float(to_host(a)) if not isinstance(a, float) else a


def _bounds_array(bounds, n_params: int, default) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = default if bounds is None else bounds
    lo = np.asarray(lo, dtype=np.float64).reshape(-1)
    hi = np.asarray(hi, dtype=np.float64).reshape(-1)
    if lo.shape != (n_params,) or hi.shape != (n_params,):
        msg = f"bounds must be (lower, upper) with {n_params} values each, got {lo.shape} and {hi.shape}"
        raise ValueError(msg)
    if np.any(lo > hi):
        msg = f"bounds: lower {lo.tolist()} exceeds upper {hi.tolist()}"
        raise ValueError(msg)
    return lo, hi


def _run_kernel(spec: ModelSpec, x, y_view, p0, lo, hi, maxiter, ftol, xtol, xp, fdt, *, start_r2=False):
    """The fit kernel's ``(params, chi2, r2, niter, status)``, and the start's R^2 with ``start_r2``."""
    from ..kernels.lm import lm_fit_batch

    if is_cupy_namespace(xp):
        import cupy as lib
    else:
        lib = np
    out = lm_fit_batch(
        spec.kernel_model(),
        lib.asarray(x, dtype=fdt),
        y_view,
        lib.ascontiguousarray(lib.asarray(p0, dtype=fdt)),
        lib.asarray(lo, dtype=fdt),
        lib.asarray(hi, dtype=fdt),
        maxiter=maxiter,
        ftol=ftol,
        xtol=xtol,
        start_r2=start_r2,
    )
    _flag_constant_data(out[4], out[2])
    return out


def default_bounds(model: str, n_params: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Default box bounds of a model (host arrays, model units).

    Loop: DESIGN's bounds. Relaxation: time constants > 0, stretch exponent in [0.01, 10]. Peaks: widths
    > 0, pseudo-Voigt fraction in [0, 1], centres within the abscissa range. SHO: A >= 0, w0 in the band.
    """
    lo = np.full(n_params, -np.inf)
    hi = np.full(n_params, np.inf)
    xmin, xmax = float(np.min(x)), float(np.max(x))
    tiny = 1e-12 * max(abs(xmin), abs(xmax), 1.0)
    if model == "sho":
        lo[0], lo[1], hi[1] = 0.0, xmin, xmax
    elif model == "loop":
        from ..kernels.model_loop import LOOP_BOUNDS

        lo, hi = np.array(LOOP_BOUNDS[0], dtype=float), np.array(LOOP_BOUNDS[1], dtype=float)
    elif model in ("exponential", "stretched_exponential"):
        lo[1] = tiny
        if model == "stretched_exponential":
            lo[2], hi[2] = 0.01, 10.0
    elif model == "double_exponential":
        lo[1] = lo[3] = tiny
    else:
        per = 4 if model == "pseudo_voigt" else 3
        for o in range(0, n_params - 2, per):
            lo[o + 1], hi[o + 1] = xmin, xmax
            lo[o + 2] = tiny
            if per == 4:
                lo[o + 3], hi[o + 3] = 0.0, 1.0
    return lo, hi


_GUESSES = {
    "loop": lambda x, y, xp, k: _guess.loop_guess(x, y, xp=xp),
    "exponential": lambda x, y, xp, k: _guess.exponential_guess(x, y, xp=xp),
    "double_exponential": lambda x, y, xp, k: _guess.double_exponential_guess(x, y, xp=xp),
    "stretched_exponential": lambda x, y, xp, k: _guess.stretched_exponential_guess(x, y, xp=xp),
    "gaussian": lambda x, y, xp, k: _guess.peaks_guess(x, y, shape="gaussian", n_peaks=k, xp=xp),
    "lorentzian": lambda x, y, xp, k: _guess.peaks_guess(x, y, shape="lorentzian", n_peaks=k, xp=xp),
    "pseudo_voigt": lambda x, y, xp, k: _guess.peaks_guess(x, y, shape="pseudo_voigt", n_peaks=k, xp=xp),
}


def fit(
    model: str,
    x: Array,
    y: Array,
    *,
    p0: Array | None = None,
    bounds: tuple | None = None,
    n_peaks: int = 1,
    maxiter: int = 100,
    ftol: float | None = None,
    xtol: float | None = None,
    backend: str | None = None,
) -> FitResult:
    """Fit a model to every row of a batch (see :data:`pycro_gpu.fitting.MODEL_NAMES`).

    Parameters
    ----------
    model : str
        ``'sho'`` (complex data; same as :func:`fit_sho`), ``'loop'``, ``'gaussian'``, ``'lorentzian'``,
        ``'pseudo_voigt'`` (with ``n_peaks``), ``'exponential'``, ``'double_exponential'``,
        ``'stretched_exponential'``.
    x : (m,) real array
        Abscissa (bias, energy, time...).
    y : (n, m) real array
        Data, one fit per row (float32 fits in float32, anything else in float64).
    p0 : (n, n_params) real array, optional
        Start points; default the model's guess (:mod:`pycro_gpu.fitting.guess`).
    bounds : (lower, upper), optional
        Box bounds, each with ``n_params`` values; default :func:`default_bounds`.
    n_peaks : int
        Number of peaks of the peak models.
    maxiter, ftol, xtol, backend
        As for :func:`fit_sho`.

    Returns
    -------
    FitResult
        Rows with NaN/Inf are skipped (status 2), rows that do not vary flagged (status 3); see
        :data:`STATUS_CODES`.

    Raises
    ------
    DataError
        ``y`` not a 2-D real array; ``x`` missing, not 1-D, non-finite, of another length than the rows
        of ``y``, constant, or with no more distinct values than the model has parameters (for the
        loop: per branch, summed).
    ValueError
        Unknown model, ``n_peaks``, ``maxiter``, ``ftol``/``xtol`` or ``bounds`` out of range.

    Examples
    --------
    >>> import numpy as np
    >>> from pycro_gpu.fitting import exponential, fit
    >>> t = np.linspace(0, 5, 50)
    >>> res = fit("exponential", t, exponential(t, np.array([[2.0, 0.7, 0.1]])))
    >>> np.round(res.params, 6)
    array([[2. , 0.7, 0.1]])
    """
    if model == "sho":
        return fit_sho(y, x, guess=p0, bounds=bounds, maxiter=maxiter, ftol=ftol, xtol=xtol, backend=backend)
    if isinstance(n_peaks, (bool, np.bool_)) or not isinstance(n_peaks, (int, np.integer)):
        msg = f"n_peaks must be an integer >= 1, got {n_peaks!r}"
        raise ValueError(msg)
    spec = get_model(model, n_peaks=n_peaks)
    maxiter, ftol, xtol = _check_stopping(maxiter, ftol, xtol)
    y = check_data(y, "y")
    xp = array_namespace(y)
    y, xp = _to_backend(y, backend, xp)
    device = device_of(y)
    xh = abscissa(x, "x", y.shape[1])
    fdt = float_dtype(y.dtype)
    if "complex" in str(y.dtype) or not xp.isdtype(y.dtype, ("real floating", "integral")):
        msg = f"model {model!r} fits real data, got dtype {y.dtype}"
        raise DataError(msg)
    check_determined(xh, len(spec.param_names), model=model, name="x", branches=2 if model == "loop" else 1)
    y = xp.astype(y, xp.float32 if fdt == np.float32 else xp.float64)
    n_params = len(spec.param_names)
    if p0 is None:
        p0 = _GUESSES[model](xh, y, xp, int(n_peaks))
    elif not hasattr(p0, "shape") or tuple(p0.shape) != (y.shape[0], n_params):
        msg = f"p0 must have shape ({y.shape[0]}, {n_params}) for {model!r}, got {getattr(p0, 'shape', p0)!r}"
        raise DataError(msg)
    else:
        p0 = _to_backend(p0, backend, array_namespace(p0))[0]
    lo, hi = _bounds_array(bounds, n_params, default_bounds(model, n_params, xh))
    yk = kernel_array(y, xp)
    pk = kernel_array(p0, xp)
    out = _run_kernel(spec, xh, yk, pk, lo, hi, maxiter, ftol, xtol, xp, fdt)
    params, chi2, r2, niter, status, g = result_namespace_arrays((*out, pk), xp, device)
    return FitResult(
        params=params,
        r2=r2,
        chi2=chi2,
        converged=status == 0,
        niter=niter,
        status=status,
        guess=g,
        param_names=spec.param_names,
        model=model,
    )


def fit_loop(
    bias: Array,
    loops: Array,
    *,
    guess: Array | None = None,
    bounds: tuple | None = None,
    maxiter: int = 200,
    backend: str | None = None,
) -> FitResult:
    """Fit the 9-parameter band-excitation loop to every row of ``loops``.

    Parameters
    ----------
    bias : (m,) real array
        DC bias; first half branch 1, second half branch 2.
    loops : (n, m) real array
        Loops (for example the SHO amplitude times cos(phase) per bias step).
    guess : (n, 9) real array, optional
        Start points; default :func:`pycro_gpu.fitting.loop_guess`.
    bounds : (lower, upper), optional
        Default: a0..a3 in [-1e3, 1e3], a4 in [-0.1, 0.1], b0..b3 in [1e-3, 100].
    maxiter : int
        Iteration limit per fit (an integer >= 1).
    backend : str, optional

    Returns
    -------
    FitResult
        ``params`` (n, 9) = ``(a0, a1, a2, a3, a4, b0, b1, b2, b3)``; see :func:`loop_metrics` for the
        derived switching parameters.

    Raises
    ------
    DataError
        As :func:`fit`; in particular a bias with 9 or fewer distinct values per branch (summed over
        the two branches): 9 parameters would fit any loop exactly.
    ValueError
        ``maxiter`` not an integer >= 1, bad ``bounds``.
    """
    return fit("loop", bias, loops, p0=guess, bounds=bounds, maxiter=maxiter, backend=backend)


def loop_metrics(params: Array, *, xp: Namespace | None = None) -> dict:
    """Switching parameters derived from loop-fit parameters.

    Parameters
    ----------
    params : (n, 9) real array
        ``(a0, a1, a2, a3, a4, b0, b1, b2, b3)`` from :func:`fit_loop`.

    Returns
    -------
    dict of (n,) arrays
        ``V-`` = a2 and ``V+`` = a3 (switching voltages of the two branches), ``Imprint`` = (a2 + a3)/2,
        ``R-`` = a0 and ``R+`` = a0 + a1 (the two saturated responses), ``Switchable Polarization`` = a1,
        ``Work of Switching`` = |a3 - a2| |a1| (the loop area of the step loop).
    """
    xp = array_namespace(params) if xp is None else xp
    a0, a1, a2, a3 = (params[:, k] for k in range(4))
    return {
        "V-": a2,
        "V+": a3,
        "Imprint": (a2 + a3) / 2,
        "R-": a0,
        "R+": a0 + a1,
        "Switchable Polarization": a1,
        "Work of Switching": xp.abs(a3 - a2) * xp.abs(a1),
    }
