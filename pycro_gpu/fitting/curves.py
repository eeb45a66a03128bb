"""Peak and relaxation fits of a USID Main dataset: one curve per position, streamed and resumable.

:func:`fit_curves_dataset` fits a model of :data:`CURVE_MODELS` (Gaussian / Lorentzian / pseudo-Voigt
peaks on a linear background, exponential, double- and stretched-exponential relaxation) to every
position of a real Main dataset whose spectroscopic dimension is the model's abscissa (energy, bias,
time...). It is a position-wise job on :func:`pycro_gpu.process.run_job` like the SHO fit, and writes
``<Source>-<Model>_Fit_NNN`` with ``Fit`` (compound: the parameters and ``R2 Criterion``, float32),
``Converged`` (uint8) and ``Status`` (int8, explained by the ``status_codes`` attribute).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np

from ..backend import from_host
from ..errors import DataError
from ..process import Job, JobResult, Output
from ._checks import check_determined, check_maxiter

__all__ = ["CURVE_MODELS", "fit_curves_dataset"]

#: Models of :func:`fit_curves_dataset` (peak models take ``n_peaks``).
CURVE_MODELS = (
    "gaussian",
    "lorentzian",
    "pseudo_voigt",
    "exponential",
    "double_exponential",
    "stretched_exponential",
)


def _abscissa(main: Any) -> np.ndarray:
    """Values of the single spectroscopic dimension (with more than one step) of a Main dataset."""
    dims = [d for d in main.spec_dims if len(d) > 1]
    if len(dims) != 1 or len(dims[0]) != main.shape[1]:
        names = {d.name: len(d) for d in main.spec_dims}
        msg = f"{main.name}: a curve fit needs one spectroscopic dimension (the abscissa), got {names}"
        raise DataError(msg)
    values = np.asarray(dims[0].values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        msg = f"{main.name}: the abscissa {dims[0].name!r} holds non-finite values"
        raise DataError(msg)
    return values


def _compute(batch: Any, xp: Any, *, model: str, n_peaks: int, x: np.ndarray, maxiter: int) -> dict[str, Any]:
    from .api import fit

    xx = from_host(x, xp)
    res = fit(model, xx, xp.astype(batch, xp.float64), n_peaks=n_peaks, maxiter=maxiter)
    table = xp.concat(
        [xp.astype(res.params, xp.float32), xp.reshape(xp.astype(res.r2, xp.float32), (-1, 1))], axis=1
    )
    return {
        "Fit": table,
        "Converged": xp.astype(res.converged, xp.uint8),
        "Status": xp.astype(res.status, xp.int8),
    }


def _job(main: Any, *, model: str, n_peaks: int, maxiter: int) -> Job:
    from ..io.usid import Dimension
    from .api import STATUS_CODES
    from .models import get_model

    if main.dtype.kind not in "fiu" or main.dtype.names:
        msg = f"{main.name}: a {model} fit needs real data, got dtype {main.dtype}"
        raise DataError(msg)
    spec = get_model(model, n_peaks=n_peaks)
    x = _abscissa(main)
    check_determined(x, len(spec.param_names), model=model, name=f"the abscissa of {main.name}")
    fields = np.dtype([(n, np.float32) for n in (*spec.param_names, "R2 Criterion")])
    return Job(
        tool=f"{''.join(p.capitalize() for p in model.split('_'))}_Fit",
        compute=functools.partial(_compute, model=model, n_peaks=n_peaks, x=x, maxiter=maxiter),
        outputs=[
            # a Main dataset (one record per position), so that maps, export and to_xarray work on it
            Output("Fit", dtype=fields, spec_dims=[Dimension("Fit", "a.u.", 1)], quantity=f"{model} fit"),
            Output("Converged", dtype=np.uint8),
            Output("Status", dtype=np.int8),
        ],
        parameters={
            "model": model,
            "n_peaks": n_peaks,
            "maxiter": maxiter,
            "status_codes": json.dumps({str(k): v for k, v in STATUS_CODES.items()}, sort_keys=True),
        },
        work_multiplier=6.0,
    )


def fit_curves_dataset(
    source: Any,
    dataset_path: str | None = None,
    *,
    results: Any = None,
    backend: str | None = None,
    memory_mb: float | None = None,
    executor: Any = None,
    override: bool = False,
    progress: bool | None = None,
    model: str = "gaussian",
    n_peaks: int = 1,
    maxiter: int = 100,
) -> JobResult:
    """Fit ``model`` to the curve of every position of a real USID Main dataset (streamed, resumable).

    Parameters
    ----------
    source, dataset_path, results, backend, memory_mb, executor, override, progress
        As every dataset job (:func:`pycro_gpu.process.run_job`).
    model : str
        One of :data:`CURVE_MODELS`.
    n_peaks : int
        Peaks of the peak models.
    maxiter : int
        Iterations of Levenberg-Marquardt (>= 1).

    Returns
    -------
    JobResult
        ``<Source>-<Model>_Fit_NNN`` with ``Fit``, ``Converged`` and ``Status``.

    Raises
    ------
    DataError
        Not real data with one spectroscopic dimension, or too few distinct abscissa values to
        determine the parameters; nothing is written then.
    """
    from .._lib.checks import check_dataset_path, check_int
    from .dataset import _run_on_main

    check_dataset_path(dataset_path, "fit_curves_dataset", "model")
    if model not in CURVE_MODELS:
        msg = f"model must be one of {', '.join(CURVE_MODELS)}; got {model!r}"
        raise ValueError(msg)
    n_peaks = check_int(n_peaks, "n_peaks", minimum=1)
    maxiter = check_maxiter(maxiter)
    return _run_on_main(
        source, dataset_path, functools.partial(_job, model=model, n_peaks=n_peaks, maxiter=maxiter),
        results=results, backend=backend, memory_mb=memory_mb, executor=executor, override=override,
        progress=progress,
    )  # fmt: skip
