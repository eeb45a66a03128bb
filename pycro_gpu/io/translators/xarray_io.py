"""xarray objects (``DataArray`` / ``Dataset``) and netCDF files, read with xarray.

The reverse direction is :meth:`pycro_gpu.io.usid.USIDataset.to_xarray`. Which dimensions are
positions: the ``pos_dims`` argument when given; else the ``usid_pos_dims`` attribute (a list of
names) when present; else dimensions named like scan axes (``x``, ``y``, ``z``, ``row``, ``col``,
``position*``, any case); else all but the last. Coordinates give the values (``0 .. n-1`` where a
dimension has none or non-numeric ones) and their ``units`` attribute the units; the array's
``units`` attribute gives the data units and ``quantity`` / ``long_name`` / name the quantity. A
``Dataset`` becomes one channel per data variable.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..._lib.optional import require
from ._base import Channel, Dim, RawData, TranslationError, pad_single_points, reader_errors

__all__ = ["NETCDF_MAGICS", "from_xarray", "read_netcdf"]

NETCDF_MAGICS = (b"CDF\x01", b"CDF\x02", b"CDF\x05")
_POS_NAMES = {"x", "y", "z", "row", "rows", "col", "cols", "column", "columns"}


def _stepped(obj: Any, name: str) -> Any:
    """The coordinate holding the values of a step dimension written by ``to_xarray`` (or None)."""
    for coord in obj.coords.values():
        if coord.dims == (name,) and coord.attrs.get("usid_dimension") is not None:
            return coord
    return None


def _dim(obj: Any, name: str, n: int) -> Dim:
    units = ""
    values = np.arange(n, dtype=np.float64)
    stepped = _stepped(obj, name)
    if stepped is not None:  # a dimension with repeated values (bipolar sweep), as to_xarray writes it
        return Dim(
            str(stepped.attrs["usid_dimension"]),
            str(stepped.attrs.get("units", "")),
            np.asarray(stepped.values, dtype=np.float64),
        )
    if name in obj.coords:
        coord = obj.coords[name]
        units = str(coord.attrs.get("units", ""))
        vals = np.asarray(coord.values)
        if vals.ndim == 1 and vals.size == n and vals.dtype.kind in "biuf":
            values = vals.astype(np.float64)
    return Dim(str(name), units, values)


def _is_pos(name: str) -> bool:
    low = str(name).lower()
    return low in _POS_NAMES or low.startswith("position")


def _channel(da: Any, pos_dims: Sequence[str] | None, name: str) -> Channel:
    dims = [str(d) for d in da.dims]
    if pos_dims is None and "usid_pos_dims" in da.attrs:
        pos_dims = [str(d) for d in np.atleast_1d(da.attrs["usid_pos_dims"]).tolist()]
    if pos_dims is None:
        pos_names = [d for d in dims if _is_pos(d)]
        if not pos_names:
            pos_names = dims[:-1]
    else:
        pos_names = list(pos_dims)
        unknown = [d for d in pos_names if d not in dims]
        if unknown:
            msg = f"pos_dims {unknown} are not dimensions of {name!r} (which has {dims})"
            raise TranslationError(msg)
    spec_names = [d for d in dims if d not in pos_names]
    arr = np.asarray(da.transpose(*pos_names, *spec_names).values)
    if arr.dtype.kind not in "biufc":
        msg = f"{name!r}: values of dtype {arr.dtype} cannot be translated"
        raise TranslationError(msg)
    pos = [_dim(da, d, da.sizes[d]) for d in pos_names]
    spec = [_dim(da, d, da.sizes[d]) for d in spec_names]
    pos, spec, arr = pad_single_points(pos, spec, arr)
    quantity = str(da.attrs.get("quantity") or da.attrs.get("long_name") or da.name or name)
    units = str(da.attrs.get("units", ""))
    meta = {str(k): v for k, v in da.attrs.items() if k not in ("units", "quantity", "usid_pos_dims")}
    return Channel(name, arr, pos, spec, quantity, units, meta)


def _compound_channel(ds: Any, pos_dims: Sequence[str] | None) -> Channel:
    """One channel of compound records from a Dataset that ``to_xarray`` made of compound results."""
    names = [str(k) for k in ds.data_vars]
    first = ds[names[0]]
    fields = [str(ds[k].attrs.get("field", k)) for k in names]
    dtype = np.dtype([(f, ds[k].dtype) for f, k in zip(fields, names, strict=True)])
    records = np.empty(first.shape, dtype=dtype)
    for f, k in zip(fields, names, strict=True):
        records[f] = ds[k].transpose(*first.dims).values
    carrier = first.copy(data=np.zeros(first.shape))  # dims and coords of the records
    carrier.attrs = {k: v for k, v in ds.attrs.items() if k not in ("usid_compound", "source")}
    channel = _channel(carrier, pos_dims, str(ds.attrs.get("quantity", "Data")))
    pos_names = (
        [str(d) for d in np.atleast_1d(ds.attrs.get("usid_pos_dims", [])).tolist()]
        if pos_dims is None
        else list(pos_dims)
    )
    order = [d for d in first.dims if d in pos_names] + [d for d in first.dims if d not in pos_names]
    data = np.transpose(records, [first.dims.index(d) for d in order]).reshape(channel.data.shape)
    return Channel(
        channel.name,
        data,
        channel.pos_dims,
        channel.spec_dims,
        channel.quantity,
        channel.units,
        channel.metadata,
    )


def from_xarray(
    obj: Any, pos_dims: Sequence[str] | None = None, *, source: str | Path = "<xarray>"
) -> RawData:
    """Describe an ``xarray.DataArray`` or ``Dataset`` as translator input.

    Parameters
    ----------
    obj : xarray.DataArray or xarray.Dataset
        The data.
    pos_dims : sequence of str, optional
        Names of the position dimensions (see the module notes for the default).
    source : str or Path
        Recorded as the source.

    Returns
    -------
    RawData
        One channel per data variable (one for a DataArray); a Dataset that
        :meth:`~pycro_gpu.io.usid.USIDataset.to_xarray` made of compound results (``usid_compound``)
        is one channel of compound records again. Step dimensions (``<name>_step`` with the
        coordinate ``<name>``, repeated sweep values) become the dimension ``<name>`` again.
    """
    xr = require("xarray", feature="from_xarray")
    if isinstance(obj, xr.DataArray):
        arrays = [(str(obj.name) if obj.name is not None else "Data", obj)]
        attrs: dict[str, Any] = {}
    elif isinstance(obj, xr.Dataset) and obj.attrs.get("usid_compound"):
        return RawData(Path(source), "xarray", [_compound_channel(obj, pos_dims)], {})
    elif isinstance(obj, xr.Dataset):
        arrays = [(str(k), obj[k]) for k in obj.data_vars]
        attrs = {str(k): v for k, v in obj.attrs.items()}
    else:
        msg = f"from_xarray needs an xarray DataArray or Dataset, got {type(obj).__name__}"
        raise TranslationError(msg)
    if not arrays:
        msg = f"{source}: the xarray Dataset has no data variable"
        raise TranslationError(msg)
    channels = [_channel(da, pos_dims, name) for name, da in arrays]
    return RawData(Path(source), "xarray", channels, attrs)


def read_netcdf(path: Path) -> RawData:
    """Read a netCDF file through ``xarray.open_dataset`` (one channel per data variable)."""
    xr = require("xarray", feature="the netCDF translator")
    with reader_errors(path, "netcdf") as warned, xr.open_dataset(path) as ds:
        ds.load()
        raw = from_xarray(ds, source=path)
    raw.format = "netcdf"
    if warned:
        raw.metadata["reader_warnings"] = warned
    return raw
