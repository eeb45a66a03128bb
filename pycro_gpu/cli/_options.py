"""What every ``pycro-gpu`` command shares: options, old spellings, the error formatter, logging.

The grammar of a file command::

    pycro-gpu COMMAND FILE [--dataset PATH] [--results FILE] [--override] [--plot DIR] [--backend B]
                           [--memory-mb M] [--workers N | --gpus N|all | --scheduler ADDRESS] [-q]

with ``-k/--components`` for a number of components and ``-n/--clusters`` for a number of clusters.
Old spellings (``--overwrite``, ``--out`` for a results file, ``decompose -n``) still work for one
release and say so in one line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .._config import BACKENDS, get_config
from .._lib.dask_options import add_dask_arguments
from .._lib.h5errors import hdf5_message, one_line, raised_by_h5py
from ..errors import PycroGPUError

#: name of the library's logger; the CLI prints its INFO records on stderr
LOGGER = "pycro_gpu"
#: environment variable that makes every error print its traceback (for developers)
DEBUG_ENV = "PYCRO_GPU_DEBUG"
#: NumPy's floating-point and empty-input RuntimeWarnings, which the CLI shows only with -v/--verbose
NUMPY_WARNINGS = (
    r".*(encountered in|divide by zero|Mean of empty slice|Degrees of freedom <= 0|All-NaN (slice|axis))"
)


class UsageError(PycroGPUError):
    """A combination of options that the command cannot run (exit code 2, as argparse's errors)."""


class _OldSpelling(argparse.Action):
    """An old spelling of an option: stores into the new option's ``dest`` and says so on stderr."""

    def __init__(self, option_strings: list[str], dest: str, *, new: str, **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        deprecated(parser.prog, option_string or "", self.new)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def deprecated(prog: str, old: str, new: str) -> None:
    """The one-line message of an old spelling that still works for one release."""
    print(
        f"{prog}: deprecated: {old} is now {new} (the old spelling goes in the next release)", file=sys.stderr
    )


def old_spelling(p: argparse.ArgumentParser, old: str, new: str, dest: str, **kwargs: Any) -> None:
    """Accept ``old`` as a hidden alias of the option ``new`` (stored in ``dest``) for one release."""
    p.add_argument(old, dest=dest, action=_OldSpelling, new=new, default=argparse.SUPPRESS, **kwargs)


def common_parser() -> argparse.ArgumentParser:
    """The options of every command: ``--backend``, ``--memory-mb``, ``-q/--quiet``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="compute backend (default: PYCRO_GPU_BACKEND or auto)",
    )
    common.add_argument(
        "--memory-mb",
        type=float,
        default=None,
        help="working-memory budget in MiB (default: PYCRO_GPU_MEMORY_MB or 1024)",
    )
    common.add_argument("--quiet", "-q", action="store_true", help="no progress bars, summaries or log lines")
    common.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="also show NumPy's warnings (divide by zero, invalid value ...) and debug log lines",
    )
    return common


def add_file_options(p: argparse.ArgumentParser, *, dataset_help: str, plot_help: str) -> None:
    """``FILE``, ``--dataset``, ``--results``, ``--override``, ``--plot DIR`` and the Dask options."""
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="USID HDF5 file(s) (raw data are never modified); several files are processed one by one",
    )
    p.set_defaults(each_file=True)
    p.add_argument("--dataset", default=None, metavar="PATH", help=dataset_help)
    p.add_argument(
        "--results",
        default=None,
        metavar="FILE",
        help="write the results group to this HDF5 file (default: the input file)",
    )
    old_spelling(p, "--out", "--results", "results", metavar="FILE")
    p.add_argument("--override", action="store_true", help="compute again even if equal results exist")
    old_spelling(p, "--overwrite", "--override", "override", nargs=0, const=True)
    p.add_argument("--plot", default=None, metavar="DIR", help=plot_help)
    add_dask_arguments(p)


def add_components(p: argparse.ArgumentParser, default: int | None, help_text: str) -> None:
    """``-k/--components``: a number of components."""
    p.add_argument("-k", "--components", type=int, default=default, metavar="K", help=help_text)


def each_file(run: Any) -> Any:
    """``run(args)`` once per ``FILE`` of a file command, as ``args.file``.

    With one file this is ``run`` itself (its errors reach ``main``'s formatter). With several, each file
    is processed (and resumable) on its own: a failing file prints its one error line, prefixed with
    the file, and the others still run; the exit code is the worst of them. A shared ``--results``
    file holds one results group per input (each records its source).
    """

    def run_each(args: argparse.Namespace) -> int:
        files = list(args.files)
        if len(files) == 1:
            args.file = files[0]
            return run(args)
        worst = 0
        for path in files:
            args.file = path
            try:
                rc = int(run(args) or 0)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                budget = args.memory_mb if args.memory_mb is not None else get_config()["memory_mb"]
                rc = report_error(f"{args.command} {path}", exc, file=path, memory_mb=budget)
            worst = max(worst, rc)
        return worst

    return run_each


def results_elsewhere(args: argparse.Namespace) -> bool:
    """True when ``--results`` names another file than the input."""
    return args.results is not None and Path(args.results).resolve() != Path(args.file).resolve()


def executor(args: argparse.Namespace) -> Any:
    """Context manager of the executor that ``--workers``/``--gpus``/``--scheduler`` ask for (or None)."""
    from ..process.distributed import executor_from_args

    return executor_from_args(args) or contextlib.nullcontext()


def report_error(
    command: str, exc: BaseException, *, file: str | None = None, memory_mb: float | None = None
) -> int:
    """Print ``exc`` as the one error line of ``pycro-gpu COMMAND`` and return the exit code.

    Every exception becomes one line on stderr (multi-line messages folded): pycro_gpu's own errors as
    they are, permission, disk-space and memory errors saying so, an error of the HDF5 library with the
    file it probably concerns. An exception that no bad input explains (a programming error) says
    how to see its traceback: with ``PYCRO_GPU_DEBUG=1`` every error prints its traceback first.

    Parameters
    ----------
    command : str
        The command, for the ``pycro-gpu COMMAND: error:`` prefix.
    exc : BaseException
        What the command raised.
    file : str, optional
        The command's input file, named in the line of an HDF5 error.
    memory_mb : float, optional
        The working-memory budget the command ran with, named in the line of a ``MemoryError``.

    Returns
    -------
    int
        130 for an interrupt, 2 for a :class:`UsageError`, else 1.
    """
    if isinstance(exc, KeyboardInterrupt):
        print(f"pycro-gpu {command}: interrupted", file=sys.stderr)
        return 130
    debug = os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    text, expected = describe_error(exc, file=file, memory_mb=memory_mb)
    if not expected and not debug:
        text += f" (run with {DEBUG_ENV}=1 for the traceback)"
    print(f"pycro-gpu {command}: error: {one_line(text)}", file=sys.stderr)
    return 2 if isinstance(exc, UsageError) else 1


def describe_error(
    exc: BaseException, *, file: str | None = None, memory_mb: float | None = None
) -> tuple[str, bool]:
    """The text of ``exc``'s error line, and whether bad input or the environment explains it.

    Returns ``(text, False)`` only for an exception that no input explains: a type other than those
    below, raised in pycro_gpu's own code.
    """
    if isinstance(exc, PycroGPUError):
        return str(exc), True
    if isinstance(exc, PermissionError):
        return f"permission denied: {_os_error_text(exc)}", True
    if (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) or _h5py_disk_full(exc):
        return f"no space left on the device: {_os_error_text(exc)}", True
    if isinstance(exc, MemoryError):
        budget = f" (the budget is {memory_mb:g} MiB)" if memory_mb is not None else ""
        detail = f": {exc}" if str(exc) else ""
        return f"out of memory{detail}; lower the working-memory budget with --memory-mb{budget}", True
    if raised_by_h5py(exc):
        where = f" (is {file!r} damaged?)" if file else ""
        return f"HDF5 error: {hdf5_message(exc)}{where}", True
    if isinstance(exc, (OSError, ValueError)):  # the type says what went wrong
        return f"{type(exc).__name__}: {exc}", True
    return f"{type(exc).__name__}: {exc}", False


def _h5py_disk_full(exc: BaseException) -> bool:
    """An h5py error whose HDF5 message reports a full disk (``errno = 28``; h5py keeps no errno)."""
    return raised_by_h5py(exc) and ("errno = 28," in str(exc) or "No space left on device" in str(exc))


def _os_error_text(exc: BaseException) -> str:
    """``FILE: reason`` of an OSError (h5py puts the file in the message, the OS in ``filename``)."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return hdf5_message(exc) if raised_by_h5py(exc) else str(exc)


@contextlib.contextmanager
def log_to_stderr(quiet: bool, verbose: bool = False) -> Iterator[None]:
    """Print the ``pycro_gpu`` logger's records on stderr as ``pycro-gpu: <message>``.

    INFO and above, WARNING and above when ``quiet``, DEBUG and above when ``verbose``. NumPy's
    floating-point RuntimeWarnings (divide by zero, invalid value, overflow ...: the results of such
    positions are flagged in the data) are shown only when ``verbose``.
    """
    logger = logging.getLogger(LOGGER)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("pycro-gpu: %(message)s"))
    handler.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > handler.level:
        logger.setLevel(handler.level)
    try:
        with warnings.catch_warnings():
            if not verbose:
                warnings.filterwarnings("ignore", NUMPY_WARNINGS, RuntimeWarning)
            yield
    finally:  # main() called from Python leaves the caller's logging as it was
        logger.removeHandler(handler)
        logger.setLevel(level)


def memory_limit() -> tuple[float, str] | None:
    """The memory this process can have in MiB, and what sets it; None where nothing can tell.

    The smallest of the physical memory, the address-space limit (``ulimit -v``) and the control
    group's limit (containers).
    """
    limits: list[tuple[float, str]] = []
    with contextlib.suppress(ValueError, OSError, AttributeError):
        limits.append((os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20, "physical memory"))
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            limits.append((soft / 2**20, "ulimit -v"))
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            text = Path(path).read_text().strip()
            if text != "max" and int(text) < 2**60:
                limits.append((int(text) / 2**20, "the container's memory limit"))
    return min(limits) if limits else None


def check_memory_budget(memory_mb: float, given: bool) -> None:
    """Refuse a working-memory budget larger than the memory this process can have (one line)."""
    limit = memory_limit()
    if limit is not None and memory_mb > limit[0]:
        source = "--memory-mb" if given else "PYCRO_GPU_MEMORY_MB"
        msg = (
            f"{source} {memory_mb:g} is more than this process can have: {limit[0]:,.0f} MiB "
            f"({limit[1]}); give a smaller budget (the data is streamed in batches that fit it)"
        )
        raise UsageError(msg)


def probe_inputs(args: argparse.Namespace) -> None:
    """Keep a crash of the HDF5 library on a damaged input file out of this process (one DataError).

    Probes the command's existing HDF5 files (``FILE``, ``--results``, translate's ``INPUT``) with
    :func:`pycro_gpu.io.probe.probe_h5`.
    """
    paths = [getattr(args, name, None) for name in ("file", "input", "results")]
    paths += list(getattr(args, "files", None) or [])
    paths = [p for p in paths if isinstance(p, str) and p and os.path.isfile(p)]
    if paths:
        from ..io.probe import probe_h5

        for p in paths:
            probe_h5(p)


@contextlib.contextmanager
def report_kernel_compilation(quiet: bool) -> Iterator[None]:
    """After a successful command that compiled kernels, say on stderr how long that took.

    The kernels announce the first compilation themselves (an INFO record of ``pycro_gpu.kernels``);
    this adds one summary line at the end. Only kernels compiled by this command count (``main()`` may
    run several commands in one process), and a failed command prints its one error line only.
    """
    log = _compile_log()
    before = log.snapshot() if log is not None else None
    yield
    log = _compile_log()
    summary = log.summary(since=before) if log is not None else None
    if summary and not quiet:
        print(f"pycro-gpu: {summary}", file=sys.stderr)


def _compile_log() -> Any:
    """The kernels' compile log, or None where no kernel was loaded (importing them would load numba)."""
    cache = sys.modules.get("pycro_gpu.kernels.cache")
    return cache.compile_log() if cache is not None else None


def find_main(f: Any, path: str | None) -> Any:
    """The Main dataset ``path`` of ``f``, or the first ``Raw_Data`` (else the first Main dataset)."""
    from ..errors import DataError, USIDError
    from ..io.usid import USIDataset, find_main_datasets

    if path is not None:
        if path not in f:
            msg = f"{f.filename}: no dataset {path!r}"
            raise USIDError(msg)
        try:
            obj = f[path]
        except Exception as exc:  # a damaged object header
            if not raised_by_h5py(exc):
                raise
            msg = f"{f.filename}: cannot read {path!r} ({hdf5_message(exc)}): the file is damaged"
            raise DataError(msg) from None
        return USIDataset(obj)
    mains = find_main_datasets(f)
    if not mains:
        msg = f"{f.filename}: no USID Main dataset found; pass --dataset"
        raise USIDError(msg)
    raw = [m for m in mains if m.name.rsplit("/", 1)[-1] == "Raw_Data"]
    return (raw or mains)[0]


def require_numbers(dset: Any, work: str) -> None:
    """One DataError when the dataset ``dset`` does not hold real or complex numbers (strings,
    compounds, booleans); ``work`` names what needs them."""
    from ..errors import DataError

    if dset.dtype.kind not in "iufc":
        msg = (
            f"{dset.file.filename}: {dset.name} has dtype {dset.dtype}; {work} needs real or complex numbers"
        )
        raise DataError(msg)


def run_dataset_job(args: argparse.Namespace, job: Any, **parameters: Any) -> Any:
    """Run the dataset job ``job(source, **kw)`` on ``FILE`` as the file options ask; its JobResult.

    The Main dataset is ``--dataset`` (else the first ``Raw_Data``); the input file is opened read-only,
    and for writing only when the job writes its results into it (:func:`call_read_only_first`);
    ``--override``, ``--workers``/``--gpus``/``--scheduler`` and ``-q`` go to the job (``--backend`` and
    ``--memory-mb`` are in the configuration).
    """
    from ..io.hdf5 import open_h5

    def run(main: Any) -> Any:
        return job(
            main,
            results=args.results,
            executor=ex,
            override=args.override,
            progress=not args.quiet,
            **parameters,
        )

    with executor(args) as ex, open_h5(args.file, "r") as f:
        return call_read_only_first(run, find_main(f, args.dataset))


def call_read_only_first(call: Callable[[Any], Any], dataset: Any) -> Any:
    """``call(dataset)`` on a dataset of a file open read-only; again on it reopened for writing when the
    job must write into that file.

    A job raises :class:`~pycro_gpu.process.ResultsReadOnlyError` before it writes anything, after it
    validated its parameters and found no finished results to reuse; only then is the file closed and
    reopened (``'r+'``) and ``call`` run again on the same dataset. A reused, refused or failed job
    therefore leaves the file byte-identical, modification time included. ``dataset``'s file is
    closed when ``call`` had to run again.
    """
    from ..io.hdf5 import open_h5
    from ..io.usid import USIDataset
    from ..process import ResultsReadOnlyError

    try:
        return call(dataset)
    except ResultsReadOnlyError:
        if dataset.file.mode == "r+":
            raise
    path, name = dataset.file.filename, dataset.name
    dataset.file.close()
    with open_h5(path, "r+") as f:
        return call(USIDataset(f[name]))


@contextlib.contextmanager
def results_group(result: Any, mode: str = "r") -> Iterator[Any]:
    """The results group of a JobResult, its file open (``mode``) for the ``with`` block."""
    from ..io.hdf5 import open_h5

    with open_h5(result.file, mode) as f:
        yield f[result.group]


def summary_state(result: Any) -> str:
    """``reused``, ``resumed`` or ``computed``: what a job did."""
    return "reused" if result.reused else ("resumed" if result.resumed else "computed")


def write_figures(args: argparse.Namespace, name: str, group: Any) -> None:
    """With ``--plot DIR``: draw ``group`` with :mod:`pycro_gpu.viz.results`'s ``name`` into DIR."""
    if args.plot:
        from ..viz import results

        for p in getattr(results, name)(group, args.plot):
            if not args.quiet:
                print(f"wrote {p}")
