"""HDF5 streaming helpers: safe opening, batch sizing from the memory budget, chunk-aligned batch
slices and a reader that fills reusable buffers with ``read_direct``; and safe writing: the free space
and output-size checks made before a job allocates its outputs, results files created atomically and
the hidden temporary files of killed runs removed.

These are the building blocks of :mod:`pycro_gpu.process`; translators and analysis routines that
stream a Main dataset use them directly.

Temporary files
---------------
Every file pycro_gpu writes under a temporary name is ``.<final name>.pycro-<host>-<pid>-<token>.tmp``
in the folder of the final file (:func:`temporary_path`). A run that is killed leaves it behind; the
next run that writes into that folder removes those whose process is gone
(:func:`remove_stale_temporaries`): same host, process id no longer running. Files of live processes
and of other hosts (a shared file system) are left alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import math
import os
import re
import shutil
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._config import get_config, validate_memory_mb
from .._lib.h5errors import one_line
from ..errors import DataError

__all__ = [
    "BatchReader",
    "SpaceReservation",
    "batch_slices",
    "check_free_space",
    "check_output_size",
    "create_h5_atomically",
    "format_bytes",
    "open_h5",
    "plan_batch_rows",
    "remove_stale_temporaries",
    "space_needed",
    "stored_bytes",
    "temporary_path",
]

#: headroom on top of the estimated bytes per position (allocator slack, temporaries)
SAFETY_FACTOR = 1.25

#: free space kept on top of a job's outputs: HDF5 metadata, chunk indexes, the final flush
SPACE_MARGIN_BYTES = 8 * 2**20
#: ... plus this fraction of the outputs' bytes
SPACE_MARGIN_FRACTION = 0.05
#: a dataset that declares more than this many times the bytes its file holds of it is hollow; outputs
#: computed from it may be at most this many times its stored bytes ...
MAX_OUTPUT_RATIO = 1024
#: ... or this many bytes, whichever is larger
MAX_OUTPUT_FLOOR_BYTES = 2**30


def open_h5(path: str | os.PathLike, mode: str = "r") -> h5py.File:
    """Open an HDF5 file, turning every failure into one :class:`DataError` that names the path.

    Parameters
    ----------
    path : str or path-like
    mode : {'r', 'r+', 'a', 'w'}
        ``'r'`` for raw data: pycro_gpu never writes raw files it only reads.

    Raises
    ------
    DataError
        The file does not exist, is not HDF5, is truncated or corrupt, or is locked by a writer; or the
        permissions do not allow ``mode`` (the message says "permission denied").
    """
    p = Path(path)
    if mode in ("r", "r+") and not p.exists():
        msg = f"HDF5 file {str(p)!r} does not exist"
        raise DataError(msg)
    _check_permission(p, mode)
    if mode in ("r", "r+") and p.is_file() and not h5py.is_hdf5(p):
        size = p.stat().st_size
        msg = f"{str(p)!r} is not an HDF5 file ({size} bytes; no HDF5 signature)"
        raise DataError(msg)
    try:
        return h5py.File(p, mode)
    except PermissionError as exc:
        msg = f"permission denied: cannot open {str(p)!r} (mode {mode!r}): {one_line(exc)}"
        raise DataError(msg) from None
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise DataError(_cannot_open(p, mode, exc)) from None
        msg = f"no space left on the device: cannot open {str(p)!r} (mode {mode!r}) ({one_line(exc)})"
        raise DataError(msg) from None
    except Exception as exc:  # h5py turns a damaged superblock into OSError, RuntimeError, ValueError ...
        raise DataError(_cannot_open(p, mode, exc)) from None


def _cannot_open(p: Path, mode: str, exc: BaseException) -> str:
    return f"cannot open HDF5 file {str(p)!r} (mode {mode!r}): truncated, corrupt or locked ({one_line(exc)})"


def _check_permission(p: Path, mode: str) -> None:
    """One :class:`DataError` naming the permission when ``p`` (or its folder, to create it) is not
    readable or writable as ``mode`` needs."""
    writes = mode != "r"
    if p.exists():
        target, need = p, os.R_OK | (os.W_OK if writes else 0)
    elif writes and p.parent.is_dir():
        target, need = p.parent, os.W_OK | os.X_OK
    else:  # h5py names a missing folder
        return
    if not os.access(target, need):
        what = ("read and write" if writes else "read") if target == p else "create files in"
        msg = f"permission denied: cannot {what} {str(target)!r} (mode {mode!r})"
        raise DataError(msg)


def plan_batch_rows(
    n_rows: int,
    bytes_in_per_row: int,
    bytes_out_per_row: int = 0,
    *,
    memory_mb: float | None = None,
    work_multiplier: float = 2.0,
    chunk_rows: int | None = None,
    n_buffers: int = 2,
    pending_results: int = 0,
) -> int:
    """Number of positions per batch that fits the working-memory budget.

    The memory of one batch row is ``SAFETY_FACTOR * (bytes_in * (n_buffers + work_multiplier) +
    (2 + pending_results) * bytes_out)``: ``n_buffers`` host read buffers (double buffering for
    prefetch), the device copy plus the compute's work memory (``work_multiplier`` times the input,
    e.g. 4 for an FFT that makes complex temporaries), the results on device and on host, and the host
    results of earlier batches that a background writer still holds (write-behind).

    Parameters
    ----------
    n_rows : int
        Positions in the dataset.
    bytes_in_per_row, bytes_out_per_row : int
        Bytes of one input row and of all output values of one position.
    memory_mb : float, optional
        Budget in MiB (default: ``get_config()["memory_mb"]``).
    work_multiplier : float
        Work memory of the compute as a multiple of the input batch.
    chunk_rows : int, optional
        Row count of the dataset's chunks: the batch is rounded down to a multiple of it when
        larger, so that batches read whole chunks.
    n_buffers : int
        Host input buffers held at once.
    pending_results : int
        Batches of host results handed to a background writer and not written yet (0 without one).

    Returns
    -------
    int
        Between 1 and ``n_rows``.

    Examples
    --------
    >>> plan_batch_rows(10_000, 4096, memory_mb=1)  # 4 KiB rows, 1 MiB budget
    51
    """
    mb = validate_memory_mb(get_config()["memory_mb"] if memory_mb is None else memory_mb)
    if work_multiplier < 0:
        msg = f"work_multiplier must be >= 0, got {work_multiplier}"
        raise ValueError(msg)
    if pending_results < 0:
        msg = f"pending_results must be >= 0, got {pending_results}"
        raise ValueError(msg)
    per_row = SAFETY_FACTOR * (
        bytes_in_per_row * (n_buffers + work_multiplier) + (2 + pending_results) * bytes_out_per_row
    )
    rows = int(mb * 2**20 // max(per_row, 1.0))
    if chunk_rows and rows >= chunk_rows:
        rows -= rows % chunk_rows
    return int(min(max(rows, 1), max(n_rows, 1)))


def batch_slices(n_rows: int, batch_rows: int, done: np.ndarray | None = None) -> list[slice]:
    """Slices of the fixed batch grid ``[k * batch_rows, (k + 1) * batch_rows)`` still to compute.

    With a ``done`` mask (``completed_positions``), batches whose positions are all done are skipped
    and the others are trimmed to span from their first to their last unfinished position (finished
    positions inside that span are recomputed, which writes the same values again).

    Examples
    --------
    >>> batch_slices(10, 4)
    [slice(0, 4, None), slice(4, 8, None), slice(8, 10, None)]
    >>> import numpy as np
    >>> batch_slices(10, 4, np.array([1, 1, 0, 1, 1, 1, 1, 1, 0, 0], np.uint8))
    [slice(2, 3, None), slice(8, 10, None)]
    """
    if batch_rows < 1:
        msg = f"batch_rows must be >= 1, got {batch_rows}"
        raise ValueError(msg)
    out = []
    for start in range(0, n_rows, batch_rows):
        stop = min(start + batch_rows, n_rows)
        if done is None:
            out.append(slice(start, stop))
            continue
        todo = np.flatnonzero(np.asarray(done[start:stop]) == 0)
        if todo.size:
            out.append(slice(start + int(todo[0]), start + int(todo[-1]) + 1))
    return out


class BatchReader:
    """Read row slices of a 2-D dataset into reusable host buffers (``read_direct``, no allocation).

    Parameters
    ----------
    dataset : h5py.Dataset
        2-D dataset ``(N_pos, N_spec)``.
    max_rows : int
        Largest slice that will be read.
    n_buffers : int
        Buffers in rotation (2 for double buffering: one being filled while the other is used).
    dtype : dtype, optional
        Buffer dtype (default: the dataset's); HDF5 converts on read.
    empty : callable
        ``empty(shape, dtype)`` allocating a buffer (e.g. page-locked host memory for uploads to a GPU,
        :meth:`pycro_gpu.backend.BatchTransfers.empty_host`).

    Examples
    --------
    >>> import h5py, numpy as np
    >>> f = h5py.File("doc_reader.h5", "w", driver="core", backing_store=False)
    >>> d = f.create_dataset("d", data=np.arange(20.0).reshape(10, 2))
    >>> r = BatchReader(d, max_rows=4)
    >>> r.read(slice(8, 10), 1).tolist()
    [[16.0, 17.0], [18.0, 19.0]]
    >>> f.close()
    """

    def __init__(
        self,
        dataset: h5py.Dataset,
        max_rows: int,
        *,
        n_buffers: int = 2,
        dtype: Any = None,
        empty: Callable[..., np.ndarray] = np.empty,
    ) -> None:
        if dataset.ndim != 2:
            msg = f"BatchReader needs a 2-D dataset, {dataset.name} has shape {dataset.shape}"
            raise DataError(msg)
        self.dataset = dataset
        self.dtype = np.dtype(dataset.dtype if dtype is None else dtype)
        rows = max(1, min(int(max_rows), dataset.shape[0]))
        self.buffers = [empty((rows, dataset.shape[1]), dtype=self.dtype) for _ in range(n_buffers)]

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.buffers)

    def read(self, sl: slice, buffer: int = 0) -> np.ndarray:
        """Read rows ``sl`` into buffer ``buffer`` and return the filled view ``(n, N_spec)``."""
        n = sl.stop - sl.start
        buf = self.buffers[buffer % len(self.buffers)]
        if n > buf.shape[0]:
            msg = f"slice {sl} has {n} rows, more than the buffer's {buf.shape[0]}"
            raise ValueError(msg)
        view = buf[:n]
        if n:
            self.dataset.read_direct(buf, source_sel=np.s_[sl.start : sl.stop], dest_sel=np.s_[0:n])
        return view

    def iter_slices(self, slices: Sequence[slice]) -> Iterator[tuple[slice, np.ndarray]]:
        """Yield ``(slice, rows)`` for ``slices`` in order.

        With two or more buffers the next slice is read on a worker thread while the caller works on the
        current one (h5py and the caller's BLAS or GPU work overlap). A yielded array stays valid until
        the next one is requested: its buffer is refilled after that.
        """
        if len(self.buffers) < 2:
            for sl in slices:
                yield sl, self.read(sl, 0)
            return
        if not slices:
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pycro_gpu-read") as pool:
            pending = pool.submit(self.read, slices[0], 0)
            for i, sl in enumerate(slices):
                rows = pending.result()
                if i + 1 < len(slices):  # the other buffer: the rows handed out last time are done with
                    pending = pool.submit(self.read, slices[i + 1], i + 1)
                yield sl, rows


# ----------------------------------------------------------------------------------------------------
# writing safely: sizes, free space, atomic creation, temporary files
# ----------------------------------------------------------------------------------------------------


def format_bytes(n: float) -> str:
    """``n`` bytes for a message: ``'512 B'``, ``'9.5 kB'``, ``'8.0 TB'`` (powers of 1000).

    Examples
    --------
    >>> format_bytes(8e12), format_bytes(9728), format_bytes(12)
    ('8.0 TB', '9.7 kB', '12 B')
    """
    n = float(n)
    if n < 1000:
        return f"{int(n)} B"
    exponent = min(int(math.log10(n) // 3), 6)
    return f"{n / 1000**exponent:.1f} {'kMGTPE'[exponent - 1]}B"


def stored_bytes(dataset: h5py.Dataset) -> int:
    """Bytes the values of ``dataset`` really occupy: allocated storage, at most the file's size.

    A dataset can declare any shape: chunks never written (fill value) or a contiguous extent past the
    end of a truncated file occupy nothing. External and virtual datasets count their logical size.
    """
    if dataset.is_virtual or dataset.external:
        return int(dataset.size) * int(dataset.dtype.itemsize)
    size = int(dataset.id.get_storage_size())
    with contextlib.suppress(OSError, TypeError, ValueError):
        if dataset.file.driver != "core":
            size = min(size, os.path.getsize(dataset.file.filename))
    return size


def check_output_size(output_bytes: int, dataset: h5py.Dataset) -> None:
    """Refuse large outputs computed from a dataset whose file holds almost none of its values.

    A file can declare ``10**7 x 10**5`` positions in a few kB (chunks never written, or a truncated
    file); a job on it must not allocate terabytes. Refused: more than ``MAX_OUTPUT_FLOOR_BYTES`` of
    outputs and more than ``MAX_OUTPUT_RATIO`` times the bytes ``dataset`` has stored, from a dataset
    that declares more than ``MAX_OUTPUT_RATIO`` times the bytes it has stored. Outputs larger than a
    fully stored input (a rebuild from a few components) are accepted.

    Raises
    ------
    DataError
        The outputs exceed the bound.
    """
    stored = stored_bytes(dataset)
    declared = int(dataset.size) * int(dataset.dtype.itemsize)
    bound = max(MAX_OUTPUT_RATIO * stored, MAX_OUTPUT_FLOOR_BYTES)
    if output_bytes > bound and declared > MAX_OUTPUT_RATIO * stored:
        msg = (
            f"refusing to allocate {format_bytes(output_bytes)} of results for {dataset.name}: it declares "
            f"shape {dataset.shape} ({format_bytes(declared)}) but its file holds {format_bytes(stored)} of "
            f"its values; results from it may be at most {MAX_OUTPUT_RATIO} times that or "
            f"{format_bytes(MAX_OUTPUT_FLOOR_BYTES)}"
        )
        raise DataError(msg)


def space_needed(output_bytes: int) -> int:
    """Free bytes a job that allocates ``output_bytes`` needs: those plus the margin."""
    return int(output_bytes) + SPACE_MARGIN_BYTES + int(SPACE_MARGIN_FRACTION * output_bytes)


def check_free_space(folder: str | os.PathLike, output_bytes: int) -> None:
    """Refuse to allocate ``output_bytes`` (plus a margin) on a file system with less free space.

    A write that fails for lack of space half-way through HDF5's metadata can leave the file unreadable,
    so jobs check before they allocate (the margin covers the metadata and the final flush).

    Raises
    ------
    DataError
        Less free space in ``folder``'s file system than ``output_bytes + margin``; the message says what
        is needed, what is free, and to write the results elsewhere.
    """
    margin = space_needed(output_bytes) - output_bytes
    free = shutil.disk_usage(folder).free
    if free < output_bytes + margin:
        msg = (
            f"not enough free space in {os.fspath(folder)!r}: the results need "
            f"{format_bytes(output_bytes)} plus a margin of {format_bytes(margin)}, "
            f"{format_bytes(free)} are free; write them to another disk with --results FILE "
            f"(results=FILE in Python)"
        )
        raise DataError(msg)


_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.pycro-(?P<host>[A-Za-z0-9_]*)-(?P<pid>\d+)-[0-9a-f]{8}\.tmp$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40]


def temporary_path(final: str | os.PathLike) -> Path:
    """A new hidden temporary name for ``final`` in its folder (see the module notes)."""
    final = Path(final)
    return final.parent / f".{final.name}.pycro-{_host()}-{os.getpid()}-{os.urandom(4).hex()}.tmp"


def _process_running(pid: int) -> bool:
    if os.name == "nt":  # os.kill would terminate it; keep the file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of killed pycro_gpu runs in ``folder``; the paths removed.

    Only names of :func:`temporary_path`'s pattern, written on this host by a process that is gone.
    """
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            m = _TEMPORARY.match(entry.name)
            if m is None or m["host"] != _host() or int(m["pid"]) == os.getpid():
                continue
            if not _process_running(int(m["pid"])):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


_FALLOC_FL_KEEP_SIZE, _FALLOC_FL_PUNCH_HOLE = 1, 2


def _fallocate() -> Any:
    """libc's ``fallocate(fd, mode, offset, len)``, or None (not Linux, or not found)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).fallocate
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fn.restype = ctypes.c_int
    return fn


class SpaceReservation:
    """Disk blocks allocated past the end of a file for the writes a job is about to make.

    HDF5 allocates new objects at the end of the file; with the blocks already allocated there, the
    job's writes and the final metadata flush cannot fail for lack of space half-way (which can leave
    an HDF5 file unreadable) when another program fills the disk meanwhile. The file's size does not
    change (Linux ``fallocate`` with ``FALLOC_FL_KEEP_SIZE``); :meth:`release` gives back what the job
    did not use. Elsewhere, or where the file system cannot do it, nothing is reserved. A job killed
    outright leaves its unused blocks allocated past the end of the file (not in its size) until the
    next job on that file releases them.

    Parameters
    ----------
    path : str or path-like
        An existing file, open for writing by HDF5 or not.
    nbytes : int
        Bytes to reserve.

    Raises
    ------
    DataError
        The file system has not ``nbytes`` free.
    """

    def __init__(self, path: str | os.PathLike, nbytes: int) -> None:
        self.path = Path(path)
        self.start = 0
        self.nbytes = 0
        fallocate = _fallocate()
        if fallocate is None or nbytes <= 0:
            return
        fd = os.open(self.path, os.O_RDWR)
        try:
            start = os.fstat(fd).st_size
            if fallocate(fd, _FALLOC_FL_KEEP_SIZE, start, int(nbytes)) != 0:
                if ctypes.get_errno() == errno.ENOSPC:
                    msg = (
                        f"not enough free space in {str(self.path.parent)!r} to reserve "
                        f"{format_bytes(nbytes)} for the results; write them to another disk with "
                        f"--results FILE (results=FILE in Python)"
                    )
                    raise DataError(msg)
                return  # not supported here: no reservation
            self.start, self.nbytes = start, int(nbytes)
        finally:
            os.close(fd)

    def release(self) -> None:
        """Free the reserved blocks past the file's current end (those the job did not write)."""
        if not self.nbytes:
            return
        end, self.nbytes = self.start + self.nbytes, 0
        with contextlib.suppress(OSError):  # e.g. an empty results file already removed
            fd = os.open(self.path, os.O_RDWR)
            try:
                size = os.fstat(fd).st_size
                if end > size:
                    # blocks past the end go with a truncation to the same size (ext4 ignores holes
                    # punched there; tmpfs and XFS free them either way); the bytes do not change
                    _fallocate()(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, size, end - size)
                    os.ftruncate(fd, size)
            finally:
                os.close(fd)


#: errors of ``os.link`` on file systems without hard links
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}


def create_h5_atomically(path: str | os.PathLike) -> Path:
    """Create an empty HDF5 file at ``path``, which appears whole or not at all.

    The file is built under a :func:`temporary_path` and moved to ``path`` in one step (a hard link,
    which never replaces a file another process created meanwhile; ``os.replace`` where the file system
    has no hard links). Stale temporary files of killed runs in the folder are removed first.

    Raises
    ------
    DataError
        The folder does not exist or cannot be written.
    FileExistsError
        ``path`` appeared meanwhile.
    """
    path = Path(path)
    if not path.parent.is_dir():
        msg = f"cannot create {str(path)!r}: folder {str(path.parent)!r} does not exist"
        raise DataError(msg)
    remove_stale_temporaries(path.parent)
    tmp = temporary_path(path)
    try:
        try:
            h5py.File(tmp, "w").close()
        except OSError as exc:
            msg = f"cannot create {str(path)!r}: {exc}"
            raise DataError(msg) from None
        try:
            os.link(tmp, path)
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            if path.exists():
                raise FileExistsError(path) from None
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return path


def __getattr__(name: str) -> Any:
    # open_main and DEFAULT_RAW_DATA belong to the USID model and moved to pycro_gpu.io.usid; these
    # aliases keep old imports working for one release.
    if name in ("DEFAULT_RAW_DATA", "open_main"):
        import warnings

        from . import usid

        msg = f"pycro_gpu.io.hdf5.{name} moved to pycro_gpu.io.usid.{name}"
        warnings.warn(msg, DeprecationWarning, stacklevel=2)
        return getattr(usid, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
