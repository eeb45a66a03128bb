"""HDF5 streaming helpers: safe opening, batch sizing from the memory budget, chunk-aligned batch
slices and a reader that fills reusable buffers with ``read_direct``.

These are the building blocks of :mod:`pycro_gpu.process`; translators and analysis routines that
stream a Main dataset use them directly.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
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
    "batch_slices",
    "open_h5",
    "plan_batch_rows",
]

#: headroom on top of the estimated bytes per position (allocator slack, temporaries)
SAFETY_FACTOR = 1.25


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
) -> int:
    """Number of positions per batch that fits the working-memory budget.

    The memory of one batch row is ``SAFETY_FACTOR * (bytes_in * (n_buffers + work_multiplier) +
    2 * bytes_out)``: ``n_buffers`` host read buffers (double buffering for prefetch), the device
    copy plus the compute's work memory (``work_multiplier`` times the input, e.g. 4 for an FFT that
    makes complex temporaries), and the results on device and on host.

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
    per_row = SAFETY_FACTOR * (bytes_in_per_row * (n_buffers + work_multiplier) + 2 * bytes_out_per_row)
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
        self, dataset: h5py.Dataset, max_rows: int, *, n_buffers: int = 2, dtype: Any = None
    ) -> None:
        if dataset.ndim != 2:
            msg = f"BatchReader needs a 2-D dataset, {dataset.name} has shape {dataset.shape}"
            raise DataError(msg)
        self.dataset = dataset
        self.dtype = np.dtype(dataset.dtype if dtype is None else dtype)
        rows = max(1, min(int(max_rows), dataset.shape[0]))
        self.buffers = [np.empty((rows, dataset.shape[1]), dtype=self.dtype) for _ in range(n_buffers)]

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
