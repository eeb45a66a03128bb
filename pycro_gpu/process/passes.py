"""Multi-pass dataset jobs: algorithms that read a Main dataset several times (SVD, clustering, PCA).

A position-wise job (:func:`~pycro_gpu.process.run_job`) computes each position once. A *multi-pass*
job (streamed SVD, KMeans, incremental PCA) reads the whole dataset several times and keeps state
between the reads. It runs on the same pieces:

* **One read** is a :class:`PassSpec`: ``fn(block, xp, start, stop) -> {name: array}`` per batch of
  positions, whose outputs are either *sums* (a partial result summed over the batches in row order,
  e.g. a Gram matrix) or *rows* (one value per position, handed to the driver in row order, e.g. the
  sketch ``A Omega`` or cluster labels). :func:`run_pass` runs it over an in-memory row source
  (:mod:`pycro_gpu.process.rows`); :class:`PassRunner` over a Main dataset through an executor (the
  local prefetching reader or Dask workers: ``fn`` must then be picklable, a module-level function or
  a :func:`functools.partial` of one).
* **Stages** checkpoint the state between reads: ``checkpoint.stage(name, fn)`` runs ``fn()`` once and
  keeps the arrays it returns in the results group (``_checkpoint/<name>``); a resumed job gets them
  back bit for bit instead of reading again. An algorithm is deterministic given its inputs, so a job
  killed at any point and run again ends with the results of an uninterrupted run.
* :func:`run_passes` opens the source and the results parent exactly as ``run_job`` does (same
  ``source``, ``dataset_path``, ``results``, ``override``; see :mod:`pycro_gpu.process._target`), finds a
  finished group to reuse or an unfinished one to resume (one that this pycro_gpu version started: a
  checkpoint holds intermediate states of one version's algorithm), calls ``algorithm(runner,
  checkpoint, group)``, drops the checkpoint and marks the group complete.

Kill safety: the checkpoint writes new datasets only between reads (a handful of times per job); the
outputs an algorithm writes while it reads (``U`` of the SVD) are rewritten in full by the stage that
writes them, so an interrupted stage is simply run again. Members of a resumed group that its setup
did not create (outputs half-written by a killed final step) are removed before the algorithm runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from .._config import get_config
from .._lib.typing import Array, Namespace
from ..backend import from_host, get_namespace, resolve_backend, to_host
from ..io.usid import results_version
from ._engine import Executor, JobResult, LocalExecutor, Output, SliceTask
from ._target import clear_unfinished_outputs, new_group, open_target, prepare_results
from .rows import sample_spans

__all__ = ["CHECKPOINT", "Checkpoint", "NoCheckpoint", "PassRunner", "PassSpec", "run_pass", "run_passes"]

#: group of a multi-pass job's results group that holds its stage checkpoints
CHECKPOINT = "_checkpoint"

#: ``name -> (shape, dtype)``: per-batch sums (``shape``) or per-position rows (``(n, *shape)``)
OutputSpecs = Mapping[str, tuple[tuple[int, ...], Any]]


@dataclass(frozen=True)
class PassSpec:
    """One read of the data.

    Parameters
    ----------
    fn : callable
        ``fn(block, xp, start, stop) -> dict``: ``block`` holds rows ``start:stop`` (stored dtype, or
        ``input_dtype``) in namespace ``xp``. Returns one array per name of ``sums`` and ``rows``.
        Must not keep ``block`` (its buffer is reused).
    sums : mapping
        ``name -> (shape, dtype)`` of the per-batch partial results that are summed over all batches
        (in row order, so the sum does not depend on where batches were computed).
    rows : mapping
        ``name -> (shape, dtype)`` of per-position outputs (``(stop - start, *shape)`` per batch),
        handed to ``on_rows`` in row order.
    input_dtype : dtype, optional
        dtype the batch is read as (HDF5 converts; e.g. float64 for integer data).
    """

    fn: Callable[..., Mapping[str, Any]]
    sums: OutputSpecs = field(default_factory=dict)
    rows: OutputSpecs = field(default_factory=dict)
    input_dtype: Any = None

    def outputs(self) -> tuple[Output, ...]:
        """The engine :class:`Output` of each sum and row output (for executors)."""
        return tuple(Output(n, s, d) for n, (s, d) in self.rows.items()) + tuple(
            Output(n, s, d, per_position=False) for n, (s, d) in self.sums.items()
        )


def progress_bar(total: int, desc: str, enabled: bool | None) -> Any:
    """A ``tqdm`` bar of ``total`` batches, or None when progress is off (default: configuration)."""
    if enabled is None:
        enabled = get_config()["progress"]
    if not enabled or total < 1:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=False)


def _accumulate(sums: dict[str, Any], specs: OutputSpecs, out: Mapping[str, Any], xp: Namespace) -> None:
    """Add a batch's partial sums to ``sums``, in the dtypes the specs declare (a batch may compute in
    a narrower one: the SVD's single-precision products are summed in double precision)."""
    for name, (_shape, dtype) in specs.items():
        part = xp.astype(out[name], getattr(xp, np.dtype(dtype).name), copy=False)
        sums[name] = part if name not in sums else sums[name] + part


def run_pass(
    source: Any,
    spec: PassSpec,
    *,
    rows: int,
    desc: str = "",
    progress: bool | None = None,
    on_rows: Callable[[int, int, dict[str, Any]], None] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> dict[str, Array]:
    """One read of ``source`` in batches of ``rows`` rows; the summed outputs of ``spec``.

    ``source`` is a :class:`PassRunner` (a Main dataset on an executor) or any row source with
    ``batches(rows)`` (:mod:`pycro_gpu.process.rows`), computed in this thread. ``on_rows(start, stop,
    {name: rows})`` receives the row outputs and ``on_batch(done_rows, n_rows)`` follows every batch.
    """
    if isinstance(source, PassRunner):
        return source.run_pass(
            spec, rows=rows, desc=desc, progress=progress, on_rows=on_rows, on_batch=on_batch
        )
    xp = source.xp
    n = int(source.shape[0])
    bar = progress_bar(-(-n // max(1, rows)), desc, progress)
    sums: dict[str, Any] = {}
    try:
        for start, stop, block in source.batches(rows):
            out = spec.fn(block, xp, start, stop)
            _accumulate(sums, spec.sums, out, xp)
            if on_rows is not None and spec.rows:
                on_rows(start, stop, {k: out[k] for k in spec.rows})
            if bar is not None:
                bar.update(1)
            if on_batch is not None:
                on_batch(stop, n)
    finally:
        if bar is not None:
            bar.close()
    return sums


class PassRunner:
    """Row source over a USID Main dataset whose reads run on an executor (local or Dask).

    Parameters
    ----------
    source : USIDataset
        The Main dataset (its file stays open for the job).
    backend : str
        Resolved backend name (``numpy`` or ``cupy``) the batches are computed on.
    executor : Executor, optional
        Default :class:`~pycro_gpu.process.LocalExecutor` (prefetching reader in this process).

    Attributes
    ----------
    shape, dtype, xp, chunk_rows, device, prefetch
        As the in-memory row sources: ``dtype`` is float64 for integer data (read converted).
    """

    def __init__(self, source: Any, backend: str, executor: Executor | None = None) -> None:
        self.source = source
        self.backend = backend
        self.xp = get_namespace(backend)
        self.executor = executor if executor is not None else LocalExecutor()
        self.prefetch = isinstance(self.executor, LocalExecutor) and self.executor.prefetch
        self.shape = (int(source.shape[0]), int(source.shape[1]))
        kind = source.dtype.kind
        self.dtype = np.dtype(source.dtype) if kind in "fc" else np.dtype(np.float64)
        self.input_dtype = None if kind in "fc" else self.dtype
        self.chunk_rows = int(source.chunks[0]) if source.chunks else 1
        self.device = None

    def sample(self, count: int) -> Array:
        """About ``count`` rows in evenly spaced, chunk-aligned blocks (read here, not on the executor)."""
        spans = sample_spans(self.shape[0], count, self.chunk_rows)
        out = np.empty((sum(e - s for s, e in spans), self.shape[1]), dtype=self.dtype)
        at = 0
        for s, e in spans:
            self.source.read_direct(out, np.s_[s:e], np.s_[at : at + e - s])
            at += e - s
        return from_host(out, self.xp)

    def run_pass(
        self,
        spec: PassSpec,
        *,
        rows: int,
        desc: str = "",
        progress: bool | None = None,
        on_rows: Callable[[int, int, dict[str, Any]], None] | None = None,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> dict[str, Array]:
        """See :func:`run_pass`. Results of the executor are consumed in row order."""
        n = self.shape[0]
        rows = max(1, int(rows))
        slices = [slice(s, min(s + rows, n)) for s in range(0, n, rows)]
        task = SliceTask(
            str(self.source.file.filename),
            self.source.name,
            spec.fn,
            self.backend,
            spec.outputs(),
            spec.input_dtype if spec.input_dtype is not None else self.input_dtype,
            span=True,
        )
        bar = progress_bar(len(slices), desc, progress)
        sums: dict[str, Any] = {}
        host_xp = get_namespace("numpy")  # the executor's results are host arrays
        waiting: dict[int, dict[str, np.ndarray]] = {}
        at = 0
        try:
            for sl, res in self.executor.map(task, slices, self.source):
                waiting[sl.start] = res
                while at < len(slices) and slices[at].start in waiting:
                    cur = slices[at]
                    out = waiting.pop(cur.start)
                    _accumulate(sums, spec.sums, out, host_xp)
                    if on_rows is not None and spec.rows:
                        on_rows(cur.start, cur.stop, {k: out[k] for k in spec.rows})
                    at += 1
                    if bar is not None:
                        bar.update(1)
                    if on_batch is not None:
                        on_batch(cur.stop, n)
        finally:
            if bar is not None:
                bar.close()
        return {k: from_host(v, self.xp) for k, v in sums.items()}


class NoCheckpoint:
    """Stages that are simply run (in-memory data, nothing to resume)."""

    resumed_stages: tuple[str, ...] = ()

    def stage(self, name: str, fn: Callable[[], Mapping[str, Any]]) -> dict[str, Any]:
        return dict(fn())


class Checkpoint:
    """Stage results of a multi-pass job, kept in its results group until the job completes.

    Parameters
    ----------
    group : h5py.Group
        The job's results group.
    xp : namespace
        Namespace the restored arrays are put in.
    """

    def __init__(self, group: h5py.Group, xp: Namespace) -> None:
        self.group = group
        self.xp = xp
        self.resumed_stages: list[str] = []
        self.saved_stages: list[str] = []

    def _done(self, name: str) -> h5py.Group | None:
        ck = self.group.get(CHECKPOINT)
        g = None if ck is None else ck.get(name)
        return g if g is not None and bool(g.attrs.get("complete", False)) else None

    def stage(self, name: str, fn: Callable[[], Mapping[str, Any]]) -> dict[str, Any]:
        """``fn()``'s arrays: from the checkpoint when an earlier run finished this stage, else computed
        and saved (host copies; values come back bit for bit)."""
        done = self._done(name)
        if done is not None:
            self.resumed_stages.append(name)
            return {k: self._restore(done[k][()]) for k in done}
        out = dict(fn())
        ck = self.group.require_group(CHECKPOINT)
        if name in ck:  # an earlier run was killed while saving this stage
            del ck[name]
        g = ck.create_group(name)
        for k, v in out.items():
            g.create_dataset(k, data=np.asarray(to_host(v)))
        g.attrs["complete"] = True
        self.group.file.flush()
        self.saved_stages.append(name)
        return out

    def _restore(self, value: np.ndarray | np.generic) -> Any:
        if value.ndim == 0:  # h5py gives scalars as NumPy scalars (text as np.bytes_), or 0-d arrays
            return value if isinstance(value, np.generic) else value[()]
        return from_host(value, self.xp)

    def drop(self) -> None:
        """Delete the checkpoint (the job is complete)."""
        if CHECKPOINT in self.group:
            del self.group[CHECKPOINT]


def run_passes(
    tool: str,
    parameters: Mapping[str, Any],
    algorithm: Callable[[PassRunner, Checkpoint, h5py.Group], None],
    source: Any,
    dataset_path: str | None = None,
    *,
    setup: Callable[[h5py.Group, Any, bool], None] | None = None,
    validate: Callable[[Any], None] | None = None,
    results: Any = None,
    backend: str | None = None,
    executor: Executor | None = None,
    override: bool = False,
    name_prefix: str | None = None,
    output_bytes: int | Callable[[Any], int] | None = None,
    equivalent: Callable[[Any, h5py.Group], h5py.Group | None] | None = None,
) -> JobResult:
    """Run a multi-pass job on a Main dataset: reuse, resume or create ``<Source>-<tool>_NNN``.

    Parameters
    ----------
    tool, parameters
        Results group name and attributes (a finished group with equal parameters is reused).
    algorithm : callable
        ``algorithm(runner, checkpoint, group)``: reads through ``runner`` (:func:`run_pass`),
        checkpoints with ``checkpoint.stage`` and writes its outputs into ``group``.
    source, dataset_path, results, override
        As in :func:`~pycro_gpu.process.run_job`.
    setup : callable, optional
        ``setup(group, source, same_file)`` allocates the outputs written during the reads (kept when
        the job resumes).
    validate : callable, optional
        ``validate(source)`` checks the parameters against the source before anything is written.
    backend : {'auto', 'numpy', 'cupy'}, optional
    executor : Executor, optional
        Where the reads are computed (default: this process, with prefetch).
    name_prefix : str, optional
        Name the group ``<name_prefix>NNN`` instead of ``<Source>-<tool>_NNN``.
    equivalent : callable, optional
        ``equivalent(source, parent)``: a finished group written by another program (pycroscopy) that
        holds the same results, reused as it is; ``None`` when there is none.
    output_bytes : int or callable, optional
        Estimate of the bytes the job writes into the results file (outputs and checkpoints), or
        ``output_bytes(source)`` computing it from the source Main dataset. Before anything is written
        it is checked against a bound relative to the source's stored size and against the free space
        (plus a margin); default 0 (the margin only).

    Returns
    -------
    JobResult
        ``n_computed`` is the number of positions when the algorithm ran (0 when reused).
    """
    from .. import __version__

    # an unfinished group resumes only under the version that started it: its checkpointed stages are
    # intermediate states of that version's algorithm
    other_versions: set[str] = set()

    def resumable(group: h5py.Group) -> bool:
        written = results_version(group)
        if written == __version__:
            return True
        other_versions.add(f"{group.name} (pycro_gpu {written or 'unknown'})")
        return False

    with open_target(source, dataset_path, results) as target:
        if validate is not None:
            validate(target.source)
        if equivalent is not None and not override:
            other = equivalent(target.source, target.parent)  # e.g. pycroscopy's finished results
            if other is not None:
                return JobResult(str(other.file.filename), other.name, True, False, 0, 0)
        name = resolve_backend(backend)
        n_bytes = output_bytes(target.source) if callable(output_bytes) else output_bytes
        group, reused = prepare_results(
            target,
            tool,
            parameters,
            override=override,
            resumable=resumable,
            output_bytes=int(n_bytes or 0),
            name_prefix=name_prefix,
        )
        if reused:
            return JobResult(str(group.file.filename), group.name, True, False, 0, 0)
        if group is None and other_versions:
            warnings.warn(
                f"not resuming {', '.join(sorted(other_versions))}: unfinished, started by another version "
                f"than this pycro_gpu {__version__}; computing the results again in a new group (the "
                "unfinished one is left as it is)",
                RuntimeWarning,
                stacklevel=2,
            )
        src = target.source
        resumed = group is not None
        if group is None:
            same_file = target.same_file
            group = new_group(
                target,
                tool,
                parameters,
                lambda g: setup(g, src, same_file) if setup else None,
                name,
                name_prefix,
            )
        else:
            clear_unfinished_outputs(group, keep=(CHECKPOINT,))
        runner = PassRunner(src, name, executor)
        ckpt = Checkpoint(group, runner.xp)
        try:
            algorithm(runner, ckpt, group)
        except BaseException:
            if not resumed and not ckpt.saved_stages and group.name in target.parent:
                del target.parent[group.name]  # nothing kept: leave no empty results group behind
                target.parent.file.flush()
            raise
        ckpt.drop()
        group.attrs["status"] = "complete"
        # pyUSID / pycroscopy's marker of a finished group (their Process checks it or completed_positions)
        group.attrs["last_pixel"] = int(target.source.shape[0])
        target.parent.file.flush()
        return JobResult(str(target.parent.file.filename), group.name, False, resumed, src.shape[0], 0)
