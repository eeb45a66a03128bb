"""Igor Pro binary waves (``.ibw``, versions 1, 2, 3 and 5), read with igor2.

igor2 (the maintained successor of the ``igor`` package, used by pycroscopy and rosettasciio) parses
the binary header and data. We read the dimension labels ourselves from the file's bytes: Igor writes
each label as a NUL-terminated C string in a 32-byte field, and igor2 concatenates the bytes that follow
the NUL (e.g. ``DeflectionRetracee``).

Layout mapping (Igor stores waves column-major: dimension 0 is the image's horizontal axis):

* a dimension whose every index has a label (Asylum Research channel stacks) becomes separate
  channels;
* the remaining dimensions: 1 -> one position, that dimension spectroscopic (force curve);
  2 -> an image, positions ``Y`` (Igor dim 1, slow) x ``X`` (Igor dim 0, fast) and one spectroscopic
  point; 3 -> positions ``Y`` x ``X`` and Igor dim 2 spectroscopic.

The wave note (``key:value`` lines, as Asylum Research writes them) is kept as metadata.
"""

from __future__ import annotations

import re
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
    reader_errors,
    single_point,
)

__all__ = ["read_ibw"]

FORMAT = "igor-ibw"
_BIN_HEADER5 = 64


def _text(value: Any) -> str:
    if isinstance(value, np.ndarray):
        value = b"".join(v if isinstance(v, bytes) else bytes(v) for v in value.ravel().tolist())
    if isinstance(value, bytes):
        value = value.split(b"\x00")[0].decode("latin-1")
    return str(value).strip()


def _parse_note(note: bytes) -> dict[str, str]:
    """Split an Asylum-style wave note (``key:value`` lines separated by CR) into a dict."""
    text = note.decode("latin-1", errors="replace")
    out: dict[str, str] = {}
    for line in re.split(r"[\r\n]+", text):
        if ":" in line:
            key, _, val = line.partition(":")
            key = key.strip()
            if key:
                out[key] = val.strip()
    return out


def _labels_offset(bin_header: dict) -> int:
    """Byte offset of a version-5 wave's dimension labels (after header, wave, formula, note, units)."""
    return (
        _BIN_HEADER5
        + int(bin_header["wfmSize"])
        + int(bin_header["formulaSize"])
        + int(bin_header["noteSize"])
        + int(bin_header["dataEUnitsSize"])
        + int(np.sum(bin_header["dimEUnitsSize"]))
    )


def _dim_labels(raw: bytes, version: int, bin_header: dict) -> list[list[str]]:
    """Dimension labels of a version-5 wave, read from the file bytes (igor2 mangles them)."""
    if version != 5:
        return [[], [], [], []]
    off = _labels_offset(bin_header)
    labels = []
    for size in np.asarray(bin_header["dimLabelsSize"]).tolist():
        blob = raw[off : off + size]
        labels.append([blob[i : i + 32].split(b"\x00")[0].decode("latin-1") for i in range(0, len(blob), 32)])
        off += size
    return labels


#: Units of Asylum Research channels by name prefix. A multi-channel IBW image stores one data unit for
#: every layer (the height's metre), so per-channel units follow the channel names, as pycroscopy's
#: IgorIBW translator does; the Gwyddion export of the same scan (SingFreqPFM_0003.gwy) agrees for phase.
_CHANNEL_UNITS = (("Phase", "deg"), ("Current", "A"), ("UserIn", "V"), ("Bias", "V"), ("Potential", "V"))


def _channel_units(label: str, wave_units: str) -> str:
    """Units of one layer of a multi-channel wave: from its name where known, else the wave's."""
    for prefix, units in _CHANNEL_UNITS:
        if label.startswith(prefix):
            return units
    return wave_units


def _layout(
    path: Path, shape: tuple[int, ...], labels: list, dim_units: list[str], sf_a: list, sf_b: list
) -> tuple[int | None, list[Dim], list[Dim], list[int]]:
    """(channel axis or None, position dims, spectroscopic dims, axis order) of an Igor wave's dimensions."""
    ndim = len(shape)
    # A dimension labelled at every index holds channels (dim 0 of the label list is the axis name).
    chan_axis = None
    for d in range(ndim - 1, -1, -1):
        if ndim > 1 and len(labels[d]) == shape[d] + 1 and all(labels[d][1:]):
            chan_axis = d
            break
    axes = [d for d in range(ndim) if d != chan_axis]

    def axis_dim(d: int, default: str) -> Dim:
        label = labels[d][0] if labels[d] and labels[d][0] else default
        return Dim.linear(label, dim_units[d], shape[d], sf_a[d], sf_b[d])

    if len(axes) == 1:
        pos_dims, spec_dims = single_point("Single_Position"), [axis_dim(axes[0], "Time")]
        order = [axes[0]]
    elif len(axes) == 2:
        pos_dims, spec_dims = [axis_dim(axes[1], "Y"), axis_dim(axes[0], "X")], single_point()
        order = [axes[1], axes[0]]
    elif len(axes) == 3:
        pos_dims = [axis_dim(axes[1], "Y"), axis_dim(axes[0], "X")]
        spec_dims = [axis_dim(axes[2], "Spectroscopic")]
        order = [axes[1], axes[0], axes[2]]
    else:
        msg = f"{path}: Igor waves with {len(axes)} data dimensions (shape {shape}) are not supported"
        raise UnsupportedFormatError(msg)
    return chan_axis, pos_dims, spec_dims, order


def _layers(
    data: np.ndarray, labels: list, chan_axis: int | None, order: list[int], name: str
) -> list[tuple[str, np.ndarray]]:
    """(name, positions x spectroscopic array) of each channel of ``data``, axes put in ``order``."""
    if chan_axis is None:
        layers = [(name, np.transpose(data, order))]
    else:
        layers = []
        for i, label in enumerate(labels[chan_axis][1:]):
            layer = np.take(data, i, axis=chan_axis)
            kept = [d - (d > chan_axis) for d in order]
            layers.append((label, np.transpose(layer, kept)))
    n_axes = len(order)
    if n_axes == 1:
        layers = [(n, arr[np.newaxis, ...]) for n, arr in layers]
    elif n_axes == 2:
        layers = [(n, arr[..., np.newaxis]) for n, arr in layers]
    return layers


def read_ibw(path: Path) -> RawData:
    """Read an Igor binary wave into channels of positions x spectroscopic points.

    Parameters
    ----------
    path : Path
        The ``.ibw`` file.

    Returns
    -------
    RawData
        One channel per labelled layer (or one channel); metadata holds the wave note and header.
    """
    binarywave = require("igor2.binarywave", feature="the Igor IBW translator")
    raw = path.read_bytes()
    with reader_errors(path, FORMAT) as warned:
        loaded = binarywave.load(str(path))
        version = int(loaded["version"])
        wave = loaded["wave"]
        header = wave["wave_header"]
        data = np.asarray(wave["wData"])
        labels = _dim_labels(raw, version, wave["bin_header"])
        note = wave.get("note", b"") or b""
        if version == 5:
            n_dim = [int(n) for n in np.asarray(header["nDim"]).tolist()]
            sf_a = np.asarray(header["sfA"], dtype=np.float64).tolist()
            sf_b = np.asarray(header["sfB"], dtype=np.float64).tolist()
            dim_units = [_text(u) for u in np.asarray(header["dimUnits"])]
            ext_units = wave.get("dimension_units") or b""
            data_units = _text(wave.get("data_units") or b"") or _text(header["dataUnits"])
        else:
            n_dim = [int(data.size), 0, 0, 0]
            sf_a = [float(header.get("hsA", 1.0)), 1.0, 1.0, 1.0]
            sf_b = [float(header.get("hsB", 0.0)), 0.0, 0.0, 0.0]
            dim_units = [_text(header.get("xUnits", b"")), "", "", ""]
            ext_units = b""
            data_units = _text(header.get("dataUnits", b""))
        name = _text(header["bname"])
    if version == 5:
        bh = wave["bin_header"]
        # the labels are followed by the string indices, the last section
        declared = _labels_offset(bh) + int(np.sum(bh["dimLabelsSize"])) + int(bh["sIndicesSize"])
        if len(raw) < declared:
            msg = (
                f"{path}: truncated Igor wave: the header declares {declared} bytes, the file has {len(raw)}"
            )
            raise CorruptFileError(msg)
    if ext_units:
        dim_units[0] = _text(ext_units) or dim_units[0]
    shape = tuple(n for n in n_dim if n > 0)
    if data.dtype.kind not in "biufc":
        msg = f"{path}: Igor text waves (dtype {data.dtype}) hold no numeric data to translate"
        raise UnsupportedFormatError(msg)
    if data.shape != shape:
        msg = f"{path}: the Igor header declares dimensions {shape} but the wave holds {data.shape}"
        raise CorruptFileError(msg)
    chan_axis, pos_dims, spec_dims, order = _layout(path, shape, labels, dim_units, sf_a, sf_b)
    layers = _layers(data, labels, chan_axis, order, name or "Channel")
    channels = [
        Channel(label, arr, pos_dims, spec_dims, quantity=label, units=_channel_units(label, data_units))
        for label, arr in layers
    ]
    meta: dict[str, Any] = {
        "wave_name": name,
        "igor_version": version,
        "note": _parse_note(note) if isinstance(note, bytes) else str(note),
        "wave_header": {k: v for k, v in header.items() if not isinstance(v, dict)},
    }
    if warned:
        meta["reader_warnings"] = warned
    return RawData(path, FORMAT, channels, meta)
