"""The batch engine: jobs, outputs, the local executor and run_job (see :mod:`pycro_gpu.process`)."""

from __future__ import annotations

import collections
import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import h5py
import numpy as np

from .._config import get_config
from .._lib.checks import check_int, check_memory_mb
from ..backend import BatchTransfers, from_host, get_namespace, is_cupy_namespace, resolve_backend, to_host
from ..errors import DataError
from ..io.hdf5 import BatchReader, batch_slices, open_h5, plan_batch_rows
from ..io.usid import Dimension, USIDataset, create_dataset, create_main
from ._target import new_group, open_target, prepare_results, source_ancillaries

#: name of the uint8 status dataset in a results group (1 = position finished)
COMPLETED = "completed_positions"


@dataclass(frozen=True)
class Output:
    """One result written per position.

    Parameters
    ----------
    name : str
        Dataset name in the results group and key in the dict that ``compute`` returns.
    shape : int or tuple of int
        Per-position shape: ``()`` one value, ``n`` or ``(n,)`` a row of ``n`` values, ``(a, b)`` ...
        With ``spec_dims`` it defaults to (and must equal) the number of spectroscopic steps.
    dtype : dtype
        Stored dtype: real, complex or compound (structured). For a compound dtype, ``compute`` may
        return a real array with one trailing axis per field, in field order (CuPy has no structured
        dtypes); it is converted on the host.
    spec_dims : sequence of Dimension, optional
        Makes the output a USID Main dataset ``(N_pos, N_spec)`` that shares the source's position
        ancillaries and gets its own spectroscopic ancillaries. Without it the output is a plain
        dataset ``(N_pos, *shape)``.
    quantity, units : str
        Attributes of a Main output (``quantity`` defaults to ``name``).
    per_position : bool
        ``False`` for a per-batch value of ``shape`` (a partial sum of a multi-pass job's read, see
        :mod:`pycro_gpu.process.passes`) instead of one value per position.
    """

    name: str
    shape: int | tuple[int, ...] = ()
    dtype: Any = np.float32
    spec_dims: Sequence[Dimension] | None = None
    quantity: str | None = None
    units: str = "a.u."
    per_position: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "/" in self.name or self.name == COMPLETED:
            msg = f"Output name must be a dataset name (not {COMPLETED!r}), got {self.name!r}"
            raise ValueError(msg)
        shape = (
            (self.shape,) if isinstance(self.shape, (int, np.integer)) else tuple(int(s) for s in self.shape)
        )
        if self.spec_dims is not None:
            dims = [self.spec_dims] if isinstance(self.spec_dims, Dimension) else list(self.spec_dims)
            n_spec = math.prod(len(d) for d in dims)
            if shape not in ((), (n_spec,)):
                msg = f"Output {self.name!r}: shape {shape} does not match {n_spec} spectroscopic steps"
                raise ValueError(msg)
            shape = (n_spec,)
            object.__setattr__(self, "spec_dims", tuple(dims))
        if self.spec_dims is not None and not self.per_position:
            msg = f"Output {self.name!r}: a per-batch output cannot be a Main dataset (spec_dims)"
            raise ValueError(msg)
        if any(s < 1 for s in shape):
            msg = f"Output {self.name!r}: shape must hold positive sizes, got {shape}"
            raise ValueError(msg)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "dtype", np.dtype(self.dtype))

    @property
    def bytes_per_position(self) -> int:
        return int(math.prod(self.shape) * self.dtype.itemsize)

    @property
    def is_main(self) -> bool:
        return self.spec_dims is not None


@dataclass
class Job:
    """A position-wise tool: what it computes and what it writes.

    Parameters
    ----------
    tool : str
        Tool name (results group ``<Source>-<tool>_NNN``).
    compute : callable
        ``compute(batch, xp) -> dict[str, array]``. ``batch`` is a ``(n_batch, N_spec)`` array of
        the active backend (NumPy or CuPy) and ``xp`` its namespace; returns one array per
        :class:`Output`, shape ``(n_batch, *output.shape)`` (a flat ``(n_batch, prod(shape))`` is
        accepted too). It must compute each position independently of the others in the batch and
        must not keep references to ``batch`` (its buffer is reused). Picklable for distributed
        executors.
    outputs : sequence of Output
    parameters : mapping
        Stored as attributes of the results group; a re-run with equal parameters reuses the group.
    work_multiplier : float
        Work memory of ``compute`` as a multiple of the input batch (for batch sizing).
    input_dtype : dtype, optional
        dtype of the batch handed to ``compute`` (HDF5 converts on read); default the stored one.
    """

    tool: str
    compute: Callable[[Any, Any], Mapping[str, Any]]
    outputs: Sequence[Output]
    parameters: Mapping[str, Any] = field(default_factory=dict)
    work_multiplier: float = 2.0
    input_dtype: Any = None

    def __post_init__(self) -> None:
        self.outputs = tuple(self.outputs)
        if not self.outputs:
            msg = f"Job {self.tool!r}: give at least one Output"
            raise ValueError(msg)
        names = [o.name for o in self.outputs]
        if len(set(names)) != len(names):
            msg = f"Job {self.tool!r}: output names repeat: {names}"
            raise ValueError(msg)
        if not callable(self.compute):
            msg = f"Job {self.tool!r}: compute must be callable, got {type(self.compute).__name__}"
            raise TypeError(msg)


@dataclass(frozen=True)
class SliceTask:
    """Everything a worker needs to compute one slice; picklable (for distributed executors)."""

    file_path: str
    dataset_path: str
    compute: Callable[[Any, Any], Mapping[str, Any]]
    backend: str
    outputs: tuple[Output, ...]
    input_dtype: Any = None
    #: call ``compute(batch, xp, start, stop)`` with the batch's row span (multi-pass reads)
    span: bool = False


@dataclass(frozen=True)
class JobResult:
    """Where a job's results are and what the run did.

    Attributes
    ----------
    file : str
        File holding the results group.
    group : str
        Path of the results group in that file.
    reused : bool
        A finished group with the same parameters was found; nothing was computed.
    resumed : bool
        An interrupted run was continued.
    n_computed : int
        Positions computed in this run.
    batch_rows : int
        Positions per batch.
    """

    file: str
    group: str
    reused: bool
    resumed: bool
    n_computed: int
    batch_rows: int


# ----------------------------------------------------------------------------------------------------
# per-batch work (shared by every executor)
# ----------------------------------------------------------------------------------------------------


def _host_output(out: Output, value: Any, n: int) -> np.ndarray:
    host = np.asarray(to_host(value))
    dt = out.dtype
    if dt.names is not None and host.dtype.names is None:
        n_fields = len(dt.names)
        if host.shape[-1:] != (n_fields,):
            msg = (
                f"output {out.name!r}: compound dtype with {n_fields} fields needs a structured array or a "
                f"real array with a trailing axis of {n_fields}, got shape {host.shape}"
            )
            raise DataError(msg)
        from numpy.lib import recfunctions

        host = recfunctions.unstructured_to_structured(np.ascontiguousarray(host), dtype=dt)
    want = (n, *out.shape) if out.per_position else out.shape
    if host.shape != want:
        if host.size == math.prod(want) and (host.shape[:1] == (n,) or not out.per_position):
            host = host.reshape(want)
        else:
            msg = f"output {out.name!r}: compute returned shape {host.shape}, expected {want}"
            raise DataError(msg)
    if host.dtype != dt:
        if dt.names is None and not np.can_cast(host.dtype, dt, casting="same_kind"):
            msg = f"output {out.name!r}: compute returned dtype {host.dtype}, which does not cast to {dt}"
            raise DataError(msg)
        host = host.astype(dt)
    return host


def compute_batch(
    batch: np.ndarray,
    compute: Callable,
    xp: Any,
    outputs: Sequence[Output],
    span: slice | None = None,
    transfers: BatchTransfers | None = None,
) -> dict[str, np.ndarray]:
    """``compute`` one host batch on ``xp``; host outputs checked against ``outputs``.

    With ``span`` (the batch's rows) ``compute`` is called as ``compute(batch, xp, start, stop)``. With
    ``transfers`` the upload, the compute and the copy back run on its stream, the outputs in one copy
    (:class:`~pycro_gpu.backend.BatchTransfers`; the same values as without).
    """
    args = () if span is None else (span.start, span.stop)
    if transfers is None:
        result = _checked(compute(from_host(batch, xp), xp, *args), outputs)
        values = [result[o.name] for o in outputs]
    else:
        with transfers.active():
            result = _checked(compute(transfers.upload(batch), xp, *args), outputs)
            values = transfers.download([result[o.name] for o in outputs])
    n = batch.shape[0]
    return {o.name: _host_output(o, v, n) for o, v in zip(outputs, values, strict=True)}


def _checked(result: Any, outputs: Sequence[Output]) -> Mapping[str, Any]:
    """``compute``'s result, refused unless it is a mapping with exactly the outputs' names."""
    if not isinstance(result, Mapping):
        msg = f"compute must return a dict of output arrays, got {type(result).__name__}"
        raise DataError(msg)
    names = {o.name for o in outputs}
    if set(result) != names:
        missing, extra = sorted(names - set(result)), sorted(set(result) - names)
        msg = f"compute returned outputs {sorted(result)}; missing {missing}, unexpected {extra}"
        raise DataError(msg)
    return result


def compute_rows(
    dset: h5py.Dataset,
    sl: slice,
    compute: Callable,
    xp: Any,
    outputs: Sequence[Output],
    input_dtype: Any,
    span: bool = False,
) -> dict[str, np.ndarray]:
    """Read rows ``sl`` of ``dset`` into a one-off buffer and compute them (one slice on a worker)."""
    reader = BatchReader(dset, sl.stop - sl.start, n_buffers=1, dtype=input_dtype)
    return compute_batch(reader.read(sl, 0), compute, xp, outputs, sl if span else None)


def compute_slice(
    file_path: str,
    dataset_path: str,
    sl: slice,
    compute: Callable,
    backend: str,
    outputs: Sequence[Output],
    input_dtype: Any = None,
    span: bool = False,
) -> dict[str, np.ndarray]:
    """Compute one slice of positions in a worker: open the file read-only by path, read, compute.

    Parameters
    ----------
    file_path, dataset_path : str
        The raw file and the Main dataset in it.
    sl : slice
        Rows (positions) to compute.
    compute : callable
        ``compute(batch, xp) -> dict``; see :class:`Job`.
    backend : {'numpy', 'cupy'}
    outputs : sequence of Output
    input_dtype : dtype, optional
    span : bool
        Pass the slice's ``start, stop`` to ``compute`` (see :class:`SliceTask`).

    Returns
    -------
    dict of str to ndarray
        Host arrays ``(n, *output.shape)`` in the outputs' dtypes, ready to write.
    """
    xp = get_namespace(backend)
    with open_h5(file_path, "r") as f:
        return compute_rows(f[dataset_path], sl, compute, xp, outputs, input_dtype, span)


class Executor(Protocol):
    """Turns batch slices into host results; the driver writes them (in whatever order they come)."""

    def map(
        self, task: SliceTask, slices: Sequence[slice], source: h5py.Dataset
    ) -> Iterator[tuple[slice, dict[str, np.ndarray]]]: ...


class LocalExecutor:
    """Compute in this process, prefetching the next batch in a thread while the current computes.

    Parameters
    ----------
    prefetch : bool
        Read batch ``k + 1`` in a background thread during the compute of batch ``k``.
    write_behind : bool
        Write batch ``k`` in a background thread during the compute of batch ``k + 1`` (see
        :func:`run_job`); ``False`` writes each batch before the next is computed. Results are the same.

    Notes
    -----
    On CuPy the executor keeps one CUDA stream of its own: batches are read into page-locked buffers,
    uploaded asynchronously on that stream, computed there (CuPy work and the numba kernels, which launch
    on CuPy's current stream without numba's per-argument synchronisation), and their outputs come back
    in one asynchronous copy and one wait (:class:`~pycro_gpu.backend.BatchTransfers`). On host
    namespaces a batch is computed exactly as :func:`compute_batch` without transfers does.
    """

    def __init__(self, *, prefetch: bool = True, write_behind: bool = True) -> None:
        self.prefetch = prefetch
        self.write_behind = write_behind

    def map(
        self, task: SliceTask, slices: Sequence[slice], source: h5py.Dataset
    ) -> Iterator[tuple[slice, dict[str, np.ndarray]]]:
        if not slices:
            return
        xp = get_namespace(task.backend)
        max_rows = max(s.stop - s.start for s in slices)
        # on a GPU: pinned read buffers, this executor's stream, one copy back per batch
        transfers = BatchTransfers(xp) if is_cupy_namespace(xp) else None
        empty = np.empty if transfers is None else transfers.empty_host
        n_buffers = 2 if self.prefetch else 1
        reader = BatchReader(source, max_rows, n_buffers=n_buffers, dtype=task.input_dtype, empty=empty)
        for sl, batch in reader.iter_slices(slices):
            res = compute_batch(batch, task.compute, xp, task.outputs, sl if task.span else None, transfers)
            if self.write_behind:  # written later: no result may be a view of a read buffer refilled by then
                res = {k: _unshared(v, reader.buffers) for k, v in res.items()}
            yield sl, res


def _unshared(a: np.ndarray, buffers: Sequence[np.ndarray]) -> np.ndarray:
    """``a``, or a copy of it where it shares memory with one of ``buffers``."""
    return a.copy() if any(np.may_share_memory(a, b) for b in buffers) else a


# ----------------------------------------------------------------------------------------------------
# the driver
# ----------------------------------------------------------------------------------------------------


def _outputs_match(group: h5py.Group, outputs: Sequence[Output], n_pos: int) -> bool:
    if COMPLETED not in group or group[COMPLETED].shape != (n_pos,):
        return False
    for o in outputs:
        if o.name not in group:
            return False
        d = group[o.name]
        if d.shape != (n_pos, *o.shape) or d.dtype != o.dtype:
            return False
    return True


def output_bytes(outputs: Sequence[Output], source: USIDataset, same_file: bool) -> int:
    """Bytes a position-wise job allocates for ``outputs`` of ``source`` (and its status dataset).

    Main outputs add their spectroscopic ancillaries, and in another file than the source a copy of the
    source's position ancillaries.
    """
    n_pos = int(source.shape[0])
    total = n_pos * (sum(o.bytes_per_position for o in outputs) + 1)  # + completed_positions
    mains = [o for o in outputs if o.is_main]
    for o in mains:
        total += 2 * 8 * len(o.spec_dims) * o.shape[0]  # indices and values
    if mains and not same_file:
        total += sum(int(d.size) * d.dtype.itemsize for d in (source.h5_pos_inds, source.h5_pos_vals))
    return total


def _create_outputs(
    group: h5py.Group, source: USIDataset, outputs: Sequence[Output], same_file: bool
) -> None:
    n_pos = source.shape[0]
    pos_inds = pos_vals = None
    for o in outputs:
        if o.is_main:
            if pos_inds is None:
                pos_inds, pos_vals = source_ancillaries(source, group, same_file, "Position", prefix="")
            create_main(
                group,
                o.name,
                None,
                list(o.spec_dims),
                o.quantity or o.name,
                o.units,
                o.dtype,
                early_allocation=True,
                h5_pos_inds=pos_inds,
                h5_pos_vals=pos_vals,
                aux_spec_prefix=f"{o.name}_Spectroscopic_",
            )
        else:
            create_dataset(group, o.name, (n_pos, *o.shape), o.dtype, early_allocation=True)
    create_dataset(group, COMPLETED, (n_pos,), np.uint8, fillvalue=0, early_allocation=True)


class _BatchWriter:
    """A background thread that writes batches in the order they are handed over (write-behind).

    :meth:`submit` hands over a batch; it waits while ``depth`` batches are handed over and not written
    yet (so at most ``depth`` batches of results wait for the disk) and raises the writer's error, the
    very exception object, once the writer has failed. :meth:`close` waits for every batch and raises
    the writer's error; :meth:`abort` (the driver failed or was interrupted) drops the batches not started
    and waits for the one being written, so that no write is left running.

    Parameters
    ----------
    write : callable
        ``write(slice, results)``: writes, flushes and marks one batch (called in the writer thread).
    depth : int
        Batches handed over and not written yet that :meth:`submit` accepts before it waits.
    """

    def __init__(self, write: Callable[[slice, dict[str, np.ndarray]], None], depth: int = 1) -> None:
        self._write = write
        self._depth = max(1, int(depth))
        self._cond = threading.Condition()
        self._waiting: collections.deque = collections.deque()
        self._writing = False
        self._stop = False  # no more batches: leave once the waiting ones are written
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="pycro_gpu-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._stop:
                    self._cond.wait()
                if not self._waiting:
                    return
                sl, res = self._waiting.popleft()
                self._writing = True
            try:
                self._write(sl, res)
            except BaseException as exc:  # handed to the driver (KeyboardInterrupt from on_batch too)
                with self._cond:
                    self._error = exc
                    self._waiting.clear()
                    self._writing = False
                    self._cond.notify_all()
                return
            with self._cond:
                self._writing = False
                self._cond.notify_all()

    def submit(self, sl: slice, res: dict[str, np.ndarray]) -> None:
        """Hand over one batch; wait while ``depth`` are pending; raise the writer's error."""
        with self._cond:
            while self._error is None and len(self._waiting) + self._writing >= self._depth:
                self._cond.wait()
            if self._error is not None:
                raise self._error
            self._waiting.append((sl, res))
            self._cond.notify_all()

    def close(self) -> None:
        """Wait until every batch handed over is written; raise the writer's error."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Drop the batches not started; wait for the one being written (also through a second interrupt)."""
        with self._cond:
            self._waiting.clear()
            self._stop = True
            self._cond.notify_all()
        late = None
        while self._thread.is_alive():
            try:
                self._thread.join()
            except BaseException as exc:  # a second Ctrl-C: the write in progress still must finish
                late = exc
        if late is not None:
            raise late


def _write_batches(
    ex: Executor,
    task: SliceTask,
    slices: Sequence[slice],
    src: Any,
    group: h5py.Group,
    outputs: Sequence[Output],
    done_mask: np.ndarray,
    progress: bool | None,
    on_batch: Callable[[int, int], None] | None,
    computed: list[int],
) -> None:
    """The batch loop: write each batch's outputs, flush, mark its positions, flush.

    With an executor that asks for it (``write_behind``, see :class:`LocalExecutor`) the writes run in
    a :class:`_BatchWriter` thread, in the order the executor yields the batches, while the driver
    computes the next batch; the progress bar and ``on_batch`` follow each write there. An error of the
    writer (or of ``on_batch``) reaches the caller as it is; an error or interrupt in the driver lets the
    batch being written finish and drops the batches computed but not written (not marked: a resumed
    run computes them). ``computed[0]`` counts the positions written and marked so far (also when the
    loop is interrupted).
    """
    n_pos = int(done_mask.shape[0])
    completed = group[COMPLETED]
    dsets = {o.name: group[o.name] for o in outputs}
    show = get_config()["progress"] if progress is None else progress
    n_done = [int(np.count_nonzero(done_mask))]
    bar = None
    if show and slices:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_pos, initial=n_done[0], desc=str(group.attrs.get("tool", "")), unit="pos")
    ones = np.ones(max((s.stop - s.start for s in slices), default=1), dtype=np.uint8)

    def write(sl: slice, res: dict[str, np.ndarray]) -> None:
        for o in outputs:
            dsets[o.name][sl] = res[o.name]
        group.file.flush()
        newly = int(np.count_nonzero(done_mask[sl] == 0))
        completed[sl] = ones[: sl.stop - sl.start]
        done_mask[sl] = 1
        group.file.flush()
        n_done[0] += newly
        computed[0] += sl.stop - sl.start
        if bar is not None:
            bar.update(newly)
        if on_batch is not None:
            on_batch(n_done[0], n_pos)

    writer = _BatchWriter(write) if getattr(ex, "write_behind", False) and len(slices) > 1 else None
    batches = ex.map(task, slices, src)
    try:
        for sl, res in batches:
            if writer is None:
                write(sl, res)
            else:
                writer.submit(sl, res)
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        # stop the executor now (a prefetching read, tasks on workers), not when it is collected
        with contextlib.suppress(Exception):
            getattr(batches, "close", lambda: None)()
        raise
    finally:
        if bar is not None:
            bar.close()


def run_job(
    job: Job,
    source: Any,
    dataset_path: str | None = None,
    *,
    results: str | os.PathLike | h5py.Group | None = None,
    backend: str | None = None,
    memory_mb: float | None = None,
    batch_rows: int | None = None,
    executor: Executor | None = None,
    override: bool = False,
    progress: bool | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> JobResult:
    """Run ``job`` over every position of a Main dataset, streamed, checkpointed and resumable.

    Parameters
    ----------
    job : Job
    source : str, path-like or h5py.Dataset
        The raw Main dataset, or the path of its file (then give ``dataset_path``). A path is opened
        read-only, and for writing only when results are written into it (see
        :mod:`pycro_gpu.process._target`).
    dataset_path : str, optional
        Path of the Main dataset in the file, when ``source`` is a file path.
    results : str, path-like or h5py.Group, optional
        Where the results group goes: default next to the source; a file path (group at its root; a new
        file is created atomically) or a writable group, in the same or another file.
    backend : {'auto', 'numpy', 'cupy'}, optional
        Compute backend (default: the configured one).
    memory_mb : float, optional
        Working-memory budget that sizes batches (default: the configured one).
    batch_rows : int, optional
        Positions per batch, overriding the budget (for tests and tuning).
    executor : Executor, optional
        Default :class:`LocalExecutor` (with prefetch and write-behind: batch ``k`` is written in a
        background thread while batch ``k + 1`` computes; the memory budget counts its results).
    override : bool
        Compute again even when a finished results group with equal parameters exists.
    progress : bool, optional
        Show a progress bar (default: the configured ``progress``).
    on_batch : callable, optional
        ``on_batch(n_done, n_total)`` after each batch is written and marked (with write-behind, in the
        writer thread; an exception it raises stops the job after that batch and reaches the caller).

    Returns
    -------
    JobResult

    Raises
    ------
    DataError
        Missing, truncated or non-HDF5 file, unknown dataset path, outputs larger than the free space
        or out of proportion to the source (checked before anything is written), or ``compute``
        returning the wrong outputs.
    ResultsReadOnlyError
        Results would go into a file the caller opened read-only (a :class:`DataError`).
    USIDError
        The source is not a valid USID Main dataset.
    """
    if not isinstance(job, Job):
        msg = f"job must be a Job, got {type(job).__name__}"
        raise TypeError(msg)
    if memory_mb is not None:
        check_memory_mb(memory_mb)  # before any file is opened or group created
    if batch_rows is not None:
        check_int(batch_rows, "batch_rows", minimum=1)
    with open_target(source, dataset_path, results) as target:
        n_pos = target.source.shape[0]
        name = resolve_backend(backend)
        group, reused = prepare_results(
            target,
            job.tool,
            job.parameters,
            override=override,
            resumable=lambda g: _outputs_match(g, job.outputs, n_pos),
            output_bytes=output_bytes(job.outputs, target.source, target.same_file),
            resume_bytes=0,  # the outputs of a resumed group are allocated
        )
        if reused:
            return JobResult(str(group.file.filename), group.name, True, False, 0, 0)
        src, parent = target.source, target.parent
        resumed = group is not None
        if group is None:
            same_file = target.same_file

            def setup(g: h5py.Group) -> None:
                _create_outputs(g, src, job.outputs, same_file)

            group = new_group(target, job.tool, job.parameters, setup, name)
        # --- plan ---------------------------------------------------------------------------------
        ex = executor if executor is not None else LocalExecutor()
        in_dtype = np.dtype(src.dtype if job.input_dtype is None else job.input_dtype)
        if batch_rows is None:
            batch_rows = plan_batch_rows(
                n_pos,
                src.shape[1] * in_dtype.itemsize,
                sum(o.bytes_per_position for o in job.outputs),
                memory_mb=memory_mb,
                work_multiplier=job.work_multiplier,
                chunk_rows=None if src.chunks is None else src.chunks[0],
                pending_results=1 if getattr(ex, "write_behind", False) else 0,
            )
        done_mask = group[COMPLETED][()]
        slices = batch_slices(n_pos, int(batch_rows), done_mask)
        task = SliceTask(
            str(src.file.filename), src.name, job.compute, name, tuple(job.outputs), job.input_dtype
        )
        computed = [0]
        try:
            _write_batches(ex, task, slices, src, group, job.outputs, done_mask, progress, on_batch, computed)
        except BaseException:
            if not resumed and computed[0] == 0 and group.name in parent:
                # nothing was computed: leave no empty results group behind
                del parent[group.name]
                parent.file.flush()
            raise
        n_computed = computed[0]
        group.attrs["status"] = "complete"
        # pyUSID / pycroscopy's marker of a finished group (their Process checks it or completed_positions)
        group.attrs["last_pixel"] = int(target.source.shape[0])
        parent.file.flush()
        return JobResult(str(parent.file.filename), group.name, False, resumed, n_computed, int(batch_rows))
