"""Write a :class:`RawData` as a USID HDF5 file, atomically.

Layout (as pyUSID translators write it)::

    /                                   translator, source_file, source_sha256, format, pycro_gpu_version
    /Measurement_000                    instrument metadata (flattened attributes)
    /Measurement_000/Channel_000        channel_name + channel metadata
    /Measurement_000/Channel_000/Raw_Data            USID Main dataset (N_pos, N_spec)
    /Measurement_000/Channel_000/Position_Indices ...   ancillaries (shared by later channels
                                                       with the same dimensions)

The file is written under a temporary name in the output folder (``.<name>.pycro-<host>-<pid>-<token>.tmp``,
see :mod:`pycro_gpu.io.hdf5`) and renamed when complete; on any failure or interruption (Ctrl-C,
SIGTERM at the command line) the temporary file is removed, so a failed translation never leaves a
partial output. A run killed outright leaves its temporary file; the next write into that folder removes
it. Before writing, the free space of the output's file system is checked against the data plus a margin.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..hdf5 import check_free_space, remove_stale_temporaries, temporary_path
from ._base import Channel, Dim, RawData, flatten_metadata, log

__all__ = ["atomic_output", "check_output", "file_sha256", "write_usid"]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (recorded as the provenance of a translation)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_output(out: Path, *, overwrite: bool = False) -> None:
    """Raise :class:`FileExistsError` when ``out`` exists and ``overwrite`` is false."""
    if out.exists() and not overwrite:
        msg = f"{out}: output file exists (pass overwrite=True, or --overwrite at the command line)"
        raise FileExistsError(msg)


@contextlib.contextmanager
def atomic_output(out: Path, *, overwrite: bool = False, expected_bytes: int = 0) -> Iterator[Path]:
    """Yield a temporary path next to ``out``; rename it to ``out`` on success, remove it on failure.

    Stale temporary files of killed runs in the folder are removed first.

    Parameters
    ----------
    out : Path
        The final file.
    overwrite : bool
        Replace an existing ``out``.
    expected_bytes : int
        Bytes about to be written, checked against the free space of the folder (plus a margin).

    Raises
    ------
    FileExistsError
        ``out`` exists and ``overwrite`` is false.
    DataError
        Not enough free space for ``expected_bytes``.
    """
    out = Path(out)
    check_output(out, overwrite=overwrite)
    if not out.parent.is_dir():
        msg = f"{out.parent}: output folder does not exist"
        raise FileNotFoundError(msg)
    remove_stale_temporaries(out.parent)
    check_free_space(out.parent, int(expected_bytes))
    tmp = temporary_path(out)
    try:
        yield tmp
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _expected_bytes(raw: RawData) -> int:
    """Bytes the USID file of ``raw`` takes: the channels' values and their ancillaries (float64 at most)."""
    total = 0
    for channel in raw.channels:
        n_pos, n_spec = (math.prod(len(d) for d in dims) for dims in (channel.pos_dims, channel.spec_dims))
        total += channel.data.nbytes + 16 * (n_pos * len(channel.pos_dims) + n_spec * len(channel.spec_dims))
    return total


def _set_attrs(obj: h5py.HLObject, attrs: Mapping[str, Any]) -> None:
    for key, value in attrs.items():
        name = key or "_"
        try:
            obj.attrs[name] = value
        except (TypeError, ValueError, RuntimeError, OSError, KeyError):
            # Too large for an attribute, or a type h5py cannot store: keep its text, bounded.
            text = str(value)
            if len(text) > 32000:
                text = text[:32000] + " ...[truncated]"
            try:
                obj.attrs[name] = text
            except (TypeError, ValueError, RuntimeError, OSError, KeyError):
                log.warning("metadata key %r could not be stored as an HDF5 attribute", name)


def _signature(dims: list[Dim]) -> tuple:
    return tuple((d.name, d.units, d.values.astype(np.float64).tobytes()) for d in dims)


def _usid_dims(dims: list[Dim]) -> list[Any]:
    """Our dims are listed slowest first; USID's ``write_main`` wants them fastest first."""
    from ..usid import Dimension

    return [Dimension(d.name, d.units, d.values) for d in reversed(dims)]


def _write_channel(group: h5py.Group, channel: Channel, shared: dict[tuple, tuple]) -> None:
    from ..usid import write_main

    kwargs: dict[str, Any] = {}
    pos_key, spec_key = ("pos", _signature(channel.pos_dims)), ("spec", _signature(channel.spec_dims))
    pos_dims: Any = _usid_dims(channel.pos_dims)
    spec_dims: Any = _usid_dims(channel.spec_dims)
    if pos_key in shared:
        kwargs["h5_pos_inds"], kwargs["h5_pos_vals"] = shared[pos_key]
        pos_dims = None
    if spec_key in shared:
        kwargs["h5_spec_inds"], kwargs["h5_spec_vals"] = shared[spec_key]
        spec_dims = None
    # C-order 2-D form: the last listed (fastest) dimension varies fastest, matching reversed dims.
    main = write_main(
        group,
        "Raw_Data",
        channel.as_2d(),
        pos_dims,
        spec_dims,
        channel.quantity,
        channel.units,
        **kwargs,
    )
    shared.setdefault(pos_key, (main.h5_pos_inds, main.h5_pos_vals))
    shared.setdefault(spec_key, (main.h5_spec_inds, main.h5_spec_vals))


def write_usid(raw: RawData, out: Path, *, overwrite: bool = False) -> Path:
    """Write ``raw`` as a USID file at ``out`` (atomically; see the module notes).

    Parameters
    ----------
    raw : RawData
        What a reader produced.
    out : Path
        Output ``.h5`` path.
    overwrite : bool
        Replace an existing ``out``.

    Returns
    -------
    Path
        ``out``.
    """
    from ... import __version__

    source = Path(raw.source)
    root_attrs: dict[str, Any] = {
        "translator": f"pycro_gpu.io.translators:{raw.format}",
        "format": raw.format,
        "source_file": source.name,
        "pycro_gpu_version": __version__,
    }
    if source.is_file():
        root_attrs["source_sha256"] = file_sha256(source)
    expected = _expected_bytes(raw)
    with (
        atomic_output(Path(out), overwrite=overwrite, expected_bytes=expected) as tmp,
        h5py.File(tmp, "w") as h5,
    ):
        _set_attrs(h5, root_attrs)
        meas = h5.create_group("Measurement_000")
        _set_attrs(meas, flatten_metadata(raw.metadata))
        shared: dict[tuple, tuple] = {}
        for i, channel in enumerate(raw.channels):
            group = meas.create_group(f"Channel_{i:03d}")
            _set_attrs(group, {"channel_name": channel.name})
            _set_attrs(group, flatten_metadata(channel.metadata))
            _write_channel(group, channel, shared)
    return Path(out)
