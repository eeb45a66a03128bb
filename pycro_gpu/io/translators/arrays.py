"""NumPy arrays and ``.npy`` / ``.npz`` files: generic N-D data with dimension descriptions.

In memory, :func:`from_array` takes an N-D array and the description of its axes (position axes then
spectroscopic axes, slowest first as NumPy indexes them). A ``.npy`` file carries no description, so
:func:`read_numpy` applies a documented default: a 1-D array is one spectrum (one position), a 2-D
array is already ``(positions, spectroscopic)``, and for N-D the last axis is spectroscopic and the
others are positions. A ``.npz`` archive holds one channel per array (all of the same shape); an
array named ``data`` comes first. Files are loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._base import (
    Channel,
    CorruptFileError,
    Dim,
    RawData,
    TranslationError,
    UnsupportedFormatError,
    reader_errors,
    single_point,
)

__all__ = ["NPY_MAGIC", "as_dims", "default_dims", "from_array", "read_numpy"]

NPY_MAGIC = b"\x93NUMPY"


def as_dims(dims: Sequence[Any] | None, sizes: Sequence[int], what: str) -> list[Dim]:
    """Normalise a dimension description to a list of :class:`Dim`.

    Each item is a :class:`Dim`, an object with ``name``/``units``/``values`` (e.g.
    :class:`pycro_gpu.io.usid.Dimension`), a ``(name, units)`` pair (values ``0 .. n-1``) or a
    ``(name, units, values)`` triple; ``sizes`` are the lengths the data gives each axis.
    """
    if dims is None:
        msg = f"{what} is required"
        raise TranslationError(msg)
    out = []
    items = list(dims)
    if len(items) != len(sizes):
        msg = f"{what} describes {len(items)} axes but the data has {len(sizes)} (sizes {tuple(sizes)})"
        raise TranslationError(msg)
    for item, n in zip(items, sizes, strict=True):
        if isinstance(item, Dim):
            d = item
        elif all(hasattr(item, a) for a in ("name", "units", "values")):
            d = Dim(item.name, item.units, np.asarray(item.values))
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            d = Dim(str(item[0]), str(item[1]), np.arange(n, dtype=np.float64))
        elif isinstance(item, (tuple, list)) and len(item) == 3:
            d = Dim(str(item[0]), str(item[1]), np.asarray(item[2], dtype=np.float64))
        else:
            msg = (
                f"{what}: cannot read a dimension from {item!r}; give Dim, (name, units) or (name, units, v)"
            )
            raise TranslationError(msg)
        if len(d) != n:
            msg = f"{what}: dimension {d.name!r} has {len(d)} values but the data axis has {n}"
            raise TranslationError(msg)
        out.append(d)
    return out


def default_dims(shape: Sequence[int]) -> tuple[list[Dim], list[Dim], tuple[int, ...]]:
    """Default (pos_dims, spec_dims, data shape) of an undescribed array (see the module notes)."""
    shape = tuple(int(n) for n in shape)
    if len(shape) == 0:
        shape = (1,)
    if len(shape) == 1:
        return single_point("Single_Position"), [Dim("Dim_0", "a.u.", np.arange(shape[0]))], (1, shape[0])
    pos = [Dim(f"Position_Dim_{i}", "a.u.", np.arange(n)) for i, n in enumerate(shape[:-1])]
    spec = [Dim("Spectroscopic_Dim_0", "a.u.", np.arange(shape[-1]))]
    return pos, spec, shape


def from_array(
    data: Any,
    pos_dims: Sequence[Any] | None = None,
    spec_dims: Sequence[Any] | None = None,
    *,
    quantity: str = "Data",
    units: str = "a.u.",
    name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    source: str | Path = "<array>",
) -> RawData:
    """Describe an in-memory N-D array as translator input.

    Parameters
    ----------
    data : (*pos_shape, *spec_shape) array_like
        Real or complex numbers; axes are the position dimensions then the spectroscopic ones,
        slowest first.
    pos_dims, spec_dims : sequence, optional
        Descriptions of the axes (see :func:`as_dims`). Both omitted: the defaults of
        :func:`default_dims`. ``spec_dims`` omitted alone: one spectroscopic point.
    quantity, units : str
        Physical quantity and units of the values.
    name : str, optional
        Channel name (default: ``quantity``).
    metadata : mapping, optional
        Stored as attributes of the measurement group.
    source : str or Path
        Recorded as the source of the data.

    Returns
    -------
    RawData
        One channel.

    Examples
    --------
    >>> import numpy as np
    >>> bias = ("Bias", "V", np.linspace(-1, 1, 4))
    >>> raw = from_array(np.zeros((2, 3, 4)), [("Y", "m"), ("X", "m")], [bias])
    >>> raw.channels[0].as_2d().shape
    (6, 4)
    """
    arr = np.asarray(data)
    if arr.dtype.kind not in "biufc":
        msg = f"from_array: data must hold real or complex numbers, got dtype {arr.dtype}"
        raise TranslationError(msg)
    if pos_dims is None and spec_dims is None:
        pos, spec, shape = default_dims(arr.shape)
        arr = arr.reshape(shape)
    elif pos_dims is None:
        msg = "from_array: pos_dims is required when spec_dims is given"
        raise TranslationError(msg)
    else:
        n_pos = len(list(pos_dims))
        pos = as_dims(pos_dims, arr.shape[:n_pos], "pos_dims")
        if spec_dims is None:
            spec = single_point()
            arr = arr[..., np.newaxis]
        else:
            spec = as_dims(spec_dims, arr.shape[n_pos:], "spec_dims")
    channel = Channel(name or quantity, arr, pos, spec, quantity, units)
    return RawData(Path(source), "numpy", [channel], dict(metadata or {}))


def read_numpy(path: Path) -> RawData:
    """Read a ``.npy`` array or ``.npz`` archive with the default dimensions (see the module notes).

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    RawData
        One channel per array.
    """
    with reader_errors(path, "numpy"):
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            arrays = {"data": loaded}
        else:
            with loaded:
                names = sorted(loaded.files, key=lambda k: (k != "data", k))
                arrays = {k: loaded[k] for k in names}
    if not arrays:
        msg = f"{path}: the .npz archive holds no array"
        raise CorruptFileError(msg)
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1:
        msg = f"{path}: the arrays of the .npz archive differ in shape {sorted(shapes)}; save one per file"
        raise UnsupportedFormatError(msg)
    channels = []
    for key, arr in arrays.items():
        if arr.dtype.kind not in "biufc":
            msg = f"{path}: array {key!r} has dtype {arr.dtype}, not real or complex numbers"
            raise UnsupportedFormatError(msg)
        pos, spec, shape = default_dims(arr.shape)
        channels.append(Channel(key, arr.reshape(shape), pos, spec, key, "a.u."))
    return RawData(path, "numpy", channels, {"arrays": list(arrays)})
