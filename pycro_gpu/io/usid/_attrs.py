"""HDF5 attribute helpers of the USID model (strings, lists, scalars, names, timestamps)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np


def _version() -> str:
    from ... import __version__

    return __version__


def _decode(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _str_list(value: Any) -> list[str]:
    """Decode a ``labels``/``units`` attribute (bytes array, str array, str or bytes) to a list."""
    if isinstance(value, (str, bytes)):
        return [_decode(value)]
    arr = np.asarray(value)
    if arr.ndim == 0:
        return [_decode(arr[()])]
    return [_decode(v) for v in arr.ravel().tolist()]


def _scalar(value: Any) -> Any:
    """An attribute stored as a one-element array (as some writers do) as that element."""
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.ravel()[0]
    return value


def _str_attr(value: Any) -> str:
    return _decode(_scalar(value))


def _encode_list(items: Sequence[str]) -> np.ndarray:
    """Strings as a fixed-length byte-string array, the form pyUSID writes (``labels``, ``units``)."""
    encoded = [str(s).encode("utf-8") for s in items]
    width = max([1, *(len(e) for e in encoded)])
    return np.array(encoded, dtype=f"S{width}")


def _basename(obj: h5py.HLObject) -> str:
    """Last component of an HDF5 object's path."""
    return obj.name.rsplit("/", 1)[-1]


def _timestamp() -> str:
    return time.strftime("%Y_%m_%d-%H_%M_%S")
