"""Common pieces of the translators: the intermediate form, error types, metadata flattening.

Every reader turns one instrument file into a :class:`RawData`: a list of :class:`Channel` objects,
each an N-D NumPy array whose axes are its position dimensions followed by its spectroscopic
dimensions (each group listed slowest-varying first, i.e. NumPy C order), plus the units, the
physical quantity and the instrument metadata. The writer (``_writer.py``) turns that into USID.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataError, MissingDependencyError

__all__ = [
    "METADATA_SEPARATOR",
    "Channel",
    "CorruptFileError",
    "Dim",
    "RawData",
    "TranslationError",
    "UnsupportedFormatError",
    "flatten_metadata",
    "reader_errors",
]

log = logging.getLogger("pycro_gpu.io.translators")

#: Separator of nested metadata keys once flattened into HDF5 attribute names (as sidpy does).
METADATA_SEPARATOR = "-"


class TranslationError(DataError):
    """An input file cannot be translated; the message names the file and the problem."""


class CorruptFileError(TranslationError):
    """The file claims a known format but is truncated, damaged or inconsistent."""


class UnsupportedFormatError(TranslationError):
    """No translator recognises the file, or it is a variant of a format that is not supported."""


@dataclass(frozen=True)
class Dim:
    """One dimension of a channel: name, units and the value at each index.

    Parameters
    ----------
    name : str
        Label, e.g. ``"X"`` or ``"Bias"``.
    units : str
        Units of ``values`` (``""`` when dimensionless).
    values : (n,) array
        Coordinate of each index along this dimension.
    """

    name: str
    units: str
    values: np.ndarray

    def __post_init__(self) -> None:
        vals = np.asarray(self.values)
        if vals.ndim != 1 or vals.size == 0:
            msg = f"Dim {self.name!r}: values must be a non-empty 1-D array, got shape {vals.shape}"
            raise DataError(msg)
        object.__setattr__(self, "values", vals)
        object.__setattr__(self, "name", str(self.name))
        object.__setattr__(self, "units", str(self.units))

    def __len__(self) -> int:
        return int(self.values.size)

    @classmethod
    def linear(cls, name: str, units: str, n: int, step: float = 1.0, start: float = 0.0) -> Dim:
        """A uniformly sampled dimension: ``start + step * arange(n)``."""
        return cls(name, units, start + step * np.arange(int(n), dtype=np.float64))


@dataclass
class Channel:
    """One measured quantity on a grid of positions and spectroscopic points.

    Parameters
    ----------
    name : str
        Channel name (becomes an attribute of the USID ``Channel_NNN`` group).
    data : (*pos_shape, *spec_shape) array
        Values; ``data.shape == tuple(map(len, pos_dims + spec_dims))``.
    pos_dims, spec_dims : list of Dim
        Position and spectroscopic dimensions, slowest-varying first (NumPy C order). An image has a
        single spectroscopic point; a single spectrum has a single position.
    quantity, units : str
        Physical quantity and its units.
    metadata : dict
        Channel-specific metadata (nested dicts allowed).
    """

    name: str
    data: np.ndarray
    pos_dims: list[Dim]
    spec_dims: list[Dim]
    quantity: str
    units: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data)
        expected = tuple(len(d) for d in (*self.pos_dims, *self.spec_dims))
        if not self.pos_dims or not self.spec_dims:
            msg = f"channel {self.name!r}: needs at least one position and one spectroscopic dimension"
            raise DataError(msg)
        if self.data.shape != expected:
            msg = (
                f"channel {self.name!r}: data shape {self.data.shape} does not match the dimensions "
                f"{[d.name for d in (*self.pos_dims, *self.spec_dims)]} of sizes {expected}"
            )
            raise DataError(msg)

    @property
    def n_positions(self) -> int:
        return int(np.prod([len(d) for d in self.pos_dims]))

    @property
    def n_spectral(self) -> int:
        return int(np.prod([len(d) for d in self.spec_dims]))

    def as_2d(self) -> np.ndarray:
        """Return the USID Main form: ``(n_positions, n_spectral)``, last listed dimension fastest."""
        return self.data.reshape(self.n_positions, self.n_spectral)


@dataclass
class RawData:
    """Everything a reader extracts from one file, before it is written as USID.

    Parameters
    ----------
    source : Path
        The file read.
    format : str
        Registry name of the format (e.g. ``"igor-ibw"``).
    channels : list of Channel
        One or more channels; each becomes ``/Measurement_000/Channel_NNN/Raw_Data``.
    metadata : dict
        Instrument metadata common to all channels (nested dicts allowed).
    """

    source: Path
    format: str
    channels: list[Channel]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.channels:
            msg = f"{self.source}: no data channel found in the {self.format} file"
            raise CorruptFileError(msg)


def _attr_value(value: Any) -> Any:
    """Convert one metadata value to something h5py stores as an attribute (or a string)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        # HDF5 strings end at a NUL: drop trailing ones, make inner ones visible.
        return value.rstrip("\x00").replace("\x00", "\\x00")
    if isinstance(value, (bool, int, float, np.number, np.bool_)):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
            return str(value)
        return value
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biufc" and value.size <= 4096:
            return value
        if value.dtype.kind in "SU" and value.size <= 4096:
            return np.array([_attr_value(v) for v in value.ravel().tolist()], dtype=object).astype(str)
        return str(value.tolist()) if value.size <= 64 else f"<array shape={value.shape} dtype={value.dtype}>"
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, (str, bytes)) for v in value):
            return [_attr_value(v) for v in value]
        if value and all(isinstance(v, (bool, np.bool_)) for v in value):
            return np.asarray(value, dtype=bool)
        if value and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in value):
            arr = np.asarray(value)
            if arr.dtype.kind in "iuf":
                return arr
        return str(list(value))
    return str(value)


def flatten_metadata(
    metadata: Mapping[str, Any], *, sep: str = METADATA_SEPARATOR, prefix: str = ""
) -> dict[str, Any]:
    """Flatten nested dicts into ``{"a-b-c": value}`` with values h5py can store as attributes.

    Nested mappings join their keys with ``sep``; numbers, strings and numeric or string arrays are
    kept; anything else (mixed lists, objects, ``None``) is stored as its ``str``. Keys that would
    collide get a ``_N`` suffix.

    Parameters
    ----------
    metadata : mapping
        Possibly nested metadata.
    sep : str
        Separator of nested keys.
    prefix : str
        Prepended to every key (used by the recursion).

    Examples
    --------
    >>> flatten_metadata({"a": {"b": 1, "c": [1, "x"]}, "d": None})
    {'a-b': 1, 'a-c': "[1, 'x']", 'd': 'None'}
    """
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            items = flatten_metadata(value, sep=sep, prefix=name).items()
        else:
            items = [(name, _attr_value(value))]
        for k, v in items:
            final, n = k, 1
            while final in out:
                final = f"{k}_{n}"
                n += 1
            out[final] = v
    return out


#: Loggers of reader libraries whose records are captured during a read (never printed raw).
LIBRARY_LOGGERS = ("igor2", "rsciio", "gwyfile", "tifffile", "imageio", "xarray", "h5py", "PIL")


class _Capture(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f"{record.name}: {record.getMessage()}"
        except Exception:  # a malformed log call in a library must not break the read
            text = f"{record.name}: {record.msg!r}"
        text = text[:300]
        if text not in self.sink:
            self.sink.append(text)


@contextlib.contextmanager
def reader_errors(path: Path, fmt: str) -> Iterator[list[str]]:
    """Turn whatever a third-party reader raises on a bad file into one :class:`CorruptFileError`.

    Reader libraries fail on damaged input with any exception type (``ValueError``, ``KeyError``,
    ``struct.error``, ``UnicodeDecodeError``, ``MemoryError`` ...). Inside this context those become a
    :class:`CorruptFileError` naming the file, the format and the original problem; our own
    :class:`~pycro_gpu.errors.DataError` and :class:`~pycro_gpu.errors.MissingDependencyError` pass
    through unchanged. Warnings and log records (WARNING and above) that the reader emits are
    collected into the yielded list instead of being raised or printed, so that a library's
    complaint never aborts a good read nor floods the terminal; they are logged once, shortened.
    """
    caught: list[str] = []
    handler = _Capture(caught)
    saved = []
    for name in LIBRARY_LOGGERS:
        lib_log = logging.getLogger(name)
        saved.append((lib_log, lib_log.propagate))
        lib_log.addHandler(handler)
        lib_log.propagate = False
    try:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            yield caught
        for w in record:
            text = f"{w.category.__name__}: {w.message}"[:300]
            if text not in caught:
                caught.append(text)
        for text in caught:
            log.warning("%s: %s reader: %s", path, fmt, text)
    except (DataError, MissingDependencyError):
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except RecursionError as exc:
        msg = f"{path}: cannot read as {fmt}: the file is corrupt (structure nests too deep)"
        raise CorruptFileError(msg) from exc
    except MemoryError as exc:
        msg = f"{path}: cannot read as {fmt}: the file asks for more memory than available (corrupt header?)"
        raise CorruptFileError(msg) from exc
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        detail = detail[:200]
        kind = type(exc).__name__
        if kind == "error":  # struct.error, zlib.error ...: say whose
            kind = f"{type(exc).__module__}.error"
        msg = f"{path}: cannot read as {fmt} (corrupt or truncated file): {kind}" + (
            f": {detail}" if detail else ""
        )
        raise CorruptFileError(msg) from exc
    finally:
        for lib_log, propagate in saved:
            lib_log.removeHandler(handler)
            lib_log.propagate = propagate


def check_file(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path after checking that it is a readable, non-empty regular file."""
    p = Path(path)
    if not p.exists():
        msg = f"{p}: no such file"
        raise FileNotFoundError(msg)
    if not p.is_file():
        msg = f"{p}: not a regular file"
        raise TranslationError(msg)
    if p.stat().st_size == 0:
        msg = f"{p}: the file is empty (0 bytes)"
        raise CorruptFileError(msg)
    return p


def single_point(name: str = "arb") -> list[Dim]:
    """A single-value spectroscopic (or position) dimension, for images and single spectra."""
    return [Dim(name, "a.u.", np.zeros(1))]


def pad_single_points(
    pos: list[Dim], spec: list[Dim], arr: np.ndarray
) -> tuple[list[Dim], list[Dim], np.ndarray]:
    """Give data without position (or spectroscopic) axes a single-point one.

    No position dimension: ``Single_Position`` and a new leading axis of ``arr``; no spectroscopic
    dimension: :func:`single_point` and a new trailing axis.
    """
    if not pos:
        pos = single_point("Single_Position")
        arr = arr[np.newaxis, ...]
    if not spec:
        spec = single_point()
        arr = arr[..., np.newaxis]
    return pos, spec, arr
