"""Exceptions of the HDF5 library as one line: where they come from and what they say.

h5py turns an error of libhdf5 into a Python exception of a type that depends on the failing call
(``KeyError`` for a damaged link, ``RuntimeError`` for a failed object visit, ``OSError``, ``ValueError``
or ``TypeError`` for a damaged header), with a message that may span several lines. These helpers let
the readers turn such an exception into one :class:`~pycro_gpu.errors.DataError` line naming the object,
and let the command line tell a damaged file from a programming error.
"""

from __future__ import annotations

from pathlib import PurePath

__all__ = ["damaged", "hdf5_message", "one_line", "raised_by_h5py"]


def one_line(text: object) -> str:
    """``text`` with its lines and runs of blanks folded into single spaces.

    Examples
    --------
    >>> one_line("Unable to open object\\n  (bad version number)  ")
    'Unable to open object (bad version number)'
    """
    return " ".join(str(text).split())


def raised_by_h5py(exc: BaseException) -> bool:
    """True when ``exc`` was raised inside h5py (its innermost traceback frame is h5py code).

    Such an exception reports libhdf5 failing on the file's content (a damaged header, a dangling
    link, a failed read or write); an exception raised in pycro_gpu's own code is not one, even when a
    callback that h5py called raised it.
    """
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return "h5py" in PurePath(tb.tb_frame.f_code.co_filename).parts


def hdf5_message(exc: BaseException) -> str:
    """The message of an h5py exception in one line (a ``KeyError``'s without the quotes of its repr)."""
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        return one_line(exc.args[0])
    return one_line(exc) or type(exc).__name__


def damaged(where: str, exc: BaseException) -> str:
    """The one-line message of a damaged HDF5 object: ``WHERE is damaged: HDF5 says: MESSAGE``.

    Examples
    --------
    >>> damaged("/Raw_Data attribute 'units'", TypeError("Unknown string encoding (value 8)"))
    "/Raw_Data attribute 'units' is damaged: HDF5 says: Unknown string encoding (value 8)"
    """
    return f"{where} is damaged: HDF5 says: {hdf5_message(exc)}"
