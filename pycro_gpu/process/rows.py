"""Row-batch sources: stream a 2-D matrix (in memory or in HDF5) as position batches.

A *row source* has ``shape`` ``(n_rows, n_cols)``, ``dtype`` (NumPy dtype of the stored data) and
``batches(rows)``, a generator of ``(start, stop, block)`` where ``block`` is the
``(stop - start, n_cols)`` slice as an array of the source's namespace ``xp``. Sources can be iterated
any number of times, which multi-pass algorithms (streamed SVD, power iterations) need. ``sample(count)``
returns about ``count`` rows taken in evenly spaced blocks over the whole matrix (a cheap, representative
look at the data, used to warm-start the sketched SVD).

The HDF5 source reads chunk-aligned slices into two reusable host buffers
(:class:`pycro_gpu.io.hdf5.BatchReader`, ``read_direct``) and prefetches the next batch on a worker
thread while the caller computes on the current one (h5py and BLAS both release the GIL for the heavy
work). Blocks handed out are valid only until the next one is requested: consumers reduce them (Gram,
projections) or copy what they keep.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._lib.typing import Array, Namespace
from ..backend import array_namespace, device_of, from_host, get_namespace
from ..errors import DataError

__all__ = [
    "ArrayRows",
    "HDF5Rows",
    "as_row_source",
    "batch_rows_at_least",
    "feature_rows",
    "real_features",
    "sample_spans",
]

#: Evenly spaced blocks that :meth:`ArrayRows.sample` and :meth:`HDF5Rows.sample` read.
SAMPLE_BLOCKS = 16


def sample_spans(n_rows: int, count: int, align: int = 1) -> list[tuple[int, int]]:
    """Row spans ``(start, stop)`` of about ``count`` rows in evenly spaced blocks covering ``n_rows``.

    Blocks start on multiples of ``align`` (HDF5 chunk rows) and hold at least ``align`` rows, so a
    sample reads whole chunks. The spans are sorted and do not overlap; all rows when ``count >= n_rows``.
    """
    n_rows, align = int(n_rows), max(1, int(align))
    count = min(max(1, int(count)), n_rows)
    if count >= n_rows:
        return [(0, n_rows)]
    n_blocks = max(1, min(SAMPLE_BLOCKS, count // align))
    block = max(align, math.ceil(count / n_blocks / align) * align)
    last = max(0, n_rows - block)
    spans: list[tuple[int, int]] = []
    for i in range(n_blocks):
        start = (last * i // max(1, n_blocks - 1)) // align * align if n_blocks > 1 else 0
        if spans and start < spans[-1][1]:
            start = spans[-1][1]
        stop = min(start + block, n_rows)
        if start < stop:
            spans.append((start, stop))
    return spans


class ArrayRows:
    """Row source over a 2-D array already in memory (any array-API namespace).

    Parameters
    ----------
    a : (n_rows, n_cols) array
    xp : namespace, optional
        Namespace of ``a``; detected when omitted.
    """

    def __init__(self, a: Array, *, xp: Namespace | None = None) -> None:
        if xp is None:
            xp = array_namespace(a)
        if a.ndim != 2:
            msg = f"data must be a 2-D (positions x spectral points) array, got shape {tuple(a.shape)}"
            raise DataError(msg)
        self.a = a
        self.xp = xp
        self.device = device_of(a)
        self.shape = (int(a.shape[0]), int(a.shape[1]))
        self.dtype = _numpy_dtype(a.dtype, xp)
        self.chunk_rows = 1

    def batches(self, rows: int) -> Iterator[tuple[int, int, Array]]:
        rows = max(1, int(rows))
        for start in range(0, self.shape[0], rows):
            stop = min(start + rows, self.shape[0])
            yield start, stop, self.a[start:stop, :]

    def sample(self, count: int) -> Array:
        """About ``count`` rows in evenly spaced blocks (see :func:`sample_spans`)."""
        blocks = [self.a[s:e, :] for s, e in sample_spans(self.shape[0], count)]
        return blocks[0] if len(blocks) == 1 else self.xp.concat(blocks, axis=0)


class HDF5Rows:
    """Row source over a 2-D ``h5py.Dataset``, read in chunk-aligned batches with prefetch.

    Parameters
    ----------
    dset : h5py.Dataset
        2-D dataset of real or complex numbers (rows = positions).
    xp : namespace, optional
        Namespace the blocks are moved to (default: the configured backend's).
    device : optional
        Device of ``xp`` to place blocks on.
    prefetch : bool
        Read the next batch on a worker thread while the current one is processed.
    """

    def __init__(
        self, dset: Any, *, xp: Namespace | None = None, device: Any = None, prefetch: bool = True
    ) -> None:
        if dset.ndim != 2:
            msg = f"dataset {dset.name!r} must be 2-D (positions x spectral points), got shape {dset.shape}"
            raise DataError(msg)
        if dset.dtype.kind not in "fc" and dset.dtype.kind not in "iu":
            msg = (
                f"dataset {dset.name!r} has dtype {dset.dtype}; decomposition needs real or complex numbers"
                " (split compound datasets into their fields first)"
            )
            raise DataError(msg)
        self.dset = dset
        self.xp = get_namespace() if xp is None else xp
        self.device = device
        self.prefetch = prefetch
        self.shape = (int(dset.shape[0]), int(dset.shape[1]))
        self.dtype = dset.dtype if dset.dtype.kind in "fc" else np.dtype(np.float64)
        self.chunk_rows = int(dset.chunks[0]) if dset.chunks else 1

    def batches(self, rows: int) -> Iterator[tuple[int, int, Array]]:
        from ..io.hdf5 import BatchReader

        rows = max(1, int(rows))
        if self.chunk_rows > 1 and rows > self.chunk_rows:  # whole chunks per read
            rows = (rows // self.chunk_rows) * self.chunk_rows
        n = self.shape[0]
        rows = min(rows, n)
        spans = [slice(s, min(s + rows, n)) for s in range(0, n, rows)]
        reader = BatchReader(self.dset, rows, n_buffers=2 if self.prefetch else 1, dtype=self.dtype)
        for sl, block in reader.iter_slices(spans):
            yield sl.start, sl.stop, self._to_xp(block)

    def sample(self, count: int) -> Array:
        """About ``count`` rows in evenly spaced, chunk-aligned blocks (see :func:`sample_spans`)."""
        spans = sample_spans(self.shape[0], count, self.chunk_rows)
        out = np.empty((sum(e - s for s, e in spans), self.shape[1]), dtype=self.dtype)
        at = 0
        for s, e in spans:
            self.dset.read_direct(out, np.s_[s:e], np.s_[at : at + e - s])
            at += e - s
        return self._to_xp(out)

    def _to_xp(self, block: np.ndarray) -> Array:
        return from_host(block, self.xp, device=self.device)


def as_row_source(data: Any, *, xp: Namespace | None = None) -> Any:
    """Wrap ``data`` (array, ``h5py.Dataset`` or an existing row source) as a row source."""
    if hasattr(data, "batches") and hasattr(data, "shape"):
        return data
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a hard dependency
        h5py = None
    if h5py is not None and isinstance(data, h5py.Dataset):
        return HDF5Rows(data, xp=xp)
    if isinstance(data, (list, tuple)):
        msg = f"data must be a 2-D array or h5py.Dataset, got {type(data).__name__}"
        raise DataError(msg)
    return ArrayRows(data, xp=xp)


def _numpy_dtype(dtype: Any, xp: Namespace) -> np.dtype:
    """NumPy equivalent of an array-API dtype (by kind and size)."""
    for name in ("complex128", "complex64", "float64", "float32", "float16"):
        if hasattr(xp, name) and dtype == getattr(xp, name):
            return np.dtype(name)
    if xp.isdtype(dtype, "integral") or xp.isdtype(dtype, "bool"):
        return np.dtype(np.float64)
    msg = f"unsupported dtype {dtype} for decomposition"
    raise DataError(msg)


def n_batches(n_rows: int, rows: int) -> int:
    """Number of batches of ``rows`` rows that cover ``n_rows``."""
    return math.ceil(n_rows / max(1, rows))


def real_features(block: Array, xp: Namespace) -> Array:
    """Real float64 features of a batch: complex spectra become ``[Re, Im]`` (as pycroscopy does)."""
    if xp.isdtype(block.dtype, "complex floating"):
        block = xp.concat([xp.real(block), xp.imag(block)], axis=1)
    return xp.astype(block, xp.float64)


def feature_rows(
    block: Array, xp: Namespace, start: int, stop: int, *, what: str = "data"
) -> dict[str, Array]:
    """One batch of a features read (clustering, decomposition): ``{"F": real_features(block)}``,
    checked finite (``what`` names the routine in the error)."""
    from .._lib.checks import require_finite

    require_finite(block, f"{what}: rows {start}:{stop} of the data")
    return {"F": real_features(block, xp)}


def batch_rows_at_least(n_rows: int, rows: int, minimum: int) -> int:
    """Rows per batch near ``rows`` such that no batch of ``n_rows`` holds fewer than ``minimum`` rows
    (``partial_fit`` of ``k`` clusters or components needs ``k`` samples)."""
    rows = min(int(n_rows), max(int(rows), int(minimum)))
    n_full = n_rows // rows
    if 0 < n_rows % rows < minimum and n_full:
        rows = -(-n_rows // n_full)
    return rows
