"""Dataset-level fits: USID Main datasets through the streamed, resumable engine (:mod:`pycro_gpu.process`).

* :func:`fit_sho_dataset`: every band-excitation spectrum of a Main dataset whose fastest spectroscopic
  dimension is the frequency -> results group ``<Source>-SHO_Fit_NNN`` with Main datasets ``Guess`` and
  ``Fit`` of compound type (``Amplitude [V]``, ``Frequency [Hz]``, ``Quality Factor``, ``Phase [rad]``,
  ``R2 Criterion``) over the remaining spectroscopic dimensions, and ``Converged`` (uint8).
* :func:`project_loops`: the piezoresponse loops ``A cos(phi)`` of an SHO ``Fit`` as a real Main dataset.
* :func:`fit_loop_dataset`: the 9-parameter loop of every position -> ``<Source>-Loop_Fit_NNN`` with
  ``Guess``, ``Fit`` (a0..b3, R2 Criterion), ``Switching`` (derived switching parameters), ``Converged``.

Both fits are resumable: a killed run continues from ``completed_positions``; a finished one with the
same parameters is reused (``override=True`` computes again).
"""

from __future__ import annotations

import functools
from typing import Any

import h5py
import numpy as np

from ..backend import device_of, from_host
from ..errors import DataError

__all__ = [
    "LOOP_FIELDS",
    "SHO_FIELDS",
    "SWITCHING_FIELDS",
    "fit_loop_dataset",
    "fit_sho_dataset",
    "project_loops",
]

#: Compound fields of SHO Guess/Fit datasets (what existing band-excitation tools read).
SHO_FIELDS = ("Amplitude [V]", "Frequency [Hz]", "Quality Factor", "Phase [rad]", "R2 Criterion")
#: Compound fields of loop Guess/Fit datasets.
LOOP_FIELDS = ("a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2", "b3", "R2 Criterion")
#: Compound fields of the derived switching parameters (see :func:`pycro_gpu.fitting.loop_metrics`).
SWITCHING_FIELDS = ("V-", "V+", "Imprint", "R+", "R-", "Switchable Polarization", "Work of Switching")


def _compound(fields) -> np.dtype:
    return np.dtype([(k, np.float32) for k in fields])


def _table(params, r2, xp):
    """Rows ``(params..., r2)`` in float32: the fields of a compound Guess/Fit dataset."""
    return xp.concat([xp.astype(params, xp.float32), xp.reshape(xp.astype(r2, xp.float32), (-1, 1))], axis=1)


def _open(source: Any, dataset_path: str | None):
    """(USIDataset, h5py.File or None to close) for a dataset or a file path."""
    from ..io.hdf5 import open_h5
    from ..io.usid import USIDataset, open_main

    if isinstance(source, h5py.Dataset):
        return (source if isinstance(source, USIDataset) else USIDataset(source)), None
    f = open_h5(source, "r")
    try:
        return open_main(f, dataset_path), f
    except BaseException:
        f.close()
        raise


def _run_on_main(source: Any, dataset_path: str | None, make_job: Any, **kw: Any) -> Any:
    """Run the job ``make_job(main)`` on the Main dataset of ``source`` with :func:`run_job` (``kw``).

    A file this module opened is closed if ``make_job`` fails, else before ``run_job`` reopens it.
    """
    from ..process import run_job

    main, f = _open(source, dataset_path)
    try:
        job = make_job(main)
    except BaseException:
        if f is not None:
            f.close()
        raise
    if f is None:
        return run_job(job, main, **kw)
    path = main.name
    f.close()
    return run_job(job, source, path, **kw)


def _frequency_layout(main) -> tuple[np.ndarray, list]:
    """Frequency values and the other spectroscopic dimensions (fastest first) of a BE Main dataset."""
    from ..io.usid import Dimension

    dims = list(main.spec_dims)
    order = main.spec_order
    names = [d.name.lower() for d in dims]
    freq = [i for i, n in enumerate(names) if "freq" in n]
    if not freq:
        msg = f"{main.name}: no Frequency spectroscopic dimension (dimensions: {[d.name for d in dims]})"
        raise DataError(msg)
    i_f = freq[0]
    if order[0] != i_f or not main.spec_is_regular:
        msg = (
            f"{main.name}: the SHO fit needs the frequency as the fastest-varying spectroscopic "
            f"dimension on a complete grid (dimensions {[d.name for d in dims]})"
        )
        raise DataError(msg)
    others = [dims[i] for i in order[1:]]
    if not others:
        others = [Dimension("Single_Step", "a.u.", np.zeros(1))]
    return np.asarray(dims[i_f].values, dtype=np.float64), others


def _sho_compute(batch, xp, *, frequency: np.ndarray, n_freq: int, maxiter: int) -> dict[str, Any]:
    """``compute`` of the SHO job: ``(n, n_other * n_freq)`` complex rows -> Guess, Fit, Converged."""
    from .api import fit_sho

    n = batch.shape[0]
    spectra = xp.reshape(batch, (-1, n_freq))
    f = from_host(frequency, xp, device=device_of(batch))
    res = fit_sho(spectra, f, maxiter=maxiter, guess_r2=True)
    return {
        "Guess": xp.reshape(_table(res.guess, res.guess_r2, xp), (n, -1, 5)),
        "Fit": xp.reshape(_table(res.params, res.r2, xp), (n, -1, 5)),
        "Converged": xp.reshape(xp.astype(res.converged, xp.uint8), (n, -1)),
    }


def fit_sho_dataset(
    source: Any,
    dataset_path: str | None = None,
    *,
    results: Any = None,
    maxiter: int = 100,
    backend: str | None = None,
    memory_mb: float | None = None,
    batch_rows: int | None = None,
    executor: Any = None,
    override: bool = False,
    progress: bool | None = None,
):
    """Fit the SHO to every spectrum of a band-excitation Main dataset, streamed and resumable.

    Parameters
    ----------
    source : h5py.Dataset or path
        The complex Main dataset (``Raw_Data``), or its file (then ``dataset_path``). Its fastest
        spectroscopic dimension must be the frequency (Hz); the others (e.g. DC offset) become the
        spectroscopic dimensions of the results.
    dataset_path : str, optional
        Path of the Main dataset in the file.
    results : path or h5py.Group, optional
        Where the results group goes (default next to the source, same file).
    maxiter : int
        Levenberg-Marquardt iteration limit per spectrum.
    backend, memory_mb, batch_rows, executor, override, progress
        As for :func:`pycro_gpu.process.run_job` (``executor``: e.g.
        :class:`pycro_gpu.distributed.DaskExecutor` to fit on a Dask cluster).

    Returns
    -------
    pycro_gpu.process.JobResult
        ``result.group`` is ``.../Raw_Data-SHO_Fit_000`` (number increasing with new parameters) with
        ``Guess`` and ``Fit`` (compound :data:`SHO_FIELDS`, float32) and ``Converged`` (uint8).
    """
    return _run_on_main(
        source,
        dataset_path,
        functools.partial(_sho_job, maxiter=maxiter),
        results=results,
        backend=backend,
        memory_mb=memory_mb,
        batch_rows=batch_rows,
        executor=executor,
        override=override,
        progress=progress,
    )


def _sho_job(main: Any, *, maxiter: int) -> Any:
    """The SHO fit :class:`pycro_gpu.process.Job` of a complex band-excitation Main dataset."""
    from ..process import Job, Output

    if "complex" not in str(main.dtype):
        msg = f"{main.name}: the SHO fit needs complex spectra, got dtype {main.dtype}"
        raise DataError(msg)
    frequency, others = _frequency_layout(main)
    n_freq = frequency.shape[0]
    n_other = main.shape[1] // n_freq
    compound = _compound(SHO_FIELDS)
    return Job(
        tool="SHO_Fit",
        compute=functools.partial(_sho_compute, frequency=frequency, n_freq=n_freq, maxiter=int(maxiter)),
        outputs=[
            Output("Guess", dtype=compound, spec_dims=others, quantity="SHO", units="compound"),
            Output("Fit", dtype=compound, spec_dims=others, quantity="SHO", units="compound"),
            Output("Converged", shape=n_other, dtype=np.uint8),
        ],
        parameters={
            "model": "sho",
            "sign_convention": "A exp(i phi) w0^2 / (w^2 - i w w0 / Q - w0^2)",
            "guess": "complex gaussian (two-point inversion, error weighted)",
            "maxiter": int(maxiter),
        },
        work_multiplier=6.0,
    )


def project_loops(fit: h5py.Dataset, name: str = "Piezoresponse") -> h5py.Dataset:
    """Write the piezoresponse loops ``Amplitude cos(Phase)`` of an SHO ``Fit`` as a Main dataset.

    Parameters
    ----------
    fit : h5py.Dataset
        The compound ``Fit`` Main dataset of :func:`fit_sho_dataset` (``(n_pos, n_steps)``).
    name : str
        Name of the new dataset, next to ``fit``.

    Returns
    -------
    USIDataset
        Real ``(n_pos, n_steps)`` float32 Main dataset sharing the ancillaries of ``fit``.
    """
    from ..io.usid import USIDataset, write_main

    main = fit if isinstance(fit, USIDataset) else USIDataset(fit)
    rows = main[()]
    loops = (rows["Amplitude [V]"].astype(np.float64) * np.cos(rows["Phase [rad]"])).astype(np.float32)
    if name in main.parent:
        del main.parent[name]
    return write_main(
        main.parent,
        name,
        loops,
        None,
        None,
        "Piezoresponse",
        "V",
        h5_pos_inds=main.h5_pos_inds,
        h5_pos_vals=main.h5_pos_vals,
        h5_spec_inds=main.h5_spec_inds,
        h5_spec_vals=main.h5_spec_vals,
    )


def _loop_compute(batch, xp, *, bias: np.ndarray, maxiter: int) -> dict[str, Any]:
    """``compute`` of the loop job: ``(n, n_bias)`` loops -> Guess, Fit, Switching, Converged."""
    from .api import fit_loop, loop_metrics
    from .models import loop

    b = from_host(bias, xp, device=device_of(batch))
    y = xp.astype(batch, xp.float64)
    res = fit_loop(b, y, maxiter=maxiter)
    g = xp.astype(res.guess, xp.float64)
    resid = loop(b, g) - y
    centered = y - xp.mean(y, axis=1, keepdims=True)
    r2_guess = 1.0 - xp.sum(resid * resid, axis=1) / xp.sum(centered * centered, axis=1)
    met = loop_metrics(xp.astype(res.params, xp.float64), xp=xp)
    return {
        "Guess": _table(res.guess, r2_guess, xp),
        "Fit": _table(res.params, res.r2, xp),
        "Switching": xp.stack([xp.astype(met[k], xp.float32) for k in SWITCHING_FIELDS], axis=1),
        "Converged": xp.astype(res.converged, xp.uint8),
    }


def fit_loop_dataset(
    source: Any,
    dataset_path: str | None = None,
    *,
    results: Any = None,
    maxiter: int = 200,
    backend: str | None = None,
    memory_mb: float | None = None,
    batch_rows: int | None = None,
    executor: Any = None,
    override: bool = False,
    progress: bool | None = None,
):
    """Fit the 9-parameter loop to every position of a real Main dataset of loops, streamed, resumable.

    Parameters
    ----------
    source : h5py.Dataset or path
        Real ``(n_pos, n_bias)`` Main dataset (e.g. :func:`project_loops` of an SHO fit) with a single
        spectroscopic dimension, the DC bias (first half branch 1, second half branch 2).
    dataset_path, results, maxiter, backend, memory_mb, batch_rows, executor, override, progress
        As for :func:`fit_sho_dataset`.

    Returns
    -------
    pycro_gpu.process.JobResult
        Group ``<Source>-Loop_Fit_NNN`` with ``Guess`` and ``Fit`` (compound :data:`LOOP_FIELDS`),
        ``Switching`` (compound :data:`SWITCHING_FIELDS`) and ``Converged`` (uint8), one row per position.
    """
    return _run_on_main(
        source,
        dataset_path,
        functools.partial(_loop_job, maxiter=maxiter),
        results=results,
        backend=backend,
        memory_mb=memory_mb,
        batch_rows=batch_rows,
        executor=executor,
        override=override,
        progress=progress,
    )


def _loop_job(main: Any, *, maxiter: int) -> Any:
    """The loop fit :class:`pycro_gpu.process.Job` of a real Main dataset of loops."""
    from ..process import Job, Output

    if "complex" in str(main.dtype) or main.dtype.names:
        msg = f"{main.name}: the loop fit needs a real Main dataset of loops, got dtype {main.dtype}"
        raise DataError(msg)
    if len(main.spec_dims) != 1:
        msg = (
            f"{main.name}: the loop fit needs one spectroscopic dimension (the DC bias), got "
            f"{[d.name for d in main.spec_dims]}"
        )
        raise DataError(msg)
    bias = np.asarray(main.spec_dims[0].values, dtype=np.float64)
    return Job(
        tool="Loop_Fit",
        compute=functools.partial(_loop_compute, bias=bias, maxiter=int(maxiter)),
        outputs=[
            Output("Guess", dtype=_compound(LOOP_FIELDS)),
            Output("Fit", dtype=_compound(LOOP_FIELDS)),
            Output("Switching", dtype=_compound(SWITCHING_FIELDS)),
            Output("Converged", dtype=np.uint8),
        ],
        parameters={"model": "loop", "maxiter": int(maxiter), "guess": "branch intercepts"},
        work_multiplier=6.0,
    )
