"""Images and image stacks: TIFF (tifffile) and PNG / JPEG / BMP / GIF (imageio).

* TIFF goes through tifffile, which reads multi-page stacks, ImageJ and OME hyperstacks and the tags.
  The first series is translated: its last two axes (or three, for RGB(A) samples) are the image.
* Other formats go through imageio (v3 API, installed with scikit-image, a core dependency).

Layout: an image is ``Y`` x ``X`` positions (pixel units) with one spectroscopic point; an RGB(A)
image has the spectroscopic dimension ``Color`` (3 or 4 samples); a stack adds ``Frame`` as the
slowest spectroscopic dimension (a frame is one spectroscopic step at every pixel, as in pycroscopy's
image-stack translators). The first page's tags (TIFF) or the image's metadata are kept.
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
    reader_errors,
    single_point,
)

__all__ = ["PNG_MAGIC", "TIFF_MAGICS", "image_channel", "read_image", "read_tiff"]

TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def image_channel(path: Path, arr: np.ndarray, *, rgb: bool, name: str = "Intensity") -> Channel:
    """Build the channel of an image, an RGB(A) image or a stack (see the module notes).

    Parameters
    ----------
    path : Path
        For error messages.
    arr : (..., ny, nx) or (..., ny, nx, samples) array
        Leading axes, if any, are flattened into frames.
    rgb : bool
        Whether the last axis holds colour samples.
    name : str
        Channel name and quantity.
    """
    if arr.dtype.kind not in "biuf":
        msg = f"{path}: image data of type {arr.dtype} cannot be translated"
        raise UnsupportedFormatError(msg)
    core = 3 if rgb else 2
    if arr.ndim < core:
        msg = f"{path}: image data of shape {arr.shape} has fewer than {core} axes"
        raise CorruptFileError(msg)
    frames = int(np.prod(arr.shape[:-core])) if arr.ndim > core else 0
    ny, nx = arr.shape[-core], arr.shape[-core + 1]
    pos = [Dim.linear("Y", "pixel", ny), Dim.linear("X", "pixel", nx)]
    img = arr.reshape((max(frames, 1), ny, nx, arr.shape[-1] if rgb else 1))
    spec: list[Dim] = []
    if frames:
        spec.append(Dim.linear("Frame", "", frames))
    if rgb:
        spec.append(Dim.linear("Color", "", img.shape[-1]))
    if not spec:
        spec = single_point()
    # (frames, ny, nx, samples) -> (ny, nx, frames?, samples?)
    data = np.moveaxis(img, 0, 2)
    data = data.reshape((ny, nx, *(len(d) for d in spec)))
    return Channel(name, data, pos, spec, name, "a.u.")


def read_tiff(path: Path) -> RawData:
    """Read a TIFF image or stack with tifffile.

    Parameters
    ----------
    path : Path
        The ``.tif`` / ``.tiff`` file.

    Returns
    -------
    RawData
        One channel (first series); metadata: the first page's tags and any ImageJ metadata.
    """
    tifffile = require("tifffile", feature="the TIFF translator")
    with reader_errors(path, "tiff") as warned, tifffile.TiffFile(str(path)) as tif:
        if not tif.series:
            msg = f"{path}: the TIFF file holds no image series"
            raise CorruptFileError(msg)
        series = tif.series[0]
        arr = np.asarray(series.asarray())
        axes = str(series.axes)
        rgb = axes.endswith("S") and arr.shape[-1] in (3, 4)
        page = tif.pages[0]
        tags: dict[str, Any] = {}
        for tag in page.tags:
            if tag.name in ("StripOffsets", "StripByteCounts", "TileOffsets", "TileByteCounts"):
                continue
            tags[tag.name] = tag.value
        meta: dict[str, Any] = {"tiff_tags": tags, "axes": axes}
        if tif.imagej_metadata:
            meta["imagej"] = dict(tif.imagej_metadata)
        channel = image_channel(path, arr, rgb=rgb)
    if warned:
        meta["reader_warnings"] = warned
    return RawData(path, "tiff", [channel], meta)


def read_image(path: Path) -> RawData:
    """Read a PNG, JPEG, BMP or GIF image (or an animated GIF's frames) with imageio.

    Parameters
    ----------
    path : Path
        The image file.

    Returns
    -------
    RawData
        One channel; metadata: what imageio reports about the image.
    """
    iio = require("imageio.v3", feature="the image translator", package="imageio")
    with reader_errors(path, "image") as warned:
        arr = np.asarray(iio.imread(path, index=None))
        props = iio.improps(path, index=None)
        meta_raw = iio.immeta(path, index=None)
        rgb = arr.ndim >= 3 and arr.shape[-1] in (3, 4) and arr.shape[-1] != arr.shape[-2]
        channel = image_channel(path, arr, rgb=rgb)
    meta: dict[str, Any] = {
        "image_meta": {str(k): v for k, v in dict(meta_raw).items()},
        "shape": list(props.shape),
        "dtype": str(props.dtype),
    }
    if warned:
        meta["reader_warnings"] = warned
    return RawData(path, "image", [channel], meta)
