"""The streamed, checkpointed batch engine that every position-wise routine runs on.

A :class:`Job` names a tool, its parameters, the outputs it writes (:class:`Output`) and a
``compute(batch, xp) -> {name: array}`` function. :func:`run_job` applies it to a USID Main dataset:

1. find a finished results group ``<Source>-<Tool>_NNN`` with the same parameters and return it
   (unless ``override=True``), or resume an unfinished one, or create a new one;
2. for every batch of positions not yet marked in ``completed_positions`` (batch size from the
   memory budget, see :func:`pycro_gpu.io.hdf5.plan_batch_rows`): the *executor* reads the rows,
   moves them to the backend, calls ``compute`` and returns host arrays;
3. the driver writes them, flushes the file, then marks the positions in ``completed_positions``
   (uint8) and flushes again.

Kill safety
-----------
Output datasets and ``completed_positions`` are created with their file space allocated up front and
without modification times, so the batch loop changes no HDF5 metadata: the file is consistent at
every instant and a job killed with SIGKILL resumes from ``completed_positions``. Outputs are flushed
before their positions are marked, so a marked position always holds its final values; a batch that
was written but not marked is simply computed and written again. Results are bit-identical to an
uninterrupted run when ``compute`` is deterministic per position (it must not depend on which other
positions share its batch) and the same batch size is used; the default batch size depends only on
the memory budget and the data.

Where results go
----------------
By default next to the source, in the same file (the raw dataset is only read). With
``results=<path or h5py.Group>`` they go to another file; the results group then records
``source_file``/``source_path`` and holds a copy of the position ancillary datasets (object references
cannot point into another file). To browse results from the raw file, link them yourself
(``raw_file["results"] = h5py.ExternalLink(path, group)``).

Files given by path are opened read-only until the job writes: parameters are validated and a finished
group is looked for on read-only files, so a reused or refused job leaves every file byte-identical.
Before it allocates, a job checks its outputs against the free space of the results' file system (plus
a margin), reserves that space past the end of the results file, and refuses outputs out of proportion
to a dataset whose file holds almost none of its values. A new results file is created atomically
(a whole empty HDF5 file under a temporary name, then renamed). A caller's file open read-only gets
:class:`ResultsReadOnlyError` when the job must write into it.

Multi-pass jobs
---------------
Algorithms that read the data several times (streamed SVD, clustering, incremental PCA) run through
:func:`run_passes` (:mod:`pycro_gpu.process.passes`): the same source and results handling, reads on
the same executors, their state between reads checkpointed in the results group so that they resume.

Executors
---------
The loop is ``for slice in slices: results = executor(slice) -> write -> flush -> mark``.
:class:`LocalExecutor` reads with double-buffered :class:`~pycro_gpu.io.hdf5.BatchReader` buffers and
prefetches the next batch in a background thread while the current one computes; with ``write_behind``
(its default) one writer thread writes, flushes and marks batch ``k`` while the driver computes batch
``k + 1`` (one batch in flight: the memory budget counts its results). The writer keeps the order and
the kill safety above: a position is marked only after its values are flushed; an error of the writer
reaches the caller as it is, and an interrupt lets the batch being written finish and drops the
computed batches not yet written. h5py serialises its calls, so what overlaps is the compute (numba
and CuPy release the GIL) with HDF5 I/O. ``LocalExecutor(write_behind=False)`` writes each batch
before the next one computes (the same results). Distributed
executors (Dask) call the picklable top-level :func:`compute_slice` on workers, which open the raw file
read-only by path; only the driver writes. ``compute`` must then be picklable (a module-level function
or a :func:`functools.partial` of one). HDF5 file locking refuses a reader while the driver has the
same file open for writing: write results to another file (``results=``) or set
``HDF5_USE_FILE_LOCKING=FALSE`` for such executors.
"""

from __future__ import annotations

from ._engine import (
    COMPLETED,
    Executor,
    Job,
    JobResult,
    LocalExecutor,
    Output,
    SliceTask,
    compute_slice,
    run_job,
)
from ._target import ResultsReadOnlyError, source_ancillaries
from .passes import Checkpoint, PassRunner, PassSpec, run_pass, run_passes

__all__ = [
    "COMPLETED",
    "Checkpoint",
    "Executor",
    "Job",
    "JobResult",
    "LocalExecutor",
    "Output",
    "PassRunner",
    "PassSpec",
    "ResultsReadOnlyError",
    "SliceTask",
    "compute_slice",
    "run_job",
    "run_pass",
    "run_passes",
    "source_ancillaries",
]
