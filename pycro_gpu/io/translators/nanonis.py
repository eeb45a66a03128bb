"""Nanonis files: ``.3ds`` grid spectroscopy, ``.dat`` point spectra, ``.sxm`` images.

Which library: none - these are parsed here. We checked the candidates: rosettasciio (0.15) has no
Nanonis reader; ``nanonispy`` (last release 2021) calls ``np.float``/``np.int`` and fails on
NumPy >= 1.24; its fork ``nanonispy2`` (2024) still rejects real grid files whose header lacks newer
keys (e.g. our test file ``NanonisReader_STS_grid_lockin.3ds``: ``KeyError 'Delay before measuring
(s)'``) and reads sizes from the header without checking them against the file. The formats are simple
and documented in the Nanonis manual, so a small parser that validates every size before it reads is
the more dependable choice (and needs no optional package):

* ``.3ds``: ``key=value`` text header ended by ``:HEADER_END:``, then for each grid point (x fastest)
  ``# Parameters`` big-endian float32 parameters followed by ``Points`` values of each channel.
* ``.dat``: ``key<TAB>value`` header, a ``[DATA]`` line, a tab-separated column header and rows of
  numbers; the first column is the sweep signal.
* ``.sxm``: ``:KEY:`` / value-line header ended by ``:SCANIT_END:``, the bytes ``0x1A 0x04``, then
  for each channel of ``:DATA_INFO:`` its forward (and, for direction ``both``, backward) image of
  ``SCAN_PIXELS`` big-endian float32 values, row by row in acquisition order. Backward images are
  flipped left-right and the rows of ``SCAN_DIR down`` scans top-bottom, so that every image is
  stored with ``X`` and ``Y`` increasing.

Grid positions are given in the grid's own frame: centre and size from ``Grid settings``, one point
at the centre of each of the ``nx`` x ``ny`` cells (step ``width / nx``, as the recorded tip
coordinates of real files show); a rotated grid keeps its angle in the metadata and the true tip
coordinates in the ``Parameter X`` / ``Parameter Y`` channels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._base import Channel, CorruptFileError, Dim, RawData, single_point

__all__ = ["DAT_MAGIC", "GRID_MAGIC", "SXM_MAGIC", "read_3ds", "read_dat", "read_sxm", "split_unit"]

GRID_MAGIC = b'Grid dim="'
SXM_MAGIC = b":NANONIS_VERSION:"
DAT_MAGIC = b"Experiment\t"
_GRID_END = b":HEADER_END:"
_SXM_END = b":SCANIT_END:"
_MAX_HEADER = 1 << 20


def split_unit(label: str) -> tuple[str, str]:
    """Split a Nanonis signal label into name and units.

    Examples
    --------
    >>> split_unit("Current (A)")
    ('Current', 'A')
    >>> split_unit("Current [bwd] (A) [filt]")
    ('Current [bwd] [filt]', 'A')
    >>> split_unit("Z-Ctrl hold")
    ('Z-Ctrl hold', '')
    """
    m = re.match(r"^(.*?)\s*\(([^()]*)\)\s*(.*)$", label.strip())
    if not m:
        return label.strip(), ""
    name = m.group(1).strip() + (" " + m.group(3).strip() if m.group(3).strip() else "")
    return name, m.group(2).strip()


def _header_text(path: Path, raw: bytes, end_tag: bytes) -> tuple[str, int]:
    end = raw.find(end_tag, 0, _MAX_HEADER)
    if end < 0:
        msg = f"{path}: truncated or corrupt Nanonis file: header end tag {end_tag.decode()!r} not found"
        raise CorruptFileError(msg)
    return raw[:end].decode("latin-1"), end + len(end_tag)


def _number(path: Path, key: str, text: str, kind=float):
    try:
        value = kind(text.strip())
    except ValueError as exc:
        msg = f"{path}: corrupt Nanonis header: {key}={text.strip()[:40]!r} is not a valid {kind.__name__}"
        raise CorruptFileError(msg) from exc
    if kind is float and not np.isfinite(value):
        msg = f"{path}: corrupt Nanonis header: {key}={text.strip()[:40]!r} is not finite"
        raise CorruptFileError(msg)
    return value


def _cell_centres(cx: float, cy: float, width: float, height: float, nx: int, ny: int) -> list[Dim]:
    """``Y``, ``X`` positions (m) at the centres of the ``nx`` x ``ny`` cells of a frame."""
    return [
        Dim("Y", "m", cy - height / 2 + height * (np.arange(ny) + 0.5) / ny),
        Dim("X", "m", cx - width / 2 + width * (np.arange(nx) + 0.5) / nx),
    ]


@dataclass
class _Grid:
    """The fields of a Nanonis grid header that locate and label its data."""

    header: dict[str, str]
    nx: int
    ny: int
    cx: float
    cy: float
    width: float
    height: float
    angle: float
    points: int
    n_params: int
    channels: list[str]
    params: list[str]


def _grid_header(path: Path, text: str) -> _Grid:
    """Parse and check the header of a ``.3ds`` file."""
    header: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line:
            key, _, value = line.partition("=")
            header[key.strip()] = value.strip().strip('"')
    for key in ("Grid dim", "Grid settings", "Points", "Channels", "# Parameters (4 byte)"):
        if key not in header:
            msg = f"{path}: corrupt Nanonis grid header: the field {key!r} is missing"
            raise CorruptFileError(msg)
    dims = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", header["Grid dim"])
    if not dims:
        msg = f"{path}: corrupt Nanonis grid header: Grid dim={header['Grid dim']!r}"
        raise CorruptFileError(msg)
    nx, ny = int(dims.group(1)), int(dims.group(2))
    settings = [_number(path, "Grid settings", v) for v in header["Grid settings"].split(";")]
    if len(settings) < 4:
        msg = f"{path}: corrupt Nanonis grid header: Grid settings={header['Grid settings']!r}"
        raise CorruptFileError(msg)
    cx, cy, width, height = settings[:4]
    angle = settings[4] if len(settings) > 4 else 0.0
    points = _number(path, "Points", header["Points"], int)
    n_params = _number(path, "# Parameters (4 byte)", header["# Parameters (4 byte)"], int)
    channels = [c for c in header["Channels"].split(";") if c]
    params = [p for p in header.get("Fixed parameters", "").split(";") if p]
    params += [p for p in header.get("Experiment parameters", "").split(";") if p]
    if min(nx, ny, points, len(channels)) < 1 or n_params < 0:
        msg = f"{path}: corrupt Nanonis grid header: grid {nx} x {ny}, {points} points, channels {channels}"
        raise CorruptFileError(msg)
    if len(params) != n_params:
        params = params[:n_params] + [f"Parameter {i}" for i in range(len(params), n_params)]
    if "Experiment size (bytes)" in header:
        exp_size = _number(path, "Experiment size (bytes)", header["Experiment size (bytes)"], int)
        if exp_size != 4 * points * len(channels):
            msg = (
                f"{path}: corrupt Nanonis grid header: Experiment size {exp_size} bytes != 4 x {points} "
                f"points x {len(channels)} channels"
            )
            raise CorruptFileError(msg)
    return _Grid(header, nx, ny, cx, cy, width, height, angle, points, n_params, channels, params)


def _grid_block(path: Path, raw: bytes, end: int, g: _Grid) -> np.ndarray:
    """The ``(ny, nx, n_params + points x channels)`` big-endian float32 values after the header."""
    # Data start right after the end tag's line break.
    start = end + (2 if raw[end : end + 2] == b"\r\n" else 1 if raw[end : end + 1] == b"\n" else 0)
    per_point = g.n_params + g.points * len(g.channels)
    n_values = g.nx * g.ny * per_point
    available = len(raw) - start
    if available != 4 * n_values:
        what = "truncated" if available < 4 * n_values else "has trailing bytes"
        msg = (
            f"{path}: Nanonis grid data {what}: {available} bytes for {g.nx} x {g.ny} points of "
            f"{g.n_params} parameters + {len(g.channels)} x {g.points} values (need {4 * n_values})"
        )
        raise CorruptFileError(msg)
    block = np.frombuffer(raw, dtype=">f4", count=n_values, offset=start).reshape(g.ny, g.nx, per_point)
    return block


def read_3ds(path: Path) -> RawData:
    """Read a Nanonis grid spectroscopy file.

    Parameters
    ----------
    path : Path
        The ``.3ds`` file.

    Returns
    -------
    RawData
        One channel per recorded signal, ``(ny, nx, points)`` on ``Y`` x ``X`` positions and the sweep
        signal (e.g. ``Bias``); then one channel per grid-point parameter (``X``, ``Y``, ``Z``,
        ``Sweep Start`` ...) of shape ``(ny, nx, 1)``.
    """
    raw = path.read_bytes()
    text, end = _header_text(path, raw, _GRID_END)
    g = _grid_header(path, text)
    block = _grid_block(path, raw, end, g).astype(np.float32)
    par = block[..., : g.n_params]
    sweep_name, sweep_unit = split_unit(g.header.get("Sweep Signal", "Sweep"))
    try:
        i_start, i_end = g.params.index("Sweep Start"), g.params.index("Sweep End")
        v0, v1 = float(par[0, 0, i_start]), float(par[0, 0, i_end])
    except ValueError:
        v0, v1 = 0.0, float(g.points - 1)
    if not (np.isfinite(v0) and np.isfinite(v1)):
        msg = f"{path}: corrupt Nanonis grid data: sweep start/end {v0}, {v1} are not finite"
        raise CorruptFileError(msg)
    spec = [Dim(sweep_name, sweep_unit, np.linspace(v0, v1, g.points))]
    pos = _cell_centres(g.cx, g.cy, g.width, g.height, g.nx, g.ny)
    out = []
    for i, label in enumerate(g.channels):
        name, unit = split_unit(label)
        values = block[..., g.n_params + i * g.points : g.n_params + (i + 1) * g.points]
        out.append(Channel(name, values, pos, spec, name, unit, {"nanonis_label": label}))
    for i, label in enumerate(g.params):
        name, unit = split_unit(label)
        out.append(
            Channel(
                f"Parameter {name}",
                par[..., i : i + 1],
                pos,
                single_point(),
                name,
                unit,
                {"nanonis_label": label},
            )
        )
    meta: dict[str, Any] = {"header": g.header, "grid_angle_deg": g.angle}
    return RawData(path, "nanonis-3ds", out, meta)


def read_dat(path: Path) -> RawData:
    """Read a Nanonis point-spectroscopy ``.dat`` text file.

    Parameters
    ----------
    path : Path
        The ``.dat`` file.

    Returns
    -------
    RawData
        One channel per column after the first (the sweep signal, e.g. ``Bias calc (V)``), each of
        one position (``X``, ``Y`` from the header when present) x the sweep points.
    """
    raw = path.read_bytes()
    text, end = _header_text(path, raw, b"[DATA]")
    header: dict[str, str] = {}
    for line in text.splitlines():
        if "\t" in line:
            key, _, value = line.partition("\t")
            header[key.strip()] = value.strip("\t").strip()
    try:
        body = raw[end:].decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes every byte
        msg = f"{path}: corrupt Nanonis spectrum: {exc}"
        raise CorruptFileError(msg) from exc
    lines = [ln for ln in body.splitlines() if ln.strip()]
    if len(lines) < 2:
        msg = f"{path}: truncated Nanonis spectrum: no data rows after [DATA]"
        raise CorruptFileError(msg)
    columns = [c.strip() for c in lines[0].strip("\r\n").split("\t") if c.strip()]
    rows = []
    for n, line in enumerate(lines[1:], start=1):
        cells = [c for c in line.strip().split("\t") if c.strip()]
        if len(cells) != len(columns):
            msg = (
                f"{path}: corrupt or truncated Nanonis spectrum: data row {n} has {len(cells)} values "
                f"for {len(columns)} columns"
            )
            raise CorruptFileError(msg)
        try:
            rows.append([float(c) for c in cells])
        except ValueError as exc:
            msg = f"{path}: corrupt Nanonis spectrum: data row {n} holds a non-number ({exc})"
            raise CorruptFileError(msg) from exc
    if len(columns) < 2:
        msg = f"{path}: corrupt Nanonis spectrum: need a sweep column and at least one signal, got {columns}"
        raise CorruptFileError(msg)
    table = np.asarray(rows, dtype=np.float64)
    sweep_name, sweep_unit = split_unit(columns[0])
    spec = [Dim(sweep_name, sweep_unit, table[:, 0])]
    pos = []
    for axis in ("Y", "X"):
        key = f"{axis} (m)"
        try:
            pos.append(Dim(axis, "m", np.array([float(header[key])])))
        except (KeyError, ValueError):
            pos = single_point("Single_Position")
            break
    out = []
    for i, label in enumerate(columns[1:], start=1):
        name, unit = split_unit(label)
        values = table[:, i].reshape((1,) * len(pos) + (table.shape[0],))
        out.append(Channel(name, values, pos, spec, name, unit, {"nanonis_label": label}))
    return RawData(path, "nanonis-dat", out, {"header": header})


def _sxm_header(text: str) -> dict[str, list[str]]:
    header: dict[str, list[str]] = {}
    key = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(":") and stripped.endswith(":") and len(stripped) > 1:
            key = stripped.strip(":")
            header[key] = []
        elif key is not None:
            header[key].append(line.rstrip("\r"))
    return header


def read_sxm(path: Path) -> RawData:
    """Read a Nanonis scan image ``.sxm``.

    Parameters
    ----------
    path : Path
        The ``.sxm`` file.

    Returns
    -------
    RawData
        One channel per channel and direction (``"Z forward"``, ``"Z backward"`` ...), each
        ``(ny, nx, 1)`` on ``Y`` x ``X`` positions, ``X`` and ``Y`` increasing.
    """
    raw = path.read_bytes()
    text, end = _header_text(path, raw, _SXM_END)
    header = _sxm_header(text)
    start = raw.find(b"\x1a\x04", end, end + 64)
    if start < 0:
        msg = f"{path}: truncated Nanonis scan: the data marker 0x1A04 after :SCANIT_END: is missing"
        raise CorruptFileError(msg)
    start += 2

    def field(key: str) -> str:
        lines = [ln.strip() for ln in header.get(key, []) if ln.strip()]
        if not lines:
            msg = f"{path}: corrupt Nanonis scan header: the field :{key}: is missing"
            raise CorruptFileError(msg)
        return lines[0]

    pixels = field("SCAN_PIXELS").split()
    scan_range = field("SCAN_RANGE").split()
    offset = field("SCAN_OFFSET").split() if header.get("SCAN_OFFSET") else ["0", "0"]
    if len(pixels) != 2 or len(scan_range) != 2 or len(offset) != 2:
        msg = f"{path}: corrupt Nanonis scan header: SCAN_PIXELS/RANGE/OFFSET need two values each"
        raise CorruptFileError(msg)
    nx, ny = (_number(path, "SCAN_PIXELS", v, int) for v in pixels)
    width, height = (_number(path, "SCAN_RANGE", v) for v in scan_range)
    ox, oy = (_number(path, "SCAN_OFFSET", v) for v in offset)
    if nx < 1 or ny < 1:
        msg = f"{path}: corrupt Nanonis scan header: SCAN_PIXELS {nx} x {ny}"
        raise CorruptFileError(msg)
    scan_type = field("SCANIT_TYPE").split() if header.get("SCANIT_TYPE") else ["FLOAT", "MSBFIRST"]
    dtype = {"FLOAT": "f4", "INT": "i4", "UINT": "u4", "DOUBLE": "f8"}.get(scan_type[0].upper())
    if dtype is None:
        msg = f"{path}: corrupt Nanonis scan header: SCANIT_TYPE {scan_type}"
        raise CorruptFileError(msg)
    dtype = (">" if scan_type[-1].upper() == "MSBFIRST" else "<") + dtype
    info = [ln.strip("\r\n").strip() for ln in header.get("DATA_INFO", []) if ln.strip()]
    if len(info) < 2:
        msg = f"{path}: corrupt Nanonis scan header: :DATA_INFO: lists no channel"
        raise CorruptFileError(msg)
    cols = [c.strip() for c in info[0].split("\t")]
    try:
        i_name, i_unit, i_dir = cols.index("Name"), cols.index("Unit"), cols.index("Direction")
    except ValueError as exc:
        msg = f"{path}: corrupt Nanonis scan header: :DATA_INFO: columns {cols}"
        raise CorruptFileError(msg) from exc
    images: list[tuple[str, str, str]] = []
    for row in info[1:]:
        cells = [c.strip() for c in row.split("\t")]
        if len(cells) <= max(i_name, i_unit, i_dir):
            msg = f"{path}: corrupt Nanonis scan header: :DATA_INFO: row {row[:60]!r}"
            raise CorruptFileError(msg)
        dirs = ("forward", "backward") if cells[i_dir].lower() == "both" else (cells[i_dir].lower(),)
        images += [(cells[i_name], cells[i_unit], d) for d in dirs]
    itemsize = np.dtype(dtype).itemsize
    need = len(images) * nx * ny * itemsize
    if len(raw) - start != need:
        what = "truncated" if len(raw) - start < need else "has trailing bytes"
        msg = (
            f"{path}: Nanonis scan data {what}: {len(raw) - start} bytes for {len(images)} images of "
            f"{nx} x {ny} pixels (need {need})"
        )
        raise CorruptFileError(msg)
    stack = np.frombuffer(raw, dtype=dtype, count=len(images) * nx * ny, offset=start)
    stack = stack.reshape(len(images), ny, nx).astype(np.dtype(dtype).newbyteorder("="))
    scan_dir = field("SCAN_DIR").lower() if header.get("SCAN_DIR") else "up"
    pos = _cell_centres(ox, oy, width, height, nx, ny)
    out = []
    for (name, unit, direction), image in zip(images, stack, strict=True):
        if direction == "backward":
            image = image[:, ::-1]
        if scan_dir == "down":
            image = image[::-1, :]
        label = f"{name} {direction}"
        out.append(
            Channel(label, np.ascontiguousarray(image)[..., np.newaxis], pos, single_point(), name, unit)
        )
    meta = {k: "\n".join(v).strip() for k, v in header.items() if k != "DATA_INFO"}
    meta["DATA_INFO"] = "\n".join(info)
    return RawData(path, "nanonis-sxm", out, {"header": meta})
