"""Where the streamed SVD puts ``U``: in memory, or an HDF5 dataset with a spill store for the sketch.

A *U sink* receives the rows of a first estimate of ``U`` batch by batch, ``write(start, stop, block)``,
then ``apply(C, gram=False)`` right-multiplies every stored row by the small matrix ``C`` (``width x k``)
and, with ``gram=True``, returns the Gram matrix ``U^H U`` of the result (for the precision
refinement). ``apply`` may be called again with a ``k x k`` correction. ``discard()`` forgets what was
written (the SVD changed its mind, for example from the sketch to the Gram method).

The Gram and randomized methods write ``U`` itself (``k`` columns); the sketch method writes its
range sketch ``Y = A Omega`` (``l > k`` columns), which only becomes ``U = Y C`` once the whole matrix
has been seen. :class:`HDF5USink` keeps such wider blocks in a :class:`SpillRows` store: in memory up to
its budget, in an anonymous temporary file (``TMPDIR``) beyond it, never in the results file (HDF5
does not give back the space of deleted datasets).
"""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np

from .._config import budget_mb, rows_for_budget
from .._lib.linalg import herm
from .._lib.typing import Array, Namespace
from ..backend import from_host, to_host

__all__ = ["ArrayUSink", "HDF5USink", "SpillRows"]

#: Rows per batch of :meth:`HDF5USink.apply` at most.
APPLY_BATCH_ROWS = 65536


class ArrayUSink:
    """Collects ``U`` batches in memory (namespace ``xp``); ``U`` is the result after :meth:`apply`."""

    def __init__(self, xp: Namespace) -> None:
        self.xp = xp
        self.blocks: list[Array] = []
        self.U: Array | None = None

    def write(self, start: int, stop: int, block: Array) -> None:
        self.blocks.append(block)

    def apply(self, C: Array, *, gram: bool = False) -> Array | None:
        if self.blocks:
            U = self.xp.concat(self.blocks, axis=0) if len(self.blocks) > 1 else self.blocks[0]
            self.blocks = []
        else:
            U = self.U
        self.U = U @ C
        return herm(self.U, self.xp) @ self.U if gram else None

    def discard(self) -> None:
        self.blocks = []
        self.U = None


class SpillRows:
    """Host store of an ``(n_rows, n_cols)`` matrix written and read by row spans.

    In memory when it takes at most ``memory_bytes``, otherwise in an anonymous temporary file (deleted
    by the operating system when closed, also if the process dies).
    """

    def __init__(self, n_rows: int, n_cols: int, dtype: Any, *, memory_bytes: float) -> None:
        self.shape = (int(n_rows), int(n_cols))
        self.dtype = np.dtype(dtype)
        self.row_bytes = self.shape[1] * self.dtype.itemsize
        self.array: np.ndarray | None = None
        self.file: Any = None
        if self.shape[0] * self.row_bytes <= memory_bytes:
            self.array = np.empty(self.shape, dtype=self.dtype)
        else:
            self.file = tempfile.TemporaryFile(prefix="pycro_gpu-svd-")  # noqa: SIM115 - closed by close()

    def write(self, start: int, stop: int, block: np.ndarray) -> None:
        host = np.ascontiguousarray(block, dtype=self.dtype)
        if self.array is not None:
            self.array[start:stop] = host
            return
        self.file.seek(start * self.row_bytes)
        self.file.write(memoryview(host).cast("B"))

    def read(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``start:stop``; from the file into ``out`` (reused by the caller, at least that many rows)."""
        if self.array is not None:
            return self.array[start:stop]
        if out is None:
            out = np.empty((stop - start, self.shape[1]), dtype=self.dtype)
        out = out[: stop - start]
        self.file.seek(start * self.row_bytes)
        view = memoryview(out).cast("B")
        got = 0
        while got < len(view):
            n = self.file.readinto(view[got:])
            if not n:
                msg = f"spill file ended early at row {start} (read {got} of {len(view)} bytes)"
                raise OSError(msg)
            got += n
        return out

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        self.file = None
        self.array = None


class HDF5USink:
    """Writes ``U`` batches into an HDF5 dataset of ``k`` columns; wider sketch blocks go to a spill store.

    Parameters
    ----------
    dset : h5py.Dataset
        ``(n_rows, k)`` dataset that receives ``U``.
    xp : namespace
        Namespace of the blocks and of ``C``.
    memory_mb : float, optional
        Budget of one batch of the final pass; a quarter of it may hold the spilled sketch in memory.
    device : optional
        Device of ``xp``.
    """

    def __init__(self, dset: Any, xp: Namespace, *, memory_mb: float | None = None, device: Any = None):
        self.dset = dset
        self.xp = xp
        self.memory_mb = memory_mb
        self.device = device
        self.shape = (int(dset.shape[0]), int(dset.shape[1]))  # h5py's shape is a metadata query
        self.spill: SpillRows | None = None

    def write(self, start: int, stop: int, block: Array) -> None:
        host = to_host(block)
        if self.spill is None and host.shape[1] == self.shape[1]:
            self.dset[start:stop, :] = host.astype(self.dset.dtype, copy=False)
            return
        if self.spill is None:
            mb = budget_mb(self.memory_mb)
            self.spill = SpillRows(self.shape[0], host.shape[1], host.dtype, memory_bytes=mb * 2**20 / 4)
        self.spill.write(start, stop, host)

    def apply(self, C: Array, *, gram: bool = False) -> Array | None:
        host_c = to_host(C)
        spill = self.spill
        if spill is None and not gram and np.array_equal(host_c, np.eye(host_c.shape[0])):
            return None
        width = spill.shape[1] if spill is not None else self.shape[1]
        item = max(self.dset.dtype.itemsize, np.dtype(host_c.dtype).itemsize)
        # modest batches into one reused buffer: fresh large allocations cost page faults on every pass
        rows = min(rows_for_budget(width + host_c.shape[1], 3 * item, self.memory_mb), APPLY_BATCH_ROWS)
        buf = np.empty((rows, width), dtype=spill.dtype) if spill is not None else None
        H = None
        n = self.shape[0]
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            old = spill.read(start, stop, buf) if spill is not None else self.dset[start:stop, :]
            u = from_host(old, self.xp, device=self.device, dtype=C.dtype) @ C
            if gram:
                h = herm(u, self.xp) @ u
                H = h if H is None else H + h
            self.dset[start:stop, :] = to_host(u).astype(self.dset.dtype, copy=False)
        if spill is not None:
            spill.close()
            self.spill = None
        return H

    def discard(self) -> None:
        if self.spill is not None:
            self.spill.close()
            self.spill = None
