"""Checking and reading USID Main datasets (check_main, USIDataset, position_maps, find_main_datasets)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import h5py
import numpy as np

from ..._config import get_config
from ..._lib.checks import check_int
from ..._lib.h5errors import damaged, one_line, raised_by_h5py
from ...errors import DataError, PycroGPUError, USIDError
from ._attrs import _scalar, _str_attr, _str_list
from .dimensions import ANCILLARY_NAMES, Dimension, _anc_grid, _from_n_dim, _nd_shape, _to_n_dim


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
        msg = f"{dset.name}: attribute {key!r} references an object that does not exist ({one_line(exc)})"
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

    Raises
    ------
    USIDError
        ``dset`` breaks a rule of the model.
    DataError
        ``dset`` or one of its ancillaries is damaged: HDF5 cannot read a header or an attribute that
        the check needs (the message names the object and what HDF5 says).
    """
    _check_main(dset)


def _check_main(dset: Any) -> dict[str, h5py.Dataset]:
    """:func:`check_main`, returning the four ancillary datasets by attribute name."""
    with _damage_as_data_error(dset):
        return _check_main_rules(dset)


@contextlib.contextmanager
def _damage_as_data_error(obj: Any, what: str = "") -> Iterator[None]:
    """Turn what HDF5 raises on a damaged header, attribute or reference below into one DataError.

    Inside, an exception raised by h5py, and a ``TypeError`` or ``ValueError`` of the decoding of what it
    returned (a garbled attribute), mean that the stored objects are damaged; pycro_gpu's own errors
    pass unchanged. The message names the file, ``obj`` and ``what``.
    """
    try:
        yield
    except PycroGPUError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, RuntimeError, OSError) as exc:
        if not raised_by_h5py(exc) and not isinstance(exc, (TypeError, ValueError)):
            raise
        raise DataError(damaged(f"{_file_of(obj)}: {_name_of(obj)}{what}", exc)) from None


def _name_of(obj: Any) -> str:
    try:
        return str(obj.name)
    except Exception:  # a closed or damaged object has no name to give
        return "?"


def _file_of(obj: Any) -> str:
    try:
        return str(obj.file.filename)
    except Exception:
        return "?"


def _check_main_rules(dset: Any) -> dict[str, h5py.Dataset]:
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


#: bytes of working memory per entry of the ancillary index tables while a Main dataset is opened: the
#: index and value read (4 + 4), the int64 codes and the unique-value tables built from them
ANCILLARY_BYTES_PER_ENTRY = 40


def _check_ancillary_budget(dset: h5py.Dataset, anc: dict[str, h5py.Dataset]) -> None:
    """Refuse to read ancillary tables whose declared size does not fit the working-memory budget.

    A damaged or crafted file can declare a billion positions in a few kilobytes (datasets with no chunk
    written); reading their index tables would exhaust the memory before anything checked them.
    """
    entries = anc["Position_Indices"].size + anc["Spectroscopic_Indices"].size
    n_pos, n_spec = dset.shape
    what = (
        f"{_file_of(dset)}: {dset.name} declares {n_pos:,} positions x {n_spec:,} spectroscopic steps; "
        f"reading its ancillary tables ({entries:,} index entries)"
    )
    _check_budget(what, entries * ANCILLARY_BYTES_PER_ENTRY)


def _check_budget(what: str, n_bytes: int) -> None:
    """Raise DataError when ``n_bytes`` exceed the working-memory budget, saying what would need them."""
    budget_mb = get_config()["memory_mb"]
    if n_bytes > budget_mb * 2**20:
        size = f"{n_bytes / 2**20:,.0f} MiB" if n_bytes >= 2**20 else f"{n_bytes / 2**10:,.0f} KiB"
        msg = (
            f"{what} needs {size}, more than the working-memory budget of "
            f"{budget_mb:g} MiB (raise it with --memory-mb or PYCRO_GPU_MEMORY_MB if the machine has the "
            f"memory)"
        )
        raise DataError(msg)


def is_main(dset: Any) -> bool:
    """True when :func:`check_main` accepts ``dset``."""
    try:
        check_main(dset)
    except USIDError:
        return False
    return True


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
        _check_ancillary_budget(h5_dataset, anc)
        super().__init__(h5_dataset.id)
        self.h5_pos_inds = anc["Position_Indices"]
        self.h5_pos_vals = anc["Position_Values"]
        self.h5_spec_inds = anc["Spectroscopic_Indices"]
        self.h5_spec_vals = anc["Spectroscopic_Values"]
        with _damage_as_data_error(h5_dataset, " (its ancillary datasets)"):
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
        DataError
            The dataset is larger than the working-memory budget (``memory_mb`` of the configuration).
        """
        if self.n_dim_shape is None:
            raise USIDError(self._incomplete_msg())
        _check_budget(f"{self.file.filename}: reading all of {self.name}", self.size * self.dtype.itemsize)
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

    @property
    def map_dims(self) -> list[Dimension]:
        """The position dimensions along the axes of :meth:`position_maps`, rows first.

        Slowest-varying first, the fastest-varying (the columns) last: ``[Y, X]`` for a raster scan
        stored X fastest, however the ``labels`` list them. Rows stored out of grid order (shuffled)
        have no scan order; their maps take the USID convention that the first label varies fastest,
        i.e. the labels reversed.
        """
        return [self.pos_dims[k] for k in self._map_order()]

    def _map_order(self) -> list[int]:
        """Indices into :attr:`pos_dims` of the map axes (see :attr:`map_dims`)."""
        if self._pos["perm"] is None:
            return list(reversed(self.pos_order))
        return list(reversed(range(len(self.pos_dims))))

    def position_maps(self, values: Any, *, axis: int = 0) -> np.ndarray:
        """Arrange per-position values (one per row of this dataset) as maps over the position grid.

        The one place where positions become images. The rows of a Main dataset list the positions
        with one dimension varying fastest (X for a raster scan, ``pos_dims = [X, Y]`` as
        :func:`~pycro_gpu.io.usid.write_main` writes it), so an image is ``(n_y, n_x)``: Y down the
        rows, X across the columns, ``values.reshape(n_y, n_x)`` for rows in that order. In general the
        map axes are the position dimensions from the slowest- to the fastest-varying
        (:attr:`map_dims`, read from the index datasets whichever order the ``labels`` list them in);
        rows stored out of grid order are put in place, their axes in reversed label order.

        Parameters
        ----------
        values : (N_pos,) or (N_pos, ...) array_like
            One value (or one vector, e.g. ``k`` SVD scores) per position, in the row order of this
            dataset, along ``axis``. A host (NumPy) array or anything ``numpy.asarray`` reads.
        axis : int
            Axis of ``values`` that runs over the positions (``-1`` for ``(k, N_pos)`` values).

        Returns
        -------
        ndarray
            ``values`` with the position axis replaced by the map axes, in place: ``(n_y, n_x, ...)``
            for ``axis=0``, ``(k, n_y, n_x)`` for ``(k, N_pos)`` values and ``axis=-1``. A single
            position dimension gives ``(n_x, ...)``.

        Raises
        ------
        USIDError
            The positions do not form a complete grid (sparse sampling): there are no maps.
        DataError
            ``values`` does not hold one entry per position along ``axis``.

        Examples
        --------
        >>> import h5py, numpy as np
        >>> from pycro_gpu.io.usid import Dimension, write_main
        >>> f = h5py.File("doc_position_maps.h5", "w", driver="core", backing_store=False)
        >>> x, y = np.meshgrid(np.arange(3), np.arange(2))  # a 2 x 3 image: rows Y, columns X
        >>> truth = 10 * x + y
        >>> raw = write_main(f, "Raw_Data", truth.reshape(-1, 1),
        ...                  [Dimension("X", "m", 3), Dimension("Y", "m", 2)],
        ...                  Dimension("Bias", "V", 1), "Current", "A")
        >>> raw.position_maps(raw[:, 0])
        array([[ 0, 10, 20],
               [ 1, 11, 21]])
        >>> raw.position_maps(np.stack([raw[:, 0], -raw[:, 0]]), axis=-1).shape  # (k, n_y, n_x)
        (2, 2, 3)
        >>> f.close()
        """
        arr = np.asarray(values)
        if arr.ndim == 0:
            msg = f"position_maps: values must hold one value per position ({self.n_positions}), got a scalar"
            raise DataError(msg)
        ax = check_int(axis, "axis", minimum=-arr.ndim, maximum=arr.ndim - 1) % arr.ndim
        if arr.shape[ax] != self.n_positions:
            msg = (
                f"position_maps: values must hold one entry per position of {self.name} "
                f"({self.n_positions}) along axis {axis}, got shape {arr.shape}"
            )
            raise DataError(msg)
        pos = self._pos
        if pos["shape"] is None:
            sizes = {d.name: len(d) for d in self.pos_dims}
            msg = (
                f"{self.name}: its {self.n_positions} positions do not form the full grid of {sizes} "
                "(e.g. sparse sampling), so they have no maps; plot the values against position_table()"
            )
            raise USIDError(msg)
        arr = np.moveaxis(arr, ax, 0)
        if pos["perm"] is not None:
            arr = arr[pos["perm"]]  # rows in grid order: pos_order[0] varies fastest
        stored = list(reversed(self.pos_order))  # slowest first: the C order of the rows
        arr = arr.reshape(*(len(self.pos_dims[k]) for k in stored), *arr.shape[1:])
        n_p = len(stored)
        arr = arr.transpose([stored.index(k) for k in self._map_order()] + list(range(n_p, arr.ndim)))
        return np.moveaxis(arr, list(range(n_p)), list(range(ax, ax + n_p)))

    def to_xarray(self) -> Any:
        """Return the N-D data as an ``xarray.DataArray`` (needs the optional package xarray).

        Dims are the dimension names, slowest first within positions and within spectroscopic steps (a
        map with x fastest is ``("Y", "X")``), coords their values with ``units`` attributes; ``name``
        is the quantity and ``attrs['units']`` its units. A dimension whose values repeat (a bipolar
        DC sweep) becomes ``<name>_step`` with ``<name>`` as a coordinate along it. Compound data (fit
        results) give an ``xarray.Dataset``, one variable per field with its units. See
        :mod:`pycro_gpu.io.usid._xarray`.
        """
        from ._xarray import to_xarray

        return to_xarray(self)

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


def position_maps(h5_main: Any, values: Any, *, axis: int = 0) -> np.ndarray:
    """Per-position ``values`` of the Main dataset ``h5_main`` as maps: :meth:`USIDataset.position_maps`.

    Parameters
    ----------
    h5_main : USIDataset or h5py.Dataset
        The Main dataset whose rows the values follow (e.g. ``Raw_Data``, or a results dataset such as
        ``U`` or ``Labels`` that shares its position ancillaries).
    values : (N_pos, ...) array_like
        One value or vector per position along ``axis``.
    axis : int
        Axis of ``values`` over the positions.

    Returns
    -------
    ndarray
        ``(n_y, n_x, ...)`` for ``axis=0``: rows the slowest-varying position dimension (Y of a scan
        stored X fastest), columns the fastest.

    Examples
    --------
    >>> import h5py, numpy as np
    >>> from pycro_gpu.io.usid import Dimension, position_maps, write_main
    >>> f = h5py.File("doc_position_maps_fn.h5", "w", driver="core", backing_store=False)
    >>> raw = write_main(f, "Raw_Data", np.arange(6.0).reshape(6, 1),
    ...                  [Dimension("X", "m", 3), Dimension("Y", "m", 2)],
    ...                  Dimension("Bias", "V", 1), "Current", "A")
    >>> position_maps(f["Raw_Data"], np.arange(6)).tolist()  # X fastest: row y holds 3 y .. 3 y + 2
    [[0, 1, 2], [3, 4, 5]]
    >>> f.close()
    """
    main = h5_main if isinstance(h5_main, USIDataset) else USIDataset(h5_main)
    return main.position_maps(values, axis=axis)


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

    with _damage_as_data_error(h5_obj, " (walking the objects below it)"):
        h5_obj.visititems(visit)
    return found


def _as_main(dset: h5py.Dataset) -> list[USIDataset]:
    """``[USIDataset(dset)]``, or ``[]`` when ``dset`` is not a Main dataset (checked once)."""
    try:
        return [USIDataset(dset)]
    except USIDError:
        return []


#: The raw-data path of single-channel USID files (``/Measurement_000/Channel_000/Raw_Data``).
DEFAULT_RAW_DATA = "/Measurement_000/Channel_000/Raw_Data"


def open_main(h5_file: h5py.File, dataset_path: str | None = None) -> Any:
    """Return the Main dataset at ``dataset_path`` as :class:`~pycro_gpu.io.usid.USIDataset`.

    With ``dataset_path=None``: :data:`DEFAULT_RAW_DATA` where the file has it, else the file's only
    Main dataset.

    Raises
    ------
    DataError
        ``dataset_path`` does not exist or is not a dataset, or is ``None`` and the file holds no or
        several candidate Main datasets (the message lists the Main datasets).
    USIDError
        The dataset breaks the USID model (see :func:`~pycro_gpu.io.usid.check_main`).
    """
    if dataset_path is None:
        with _damage_as_data_error(h5_file, f" (opening {DEFAULT_RAW_DATA})"):
            default = h5_file.get(DEFAULT_RAW_DATA)
        if isinstance(default, h5py.Dataset):
            dataset_path = DEFAULT_RAW_DATA
        else:
            mains = find_main_datasets(h5_file)
            if len(mains) != 1:
                names = [d.name for d in mains]
                msg = (
                    f"{h5_file.filename}: no {DEFAULT_RAW_DATA} and {len(mains)} Main datasets "
                    f"({names or 'none'}); name one with dataset_path"
                )
                raise DataError(msg)
            return mains[0]

    try:
        obj = h5_file[dataset_path]
    except KeyError:
        obj = None
    except Exception as exc:  # corrupt object headers in a truncated file
        msg = f"{h5_file.filename}: cannot read {dataset_path!r} ({exc})"
        raise DataError(msg) from None
    if not isinstance(obj, h5py.Dataset):
        try:
            known = [d.name for d in find_main_datasets(h5_file)]
        except Exception:
            known = []
        what = "does not exist" if obj is None else "is a group, not a dataset"
        msg = f"{h5_file.filename}: {dataset_path!r} {what}; Main datasets in the file: {known or 'none'}"
        raise DataError(msg)
    return USIDataset(obj)
