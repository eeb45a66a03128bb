"""Gatan Digital Micrograph ``.dm3`` / ``.dm4``, read with rosettasciio (``rsciio.digitalmicrograph``).

rosettasciio is the maintained reader of HyperSpy and pycroscopy's SciFiReaders lineage; it parses the
tag tree and the calibrations. Each object it returns becomes one channel:

* an axis with energy units (``eV``, ``keV``, ``meV``) is spectroscopic, all others positional
  (this also fixes older spectrum images whose ``navigate`` flags are inverted);
* otherwise rosettasciio's ``navigate`` flags decide; a plain image (no navigation axes) becomes
  ``Y`` x ``X`` positions with one spectroscopic point, a single spectrum one position.

Axes are ordered slowest first, as in the array rosettasciio returns. The whole tag tree is kept as
metadata (flattened into attributes when written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..._lib.optional import require
from ._base import (
    Channel,
    CorruptFileError,
    Dim,
    RawData,
    UnsupportedFormatError,
    pad_single_points,
    reader_errors,
)

__all__ = ["read_dm"]

_ENERGY_UNITS = {"ev", "kev", "mev"}


def _axis_dim(axis: dict[str, Any], default: str) -> Dim:
    size = int(axis["size"])
    name = str(axis.get("name") or default)
    units = str(axis.get("units") or "")
    if units in ("<undefined>", "None"):
        units = ""
    scale = float(axis.get("scale", 1.0))
    offset = float(axis.get("offset", 0.0))
    return Dim.linear(name, units, size, scale, offset)


def _channel(path: Path, signal: dict[str, Any], index: int) -> Channel:
    data = np.asarray(signal["data"])
    if data.dtype.kind not in "biufc":
        msg = f"{path}: DM image {index} has data of type {data.dtype}, which has no USID form"
        raise UnsupportedFormatError(msg)
    axes = sorted(signal["axes"], key=lambda ax: int(ax.get("index_in_array", 0)))
    if len(axes) != data.ndim or any(int(ax["size"]) != n for ax, n in zip(axes, data.shape, strict=False)):
        msg = (
            f"{path}: DM image {index}: axes {[ax.get('size') for ax in axes]} do not match data {data.shape}"
        )
        raise CorruptFileError(msg)
    energy = [i for i, ax in enumerate(axes) if str(ax.get("units") or "").strip().lower() in _ENERGY_UNITS]
    if len(energy) == 1:
        spec_axes = energy
    else:
        spec_axes = [i for i, ax in enumerate(axes) if not ax.get("navigate", False)]
        if len(spec_axes) == len(axes) and data.ndim == 2:
            spec_axes = []
    pos_axes = [i for i in range(len(axes)) if i not in spec_axes]
    default_names = ["Z", "Y", "X"][-len(pos_axes) :] if 0 < len(pos_axes) <= 3 else []
    pos = [
        _axis_dim(axes[i], default_names[k] if default_names else f"Dim_{i}") for k, i in enumerate(pos_axes)
    ]
    spec = [_axis_dim(axes[i], f"Dim_{i}") for i in spec_axes]
    pos, spec, arr = pad_single_points(pos, spec, np.transpose(data, pos_axes + spec_axes))
    meta = signal.get("metadata", {}) or {}
    title = str(meta.get("General", {}).get("title", "") or f"Image {index}")
    quantity = str(
        meta.get("Signal", {}).get("quantity", "") or meta.get("Signal", {}).get("signal_type", "")
    )
    original = signal.get("original_metadata", {}) or {}
    try:
        units = str(original["ImageList"]["TagGroup0"]["ImageData"]["Calibrations"]["Brightness"]["Units"])
    except (KeyError, TypeError):
        units = ""
    return Channel(title, arr, pos, spec, quantity or title, units, {"rsciio_metadata": meta})


def read_dm(path: Path) -> RawData:
    """Read a Digital Micrograph file (every image object in it).

    Parameters
    ----------
    path : Path
        The ``.dm3`` or ``.dm4`` file.

    Returns
    -------
    RawData
        One channel per DM image; the tag tree of the first is the metadata.
    """
    reader = require(
        "rsciio.digitalmicrograph", feature="the Digital Micrograph translator", package="rosettasciio"
    )
    with reader_errors(path, "digital-micrograph") as warned:
        signals = reader.file_reader(str(path), lazy=False)
        channels = [_channel(path, s, i) for i, s in enumerate(signals)]
        original = signals[0].get("original_metadata", {}) if signals else {}
    meta: dict[str, Any] = {"original_metadata": original}
    if warned:
        meta["reader_warnings"] = warned
    return RawData(path, "digital-micrograph", channels, meta)
