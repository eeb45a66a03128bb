"""USID Main dataset -> xarray: dimension order, repeated sweeps and compound results.

* Dimensions come slowest first within the positions, then within the spectroscopic steps, which is
  the stored C order: a map with x fastest has dims ``("Y", "X")``, so ``.plot()`` draws x across.
* A dimension whose values repeat (a bipolar DC sweep ``0 -> +V -> -V -> 0``) cannot index ``.sel``
  unambiguously: it becomes the dimension ``<name>_step`` (step numbers) with ``<name>`` as a
  non-index coordinate along it (its values and units). ``ds.isel(DC_Offset_step=i)`` picks one step;
  ``ds.set_xindex("DC_Offset").sel(DC_Offset=v)`` picks every step at voltage ``v``.
* Compound results (SHO or loop fits: one record of named fields per pixel) become an
  ``xarray.Dataset`` with one variable per field; a field ``"Amplitude [V]"`` is the variable
  ``Amplitude`` with ``units="V"``. Plain datasets stay a ``DataArray``.

``attrs["usid_pos_dims"]`` lists the position dimensions, so that
:func:`pycro_gpu.io.translators.from_xarray` writes the same file layout back (a round trip).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

#: suffix of the step dimension that replaces a dimension with repeated values
STEP_SUFFIX = "_step"
#: attribute of the coordinate that holds the values of a stepped dimension
STEP_OF = "usid_dimension"

_FIELD = re.compile(r"^(?P<name>.*?)\s*\[(?P<units>[^\]]*)\]\s*$")


def split_field(field: str) -> tuple[str, str]:
    """``"Amplitude [V]" -> ("Amplitude", "V")``; a field without ``[units]`` keeps its name, no units."""
    m = _FIELD.match(field)
    return (m["name"], m["units"]) if m else (field, "")


def record_fields(records: Any) -> dict[str, str]:
    """Variable name -> field name of each variable of a compound record's ``xarray.Dataset``."""
    return {str(k): str(records[k].attrs.get("field", k)) for k in records.data_vars}


def select_field(records: Any, field: str | None) -> Any:
    """The ``DataArray`` of the field of ``records`` named ``field`` (by variable or field name), with the
    record's attributes and ``quantity`` / ``units`` of that field; ``None`` when no field matches."""
    for key, name in record_fields(records).items():
        if field in (key, name):
            da = records[key]
            da.attrs = {**records.attrs, "quantity": key, "units": da.attrs.get("units", "")}
            return da
    return None


def _axes_slowest_first(main: Any) -> list[int]:
    """Axes of the N-D form (label order) rearranged slowest first within positions and spectroscopic."""
    n_pos = len(main.pos_dims)
    pos = list(reversed(main.pos_order))
    spec = [n_pos + k for k in reversed(main.spec_order)]
    return pos + spec


def _coords(xr: Any, dims: list[Any]) -> tuple[list[str], dict[str, Any]]:
    names, coords = [], {}
    for d in dims:
        values = np.asarray(d.values)
        if np.unique(values).size == values.size:
            names.append(d.name)
            coords[d.name] = xr.Variable((d.name,), values, attrs={"units": d.units})
        else:
            step = f"{d.name}{STEP_SUFFIX}"
            names.append(step)
            coords[step] = xr.Variable((step,), np.arange(values.size))
            coords[d.name] = xr.Variable((step,), values, attrs={"units": d.units, STEP_OF: d.name})
    return names, coords


def to_xarray(main: Any) -> Any:
    """The N-D data of a USID Main dataset as an ``xarray.DataArray`` (or ``Dataset`` for compound data).

    See the module notes for the dimension order, repeated sweeps and compound results.
    """
    from ..._lib.optional import require

    xr = require("xarray", feature="USIDataset.to_xarray")
    axes = _axes_slowest_first(main)
    dims_all = main.pos_dims + main.spec_dims
    dims, coords = _coords(xr, [dims_all[a] for a in axes])
    data = np.transpose(main.get_n_dim_form(), axes)
    n_pos = len(main.pos_dims)
    attrs = {
        "units": main.units,
        "quantity": main.quantity,
        "source": f"{main.file.filename}:{main.name}",
        "usid_pos_dims": [str(d) for d in dims[:n_pos]],
    }
    if data.dtype.names is None:
        return xr.DataArray(data, dims=dims, coords=coords, name=main.quantity, attrs=attrs)
    variables = {}
    for field in data.dtype.names:
        name, units = split_field(field)
        variables[name] = xr.Variable(
            dims, np.ascontiguousarray(data[field]), attrs={"units": units, "field": field}
        )
    return xr.Dataset(variables, coords=coords, attrs={**attrs, "usid_compound": True})
