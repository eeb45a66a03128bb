"""Run the streamed engine's batches on a Dask cluster: many processes, many nodes, many GPUs.

:class:`DaskExecutor` plugs into :func:`pycro_gpu.process.run_job` (``executor=``). The driver plans
the batches exactly as a local run does (same batch grid, same ``completed_positions`` skipping);
each batch becomes one Dask task in which a *worker* opens the raw HDF5 file read-only by path,
reads its rows, moves them to its own backend (NumPy, or CuPy on its GPU), calls the job's
``compute`` and returns host arrays. Only the driver writes: it stores each result as it arrives
(in any order), flushes, then marks the positions done, so a killed job resumes from the status
dataset as a local one does, and the results are bit-identical to a single-process run when
``compute`` is deterministic per position.

Clusters
--------
Anything a :class:`distributed.Client` can talk to:

* ``DaskExecutor(workers=4)``: a :class:`distributed.LocalCluster` of 4 worker processes with one
  thread each, started here and closed with the executor.
* ``DaskExecutor(gpus=2)`` (or ``gpus="all"``): a ``dask_cuda.LocalCUDACluster`` of one worker per GPU
  (the first 2 visible ones), each computing with ``backend="auto"``, so CuPy on its own GPU; needs
  ``pip install 'pycro-gpu[multigpu]'``. The command line's ``--gpus N``.
* ``DaskExecutor(scheduler="tcp://host:8786")`` or ``scheduler="scheduler.json"`` (a scheduler file
  as written by ``dask scheduler --scheduler-file``, ``dask-mpi`` and dask-jobqueue).
* ``DaskExecutor(client)``: a client you made, for example on
  ``dask_cuda.LocalCUDACluster()`` (one worker per GPU; each worker's CuPy sees its own GPU as
  device 0), ``dask_jobqueue.SLURMCluster(...)`` / ``PBSCluster(...)`` with ``cluster.scale(jobs=N)``,
  or ``dask_mpi.initialize()`` under ``mpirun``. See ``docker/README.md`` for job scripts.

Requirements and caveats
------------------------
* Workers must see the raw file at the same path (a shared or parallel file system on clusters).
* ``compute`` (and what it closes over) is pickled to the workers: a module-level function or a
  :func:`functools.partial` of one, importable on the workers (same pycro_gpu version).
* Workers open the file with HDF5 file locking off (``locking=False``): the driver holds the lock
  while it writes results into the same file. That is safe because the engine allocates every
  output before the batch loop and the loop changes no HDF5 metadata; the raw dataset is never
  written. Files created with ``libver="latest"`` (superblock v3) refuse any reader while open for
  writing: write their results to another file (``run_job(..., results="out.h5")``).
* The backend is the driver's by default (``run_job(backend=...)``); ``DaskExecutor(backend="auto")``
  lets each worker pick its own (CuPy on GPU workers when the driver has no GPU).
* numba CPU kernels use every core of a worker by default; with several workers on one machine,
  ``numba_threads`` (default: cores / local workers for clusters started here) avoids
  oversubscription.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._lib.dask_options import add_dask_arguments, check_gpus
from .._lib.optional import require
from ..errors import BackendUnavailableError, DataError, ParameterError

__all__ = [
    "DaskExecutor",
    "add_dask_arguments",
    "compute_on_worker",
    "executor_from_args",
    "make_client",
    "make_gpu_client",
]

_LOCAL_CLUSTER_DEFAULTS = {"dashboard_address": "127.0.0.1:0", "silence_logs": logging.WARNING}


def make_client(
    scheduler: str | os.PathLike | None = None,
    workers: int | None = None,
    *,
    threads_per_worker: int = 1,
    processes: bool = True,
    **cluster_kwargs: Any,
) -> tuple[Any, Any]:
    """Connect to a scheduler or start a local cluster; return ``(client, cluster_or_None)``.

    Parameters
    ----------
    scheduler : str or path-like, optional
        Scheduler address (``tcp://host:8786``) or scheduler file (``*.json``).
    workers : int, optional
        Without ``scheduler``: start a :class:`distributed.LocalCluster` of this many workers
        (default: the number of cores).
    threads_per_worker : int
        Threads per local worker (1: one batch at a time per process).
    processes : bool
        Local workers as processes (True) or threads of this process.
    **cluster_kwargs
        Passed to :class:`distributed.LocalCluster`.

    Returns
    -------
    client : distributed.Client
    cluster : distributed.LocalCluster or None
        The cluster started here (the caller closes it), ``None`` when connecting to a scheduler.
    """
    distributed = require("distributed", feature="pycro_gpu.distributed")
    if scheduler is not None:
        if workers is not None:
            msg = f"give either scheduler ({scheduler!r}) or workers ({workers!r}), not both"
            raise ValueError(msg)
        sched = str(scheduler)
        if sched.endswith(".json"):
            if not Path(sched).is_file():
                msg = f"scheduler file {sched!r} does not exist"
                raise DataError(msg)
            return distributed.Client(scheduler_file=sched, set_as_default=False), None
        return distributed.Client(sched, set_as_default=False), None
    if workers is not None and int(workers) < 1:
        msg = f"workers must be >= 1, got {workers!r}"
        raise ValueError(msg)
    if int(threads_per_worker) < 1:
        msg = f"threads_per_worker must be >= 1, got {threads_per_worker!r}"
        raise ValueError(msg)
    cluster = distributed.LocalCluster(
        n_workers=int(workers) if workers is not None else (os.cpu_count() or 1),
        threads_per_worker=int(threads_per_worker),
        processes=processes,
        **{**_LOCAL_CLUSTER_DEFAULTS, **cluster_kwargs},
    )
    return _client_of(distributed, cluster), cluster


def make_gpu_client(
    gpus: int | str = "all", *, threads_per_worker: int = 1, **cluster_kwargs: Any
) -> tuple[Any, Any]:
    """Start a ``dask_cuda.LocalCUDACluster`` of one worker per GPU; return ``(client, cluster)``.

    Parameters
    ----------
    gpus : int or 'all'
        How many of the visible CUDA devices get a worker (the first ones, in ``CUDA_VISIBLE_DEVICES``
        order), or all of them. Each worker sees its GPU as device 0.
    threads_per_worker : int
        Threads per worker (1: one batch at a time per GPU).
    **cluster_kwargs
        Passed to ``dask_cuda.LocalCUDACluster``.

    Returns
    -------
    client : distributed.Client
    cluster : dask_cuda.LocalCUDACluster
        Started here; the caller closes it.

    Raises
    ------
    MissingDependencyError
        dask-cuda is not installed (``pip install 'pycro-gpu[multigpu]'``).
    BackendUnavailableError
        No CUDA device is usable here.
    ParameterError
        ``gpus`` is not a positive integer or ``'all'``, or more than the visible devices.
    """
    try:
        gpus = check_gpus(gpus)
    except ValueError as exc:
        raise ParameterError(str(exc)) from None
    if int(threads_per_worker) < 1:
        msg = f"threads_per_worker must be >= 1, got {threads_per_worker!r}"
        raise ValueError(msg)
    dask_cuda = require("dask_cuda", feature="gpus (one Dask worker per GPU)", package="dask-cuda")
    distributed = require("distributed", feature="pycro_gpu.distributed")
    from ..backend import cuda_devices, cupy_status

    devices = cuda_devices()
    if not devices:
        msg = f"gpus={gpus!r}: no CUDA device ({cupy_status()[1] or 'CUDA counts 0 devices'})"
        raise BackendUnavailableError(msg)
    if gpus != "all" and gpus > len(devices):
        visible = f"{len(devices)} visible CUDA device(s) ({', '.join(devices)})"
        msg = f"gpus must be at most the number of GPUs here: {visible}; got {gpus}"
        raise ParameterError(msg)
    chosen = devices if gpus == "all" else devices[:gpus]
    cluster = dask_cuda.LocalCUDACluster(
        n_workers=len(chosen),
        threads_per_worker=int(threads_per_worker),
        CUDA_VISIBLE_DEVICES=chosen,
        **{**_LOCAL_CLUSTER_DEFAULTS, **cluster_kwargs},
    )
    return _client_of(distributed, cluster), cluster


def _client_of(distributed: Any, cluster: Any) -> Any:
    """A client of the local ``cluster`` just started; the cluster is closed if the client fails."""
    try:
        return distributed.Client(cluster, set_as_default=False)
    except BaseException:
        cluster.close()
        raise


def compute_on_worker(
    task: Any, sl: slice, backend: str | None = None, numba_threads: int | None = None
) -> dict[str, np.ndarray]:
    """Compute one batch on a Dask worker: open the raw file read-only by path, read, compute.

    Parameters
    ----------
    task : pycro_gpu.process.SliceTask
        File and dataset paths, ``compute``, backend and outputs of the job.
    sl : slice
        Rows (positions) of the batch.
    backend : {'auto', 'numpy', 'cupy'}, optional
        Override of ``task.backend``, resolved on this worker (``auto``: CuPy where it has a GPU).
    numba_threads : int, optional
        Threads for numba CPU kernels in this task.

    Returns
    -------
    dict of str to ndarray
        ``(n, *output.shape)`` host arrays in the outputs' dtypes.
    """
    import h5py

    from ..backend import get_namespace
    from ._engine import compute_rows

    if numba_threads:
        import numba

        numba.set_num_threads(max(1, min(int(numba_threads), numba.config.NUMBA_NUM_THREADS)))
    xp = get_namespace(backend or task.backend)
    try:
        # The driver holds the file lock while it writes results into the same file; see the module
        # docstring for why reading the (never written) raw dataset without the lock is safe.
        try:
            f = h5py.File(task.file_path, "r", locking=False)
        except OSError as exc:
            if "locking flag values don't match" not in str(exc):
                raise
            # a thread worker in the driver's own process: HDF5 shares the driver's open file
            f = h5py.File(task.file_path, "r")
    except OSError as exc:
        hint = ""
        if "already open for write" in str(exc):
            hint = (
                "; the file uses the latest HDF5 format, which refuses readers while the driver writes: "
                "write results to another file (run_job(..., results='out.h5'))"
            )
        msg = f"worker cannot open {task.file_path!r} read-only ({exc}){hint}"
        raise DataError(msg) from None
    with f:
        return compute_rows(
            f[task.dataset_path], sl, task.compute, xp, task.outputs, task.input_dtype, task.span
        )


class DaskExecutor:
    """Executor of :func:`pycro_gpu.process.run_job` that computes batches on a Dask cluster.

    Parameters
    ----------
    client : distributed.Client, optional
        A client to use (not closed by the executor).
    scheduler : str, optional
        Scheduler address or scheduler file to connect to (see :func:`make_client`).
    workers : int, optional
        Start a local cluster of this many worker processes (closed with the executor).
    gpus : int or 'all', optional
        Start a local ``dask_cuda.LocalCUDACluster`` of one worker per GPU (see :func:`make_gpu_client`;
        closed with the executor); the workers' backend defaults to ``'auto'``.
    threads_per_worker : int
        Threads of each local worker.
    processes : bool
        Local workers as processes (default) or as threads of this process (no start-up cost;
        enough when the compute releases the GIL, e.g. on a GPU).
    max_in_flight : int, optional
        Batches submitted and not yet written at any time (bounds the driver's memory to that many
        batch results). Default: twice the cluster's worker threads.
    backend : {'auto', 'numpy', 'cupy'}, optional
        Backend the workers compute on, resolved on each worker; default the driver's
        (``run_job(backend=...)``), or ``'auto'`` with ``gpus``.
    numba_threads : int, optional
        Threads for numba CPU kernels in each task; default cores / workers for a local cluster
        started here, numba's own default otherwise.

    Examples
    --------
    >>> from pycro_gpu.distributed import DaskExecutor
    >>> from pycro_gpu.process import run_job
    >>> with DaskExecutor(workers=2) as ex:                      # doctest: +SKIP
    ...     run_job(job, "scan.h5", "/Measurement_000/Channel_000/Raw_Data", executor=ex)
    """

    def __init__(
        self,
        client: Any = None,
        *,
        scheduler: str | os.PathLike | None = None,
        workers: int | None = None,
        gpus: int | str | None = None,
        threads_per_worker: int = 1,
        processes: bool = True,
        max_in_flight: int | None = None,
        backend: str | None = None,
        numba_threads: int | None = None,
    ) -> None:
        sources = {"client": client, "scheduler": scheduler, "workers": workers, "gpus": gpus}
        given = [name for name, value in sources.items() if value is not None]
        if len(given) > 1 and given != ["scheduler", "workers"]:  # that pair: make_client's own message
            msg = f"give one of client, scheduler, workers and gpus, not {' and '.join(given)}"
            raise ValueError(msg)
        if max_in_flight is not None and int(max_in_flight) < 1:
            msg = f"max_in_flight must be >= 1, got {max_in_flight!r}"
            raise ValueError(msg)
        if backend is None and gpus is not None:
            backend = "auto"  # each worker picks CuPy on its own GPU
        if backend is not None:
            from .._config import validate_backend

            backend = validate_backend(backend)
        self._own = client is None
        self._cluster = None
        if gpus is not None:
            client, self._cluster = make_gpu_client(gpus, threads_per_worker=threads_per_worker)
        elif client is None:
            client, self._cluster = make_client(
                scheduler, workers, threads_per_worker=threads_per_worker, processes=processes
            )
            if self._cluster is not None and numba_threads is None:
                n_local = len(self._cluster.workers)
                numba_threads = max(1, (os.cpu_count() or 1) // max(1, n_local))
        self.client = client
        self.max_in_flight = None if max_in_flight is None else int(max_in_flight)
        self.backend = backend
        self.numba_threads = numba_threads

    # context manager / cleanup ----------------------------------------------------------------------
    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client and the local cluster if this executor started them."""
        if self._own and self.client is not None:
            self.client.close()
            if self._cluster is not None:
                self._cluster.close()
            self.client = self._cluster = None

    def n_threads(self) -> int:
        """Worker threads in the cluster now (at least 1)."""
        return max(1, sum(int(n) for n in self.client.nthreads().values()))

    # Executor protocol ----------------------------------------------------------------------------
    def map(
        self, task: Any, slices: Sequence[slice], source: Any
    ) -> Iterator[tuple[slice, dict[str, np.ndarray]]]:
        """Submit one task per slice; yield ``(slice, results)`` as they complete (any order)."""
        if self.client is None:
            msg = "this DaskExecutor is closed"
            raise RuntimeError(msg)
        if not slices:
            return
        distributed = require("distributed", feature="DaskExecutor")
        pending = list(slices)[::-1]
        # the task (with the compute function and whatever it closes over) goes to each worker once
        [task_future] = self.client.scatter([task], broadcast=True, hash=False)
        futures: dict[Any, slice] = {}
        done = distributed.as_completed(loop=self.client.loop)

        window_at = [-1.0, 0]  # (time, size): the cluster's size is asked at most once a second

        def top_up() -> None:
            # bounded window: the driver holds at most this many results before writing them
            if self.max_in_flight:
                window = self.max_in_flight
            else:
                now = time.monotonic()
                if now - window_at[0] > 1.0:
                    window_at[:] = [now, 2 * self.n_threads()]
                window = window_at[1]
            while pending and len(futures) < window:
                sl = pending.pop()
                fut = self.client.submit(
                    compute_on_worker,
                    task_future,
                    sl,
                    self.backend,
                    self.numba_threads,
                    pure=False,
                    key=f"pycro_gpu-batch-{sl.start}-{sl.stop}-{os.urandom(4).hex()}",
                )
                futures[fut] = sl
                done.add(fut)

        try:
            top_up()
            for fut in done:
                sl = futures.pop(fut)
                result = fut.result()  # re-raises the worker's exception here, in the driver
                fut.release()
                top_up()
                yield sl, result
        finally:
            if futures:
                self.client.cancel(list(futures))
            task_future.release()


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------


def executor_from_args(args: argparse.Namespace) -> DaskExecutor | None:
    """The :class:`DaskExecutor` that ``--scheduler`` / ``--workers`` / ``--gpus`` ask for, or ``None``.

    The workers compute on the configured backend (``--backend``, ``PYCRO_GPU_BACKEND``), resolved on
    each worker: with ``auto`` (the default), a worker with a GPU uses CuPy on it even where the driver
    has none (``dask cuda worker`` processes behind ``--scheduler``, or the workers of ``--gpus``).
    Use it as a context manager so that a local cluster is closed: ``with executor_from_args(a) or
    contextlib.nullcontext() as ex: run_job(..., executor=ex)``.
    """
    from .._config import get_config

    scheduler = getattr(args, "scheduler", None)
    workers = getattr(args, "workers", None)
    gpus = getattr(args, "gpus", None)
    if scheduler is None and workers is None and gpus is None:
        return None
    return DaskExecutor(
        scheduler=scheduler,
        workers=workers,
        gpus=gpus,
        threads_per_worker=getattr(args, "threads_per_worker", 1),
        backend=get_config()["backend"],
    )
