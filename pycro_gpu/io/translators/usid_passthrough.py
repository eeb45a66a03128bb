"""Files that are already USID HDF5: check them, and copy them when an output is asked for.

An HDF5 file is accepted when :func:`pycro_gpu.io.usid.find_main_datasets` finds at least one Main
dataset in it (incomplete grids such as sparse scans included: only the USID structure is checked,
not whether an N-D form exists). The input is never opened for writing. With an output path the
file is copied byte for byte (through a temporary name, renamed when complete).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py

from ._base import CorruptFileError, UnsupportedFormatError, reader_errors
from ._writer import atomic_output

__all__ = ["HDF5_MAGIC", "check_usid", "passthrough"]

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def check_usid(path: Path) -> list[str]:
    """Return the names of the Main datasets of a USID file, or raise a :class:`TranslationError`.

    Parameters
    ----------
    path : Path
        An HDF5 file.

    Returns
    -------
    list of str
        HDF5 paths of the Main datasets found.
    """
    from ..usid import find_main_datasets

    with reader_errors(path, "usid-hdf5"):
        if not h5py.is_hdf5(str(path)):
            msg = f"{path}: not an HDF5 file (or a damaged one: no HDF5 signature)"
            raise CorruptFileError(msg)
        with h5py.File(path, "r") as h5:
            names = [d.name for d in find_main_datasets(h5)]
    if not names:
        msg = f"{path}: the HDF5 file holds no USID Main dataset (nothing to translate)"
        raise UnsupportedFormatError(msg)
    return names


def passthrough(path: Path, out: Path | None = None, *, overwrite: bool = False) -> Path:
    """Check a USID file and copy it to ``out`` (or return ``path`` itself when ``out`` is None).

    Parameters
    ----------
    path : Path
        The USID HDF5 file.
    out : Path, optional
        Where to copy it.
    overwrite : bool
        Replace an existing ``out``.

    Returns
    -------
    Path
        The USID file to use: ``out``, or ``path`` when no copy was asked for.
    """
    check_usid(path)
    if out is None or Path(out).resolve() == Path(path).resolve():
        return Path(path)
    with atomic_output(Path(out), overwrite=overwrite) as tmp:
        shutil.copyfile(path, tmp)
    return Path(out)
