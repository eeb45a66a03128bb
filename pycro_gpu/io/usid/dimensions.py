"""USID dimensions: the Dimension description, index grids and the N-D form of a Main dataset."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np

from ._attrs import _str_list

#: dtype of the index ancillary datasets
INDICES_DTYPE = np.dtype(np.uint32)


#: dtype of the value ancillary datasets
VALUES_DTYPE = np.dtype(np.float32)


#: the four object-reference attributes of a Main dataset
ANCILLARY_NAMES = ("Position_Indices", "Position_Values", "Spectroscopic_Indices", "Spectroscopic_Values")


class Dimension:
    """One position or spectroscopic dimension: name, units and the coordinate values.

    Parameters
    ----------
    name : str
        Label of the dimension (e.g. ``"X"``, ``"Frequency"``).
    units : str
        Physical units of the values (e.g. ``"m"``, ``"Hz"``; ``"a.u."`` when arbitrary).
    values : int or (n,) array_like
        Coordinate of each step, or a number of steps ``n`` meaning ``0, 1, ..., n - 1``.
        Stored in HDF5 as float32 (the USID convention).

    Examples
    --------
    >>> from pycro_gpu.io.usid import Dimension
    >>> Dimension("X", "m", 3)
    Dimension('X', 'm', 3 values from 0 to 2)
    >>> len(Dimension("Bias", "V", [-1.0, 0.0, 1.0]))
    3
    """

    __slots__ = ("name", "units", "values")

    def __init__(self, name: str, units: str, values: Any) -> None:
        if not isinstance(name, str) or not name:
            msg = f"Dimension name must be a non-empty string, got {name!r}"
            raise ValueError(msg)
        if not isinstance(units, str):
            msg = f"Dimension {name!r}: units must be a string, got {units!r}"
            raise ValueError(msg)
        if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
            if values < 1:
                msg = f"Dimension {name!r}: number of steps must be >= 1, got {values}"
                raise ValueError(msg)
            arr = np.arange(int(values), dtype=np.float64)
        else:
            arr = np.asarray(values)
            if arr.ndim != 1 or arr.size < 1:
                msg = f"Dimension {name!r}: values must be a non-empty 1-D sequence, got shape {arr.shape}"
                raise ValueError(msg)
            if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
                msg = f"Dimension {name!r}: values must be real numbers, got dtype {arr.dtype}"
                raise ValueError(msg)
        self.name = name
        self.units = units
        self.values = arr

    def __len__(self) -> int:
        return int(self.values.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Dimension):
            return NotImplemented
        return (
            self.name == other.name
            and self.units == other.units
            and self.values.shape == other.values.shape
            and bool(np.all(self.values == other.values))
        )

    __hash__ = None  # mutable values

    def __repr__(self) -> str:
        v = self.values
        return f"Dimension({self.name!r}, {self.units!r}, {v.size} values from {v[0]:g} to {v[-1]:g})"


def _as_dims(dims: Any, what: str) -> list[Dimension]:
    if isinstance(dims, Dimension):
        dims = [dims]
    try:
        dims = list(dims)
    except TypeError:
        msg = f"{what} must be a Dimension or a sequence of Dimension, got {type(dims).__name__}"
        raise TypeError(msg) from None
    for d in dims:
        if not isinstance(d, Dimension):
            msg = f"{what} must contain Dimension objects, got {type(d).__name__}"
            raise TypeError(msg)
    if not dims:
        msg = f"{what} must hold at least one Dimension"
        raise ValueError(msg)
    names = [d.name for d in dims]
    if len(set(names)) != len(names):
        msg = f"{what} has repeated dimension names: {names}"
        raise ValueError(msg)
    return dims


def _build_indices(sizes: Sequence[int]) -> np.ndarray:
    """Index table ``(N, n_dims)`` with the first dimension varying fastest."""
    n = math.prod(sizes)
    out = np.empty((n, len(sizes)), dtype=INDICES_DTYPE)
    ramp = np.arange(n, dtype=np.int64)
    stride = 1
    for k, s in enumerate(sizes):
        out[:, k] = (ramp // stride) % s
        stride *= s
    return out


def _dims_grid(dims: list[Dimension]) -> dict[str, Any]:
    """Grid description of freshly written dimensions (listed fastest first, rows in order)."""
    return {"dims": dims, "order": list(range(len(dims))), "shape": tuple(len(d) for d in dims), "perm": None}


def _anc_grid(h5_inds: h5py.Dataset, h5_vals: h5py.Dataset, *, spectroscopic: bool) -> dict[str, Any]:
    inds, vals = h5_inds[()], h5_vals[()]
    if spectroscopic:
        inds, vals = inds.T, vals.T
    return _grid(inds, vals, _str_list(h5_inds.attrs["labels"]), _str_list(h5_inds.attrs["units"]))


def _nd_shape(pos: dict[str, Any], spec: dict[str, Any]) -> tuple[int, ...] | None:
    """Shape of the N-D form (label order), ``None`` when either grid is incomplete."""
    if pos["shape"] is None or spec["shape"] is None:
        return None
    return pos["shape"] + spec["shape"]


def _nd_axes(pos: dict[str, Any], spec: dict[str, Any]) -> tuple[list[int], list[int]]:
    """Slowest-first sizes of the stored layout and the axes taking it to label order."""
    slow = [pos["shape"][k] for k in pos["order"]][::-1] + [spec["shape"][k] for k in spec["order"]][::-1]
    n_p, n_s = len(pos["order"]), len(spec["order"])
    axes = [n_p - 1 - pos["order"].index(k) for k in range(n_p)]
    axes += [n_p + n_s - 1 - spec["order"].index(k) for k in range(n_s)]
    return slow, axes


def _to_n_dim(arr: np.ndarray, pos: dict[str, Any], spec: dict[str, Any]) -> np.ndarray:
    """2-D ``(N_pos, N_spec)`` in stored row/column order to N-D in label order."""
    if pos["perm"] is not None:
        arr = arr[pos["perm"]]
    if spec["perm"] is not None:
        arr = arr[:, spec["perm"]]
    slow, axes = _nd_axes(pos, spec)
    return np.transpose(arr.reshape(tuple(slow)), axes)


def _from_n_dim(nd: np.ndarray, pos: dict[str, Any], spec: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`_to_n_dim`."""
    _, axes = _nd_axes(pos, spec)
    n_pos, n_spec = math.prod(pos["shape"]), math.prod(spec["shape"])
    arr = np.transpose(nd, np.argsort(axes)).reshape(n_pos, n_spec)
    if pos["perm"] is not None:
        arr = arr[np.argsort(pos["perm"])]
    if spec["perm"] is not None:
        arr = arr[:, np.argsort(spec["perm"])]
    return arr


def _unique_rows_of(col: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(col, return_index=True, return_inverse=True)``; linear time for compact integer indices.

    Position index columns of a million-point map are small integers: a table lookup instead of
    ``unique``'s sort saves most of the time of opening such a dataset.
    """
    col = np.asarray(col).reshape(-1)
    if col.size and col.dtype.kind in "iu":
        lo, hi = int(col.min()), int(col.max())
        if hi - lo <= 4 * col.size:
            off = (col - lo).astype(np.intp, copy=False)
            first = np.full(hi - lo + 1, col.size, dtype=np.intp)
            first[off[::-1]] = np.arange(col.size - 1, -1, -1, dtype=np.intp)  # last write (lowest row) wins
            present = first < col.size
            lut = np.cumsum(present) - 1
            uniq = (np.flatnonzero(present) + lo).astype(col.dtype)
            return uniq, first[present], lut[off]
    uniq, first, inverse = np.unique(col, return_index=True, return_inverse=True)
    return uniq, first, inverse.reshape(-1)


def _grid(inds: np.ndarray, vals: np.ndarray, labels: list[str], units: list[str]) -> dict[str, Any]:
    """Infer dimensions from an ``(N, n_dims)`` index/value table (rows = flattened steps).

    Returns the dimensions in label order, the speed order (fastest first), the shape in label order
    (``None`` for an incomplete grid) and the row permutation putting rows in C order (``None`` when
    they already are).
    """
    n, n_dims = inds.shape
    codes = np.empty(inds.shape, dtype=np.int64)
    sizes = []
    dims = []
    for k in range(n_dims):
        uniq, first, inverse = _unique_rows_of(inds[:, k])
        codes[:, k] = inverse
        sizes.append(int(uniq.size))
        dims.append(Dimension(labels[k], units[k], vals[first, k].astype(np.float64)))
    changes = [int(np.count_nonzero(np.diff(inds[:, k]))) for k in range(n_dims)]
    # fastest first; ties keep label order (pyUSID: argsort of change counts, reversed)
    order = sorted(range(n_dims), key=lambda k: -changes[k])
    shape = tuple(sizes)
    perm = None
    if math.prod(sizes) != n:
        shape = None
    else:
        lin = np.zeros(n, dtype=np.int64)
        stride = 1
        for k in order:
            lin += codes[:, k] * stride
            stride *= sizes[k]
        if not np.array_equal(lin, np.arange(n)):
            perm = np.argsort(lin, kind="stable")
            if not np.array_equal(lin[perm], np.arange(n)):
                shape = None
                perm = None
    return {"dims": dims, "order": order, "shape": shape, "perm": perm}
