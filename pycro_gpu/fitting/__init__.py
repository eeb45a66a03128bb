"""Batch spectral fitting: models, guesses and Levenberg-Marquardt fits on CPU and GPU.

One bounded Levenberg-Marquardt fit per spectrum, compiled with numba for the CPU (parallel over
spectra) and for CUDA (one thread per fit on CuPy data). Models: SHO (band excitation), the 9-parameter
BE loop, Gaussian / Lorentzian / pseudo-Voigt peak sums with a linear background, and exponential,
double-exponential and stretched-exponential relaxation. Dataset level: USID Main datasets through the
streamed, resumable engine (:func:`fit_sho_dataset`, :func:`fit_loop_dataset`, and
:func:`fit_curves_dataset` for peaks and relaxation curves).
"""

from __future__ import annotations

from .api import (
    STATUS_CODES,
    STATUS_CONSTANT_DATA,
    STATUS_CONVERGED,
    STATUS_MAX_ITER,
    STATUS_NONFINITE,
    FitResult,
    default_bounds,
    fit,
    fit_loop,
    fit_sho,
    loop_metrics,
)
from .curves import CURVE_MODELS, fit_curves_dataset
from .dataset import fit_loop_dataset, fit_sho_dataset, project_loops
from .guess import (
    double_exponential_guess,
    exponential_guess,
    loop_guess,
    peaks_guess,
    sho_guess,
    stretched_exponential_guess,
)
from .models import (
    MODEL_NAMES,
    ModelSpec,
    double_exponential,
    erf,
    exponential,
    get_model,
    loop,
    peaks,
    sho,
    stretched_exponential,
)

__all__ = [
    "CURVE_MODELS",
    "MODEL_NAMES",
    "STATUS_CODES",
    "STATUS_CONSTANT_DATA",
    "STATUS_CONVERGED",
    "STATUS_MAX_ITER",
    "STATUS_NONFINITE",
    "FitResult",
    "ModelSpec",
    "default_bounds",
    "double_exponential",
    "double_exponential_guess",
    "erf",
    "exponential",
    "exponential_guess",
    "fit",
    "fit_curves_dataset",
    "fit_loop",
    "fit_loop_dataset",
    "fit_sho",
    "fit_sho_dataset",
    "get_model",
    "loop",
    "loop_guess",
    "loop_metrics",
    "peaks",
    "peaks_guess",
    "project_loops",
    "sho",
    "sho_guess",
    "stretched_exponential",
    "stretched_exponential_guess",
]
