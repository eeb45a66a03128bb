"""Translators from instrument file formats to USID HDF5 (one module per format).

:func:`translate` picks the format by content (magic bytes) and extension, reads the file into an
intermediate :class:`RawData` (N-D arrays with position and spectroscopic dimensions, units, quantity
and metadata) and writes it through :mod:`pycro_gpu.io.usid`, atomically (a temporary file renamed
when complete). Every failure on bad input is a :class:`TranslationError` (a
:class:`~pycro_gpu.errors.DataError`) naming the file and the problem: :class:`CorruptFileError` for
damaged or truncated files, :class:`UnsupportedFormatError` for unknown formats and unsupported
variants; a missing optional reader raises :class:`~pycro_gpu.errors.MissingDependencyError` naming
the extra to install (``pip install 'pycro-gpu[io]'``). Input files are only ever opened for reading.

================== ====================== =================================== ================
format             extensions             reader                              package
================== ====================== =================================== ================
usid               .h5 .hdf5              check + copy (already USID)         h5py
igor-ibw           .ibw                   Igor binary wave                    igor2 (io)
gwyddion-gwy       .gwy                   Gwyddion 2 native (GWYP)            gwyfile (io)
gwyddion-gsf       .gsf                   Gwyddion Simple Field               built in
nanonis-3ds        .3ds                   Nanonis grid spectroscopy           built in
nanonis-dat        .dat                   Nanonis point spectroscopy          built in
nanonis-sxm        .sxm                   Nanonis scan image                  built in
digital-micrograph .dm3 .dm4              Gatan Digital Micrograph            rosettasciio (io)
tiff               .tif .tiff             TIFF image / stack                  tifffile (io)
image              .png .jpg .bmp .gif    other images                        imageio
numpy              .npy .npz              NumPy arrays (default dimensions)   numpy
netcdf             .nc .cdf               netCDF through xarray               xarray (io)
================== ====================== =================================== ================

In memory: :func:`from_array` (NumPy, with dimension descriptions) and :func:`from_xarray`, then
:func:`write_usid`; or :func:`translate_array` / :func:`translate_xarray` in one call.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._base import (
    METADATA_SEPARATOR,
    Channel,
    CorruptFileError,
    Dim,
    RawData,
    TranslationError,
    UnsupportedFormatError,
    check_file,
    flatten_metadata,
)
from ._writer import check_output, write_usid
from .arrays import NPY_MAGIC, from_array, read_numpy
from .dm import read_dm
from .gwyddion import GSF_MAGIC, GWY1_MAGIC, GWY_MAGIC, read_gsf, read_gwy
from .hyperspy import HYPERSPY_EXTENSIONS, export_hyperspy, read_hyperspy
from .igor import read_ibw
from .image import PNG_MAGIC, TIFF_MAGICS, read_image, read_tiff
from .nanonis import DAT_MAGIC, GRID_MAGIC, SXM_MAGIC, read_3ds, read_dat, read_sxm
from .usid_passthrough import HDF5_MAGIC, check_usid, passthrough
from .xarray_io import NETCDF_MAGICS, from_xarray, read_netcdf

__all__ = [
    "FORMATS",
    "METADATA_SEPARATOR",
    "Channel",
    "CorruptFileError",
    "Dim",
    "Format",
    "RawData",
    "TranslationError",
    "UnsupportedFormatError",
    "check_usid",
    "detect_format",
    "export_hyperspy",
    "flatten_metadata",
    "from_array",
    "from_xarray",
    "list_formats",
    "read",
    "translate",
    "translate_array",
    "translate_xarray",
    "write_usid",
]

log = logging.getLogger("pycro_gpu.io.translators")

#: Strength of a content match: none, plausible (weak magic), certain (specific magic).
NO, WEAK, STRONG = 0, 1, 2
_HEAD = 64


@dataclass(frozen=True)
class Format:
    """One supported input format.

    Attributes
    ----------
    name : str
        Registry name (``pycro-gpu translate --format NAME``).
    description : str
        One line for ``--list``.
    extensions : tuple of str
        Lower-case file extensions, with the dot.
    sniff : callable
        ``sniff(head_bytes) -> 0 | 1 | 2``: how surely the first bytes identify the format.
    read : callable or None
        ``read(path) -> RawData``; None for USID files, which are passed through.
    packages : tuple of str
        Modules the reader imports (for ``--list``: whether it is available here).
    """

    name: str
    description: str
    extensions: tuple[str, ...]
    sniff: Callable[[bytes], int]
    read: Callable[[Path], RawData] | None
    packages: tuple[str, ...] = ()

    def available(self) -> bool:
        """Whether the reader's optional packages are installed."""
        return all(importlib.util.find_spec(p) is not None for p in self.packages)


def _magic(*magics: bytes, strength: int = STRONG) -> Callable[[bytes], int]:
    return lambda head: strength if any(head.startswith(m) for m in magics) else NO


def _sniff_ibw(head: bytes) -> int:
    # The first 16-bit word is the version (1, 2, 3 or 5) in the file's byte order.
    return (
        WEAK
        if len(head) >= 2
        and head[:2] in {bytes([v, 0]) for v in (1, 2, 3, 5)} | {bytes([0, v]) for v in (1, 2, 3, 5)}
        else NO
    )


def _sniff_dm(head: bytes) -> int:
    # Big-endian int32 version 3 or 4, then (DM3) the size and a little-endian flag 0/1.
    if (
        head[:4] == b"\x00\x00\x00\x03"
        and len(head) >= 12
        and head[8:12] in (b"\x00\x00\x00\x01", b"\x00" * 4)
    ):
        return STRONG
    if (
        head[:4] == b"\x00\x00\x00\x04"
        and len(head) >= 16
        and head[12:16] in (b"\x00\x00\x00\x01", b"\x00" * 4)
    ):
        return STRONG
    return NO


def _sniff_netcdf(head: bytes) -> int:
    if any(head.startswith(m) for m in NETCDF_MAGICS):
        return STRONG
    return WEAK if head.startswith(HDF5_MAGIC) else NO


def _sniff_image(head: bytes) -> int:
    if head.startswith((PNG_MAGIC, b"\xff\xd8\xff", b"GIF87a", b"GIF89a")):
        return STRONG
    return WEAK if head.startswith(b"BM") else NO


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("usid", "USID HDF5 (already translated: checked, then copied)", (".h5", ".hdf5"),
               _magic(HDF5_MAGIC), None, ("h5py",)),
        Format("igor-ibw", "Igor Pro binary wave (igor2)", (".ibw",), _sniff_ibw, read_ibw, ("igor2",)),
        Format("gwyddion-gwy", "Gwyddion 2 native file, image channels (gwyfile)", (".gwy",),
               _magic(GWY_MAGIC, GWY1_MAGIC), read_gwy, ("gwyfile",)),
        Format("gwyddion-gsf", "Gwyddion Simple Field image (built in)", (".gsf",),
               _magic(GSF_MAGIC), read_gsf),
        Format("nanonis-3ds", "Nanonis grid spectroscopy (built in)", (".3ds",),
               _magic(GRID_MAGIC), read_3ds),
        Format("nanonis-dat", "Nanonis point spectroscopy, text (built in)", (".dat",),
               _magic(DAT_MAGIC, strength=WEAK), read_dat),
        Format("nanonis-sxm", "Nanonis scan image (built in)", (".sxm",), _magic(SXM_MAGIC), read_sxm),
        Format("digital-micrograph", "Gatan Digital Micrograph 3/4 (rosettasciio)", (".dm3", ".dm4"),
               _sniff_dm, read_dm, ("rsciio",)),
        Format("tiff", "TIFF image or stack (tifffile)", (".tif", ".tiff"), _magic(*TIFF_MAGICS), read_tiff,
               ("tifffile",)),
        Format("image", "PNG / JPEG / BMP / GIF image (imageio)", (".png", ".jpg", ".jpeg", ".bmp", ".gif"),
               _sniff_image, read_image, ("imageio",)),
        Format("numpy", "NumPy .npy / .npz arrays (default dimensions)", (".npy", ".npz"), _magic(NPY_MAGIC),
               read_numpy),
        Format("netcdf", "netCDF through xarray, one channel per variable", (".nc", ".cdf"), _sniff_netcdf,
               read_netcdf, ("xarray",)),
        Format("hyperspy", "HyperSpy .hspy / .zspy, one channel per signal (rosettasciio)",
               HYPERSPY_EXTENSIONS, _magic(HDF5_MAGIC, strength=WEAK), read_hyperspy, ("rsciio",)),
    )
}  # fmt: skip


def list_formats() -> list[Format]:
    """The supported formats, in registry order."""
    return list(FORMATS.values())


def detect_format(path: str | os.PathLike) -> Format:
    """Pick the format of ``path`` from its first bytes and its extension.

    The extension's format wins when the content agrees (or is inconclusive for every format); a
    specific magic number wins over a disagreeing extension; a file matching neither raises.

    Raises
    ------
    UnsupportedFormatError
        Neither the content nor the extension names a supported format.
    """
    if Path(path).is_dir() and Path(path).suffix.lower() == ".zspy":  # a zarr store is a directory
        return FORMATS["hyperspy"]
    p = check_file(path)
    with p.open("rb") as fh:
        head = fh.read(_HEAD)
    ext = p.suffix.lower()
    by_ext = next((f for f in FORMATS.values() if ext in f.extensions), None)
    scores = {name: f.sniff(head) for name, f in FORMATS.items()}
    best = max(scores, key=lambda k: scores[k])
    if by_ext is not None and scores[by_ext.name] > NO:
        return by_ext
    if scores[best] == STRONG:
        if by_ext is not None:
            log.info("%s: content is %s although the extension says %s", p, best, by_ext.name)
        return FORMATS[best]
    if by_ext is not None:
        return by_ext
    if scores[best] == WEAK:
        return FORMATS[best]
    known = " ".join(sorted({e for f in FORMATS.values() for e in f.extensions}))
    msg = f"{p}: unrecognised file format (extension {ext or 'none'!r}; supported: {known})"
    raise UnsupportedFormatError(msg)


def _format(path: Path, format: str | None) -> Format:
    if format is None:
        return detect_format(path)
    if format not in FORMATS:
        msg = f"unknown format {format!r}; choose one of {', '.join(FORMATS)}"
        raise UnsupportedFormatError(msg)
    if not (format == "hyperspy" and path.is_dir()):
        check_file(path)
    return FORMATS[format]


def read(path: str | os.PathLike, *, format: str | None = None) -> RawData:
    """Read an instrument file into the intermediate :class:`RawData` (without writing anything).

    Parameters
    ----------
    path : path-like
        Input file.
    format : str, optional
        Registry name; detected when omitted.
    """
    p = Path(path)
    fmt = _format(p, format)
    if fmt.read is None:
        msg = f"{p}: is already USID HDF5; open it with pycro_gpu.io.usid instead of reading it as raw data"
        raise UnsupportedFormatError(msg)
    return fmt.read(p)


def translate(
    path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    format: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Translate an instrument file to a USID HDF5 file.

    Parameters
    ----------
    path : path-like
        Input file (never modified).
    out : path-like, optional
        Output ``.h5`` file; default: ``path`` with the suffix ``.h5``. A USID input with no ``out`` is
        only checked and its own path returned.
    format : str, optional
        Registry name (see :func:`list_formats`); detected from content and extension when omitted.
    overwrite : bool
        Replace an existing output file.

    Returns
    -------
    Path
        The USID file.

    Raises
    ------
    TranslationError
        Corrupt, truncated or unsupported input (:class:`CorruptFileError`,
        :class:`UnsupportedFormatError`); no output file is left behind.
    MissingDependencyError
        The format's reader package is not installed.
    FileExistsError
        ``out`` exists and ``overwrite`` is false.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> np.save(folder / "spectra.npy", np.ones((4, 8)))
    >>> out = translate(folder / "spectra.npy")
    >>> out.name
    'spectra.h5'
    """
    p = Path(path)
    fmt = _format(p, format)
    if fmt.read is None:
        return passthrough(p, None if out is None else Path(out), overwrite=overwrite)
    target = Path(out) if out is not None else p.with_suffix(".h5")
    if target.resolve() == p.resolve():
        msg = f"{p}: the output would overwrite the input; give another output path"
        raise TranslationError(msg)
    check_output(target, overwrite=overwrite)  # before the read, which may be slow
    raw = fmt.read(p)
    return write_usid(raw, target, overwrite=overwrite)


def translate_array(
    data: Any,
    out: str | os.PathLike,
    pos_dims: Sequence[Any] | None = None,
    spec_dims: Sequence[Any] | None = None,
    *,
    quantity: str = "Data",
    units: str = "a.u.",
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write an N-D NumPy array with dimension descriptions as a USID file (see :func:`from_array`)."""
    raw = from_array(data, pos_dims, spec_dims, quantity=quantity, units=units, metadata=metadata)
    return write_usid(raw, Path(out), overwrite=overwrite)


def translate_xarray(
    obj: Any,
    out: str | os.PathLike,
    pos_dims: Sequence[str] | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write an xarray ``DataArray`` / ``Dataset`` as a USID file (see :func:`from_xarray`)."""
    return write_usid(from_xarray(obj, pos_dims), Path(out), overwrite=overwrite)
