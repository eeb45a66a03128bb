"""Dataset-level fits: USID Main datasets through the streamed, resumable engine (:mod:`pycro_gpu.process`).

* :func:`fit_sho_dataset`: every band-excitation spectrum of a Main dataset whose fastest spectroscopic
  dimension is the frequency -> results group ``<Source>-SHO_Fit_NNN`` with Main datasets ``Guess`` and
  ``Fit`` of compound type (``Amplitude [V]``, ``Frequency [Hz]``, ``Quality Factor``, ``Phase [rad]``,
  ``R2 Criterion``) over the remaining spectroscopic dimensions, ``Converged`` (uint8) and ``Status``
  (int8, the code of each fit).
* :func:`project_loops`: the piezoresponse loops ``A cos(phi)`` of an SHO ``Fit`` as a real Main dataset.
* :func:`fit_loop_dataset`: the 9-parameter loop of every position -> ``<Source>-Loop_Fit_NNN`` with
  ``Guess``, ``Fit`` (a0..b3, R2 Criterion), ``Switching`` (derived switching parameters), ``Converged``
  and ``Status``.

Both fits are resumable: a killed run continues from ``completed_positions``; a finished one with the
same parameters is reused (``override=True`` computes again). The meaning of each ``Status`` code is
the JSON attribute ``status_codes`` of the results group (:data:`~pycro_gpu.fitting.STATUS_CODES`).

A fit of another job's results (the loop fit of an SHO fit) reads only a finished (``complete``) group,
and records that group's path and ``timestamp`` among its parameters: a loop fit is reused only for the
very SHO fit it was computed from, so an SHO fit run again (``override``) is fitted again.

Inputs are checked before any output is allocated: ``maxiter`` an integer >= 1, an abscissa (frequency,
DC bias) that is not constant and has more distinct values than the model has parameters.
"""

from __future__ import annotations

import functools
import json
import shlex
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..backend import device_of, from_host
from ..errors import DataError
from ._checks import abscissa, check_determined, check_maxiter
from .api import STATUS_CODES

__all__ = [
    "LOOP_FIELDS",
    "LOOP_MAXITER",
    "SHO_FIELDS",
    "SHO_MAXITER",
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
#: default iteration limits of the SHO and loop dataset fits
SHO_MAXITER = 100
LOOP_MAXITER = 200
#: the ``status_codes`` parameter of the fit results groups: JSON ``{"code": "meaning"}``
STATUS_CODES_JSON = json.dumps({str(k): v for k, v in STATUS_CODES.items()})


def _text(value: Any) -> str:
    """An HDF5 string attribute as ``str``."""
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def _sho_rerun_command(group: h5py.Group) -> str:
    """The ``pycro-gpu fit sho`` command that finishes the interrupted SHO fit ``group``."""
    raw = _text(group.attrs.get("source_file", group.file.filename))
    words = ["pycro-gpu fit sho", shlex.quote(raw)]
    try:
        params = json.loads(_text(group.attrs["parameters_json"]))
    except (KeyError, ValueError):
        params = {}
    if params.get("maxiter", SHO_MAXITER) != SHO_MAXITER:
        words += ["--maxiter", str(params["maxiter"])]
    if Path(group.file.filename).resolve() != Path(raw).resolve():
        words += ["--results", shlex.quote(str(group.file.filename))]
    twins = [
        g
        for g in group.parent.values()
        if isinstance(g, h5py.Group)
        and g.name != group.name
        and _text(g.attrs.get("tool", "")) == "SHO_Fit"
        and _text(g.attrs.get("status", "complete")) == "complete"
        and g.attrs.get("parameters_json") == group.attrs.get("parameters_json")
        and g.attrs.get("source_path") == group.attrs.get("source_path")
    ]
    if twins:  # a finished fit with equal parameters would be reused: only --override resumes this one
        words.append("--override")
    return " ".join(words)


def complete_source_group(dset: h5py.Dataset) -> h5py.Group | None:
    """The results group that holds ``dset`` (None for raw data), refused unless it is finished.

    A job that reads another job's results must not read a half-written group: the positions the
    interrupted run did not reach hold zeros (or stale values).

    Raises
    ------
    DataError
        The group's ``status`` is not ``complete`` (the run that writes it was interrupted); the message
        says how to finish it.
    """
    group = dset.parent
    if "tool" not in group.attrs:
        return None
    status = _text(group.attrs.get("status", "complete"))
    if status == "complete":
        return group
    tool = _text(group.attrs["tool"])
    where = f"{group.file.filename}: "
    if tool == "SHO_Fit":
        msg = (
            f"{where}SHO fit {group.name} is interrupted (status {status}): re-run "
            f"`{_sho_rerun_command(group)}` to finish it"
        )
    else:
        msg = (
            f"{where}{tool} results {group.name} are interrupted (status {status}): re-run that job to "
            "finish it"
        )
    raise DataError(msg)


def _source_identity(group: h5py.Group | None) -> dict[str, str]:
    """Parameters that tie a job to the results group it reads: its path and creation ``timestamp``."""
    if group is None:
        return {}
    return {"source_group": group.name, "source_group_timestamp": _text(group.attrs.get("timestamp", "?"))}


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
    axis = f"the {dims[i_f].name} dimension of {main.name}"
    frequency = abscissa(dims[i_f].values, axis, len(dims[i_f]))
    check_determined(frequency, 4, model="SHO", name=axis)
    return frequency, others


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
        "Status": xp.reshape(xp.astype(res.status, xp.int8), (n, -1)),
    }


def fit_sho_dataset(
    source: Any,
    dataset_path: str | None = None,
    *,
    results: Any = None,
    maxiter: int = SHO_MAXITER,
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
        Levenberg-Marquardt iteration limit per spectrum (an integer >= 1).
    backend, memory_mb, batch_rows, executor, override, progress
        As for :func:`pycro_gpu.process.run_job` (``executor``: e.g.
        :class:`pycro_gpu.distributed.DaskExecutor` to fit on a Dask cluster).

    Returns
    -------
    pycro_gpu.process.JobResult
        ``result.group`` is ``.../Raw_Data-SHO_Fit_000`` (number increasing with new parameters) with
        ``Guess`` and ``Fit`` (compound :data:`SHO_FIELDS`, float32), ``Converged`` (uint8) and
        ``Status`` (int8, codes explained by the group's ``status_codes`` attribute).

    Raises
    ------
    ValueError
        ``maxiter`` is not an integer >= 1.
    DataError
        The source is not complex band-excitation data with a frequency axis that can determine the
        4 SHO parameters (5 or more distinct frequencies); nothing is written then.
    """
    maxiter = check_maxiter(maxiter)
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
            Output("Status", shape=n_other, dtype=np.int8),
        ],
        parameters={
            "model": "sho",
            "sign_convention": "A exp(i phi) w0^2 / (w^2 - i w w0 / Q - w0^2)",
            "guess": "complex gaussian (two-point inversion, error weighted)",
            "maxiter": int(maxiter),
            "status_codes": STATUS_CODES_JSON,
        },
        work_multiplier=6.0,
    )


def _check_sho_fit(main: Any) -> None:
    """Refuse a dataset without the amplitude and phase fields of an SHO ``Fit``."""
    missing = [k for k in ("Amplitude [V]", "Phase [rad]") if k not in (main.dtype.names or ())]
    if missing:
        msg = f"{main.name}: not an SHO Fit (compound fields {main.dtype.names}; missing {missing})"
        raise DataError(msg)


def _projected(main: Any) -> np.ndarray:
    """``Amplitude cos(Phase)`` of every row of a compound SHO ``Fit`` (float32)."""
    _check_sho_fit(main)
    rows = main[()]
    return (rows["Amplitude [V]"].astype(np.float64) * np.cos(rows["Phase [rad]"])).astype(np.float32)


def _existing_loops(parent: h5py.Group, name: str, loops: np.ndarray) -> Any:
    """The dataset ``name`` of ``parent`` as a USIDataset when it already holds exactly ``loops``."""
    from ..io.usid import USIDataset

    dset = parent.get(name)
    if not isinstance(dset, h5py.Dataset) or dset.shape != loops.shape or dset.dtype != loops.dtype:
        return None
    if not np.array_equal(dset[()], loops, equal_nan=True):
        return None
    try:
        return USIDataset(dset)
    except DataError:
        return None


def project_loops(fit: h5py.Dataset, name: str = "Piezoresponse") -> h5py.Dataset:
    """Write the piezoresponse loops ``Amplitude cos(Phase)`` of an SHO ``Fit`` as a Main dataset.

    Parameters
    ----------
    fit : h5py.Dataset
        The compound ``Fit`` Main dataset of :func:`fit_sho_dataset` (``(n_pos, n_steps)``), in a
        finished (``complete``) results group.
    name : str
        Name of the new dataset, next to ``fit``. A dataset of that name that already holds these loops
        is kept as it is; one that holds other values is replaced.

    Returns
    -------
    USIDataset
        Real ``(n_pos, n_steps)`` float32 Main dataset sharing the ancillaries of ``fit``.

    Raises
    ------
    DataError
        ``fit`` is not an SHO Fit, or its results group is unfinished (an interrupted run: the positions
        it did not reach hold no fit).
    """
    from ..io.usid import USIDataset, write_main

    main = fit if isinstance(fit, USIDataset) else USIDataset(fit)
    complete_source_group(main)
    loops = _projected(main)
    existing = _existing_loops(main.parent, name, loops)
    if existing is not None:
        return existing
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
    """``compute`` of the loop job: ``(n, n_bias)`` loops -> Guess, Fit, Switching, Converged, Status."""
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
        "Status": xp.astype(res.status, xp.int8),
    }


def fit_loop_dataset(
    source: Any,
    dataset_path: str | None = None,
    *,
    results: Any = None,
    maxiter: int = LOOP_MAXITER,
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
        spectroscopic dimension, the DC bias (first half branch 1, second half branch 2); or the
        compound ``Fit`` of :func:`fit_sho_dataset`, whose loops ``A cos(phi)`` are projected first
        (:func:`project_loops`, in the SHO results group). A source inside a results group must come
        from a finished run.
    dataset_path, results, maxiter, backend, memory_mb, batch_rows, executor, override, progress
        As for :func:`fit_sho_dataset`.

    Returns
    -------
    pycro_gpu.process.JobResult
        Group ``<Source>-Loop_Fit_NNN`` with ``Guess`` and ``Fit`` (compound :data:`LOOP_FIELDS`),
        ``Switching`` (compound :data:`SWITCHING_FIELDS`), ``Converged`` (uint8) and ``Status`` (int8),
        one row per position. Its parameters include ``source_group`` and ``source_group_timestamp``
        when the source lies in a results group: a finished loop fit is reused only for that very group.

    Raises
    ------
    ValueError
        ``maxiter`` is not an integer >= 1.
    DataError
        The source's results group is unfinished (interrupted: finish it first); the source is not a
        real Main dataset of loops over one DC-bias dimension; the bias is constant or has 9 or fewer
        distinct values per branch (summed), too few for 9 parameters. Nothing is written then.
    """
    maxiter = check_maxiter(maxiter)
    kw = {
        "results": results,
        "backend": backend,
        "memory_mb": memory_mb,
        "batch_rows": batch_rows,
        "executor": executor,
        "override": override,
        "progress": progress,
    }
    make_job = functools.partial(_loop_job, maxiter=maxiter)
    if isinstance(source, h5py.Dataset):
        if source.dtype.names:
            source = _sho_loops(source, maxiter)
        return _run_on_main(source, None, make_job, **kw)
    from ..io.hdf5 import open_h5
    from ..io.usid import open_main

    with open_h5(source, "r") as f:
        is_sho_fit = open_main(f, dataset_path).dtype.names is not None
    if not is_sho_fit:
        return _run_on_main(source, dataset_path, make_job, **kw)
    with open_h5(source, "r+") as f:  # the projected loops go next to the SHO Fit
        loops = _sho_loops(open_main(f, dataset_path), maxiter)
        return _run_on_main(loops, None, make_job, **kw)


def _sho_loops(fit: Any, maxiter: int) -> Any:
    """The projected loops of a compound SHO ``Fit``, written only once the loop job can run on them."""
    from ..io.usid import USIDataset

    main = fit if isinstance(fit, USIDataset) else USIDataset(fit)
    complete_source_group(main)
    _check_sho_fit(main)
    _loop_bias(main)  # before anything is written
    return project_loops(main)


def _loop_bias(main: Any) -> np.ndarray:
    """The DC bias of a Main dataset of loops (its one spectroscopic dimension), checked for a loop fit."""
    if len(main.spec_dims) != 1:
        msg = (
            f"{main.name}: the loop fit needs one spectroscopic dimension (the DC bias), got "
            f"{[d.name for d in main.spec_dims]}"
        )
        raise DataError(msg)
    dim = main.spec_dims[0]
    axis = f"the {dim.name} dimension of {main.name}"
    bias = abscissa(dim.values, axis, len(dim))
    check_determined(bias, len(LOOP_FIELDS) - 1, model="loop", name=axis, branches=2)
    return bias


def _loop_job(main: Any, *, maxiter: int) -> Any:
    """The loop fit :class:`pycro_gpu.process.Job` of a real Main dataset of loops."""
    from ..process import Job, Output

    if "complex" in str(main.dtype) or main.dtype.names:
        msg = f"{main.name}: the loop fit needs a real Main dataset of loops, got dtype {main.dtype}"
        raise DataError(msg)
    source_group = complete_source_group(main)
    bias = _loop_bias(main)
    return Job(
        tool="Loop_Fit",
        compute=functools.partial(_loop_compute, bias=bias, maxiter=int(maxiter)),
        outputs=[
            Output("Guess", dtype=_compound(LOOP_FIELDS)),
            Output("Fit", dtype=_compound(LOOP_FIELDS)),
            Output("Switching", dtype=_compound(SWITCHING_FIELDS)),
            Output("Converged", dtype=np.uint8),
            Output("Status", dtype=np.int8),
        ],
        parameters={
            "model": "loop",
            "maxiter": int(maxiter),
            "guess": "branch intercepts",
            "status_codes": STATUS_CODES_JSON,
            **_source_identity(source_group),
        },
        work_multiplier=6.0,
    )
