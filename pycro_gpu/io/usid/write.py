"""Writing USID Main datasets and their ancillary datasets (write_main, create_main, create_dataset)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import numpy as np

from ...errors import DataError, USIDError
from ._attrs import _basename, _encode_list, _timestamp, _version
from .dimensions import (
    ANCILLARY_NAMES,
    INDICES_DTYPE,
    VALUES_DTYPE,
    Dimension,
    _anc_grid,
    _as_dims,
    _build_indices,
    _dims_grid,
    _from_n_dim,
    _nd_shape,
)
from .read import USIDataset


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
