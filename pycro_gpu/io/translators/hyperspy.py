"""HyperSpy files (``.hspy``, ``.zspy``) in and out, through rosettasciio's own readers and writers.

Nothing here parses or writes the formats: :func:`read_hyperspy` turns the signal dictionaries of
``rsciio.hspy`` / ``rsciio.zspy`` into :class:`~pycro_gpu.io.translators.RawData` (navigation axes become
position dimensions, signal axes spectroscopic ones), and :func:`export_hyperspy` builds such a
dictionary from a USID Main dataset (through :meth:`~pycro_gpu.io.usid.USIDataset.to_xarray`: axes
slowest first, values and units from the ancillary datasets) for rosettasciio's ``file_writer``.

A map (one value per position of a 2-D scan: an AFM channel, an abundance map) is written as a
HyperSpy image (``Signal2D``: the scan axes are its signal axes) and read back as positions, as the
other image translators do. Axes: evenly spaced values become uniform axes (offset, scale, size);
others are written as the full axis vector. A sweep with repeated values (a bipolar DC sweep) has no
HyperSpy axis: it is written as the step axis ``<name>_step`` and its values go to
``original_metadata["usid_dimensions"][<name>]``, from which :func:`read_hyperspy` restores the
dimension. A ``.zspy`` store is a directory (zarr); it needs ``zarr`` (``rosettasciio[zspy]``).
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..._lib.optional import require
from ._base import Channel, Dim, RawData, TranslationError, pad_single_points, reader_errors

__all__ = ["HYPERSPY_EXTENSIONS", "export_hyperspy", "read_hyperspy"]

HYPERSPY_EXTENSIONS = (".hspy", ".zspy")
_QUANTITY = re.compile(r"^(?P<name>.*?)\s*\((?P<units>[^()]*)\)\s*$")


def _plugin(path: Path) -> Any:
    ext = path.suffix.lower()
    if ext not in HYPERSPY_EXTENSIONS:
        msg = f"{path}: a HyperSpy file ends in .hspy or .zspy"
        raise TranslationError(msg)
    if ext == ".zspy":
        require("zarr", feature="HyperSpy .zspy files", package="rosettasciio[zspy]")
        return require("rsciio.zspy", feature="HyperSpy .zspy files", package="rosettasciio[zspy]")
    return require("rsciio.hspy", feature="HyperSpy .hspy files", package="rosettasciio")


# --------------------------------------------------------------------------------------------------
# in
# --------------------------------------------------------------------------------------------------


def _axis_values(axis: dict[str, Any]) -> np.ndarray:
    if axis.get("axis") is not None:
        return np.asarray(axis["axis"], dtype=np.float64)
    size = int(axis["size"])
    return float(axis.get("offset", 0.0)) + float(axis.get("scale", 1.0)) * np.arange(size, dtype=np.float64)


def _axis_dim(axis: dict[str, Any], index: int, restored: dict[str, Any]) -> Dim:
    name = str(axis.get("name") or f"axis_{index}")
    units = str(axis.get("units") or "")
    if name.endswith("_step") and name[: -len("_step")] in restored:  # a repeated sweep, as exported
        base = name[: -len("_step")]
        entry = restored[base]
        return Dim(base, str(entry.get("units", units)), np.asarray(entry["values"], dtype=np.float64))
    return Dim(name, units, _axis_values(axis))


def _quantity(metadata: dict[str, Any], fallback: str) -> tuple[str, str]:
    text = str(metadata.get("Signal", {}).get("quantity", "") or "")
    m = _QUANTITY.match(text)
    if m:
        return m["name"] or fallback, m["units"]
    return text or fallback, ""


def _channel(signal: dict[str, Any], index: int) -> Channel:
    data = np.asarray(signal["data"])
    axes = list(signal["axes"])
    if all("index_in_array" in a for a in axes):
        axes.sort(key=lambda a: int(a["index_in_array"]))
    if len(axes) != data.ndim:
        msg = f"signal {index}: {len(axes)} axes for data of shape {data.shape}"
        raise TranslationError(msg)
    if data.dtype.kind not in "biufc":
        msg = f"signal {index}: values of dtype {data.dtype} cannot be translated"
        raise TranslationError(msg)
    restored = dict(signal.get("original_metadata", {}).get("usid_dimensions", {}) or {})
    dims = [_axis_dim(a, i, restored) for i, a in enumerate(axes)]
    nav = [i for i, a in enumerate(axes) if a.get("navigate")]
    sig = [i for i, a in enumerate(axes) if not a.get("navigate")]
    if not nav and len(sig) == 2:  # an image (Signal2D): its pixels are positions, as for other images
        nav, sig = sig, []
    arr = np.transpose(data, nav + sig)
    pos, spec, arr = pad_single_points([dims[i] for i in nav], [dims[i] for i in sig], arr)
    metadata = dict(signal.get("metadata", {}) or {})
    title = str(metadata.get("General", {}).get("title", "") or f"signal_{index}")
    quantity, units = _quantity(metadata, title)
    meta = {"metadata": metadata, "original_metadata": dict(signal.get("original_metadata", {}) or {})}
    return Channel(title, arr, pos, spec, quantity, units, meta)


def read_hyperspy(path: Path) -> RawData:
    """Read a ``.hspy`` / ``.zspy`` file with rosettasciio: one channel per signal."""
    path = Path(path)
    plugin = _plugin(path)
    with reader_errors(path, "hyperspy") as warned, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The NestedDirectoryStore is deprecated", FutureWarning)
        signals = plugin.file_reader(str(path), lazy=False)
        channels = [_channel(s, i) for i, s in enumerate(signals)]
    raw = RawData(path, "hyperspy", channels, {})
    if warned:
        raw.metadata["reader_warnings"] = warned
    return raw


# --------------------------------------------------------------------------------------------------
# out
# --------------------------------------------------------------------------------------------------


def _axis_dict(name: str, units: str, values: np.ndarray, navigate: bool) -> dict[str, Any]:
    values = np.asarray(values, dtype=np.float64)
    axis: dict[str, Any] = {"name": name, "units": units, "navigate": bool(navigate)}
    step = float(values[1] - values[0]) if values.size > 1 else 1.0
    uniform = values.size < 2 or (
        step != 0 and np.allclose(np.diff(values), step, rtol=1e-6, atol=1e-12 * max(1.0, abs(step)))
    )
    if uniform:
        axis.update(_type="UniformDataAxis", size=int(values.size), offset=float(values[0]), scale=step)
    else:
        axis.update(_type="DataAxis", axis=values)
    return axis


def signal_dict(da: Any, *, title: str | None = None) -> dict[str, Any]:
    """rosettasciio's signal dictionary of an ``xarray.DataArray`` from ``USIDataset.to_xarray``."""
    pos = {str(d) for d in np.atleast_1d(da.attrs.get("usid_pos_dims", [])).tolist()}
    spec = [d for d in da.dims if str(d) not in pos]
    if spec and all(da.sizes[d] == 1 for d in spec) and len(pos) == 2:
        # a map (one value per position): a HyperSpy image, the position axes its signal axes
        da = da.isel({d: 0 for d in spec}, drop=True)
        pos = set()
    axes, restored = [], {}
    for i, dim in enumerate(da.dims):
        name = str(dim)
        stepped = [c for c in da.coords.values() if c.dims == (dim,) and c.attrs.get("usid_dimension")]
        if stepped:
            c = stepped[0]
            restored[str(c.attrs["usid_dimension"])] = {
                "units": str(c.attrs.get("units", "")),
                "values": c.values,
            }
            values, units = np.arange(da.sizes[dim], dtype=np.float64), ""
        elif dim in da.coords:
            values, units = np.asarray(da.coords[dim].values), str(da.coords[dim].attrs.get("units", ""))
        else:
            values, units = np.arange(da.sizes[dim], dtype=np.float64), ""
        axis = _axis_dict(name, units, values, navigate=name in pos)
        axis["index_in_array"] = i
        axes.append(axis)
    quantity, units = str(da.attrs.get("quantity", da.name or "")), str(da.attrs.get("units", ""))
    original = {"usid_source": str(da.attrs.get("source", "")), "usid_dimensions": restored}
    return {
        "data": np.ascontiguousarray(da.values),
        "axes": axes,
        "metadata": {
            "General": {"title": title or quantity or "pycro_gpu"},
            "Signal": {"quantity": f"{quantity} ({units})" if units else quantity, "signal_type": ""},
        },
        "original_metadata": original,
        "tmp_parameters": {},
        "attributes": {"_lazy": False},
        "package_info": {"package": "", "package_version": ""},
        "learning_results": {},
        "models": {},
    }


def export_hyperspy(
    main: Any, out: str | os.PathLike, *, field: str | None = None, overwrite: bool = False
) -> Path:
    """Write a USID Main dataset (raw data or a results map) as a HyperSpy ``.hspy`` / ``.zspy`` file.

    Parameters
    ----------
    main : USIDataset or h5py.Dataset
        The Main dataset; position dimensions become navigation axes, spectroscopic ones signal axes.
    out : path-like
        ``*.hspy`` (HDF5) or ``*.zspy`` (a zarr directory; needs ``zarr``).
    field : str, optional
        For compound data (fit results), the field to export (e.g. ``"Amplitude"`` or
        ``"Amplitude [V]"``).
    overwrite : bool
        Replace an existing ``out``.

    Returns
    -------
    Path
        ``out``, written under a temporary name and renamed when complete.

    Raises
    ------
    TranslationError
        Wrong extension, an existing ``out`` without ``overwrite``, or compound data without a valid
        ``field``.
    """
    from ..usid import USIDataset, record_fields, select_field

    out = Path(out)
    plugin = _plugin(out)
    if out.exists() and not overwrite:
        msg = f"{out} exists; pass overwrite=True (--override) to replace it"
        raise TranslationError(msg)
    main = main if isinstance(main, USIDataset) else USIDataset(main)
    obj = main.to_xarray()
    title = main.quantity
    if hasattr(obj, "data_vars"):  # compound records: one field at a time
        da = select_field(obj, field)
        if da is None:
            fields = sorted(record_fields(obj).values())
            msg = f"{main.name} holds records with fields {fields}; choose one with field=..."
            raise TranslationError(msg)
        title = da.attrs["quantity"]
    else:
        da = obj
    signal = signal_dict(da, title=title)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp{out.suffix}")
    try:
        with warnings.catch_warnings():
            # rosettasciio's zspy writer uses zarr 2's NestedDirectoryStore, deprecated for zarr 3
            warnings.filterwarnings("ignore", "The NestedDirectoryStore is deprecated", FutureWarning)
            plugin.file_writer(str(tmp), signal, show_progressbar=False)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    return out
