"""The USID data model in HDF5: Main datasets, their ancillary datasets, and results groups.

A *Main* dataset is 2-D, shape ``(N_pos, N_spec)``: one row per position (all position dimensions
flattened) and one column per spectroscopic step (all spectroscopic dimensions flattened). It carries
the string attributes ``quantity`` and ``units`` and four object-reference attributes to its
*ancillary* datasets:

==========================  ==========================  =======  ==========================
attribute / dataset         shape                       dtype    attributes
==========================  ==========================  =======  ==========================
``Position_Indices``        ``(N_pos, n_pos_dims)``     uint32   ``labels``, ``units``
``Position_Values``         ``(N_pos, n_pos_dims)``     float32  ``labels``, ``units``
``Spectroscopic_Indices``   ``(n_spec_dims, N_spec)``   uint32   ``labels``, ``units``
``Spectroscopic_Values``    ``(n_spec_dims, N_spec)``   float32  ``labels``, ``units``
==========================  ==========================  =======  ==========================

``labels`` and ``units`` are arrays of byte strings, one per dimension. This is exactly what pyUSID
(checked against pyUSID 0.0.12) writes and what its ``check_if_main`` / ``USIDataset`` /
``get_n_dim_form`` accept; several Main datasets may share one set of ancillary datasets.

Dimension order convention
--------------------------
*Writing* (:func:`write_main`, :func:`create_main`): dimensions are listed **fastest-varying first**,
as in pyUSID. ``pos_dims[0]`` changes fastest along the rows of the 2-D Main dataset, and an N-D
array is indexed ``data[pos_0, pos_1, ..., spec_0, spec_1, ...]`` in the order the dimensions are
listed. For a ``(X, Y)`` image with ``pos_dims=[X, Y]`` the row of pixel ``(x, y)`` is ``y * n_x + x``.

*Reading* (:class:`USIDataset`): files in the wild list their dimensions either fastest-first or
slowest-first, so the order in which the dimensions vary is inferred from the index datasets, as
pyUSID does: a dimension whose index changes more often along the flattened axis is faster. The N-D
form is always returned with its axes in the order of the ``labels`` attribute (positions then
spectroscopic), whatever the storage order; that is pyUSID's ``get_n_dim_form()`` layout.

Incomplete grids
----------------
A position grid is *complete* when the index tuples of the rows are exactly the Cartesian product of
the per-dimension index sets (the rows may be stored in any order; they are put in order on read).
Sparse or interrupted scans (e.g. ``sparse_sampling.h5``: 8 positions with 8 distinct X and Y
values) are not: their :attr:`USIDataset.n_dim_shape` is ``None``, :meth:`USIDataset.get_n_dim_form`
raises :class:`~pycro_gpu.errors.USIDError` saying so, and the 2-D data, the per-position
coordinates (:meth:`USIDataset.position_table`) and streaming work as for any Main dataset.

Results groups
--------------
Results of a tool applied to a Main dataset go to a sibling group ``<Source>-<Tool>_NNN`` (see
:func:`create_results_group`) holding the parameters as attributes, ``tool``, a reference to the
source, a timestamp and the pycro_gpu version, so that a re-run with the same parameters finds the
finished group (:func:`find_results`).
"""

from __future__ import annotations

import json
import math
import platform
import socket
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import h5py
import numpy as np

from ..errors import DataError, USIDError

__all__ = [
    "ANCILLARY_NAMES",
    "INDICES_DTYPE",
    "VALUES_DTYPE",
    "Dimension",
    "USIDataset",
    "check_main",
    "create_dataset",
    "create_main",
    "create_results_group",
    "describe_file",
    "find_main_datasets",
    "find_results",
    "is_main",
    "iter_results_groups",
    "results_parameters",
    "write_main",
    "writing_results",
]

#: dtype of the index ancillary datasets
INDICES_DTYPE = np.dtype(np.uint32)
#: dtype of the value ancillary datasets
VALUES_DTYPE = np.dtype(np.float32)
#: the four object-reference attributes of a Main dataset
ANCILLARY_NAMES = ("Position_Indices", "Position_Values", "Spectroscopic_Indices", "Spectroscopic_Values")


def _version() -> str:
    from .. import __version__

    return __version__


# ----------------------------------------------------------------------------------------------------
# attribute helpers
# ----------------------------------------------------------------------------------------------------


def _decode(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _str_list(value: Any) -> list[str]:
    """Decode a ``labels``/``units`` attribute (bytes array, str array, str or bytes) to a list."""
    if isinstance(value, (str, bytes)):
        return [_decode(value)]
    arr = np.asarray(value)
    if arr.ndim == 0:
        return [_decode(arr[()])]
    return [_decode(v) for v in arr.ravel().tolist()]


def _scalar(value: Any) -> Any:
    """An attribute stored as a one-element array (as some writers do) as that element."""
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.ravel()[0]
    return value


def _str_attr(value: Any) -> str:
    return _decode(_scalar(value))


def _encode_list(items: Sequence[str]) -> np.ndarray:
    """Strings as a fixed-length byte-string array, the form pyUSID writes (``labels``, ``units``)."""
    encoded = [str(s).encode("utf-8") for s in items]
    width = max([1, *(len(e) for e in encoded)])
    return np.array(encoded, dtype=f"S{width}")


def _basename(obj: h5py.HLObject) -> str:
    """Last component of an HDF5 object's path."""
    return obj.name.rsplit("/", 1)[-1]


def _timestamp() -> str:
    return time.strftime("%Y_%m_%d-%H_%M_%S")


# ----------------------------------------------------------------------------------------------------
# Dimension
# ----------------------------------------------------------------------------------------------------


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


def _write_ancillaries(
    group: h5py.Group, dims: list[Dimension], *, spectroscopic: bool, prefix: str
) -> tuple[h5py.Dataset, h5py.Dataset]:
    names = (prefix + "Indices", prefix + "Values")
    for n in names:
        if n in group:
            msg = (
                f"{group.name}/{n} already exists; pass the existing ancillary datasets "
                f"(h5_{'spec' if spectroscopic else 'pos'}_inds/_vals) to share them, or another prefix"
            )
            raise USIDError(msg)
    inds = _build_indices([len(d) for d in dims])
    vals = np.empty(inds.shape, dtype=VALUES_DTYPE)
    for k, d in enumerate(dims):
        vals[:, k] = d.values.astype(VALUES_DTYPE)[inds[:, k]]
    if spectroscopic:
        inds, vals = inds.T.copy(), vals.T.copy()
    labels = _encode_list([d.name for d in dims])
    units = _encode_list([d.units for d in dims])
    h5_inds = group.create_dataset(names[0], data=inds, dtype=INDICES_DTYPE)
    h5_vals = group.create_dataset(names[1], data=vals, dtype=VALUES_DTYPE)
    for ds in (h5_inds, h5_vals):
        ds.attrs["labels"] = labels
        ds.attrs["units"] = units
    return h5_inds, h5_vals


def _check_anc_pair(h5_inds: Any, h5_vals: Any, n: int, *, spectroscopic: bool, where: str) -> None:
    kind = "spectroscopic" if spectroscopic else "position"
    for ds in (h5_inds, h5_vals):
        if not isinstance(ds, h5py.Dataset):
            msg = f"{where}: the {kind} ancillary must be an h5py.Dataset, got {type(ds).__name__}"
            raise TypeError(msg)
    axis = 1 if spectroscopic else 0
    if h5_inds.ndim != 2 or h5_inds.shape != h5_vals.shape or h5_inds.shape[axis] != n:
        msg = (
            f"{where}: {kind} ancillaries {h5_inds.name} {h5_inds.shape} / {h5_vals.name} {h5_vals.shape} "
            f"do not fit {n} {'columns' if spectroscopic else 'rows'}"
        )
        raise USIDError(msg)


def _prepare_main(
    group: h5py.Group,
    name: str,
    pos_dims: Any,
    spec_dims: Any,
    quantity: str,
    units: str,
    *,
    h5_pos_inds: h5py.Dataset | None,
    h5_pos_vals: h5py.Dataset | None,
    h5_spec_inds: h5py.Dataset | None,
    h5_spec_vals: h5py.Dataset | None,
) -> tuple[list[Dimension] | None, list[Dimension] | None, int, int, dict[str, h5py.Dataset | None]]:
    """Check the arguments of a new Main dataset.

    Returns the dimensions to write (``None`` where ancillaries are shared), ``N_pos``, ``N_spec`` and
    the four ancillaries by attribute name (``None`` where :func:`_link` is to write them).
    """
    if not isinstance(group, h5py.Group):
        msg = f"group must be an h5py.Group (or File), got {type(group).__name__}"
        raise TypeError(msg)
    if not isinstance(name, str) or not name or "/" in name:
        msg = f"name must be a dataset name without '/', got {name!r}"
        raise ValueError(msg)
    if name in group:
        msg = f"{group.name.rstrip('/')}/{name} already exists"
        raise USIDError(msg)
    for label, v in (("quantity", quantity), ("units", units)):
        if not isinstance(v, str):
            msg = f"{label} must be a string, got {v!r}"
            raise TypeError(msg)
    shared_pos = h5_pos_inds is not None or h5_pos_vals is not None
    shared_spec = h5_spec_inds is not None or h5_spec_vals is not None
    if shared_pos and (h5_pos_inds is None or h5_pos_vals is None):
        msg = "give both h5_pos_inds and h5_pos_vals to share position ancillaries"
        raise ValueError(msg)
    if shared_spec and (h5_spec_inds is None or h5_spec_vals is None):
        msg = "give both h5_spec_inds and h5_spec_vals to share spectroscopic ancillaries"
        raise ValueError(msg)
    if shared_pos:
        pdims = None
        n_pos = int(h5_pos_inds.shape[0])
    else:
        if pos_dims is None:
            msg = "pos_dims is required unless h5_pos_inds and h5_pos_vals are given"
            raise ValueError(msg)
        pdims = _as_dims(pos_dims, "pos_dims")
        n_pos = math.prod(len(d) for d in pdims)
    if shared_spec:
        sdims = None
        n_spec = int(h5_spec_inds.shape[1])
    else:
        if spec_dims is None:
            msg = "spec_dims is required unless h5_spec_inds and h5_spec_vals are given"
            raise ValueError(msg)
        sdims = _as_dims(spec_dims, "spec_dims")
        n_spec = math.prod(len(d) for d in sdims)
    if shared_pos:
        _check_anc_pair(h5_pos_inds, h5_pos_vals, n_pos, spectroscopic=False, where="h5_pos_inds")
    if shared_spec:
        _check_anc_pair(h5_spec_inds, h5_spec_vals, n_spec, spectroscopic=True, where="h5_spec_inds")
    anc = dict(zip(ANCILLARY_NAMES, (h5_pos_inds, h5_pos_vals, h5_spec_inds, h5_spec_vals), strict=True))
    return pdims, sdims, n_pos, n_spec, anc


def _link(
    main: h5py.Dataset,
    group: h5py.Group,
    pdims: list[Dimension] | None,
    sdims: list[Dimension] | None,
    quantity: str,
    units: str,
    anc: dict[str, h5py.Dataset | None],
    prefixes: tuple[str, str],
    attrs: Mapping[str, Any] | None,
) -> None:
    if pdims is not None:
        anc["Position_Indices"], anc["Position_Values"] = _write_ancillaries(
            group, pdims, spectroscopic=False, prefix=prefixes[0]
        )
    if sdims is not None:
        anc["Spectroscopic_Indices"], anc["Spectroscopic_Values"] = _write_ancillaries(
            group, sdims, spectroscopic=True, prefix=prefixes[1]
        )
    main.attrs["quantity"] = quantity
    main.attrs["units"] = units
    for key in ANCILLARY_NAMES:
        main.attrs[key] = anc[key].ref
    main.attrs["timestamp"] = _timestamp()
    main.attrs["pycro_gpu_version"] = _version()
    for k, v in (attrs or {}).items():
        main.attrs[k] = v


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


def _link_or_remove(main: h5py.Dataset, group: h5py.Group, *link_args: Any) -> USIDataset:
    """Attach ancillaries and attributes to a new Main dataset; delete it if that fails."""
    try:
        _link(main, group, *link_args)
    except BaseException:
        del group[_basename(main)]
        raise
    return USIDataset(main)


def write_main(
    group: h5py.Group,
    name: str,
    data: Any,
    pos_dims: Sequence[Dimension] | Dimension | None,
    spec_dims: Sequence[Dimension] | Dimension | None,
    quantity: str,
    units: str,
    *,
    dtype: Any = None,
    chunks: Any = None,
    compression: Any = None,
    h5_pos_inds: h5py.Dataset | None = None,
    h5_pos_vals: h5py.Dataset | None = None,
    h5_spec_inds: h5py.Dataset | None = None,
    h5_spec_vals: h5py.Dataset | None = None,
    aux_pos_prefix: str = "Position_",
    aux_spec_prefix: str = "Spectroscopic_",
    attrs: Mapping[str, Any] | None = None,
) -> USIDataset:
    """Write a USID Main dataset with its ancillary datasets.

    Parameters
    ----------
    group : h5py.Group
        Parent group (e.g. ``/Measurement_000/Channel_000``); must be writable.
    name : str
        Name of the Main dataset (e.g. ``"Raw_Data"``).
    data : array_like
        Either N-D, shape ``(len(pos_dims[0]), ..., len(spec_dims[0]), ...)`` in the listed order
        (first dimension fastest, see the module notes), or already 2-D ``(N_pos, N_spec)``.
        Real, complex or compound (structured) dtypes. A NumPy array (host data).
    pos_dims, spec_dims : Dimension or sequence of Dimension
        Position and spectroscopic dimensions, fastest-varying first. ``None`` where the matching
        existing ancillary datasets are given (``h5_pos_inds``/``h5_pos_vals`` etc.), which shares them.
    quantity, units : str
        Physical quantity and units of the data (``"Amplitude"``, ``"V"``).
    dtype : dtype, optional
        Stored dtype (default: the data's).
    chunks, compression
        Passed to :meth:`h5py.Group.create_dataset`.
    h5_pos_inds, h5_pos_vals, h5_spec_inds, h5_spec_vals : h5py.Dataset, optional
        Existing ancillary datasets to share (several channels of one scan share them).
    aux_pos_prefix, aux_spec_prefix : str
        Name prefixes of newly written ancillaries (``<prefix>Indices``, ``<prefix>Values``).
    attrs : mapping, optional
        Extra attributes of the Main dataset.

    Returns
    -------
    USIDataset
        The new Main dataset, shape ``(N_pos, N_spec)``.

    Raises
    ------
    USIDError
        The name or an ancillary already exists, or shared ancillaries do not fit.
    DataError
        The data's shape fits neither the N-D nor the 2-D form of the dimensions.

    Examples
    --------
    >>> import h5py, numpy as np
    >>> from pycro_gpu.io.usid import Dimension, write_main
    >>> f = h5py.File("doc_write_main.h5", "w", driver="core", backing_store=False)
    >>> nd = np.arange(24.0).reshape(2, 3, 4)  # (X, Y, Frequency)
    >>> m = write_main(f, "Raw_Data", nd, [Dimension("X", "m", 2), Dimension("Y", "m", 3)],
    ...                Dimension("Frequency", "Hz", 4), "Amplitude", "V")
    >>> m.shape, m.n_dim_shape, m.n_dim_labels
    ((6, 4), (2, 3, 4), ['X', 'Y', 'Frequency'])
    >>> bool(np.array_equal(m.get_n_dim_form(), nd))
    True
    >>> f.close()
    """
    pdims, sdims, n_pos, n_spec, anc = _prepare_main(
        group,
        name,
        pos_dims,
        spec_dims,
        quantity,
        units,
        h5_pos_inds=h5_pos_inds,
        h5_pos_vals=h5_pos_vals,
        h5_spec_inds=h5_spec_inds,
        h5_spec_vals=h5_spec_vals,
    )
    arr = np.asarray(data)
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    if arr.shape == (n_pos, n_spec):
        arr2 = arr
    else:
        pos = (
            _dims_grid(pdims)
            if pdims is not None
            else _anc_grid(h5_pos_inds, h5_pos_vals, spectroscopic=False)
        )
        spec = (
            _dims_grid(sdims)
            if sdims is not None
            else _anc_grid(h5_spec_inds, h5_spec_vals, spectroscopic=True)
        )
        nd_shape = _nd_shape(pos, spec)
        if nd_shape is not None and arr.shape == nd_shape:
            arr2 = _from_n_dim(arr, pos, spec)
        else:
            want = f"(N_pos, N_spec) = {(n_pos, n_spec)}"
            if nd_shape is not None:
                want = f"{nd_shape} (N-D) or {want}"
            msg = (
                f"write_main {name!r}: data of shape {arr.shape} does not fit the dimensions; expected {want}"
            )
            raise DataError(msg)
    main = group.create_dataset(name, data=np.ascontiguousarray(arr2), chunks=chunks, compression=compression)
    return _link_or_remove(
        main, group, pdims, sdims, quantity, units, anc, (aux_pos_prefix, aux_spec_prefix), attrs
    )


def create_main(
    group: h5py.Group,
    name: str,
    pos_dims: Sequence[Dimension] | Dimension | None,
    spec_dims: Sequence[Dimension] | Dimension | None,
    quantity: str,
    units: str,
    dtype: Any,
    *,
    chunks: Any = None,
    compression: Any = None,
    fillvalue: Any = None,
    early_allocation: bool = False,
    h5_pos_inds: h5py.Dataset | None = None,
    h5_pos_vals: h5py.Dataset | None = None,
    h5_spec_inds: h5py.Dataset | None = None,
    h5_spec_vals: h5py.Dataset | None = None,
    aux_pos_prefix: str = "Position_",
    aux_spec_prefix: str = "Spectroscopic_",
    attrs: Mapping[str, Any] | None = None,
) -> USIDataset:
    """Create an empty Main dataset ``(N_pos, N_spec)`` to be filled in batches.

    Parameters are those of :func:`write_main` without ``data``, plus:

    Parameters
    ----------
    dtype : dtype
        Stored dtype (real, complex or compound).
    fillvalue : scalar, optional
        HDF5 fill value.
    early_allocation : bool
        Allocate the file space now (contiguous layout unless ``chunks``/``compression`` are given).
        Batch writes into such a dataset change no HDF5 metadata, which keeps a file consistent when
        the writing process is killed (used by :mod:`pycro_gpu.process`).

    Returns
    -------
    USIDataset
    """
    pdims, sdims, n_pos, n_spec, anc = _prepare_main(
        group,
        name,
        pos_dims,
        spec_dims,
        quantity,
        units,
        h5_pos_inds=h5_pos_inds,
        h5_pos_vals=h5_pos_vals,
        h5_spec_inds=h5_spec_inds,
        h5_spec_vals=h5_spec_vals,
    )
    main = create_dataset(
        group,
        name,
        (n_pos, n_spec),
        dtype,
        chunks=chunks,
        compression=compression,
        fillvalue=fillvalue,
        early_allocation=early_allocation,
    )
    return _link_or_remove(
        main, group, pdims, sdims, quantity, units, anc, (aux_pos_prefix, aux_spec_prefix), attrs
    )


def create_dataset(
    group: h5py.Group,
    name: str,
    shape: tuple[int, ...],
    dtype: Any,
    *,
    chunks: Any = None,
    compression: Any = None,
    fillvalue: Any = None,
    early_allocation: bool = False,
) -> h5py.Dataset:
    """Create a plain dataset; with ``early_allocation`` its storage is allocated at creation."""
    dtype = np.dtype(dtype)
    if not early_allocation:
        return group.create_dataset(
            name, shape=shape, dtype=dtype, chunks=chunks, compression=compression, fillvalue=fillvalue
        )
    if compression is not None:
        msg = "early_allocation cannot be combined with compression (chunk sizes change on write)"
        raise ValueError(msg)
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_obj_track_times(False)
    if chunks is not None:
        dcpl.set_chunk(tuple(int(c) for c in chunks))
    if fillvalue is not None:
        dcpl.set_fill_value(np.asarray(fillvalue, dtype=dtype))
    space = h5py.h5s.create_simple(tuple(int(s) for s in shape))
    tid = h5py.h5t.py_create(dtype, logical=True)
    dsid = h5py.h5d.create(group.id, name.encode("utf-8"), tid, space, dcpl=dcpl)
    return h5py.Dataset(dsid)


# ----------------------------------------------------------------------------------------------------
# checking and reading
# ----------------------------------------------------------------------------------------------------


def _deref(dset: h5py.Dataset, key: str) -> h5py.Dataset:
    ref = dset.attrs[key]
    if not isinstance(ref, h5py.Reference):
        msg = f"{dset.name}: attribute {key!r} must be an HDF5 object reference, got {type(ref).__name__}"
        raise USIDError(msg)
    if not ref:
        msg = f"{dset.name}: attribute {key!r} is a null object reference"
        raise USIDError(msg)
    try:
        target = dset.file[ref]
    except Exception as exc:
        msg = f"{dset.name}: attribute {key!r} references an object that does not exist ({exc})"
        raise USIDError(msg) from None
    if target.name is None:
        msg = f"{dset.name}: attribute {key!r} references an object that does not exist (it was deleted)"
        raise USIDError(msg)
    if not isinstance(target, h5py.Dataset):
        msg = f"{dset.name}: attribute {key!r} references {target.name}, which is not a dataset"
        raise USIDError(msg)
    return target


def check_main(dset: Any) -> None:
    """Raise :class:`USIDError` naming the first rule of the USID model that ``dset`` breaks.

    Checks what pyUSID's ``check_if_main`` checks: a 2-D dataset; string ``quantity`` and ``units``;
    the four ancillary object references resolve to datasets; index and value datasets have equal
    shapes that match the Main dataset (``(N_pos, n)`` and ``(m, N_spec)``); ``labels`` and ``units``
    attributes of one entry per dimension, equal between indices and values.

    Parameters
    ----------
    dset : h5py.Dataset
        Candidate Main dataset.
    """
    _check_main(dset)


def _check_main(dset: Any) -> dict[str, h5py.Dataset]:
    """:func:`check_main`, returning the four ancillary datasets by attribute name."""
    if not isinstance(dset, h5py.Dataset):
        msg = f"{getattr(dset, 'name', dset)!r} is not an HDF5 dataset (got {type(dset).__name__})"
        raise USIDError(msg)
    where = dset.name
    if dset.ndim != 2:
        msg = f"{where} is not a USID Main dataset: it has shape {dset.shape}, a Main dataset is 2-D"
        raise USIDError(msg)
    missing = [k for k in (*ANCILLARY_NAMES, "quantity", "units") if k not in dset.attrs]
    if missing:
        msg = f"{where} is not a USID Main dataset: missing attribute(s) {', '.join(missing)}"
        raise USIDError(msg)
    for key in ("quantity", "units"):
        v = _scalar(dset.attrs[key])
        if not isinstance(v, (str, bytes)):
            msg = f"{where}: attribute {key!r} must be a string, got {v!r}"
            raise USIDError(msg)
    anc = {k: _deref(dset, k) for k in ANCILLARY_NAMES}
    n_pos, n_spec = dset.shape
    for kind, inds, vals, axis, n in (
        ("Position", anc["Position_Indices"], anc["Position_Values"], 0, n_pos),
        ("Spectroscopic", anc["Spectroscopic_Indices"], anc["Spectroscopic_Values"], 1, n_spec),
    ):
        if inds.ndim != 2 or vals.ndim != 2:
            msg = f"{where}: {kind} ancillaries must be 2-D, got {inds.shape} and {vals.shape}"
            raise USIDError(msg)
        if inds.shape != vals.shape:
            msg = (
                f"{where}: {kind}_Indices {inds.name} {inds.shape} and {kind}_Values {vals.name} "
                f"{vals.shape} have mismatched shapes"
            )
            raise USIDError(msg)
        if inds.shape[axis] != n:
            msg = (
                f"{where}: {kind} ancillary {inds.name} has shape {inds.shape}, which does not match "
                f"the {n} {'rows' if axis == 0 else 'columns'} of the Main dataset {dset.shape}"
            )
            raise USIDError(msg)
        n_dims = inds.shape[1 - axis]
        lists = {}
        for ds in (inds, vals):
            for key in ("labels", "units"):
                if key not in ds.attrs:
                    msg = f"{where}: {kind} ancillary {ds.name} has no {key!r} attribute"
                    raise USIDError(msg)
                lst = _str_list(ds.attrs[key])
                if len(lst) != n_dims:
                    msg = (
                        f"{where}: {kind} ancillary {ds.name} has {len(lst)} {key} for {n_dims} "
                        f"dimension(s): {lst}"
                    )
                    raise USIDError(msg)
                lists[(ds.name, key)] = lst
        for key in ("labels", "units"):
            if lists[(inds.name, key)] != lists[(vals.name, key)]:
                msg = (
                    f"{where}: {key} of {inds.name} {lists[(inds.name, key)]} and {vals.name} "
                    f"{lists[(vals.name, key)]} differ"
                )
                raise USIDError(msg)
    return anc


def is_main(dset: Any) -> bool:
    """True when :func:`check_main` accepts ``dset``."""
    try:
        check_main(dset)
    except USIDError:
        return False
    return True


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


class USIDataset(h5py.Dataset):
    """A USID Main dataset: an :class:`h5py.Dataset` that knows its dimensions.

    Indexing, ``shape``, ``dtype``, ``attrs`` etc. are those of the 2-D dataset ``(N_pos, N_spec)``.

    Parameters
    ----------
    h5_dataset : h5py.Dataset
        A dataset that passes :func:`check_main` (else :class:`USIDError`).

    Attributes
    ----------
    pos_dims, spec_dims : list of Dimension
        In the order of the ancillaries' ``labels``; values are the coordinates per index step.
    n_dim_shape : tuple of int or None
        Shape of the N-D form (positions then spectroscopic, in label order); ``None`` for an
        incomplete grid (sparse sampling).
    n_dim_labels : list of str
        Labels of the N-D axes.
    quantity, units : str
    h5_pos_inds, h5_pos_vals, h5_spec_inds, h5_spec_vals : h5py.Dataset
    """

    def __init__(self, h5_dataset: h5py.Dataset) -> None:
        anc = _check_main(h5_dataset)
        super().__init__(h5_dataset.id)
        self.h5_pos_inds = anc["Position_Indices"]
        self.h5_pos_vals = anc["Position_Values"]
        self.h5_spec_inds = anc["Spectroscopic_Indices"]
        self.h5_spec_vals = anc["Spectroscopic_Values"]
        self.quantity = _str_attr(self.attrs["quantity"])
        self.units = _str_attr(self.attrs["units"])
        pos = _anc_grid(self.h5_pos_inds, self.h5_pos_vals, spectroscopic=False)
        spec = _anc_grid(self.h5_spec_inds, self.h5_spec_vals, spectroscopic=True)
        self._pos, self._spec = pos, spec
        self.pos_dims: list[Dimension] = pos["dims"]
        self.spec_dims: list[Dimension] = spec["dims"]
        self.n_dim_labels: list[str] = [d.name for d in self.pos_dims + self.spec_dims]
        self.n_dim_units: list[str] = [d.units for d in self.pos_dims + self.spec_dims]
        self.n_dim_shape: tuple[int, ...] | None = _nd_shape(pos, spec)

    @property
    def pos_order(self) -> list[int]:
        """Indices into :attr:`pos_dims` from the fastest-varying position dimension to the slowest."""
        return list(self._pos["order"])

    @property
    def spec_order(self) -> list[int]:
        """Indices into :attr:`spec_dims` from the fastest-varying spectroscopic dimension to the slowest."""
        return list(self._spec["order"])

    @property
    def spec_is_regular(self) -> bool:
        """True when the spectroscopic steps form a full grid stored in grid order (no reordering)."""
        return self._spec["shape"] is not None and self._spec["perm"] is None

    @property
    def is_complete(self) -> bool:
        """True when positions and spectroscopic steps form full grids (the N-D form exists)."""
        return self.n_dim_shape is not None

    @property
    def n_positions(self) -> int:
        return int(self.shape[0])

    @property
    def n_spectral(self) -> int:
        return int(self.shape[1])

    def position_table(self) -> np.ndarray:
        """Position coordinates ``(N_pos, n_pos_dims)`` float32, one row per row of the data."""
        return self.h5_pos_vals[()]

    def _incomplete_msg(self) -> str:
        parts = []
        for kind, g, n in (
            ("position", self._pos, self.shape[0]),
            ("spectroscopic", self._spec, self.shape[1]),
        ):
            if g["shape"] is None:
                sizes = {d.name: len(d) for d in g["dims"]}
                parts.append(
                    f"its {n} {kind} steps do not form the full grid of {sizes} "
                    f"(product {math.prod(sizes.values())}, e.g. sparse sampling)"
                )
        tail = "read the 2-D data (dataset[()]) with position_table() instead"
        return f"{self.name}: no N-D form: " + "; ".join(parts) + "; " + tail

    def get_n_dim_form(self) -> np.ndarray:
        """Read the whole dataset and return it N-D, axes in :attr:`n_dim_labels` order.

        Returns
        -------
        (n_pos_0, ..., n_spec_0, ...) ndarray

        Raises
        ------
        USIDError
            The positions or spectroscopic steps do not form a complete grid.
        """
        if self.n_dim_shape is None:
            raise USIDError(self._incomplete_msg())
        return self.to_n_dim(self[()])

    def to_n_dim(self, data2d: np.ndarray) -> np.ndarray:
        """Reshape a full 2-D array ``(N_pos, N_spec)`` (e.g. read or computed) to the N-D form."""
        if self.n_dim_shape is None:
            raise USIDError(self._incomplete_msg())
        arr = np.asarray(data2d)
        if arr.shape != self.shape:
            msg = f"to_n_dim: expected shape {self.shape}, got {arr.shape}"
            raise DataError(msg)
        return _to_n_dim(arr, self._pos, self._spec)

    def from_n_dim(self, data_nd: np.ndarray) -> np.ndarray:
        """Flatten an N-D array (axes in :attr:`n_dim_labels` order) to this dataset's 2-D layout."""
        if self.n_dim_shape is None:
            raise USIDError(self._incomplete_msg())
        arr = np.asarray(data_nd)
        if arr.shape != self.n_dim_shape:
            msg = f"from_n_dim: expected shape {self.n_dim_shape}, got {arr.shape}"
            raise DataError(msg)
        return _from_n_dim(arr, self._pos, self._spec)

    def to_xarray(self) -> Any:
        """Return the N-D data as an ``xarray.DataArray`` (needs the optional package xarray).

        Dims are :attr:`n_dim_labels`, coords the dimension values (with ``units`` attributes); the
        array's ``name`` is the quantity and ``attrs['units']`` its units.
        """
        from .._optional import require

        xr = require("xarray", feature="USIDataset.to_xarray")
        data = self.get_n_dim_form()
        coords = {}
        for d in self.pos_dims + self.spec_dims:
            coords[d.name] = xr.Variable((d.name,), d.values, attrs={"units": d.units})
        return xr.DataArray(
            data,
            dims=self.n_dim_labels,
            coords=coords,
            name=self.quantity,
            attrs={
                "units": self.units,
                "quantity": self.quantity,
                "source": f"{self.file.filename}:{self.name}",
            },
        )

    def describe(self) -> str:
        """One-paragraph text summary (used by ``pycro-gpu info``)."""
        shape = "incomplete grid" if self.n_dim_shape is None else str(self.n_dim_shape)
        lines = [f"{self.name}: {self.quantity} [{self.units}], 2-D {self.shape} {self.dtype}, N-D {shape}"]
        for kind, dims in (("position", self.pos_dims), ("spectroscopic", self.spec_dims)):
            text = ", ".join(f"{d.name} ({len(d)}, {d.units})" for d in dims)
            lines.append(f"    {kind}: {text}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        if not self.id.valid:
            return "<closed USIDataset>"
        return (
            f"<USIDataset {self.name!r}: {self.quantity} [{self.units}] {self.shape} {self.dtype}; "
            f"N-D {self.n_dim_shape} {self.n_dim_labels}>"
        )


def find_main_datasets(h5_obj: h5py.Group | h5py.File) -> list[USIDataset]:
    """Every Main dataset below ``h5_obj`` (depth first, in name order) as :class:`USIDataset`.

    Examples
    --------
    >>> import h5py
    >>> from pycro_gpu.io.usid import find_main_datasets
    >>> with h5py.File("doc_find_main.h5", "w", driver="core", backing_store=False) as f:
    ...     find_main_datasets(f)
    []
    """
    if isinstance(h5_obj, h5py.Dataset):
        return _as_main(h5_obj)
    found: list[USIDataset] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.ndim == 2 and "Position_Indices" in obj.attrs:
            found.extend(_as_main(obj))

    h5_obj.visititems(visit)
    return found


def _as_main(dset: h5py.Dataset) -> list[USIDataset]:
    """``[USIDataset(dset)]``, or ``[]`` when ``dset`` is not a Main dataset (checked once)."""
    try:
        return [USIDataset(dset)]
    except USIDError:
        return []


# ----------------------------------------------------------------------------------------------------
# results groups
# ----------------------------------------------------------------------------------------------------

#: attributes of a results group that are bookkeeping, not tool parameters
RESERVED_RESULT_ATTRS = frozenset(
    {
        "tool",
        "source_000",
        "num_source_dsets",
        "source_path",
        "source_file",
        "timestamp",
        "pycro_gpu_version",
        "machine_id",
        "platform",
        "status",
        "parameters_json",
        "pyUSID_version",
        "pycroscopy_version",
    }
)


def _jsonable(value: Any, key: str) -> Any:
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist(), key)
    if isinstance(value, np.generic):
        return _jsonable(value.item(), key)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, key) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    msg = f"parameter {key!r}: value {value!r} of type {type(value).__name__} cannot be stored"
    raise TypeError(msg)


def _canonical_parameters(parameters: Mapping[str, Any] | None) -> str:
    params = dict(parameters or {})
    for key in params:
        if not isinstance(key, str) or not key:
            msg = f"parameter names must be non-empty strings, got {key!r}"
            raise TypeError(msg)
        if key in RESERVED_RESULT_ATTRS:
            msg = f"parameter name {key!r} is reserved for results-group bookkeeping"
            raise ValueError(msg)
    return json.dumps({k: _jsonable(v, k) for k, v in params.items()}, sort_keys=True)


def _attr_value(value: Any) -> Any:
    if value is None:
        return "None"
    if isinstance(value, (list, tuple)):
        arr = np.asarray(value)
        if arr.dtype.kind == "U":
            return _encode_list(list(value))
        if arr.dtype == object:
            return json.dumps(_jsonable(value, "?"))
        return arr
    return value


def results_parameters(group: h5py.Group) -> dict[str, Any]:
    """The tool parameters stored in a results group (from its canonical JSON record)."""
    raw = group.attrs.get("parameters_json")
    if raw is None:  # pyUSID-written group: every non-bookkeeping attribute is a parameter
        return {
            k: v
            for k, v in group.attrs.items()
            if k not in RESERVED_RESULT_ATTRS and not isinstance(v, h5py.Reference)
        }
    return json.loads(_str_attr(raw))


def _numbered(parent: h5py.Group, prefix: str) -> list[str]:
    """Names in ``parent`` of the form ``<prefix>NNN`` (results groups ``<Source>-<Tool>_NNN``)."""
    return [n for n in parent if n.startswith(prefix) and n[len(prefix) :].isdigit()]


def find_results(
    source: h5py.Dataset,
    tool: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    h5_parent: h5py.Group | None = None,
    status: str | None = "complete",
) -> list[h5py.Group]:
    """Results groups of ``tool`` applied to ``source``, newest index last.

    Parameters
    ----------
    source : h5py.Dataset
        The Main dataset the tool ran on.
    tool : str
        Tool name, as in the group name ``<Source>-<Tool>_NNN`` and its ``tool`` attribute.
    parameters : mapping, optional
        When given, only groups whose stored parameters equal these (compared as canonical JSON).
    h5_parent : h5py.Group, optional
        Where the groups live (default: the source's parent group).
    status : str or None
        Keep only groups with this ``status`` attribute (``"complete"``, ``"running"``); ``None``
        keeps all. Groups written by pyUSID (no ``status``) count as complete.

    Returns
    -------
    list of h5py.Group
    """
    parent = source.parent if h5_parent is None else h5_parent
    prefix = f"{_basename(source)}-{tool}_"
    want = None if parameters is None else _canonical_parameters(parameters)
    out = []
    for name in sorted(_numbered(parent, prefix)):
        grp = parent[name]
        if not isinstance(grp, h5py.Group) or _str_attr(grp.attrs.get("tool", "")) != tool:
            continue
        if status is not None and _str_attr(grp.attrs.get("status", "complete")) != status:
            continue
        if want is not None:
            raw = grp.attrs.get("parameters_json")
            if raw is None or _str_attr(raw) != want:
                continue
        out.append(grp)
    return out


def create_results_group(
    source: h5py.Dataset,
    tool: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    h5_parent: h5py.Group | None = None,
    override: bool = False,
    status: str = "complete",
) -> tuple[h5py.Group, bool]:
    """Create ``<Source>-<Tool>_NNN`` for results, or find the finished one with the same parameters.

    Parameters
    ----------
    source : h5py.Dataset
        The Main dataset the tool runs on (never modified).
    tool : str
        Tool name (letters, digits, ``_``; no ``-``).
    parameters : mapping, optional
        Tool parameters; stored one attribute each plus a canonical JSON record ``parameters_json``.
        Values: numbers, strings, booleans, ``None`` and (nested) lists/arrays of them.
    h5_parent : h5py.Group, optional
        Where to create the group: default the source's parent. A group in another (writable) file
        puts the results there: the raw file is then never opened for writing; the source is recorded
        by ``source_file``/``source_path`` attributes (object references cannot cross files).
    override : bool
        Create a new group even when a finished one with the same parameters exists.
    status : str
        ``status`` attribute of a new group: ``"complete"`` when the caller fills it at once,
        ``"running"`` for a streamed job (:mod:`pycro_gpu.process` sets ``"complete"`` at the end).

    Returns
    -------
    group : h5py.Group
    existing : bool
        True when a finished group with the same parameters was found (nothing was written).
    """
    if not isinstance(source, h5py.Dataset):
        msg = f"source must be an h5py.Dataset, got {type(source).__name__}"
        raise TypeError(msg)
    if not isinstance(tool, str) or not tool or "-" in tool or "/" in tool:
        msg = f"tool must be a non-empty name without '-' or '/', got {tool!r}"
        raise ValueError(msg)
    canon = _canonical_parameters(parameters)
    parent = source.parent if h5_parent is None else h5_parent
    if not override:
        found = find_results(source, tool, parameters or {}, h5_parent=parent, status="complete")
        if found:
            return found[-1], True
    prefix = f"{_basename(source)}-{tool}_"
    used = [int(n[len(prefix) :]) for n in _numbered(parent, prefix)]
    name = f"{prefix}{max(used) + 1 if used else 0:03d}"
    grp = parent.create_group(name)
    try:
        grp.attrs["tool"] = tool
        same_file = parent.file.id == source.file.id or parent.file.filename == source.file.filename
        if same_file:
            grp.attrs["source_000"] = source.ref
            grp.attrs["num_source_dsets"] = 1
        grp.attrs["source_path"] = source.name
        grp.attrs["source_file"] = str(source.file.filename)
        grp.attrs["timestamp"] = _timestamp()
        grp.attrs["pycro_gpu_version"] = _version()
        grp.attrs["machine_id"] = socket.getfqdn()
        grp.attrs["platform"] = platform.platform()
        for k, v in (parameters or {}).items():
            grp.attrs[k] = _attr_value(v)
        grp.attrs["parameters_json"] = canon
        grp.attrs["status"] = status
    except BaseException:
        del parent[name]
        raise
    return grp, False


@contextmanager
def writing_results(group: h5py.Group) -> Iterator[h5py.Group]:
    """Fill a results group from :func:`create_results_group` inside a ``with`` block.

    The group's ``status`` becomes ``"complete"`` when the block ends; when the block raises (an error,
    an interrupt) the group is deleted, so a failed computation leaves no half-written results behind.
    """
    try:
        yield group
        group.attrs["status"] = "complete"
    except BaseException:
        del group.file[group.name]
        raise


def iter_results_groups(h5_obj: h5py.Group) -> Iterable[h5py.Group]:
    """Every group below ``h5_obj`` that has a ``tool`` attribute (a results group)."""
    found: list[h5py.Group] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Group) and "tool" in obj.attrs:
            found.append(obj)

    h5_obj.visititems(visit)
    return found


def describe_file(path: Any) -> str:
    """Text listing of a file's Main datasets and results groups (``pycro-gpu info``).

    The file is opened read-only. Each Main dataset: path, quantity and units, 2-D shape and dtype,
    N-D shape (or "incomplete grid"), then its position and spectroscopic dimensions with sizes and
    units. Each results group: path, tool, status, source and parameters.

    Raises
    ------
    DataError
        The file is missing, not HDF5 or truncated.
    """
    from .hdf5 import open_h5

    with open_h5(path, "r") as f:
        mains = find_main_datasets(f)
        groups = iter_results_groups(f)
        lines = [f"{f.filename}", f"Main datasets ({len(mains)}):"]
        lines += ["  " + m.describe().replace("\n", "\n  ") for m in mains] or ["  (none)"]
        lines.append(f"Results groups ({len(groups)}):")
        for g in groups:
            status = _str_attr(g.attrs.get("status", "complete"))
            src = g.attrs.get("source_path")
            if src is None and isinstance(g.attrs.get("source_000"), h5py.Reference):
                try:
                    src = f[g.attrs["source_000"]].name
                except Exception:
                    src = "?"
            params = results_parameters(g)
            ptxt = ", ".join(f"{k}={v!r}" for k, v in sorted(params.items())) or "no parameters"
            version = g.attrs.get("pycro_gpu_version", g.attrs.get("pyUSID_version", "?"))
            lines.append(
                f"  {g.name}: tool {_str_attr(g.attrs['tool'])}, {status}, source {_str_attr(src or '?')}, "
                f"written {_str_attr(g.attrs.get('timestamp', '?'))} by version {_str_attr(version)}"
            )
            lines.append(f"      parameters: {ptxt}")
        if not groups:
            lines.append("  (none)")
    return "\n".join(lines)
