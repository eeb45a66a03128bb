"""Gwyddion native files (``.gwy``, the 2.x ``GWYP`` container) and Gwyddion Simple Field (``.gsf``).

* ``.gwy`` is read with gwyfile (the Python reader listed by the Gwyddion project). Every image
  channel (``/N/data`` data field) becomes one channel of ``Y`` x ``X`` positions and one
  spectroscopic point; its title, ``/N/meta`` container and units are kept. The old Gwyddion 1.x
  container (magic ``GWYO``) is not read by gwyfile and gives :class:`UnsupportedFormatError`.
* ``.gsf`` is a small, documented single-channel format
  (http://gwyddion.net/documentation/user-guide-en/gsf.html): a magic line, ``name = value`` header
  lines, 1-4 NUL bytes aligning the data to 4 bytes, then ``XRes * YRes`` little-endian float32 values,
  row by row. It is parsed here directly.
"""

from __future__ import annotations

import struct
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

__all__ = ["GSF_MAGIC", "GWY_MAGIC", "check_gwyp", "read_gsf", "read_gwy"]

GWY_MAGIC = b"GWYP"
GWY1_MAGIC = b"GWYO"
GSF_MAGIC = b"Gwyddion Simple Field 1.0\n"


_FIXED_SIZE = {ord("b"): 1, ord("c"): 1, ord("i"): 4, ord("q"): 8, ord("d"): 8}
_ITEM_SIZE = {ord("I"): 4, ord("Q"): 8, ord("D"): 8}
_MAX_DEPTH = 64


class _Bad(Exception):
    """A structural problem found by :func:`check_gwyp` (message: what and where)."""


def _walk_object(buf: bytes, pos: int, end: int, depth: int) -> int:
    if depth > _MAX_DEPTH:
        msg = f"objects nest deeper than {_MAX_DEPTH} at byte {pos}"
        raise _Bad(msg)
    nul = buf.find(b"\x00", pos, end)
    if nul < 0 or nul + 5 > end:
        msg = f"object header at byte {pos} runs past its container"
        raise _Bad(msg)
    (size,) = struct.unpack_from("<I", buf, nul + 1)
    start, stop = nul + 5, nul + 5 + size
    if stop > end:
        msg = f"object at byte {pos} declares {size} bytes, {end - start} remain"
        raise _Bad(msg)
    p = start
    while p < stop:
        p = _walk_component(buf, p, stop, depth)
    return stop


def _walk_component(buf: bytes, pos: int, end: int, depth: int) -> int:
    nul = buf.find(b"\x00", pos, end)
    if nul < 0 or nul + 2 > end:
        msg = f"component name at byte {pos} runs past its object"
        raise _Bad(msg)
    buf[pos:nul].decode("utf-8")
    code, p = buf[nul + 1], nul + 2
    if code in _FIXED_SIZE:
        q = p + _FIXED_SIZE[code]
    elif code == ord("s"):
        q = buf.find(b"\x00", p, end) + 1
        if q == 0:
            msg = f"string at byte {p} has no terminating NUL"
            raise _Bad(msg)
    elif code == ord("o"):
        q = _walk_object(buf, p, end, depth + 1)
    elif code in _ITEM_SIZE or code in (ord("S"), ord("O")):
        if p + 4 > end:
            msg = f"array length at byte {p} runs past its object"
            raise _Bad(msg)
        (n,) = struct.unpack_from("<I", buf, p)
        q = p + 4
        if code in _ITEM_SIZE:
            q += n * _ITEM_SIZE[code]
        elif n > end - q:
            msg = f"array at byte {p} declares {n} items, {end - q} bytes remain"
            raise _Bad(msg)
        elif code == ord("S"):
            for _ in range(n):
                q = buf.find(b"\x00", q, end) + 1
                if q == 0:
                    msg = f"string array at byte {p} runs past its object"
                    raise _Bad(msg)
        else:
            for _ in range(n):
                q = _walk_object(buf, q, end, depth + 1)
    else:
        msg = f"component type {chr(code)!r} at byte {nul + 1} is not one gwyfile reads"
        raise _Bad(msg)
    if q > end:
        msg = f"component at byte {pos} runs past its object ({q} > {end})"
        raise _Bad(msg)
    return q


def check_gwyp(path: Path, buf: bytes) -> None:
    """Walk the serialized ``GWYP`` tree with bounds checks before gwyfile parses it.

    gwyfile assumes a well-formed file: on a truncated one it can loop forever (a missing NUL makes
    ``bytes.find`` return -1 and the parse stop advancing). This walk follows the same grammar
    (object = name NUL, uint32 size, components; component = name NUL, type code, payload) and
    raises :class:`CorruptFileError` at the first component that does not fit its container.
    """
    try:
        _walk_object(buf, 4, len(buf), 0)
    except (_Bad, UnicodeDecodeError, struct.error) as exc:
        msg = f"{path}: corrupt or truncated Gwyddion file: {exc}"
        raise CorruptFileError(msg) from exc


def _unit(field: Any, key: str) -> str:
    unit = field.get(key) if hasattr(field, "get") else None
    if unit is None:
        return ""
    return str(unit.get("unitstr", "") or "")


def _image_dims(xres: int, yres: int, xreal: float, yreal: float, xoff: float, yoff: float, unit: str):
    return [
        Dim.linear("Y", unit, yres, yreal / yres, yoff),
        Dim.linear("X", unit, xres, xreal / xres, xoff),
    ]


def read_gwy(path: Path) -> RawData:
    """Read every image channel of a Gwyddion 2.x ``.gwy`` file.

    Parameters
    ----------
    path : Path
        The ``.gwy`` file.

    Returns
    -------
    RawData
        One channel per data field: ``(yres, xres, 1)`` values on ``Y`` x ``X`` positions.
    """
    buf = path.read_bytes()
    magic = buf[:4]
    if magic == GWY1_MAGIC:
        msg = (
            f"{path}: Gwyddion 1.x files (container 'GWYO') are not supported; open the file in "
            "Gwyddion 2 and save it again as .gwy"
        )
        raise UnsupportedFormatError(msg)
    if magic != GWY_MAGIC:
        msg = f"{path}: not a Gwyddion 2 file (magic {magic!r}, expected {GWY_MAGIC!r})"
        raise CorruptFileError(msg)
    objects = require("gwyfile.objects", feature="the Gwyddion .gwy translator", package="gwyfile")
    check_gwyp(path, buf)
    with reader_errors(path, "gwyddion-gwy") as warned:
        obj = objects.GwyObject.frombuffer(buf[4:])
        keys = list(obj.keys())
        ids = sorted({int(k.split("/")[1]) for k in keys if k.count("/") == 2 and k.endswith("/data")})
        channels = []
        for i in ids:
            field = obj[f"/{i}/data"]
            if not hasattr(field, "data") or "xres" not in field:
                continue
            data = np.asarray(field.data, dtype=np.float64)
            xres, yres = int(field["xres"]), int(field["yres"])
            if data.shape != (yres, xres):
                msg = f"{path}: channel {i} declares {yres} x {xres} pixels but holds {data.shape}"
                raise CorruptFileError(msg)
            title = str(obj.get(f"/{i}/data/title", f"Channel {i}"))
            xy_unit, z_unit = _unit(field, "si_unit_xy"), _unit(field, "si_unit_z")
            pos = _image_dims(
                xres,
                yres,
                float(field["xreal"]),
                float(field["yreal"]),
                float(field.get("xoff", 0.0) or 0.0),
                float(field.get("yoff", 0.0) or 0.0),
                xy_unit,
            )
            meta_obj = obj.get(f"/{i}/meta")
            meta = {str(k): v for k, v in meta_obj.items()} if meta_obj is not None else {}
            meta["gwyddion_id"] = i
            channels.append(Channel(title, data[..., np.newaxis], pos, single_point(), title, z_unit, meta))
        filename = obj.get("/filename")
    if not channels:
        msg = (
            f"{path}: the Gwyddion file holds no image channel (graphs, spectra, volumes are not translated)"
        )
        raise UnsupportedFormatError(msg)
    meta: dict[str, Any] = {"original_filename": str(filename) if filename is not None else ""}
    if warned:
        meta["reader_warnings"] = warned
    return RawData(path, "gwyddion-gwy", channels, meta)


def read_gsf(path: Path) -> RawData:
    """Read a Gwyddion Simple Field (``.gsf``) file.

    Parameters
    ----------
    path : Path
        The ``.gsf`` file.

    Returns
    -------
    RawData
        One channel of ``(YRes, XRes, 1)`` float32 values; header fields other than the geometry are
        kept as metadata.
    """
    raw = path.read_bytes()
    if not raw.startswith(GSF_MAGIC):
        msg = f"{path}: not a Gwyddion Simple Field file (missing the line {GSF_MAGIC[:-1].decode()!r})"
        raise CorruptFileError(msg)
    end = raw.find(b"\x00", len(GSF_MAGIC))
    if end < 0:
        msg = f"{path}: truncated GSF file: the header has no NUL terminator"
        raise CorruptFileError(msg)
    start = (end // 4 + 1) * 4
    if raw[end:start].strip(b"\x00"):
        msg = f"{path}: corrupt GSF file: the NUL padding after the header holds other bytes"
        raise CorruptFileError(msg)
    try:
        text = raw[len(GSF_MAGIC) : end].decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"{path}: corrupt GSF header: not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise CorruptFileError(msg) from exc
    header: dict[str, str] = {}
    for line in text.split("\n"):
        if not line.strip():
            continue
        if "=" not in line:
            msg = f"{path}: corrupt GSF header line {line[:60]!r} (expected 'name = value')"
            raise CorruptFileError(msg)
        key, _, value = line.partition("=")
        header[key.strip()] = value.strip()

    def number(key: str, default: float | None, kind=float):
        if key not in header:
            if default is None:
                msg = f"{path}: GSF header lacks the mandatory field {key!r}"
                raise CorruptFileError(msg)
            return default
        try:
            value = kind(header[key])
        except ValueError as exc:
            msg = f"{path}: GSF header field {key}={header[key]!r} is not a valid {kind.__name__}"
            raise CorruptFileError(msg) from exc
        if not np.isfinite(value):
            msg = f"{path}: GSF header field {key}={header[key]!r} is not finite"
            raise CorruptFileError(msg)
        return value

    xres, yres = number("XRes", None, int), number("YRes", None, int)
    if xres < 1 or yres < 1:
        msg = f"{path}: GSF size XRes={xres}, YRes={yres} must be positive"
        raise CorruptFileError(msg)
    xreal, yreal = number("XReal", 1.0), number("YReal", 1.0)
    xoff, yoff = number("XOffset", 0.0), number("YOffset", 0.0)
    n = xres * yres
    if len(raw) - start != 4 * n:
        msg = (
            f"{path}: GSF data block holds {len(raw) - start} bytes, but XRes x YRes = {xres} x {yres} "
            f"float32 values need {4 * n} (truncated or corrupt file)"
        )
        raise CorruptFileError(msg)
    data = np.frombuffer(raw, dtype="<f4", count=n, offset=start).reshape(yres, xres).astype(np.float32)
    xy_unit, z_unit = header.get("XYUnits", ""), header.get("ZUnits", "")
    title = header.get("Title", "Data")
    pos = _image_dims(xres, yres, xreal, yreal, xoff, yoff, xy_unit)
    geometry = {"XRes", "YRes", "XReal", "YReal", "XOffset", "YOffset", "XYUnits", "ZUnits", "Title"}
    meta = {k: v for k, v in header.items() if k not in geometry}
    channel = Channel(title, data[..., np.newaxis], pos, single_point(), title, z_unit)
    return RawData(path, "gwyddion-gsf", [channel], {"gsf_header": meta, "Title": title})
