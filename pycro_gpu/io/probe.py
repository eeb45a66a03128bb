"""A crash guard for damaged HDF5 files: read a file's metadata in a forked child first.

libhdf5 trusts the structure that a file declares. Most damage makes it raise an error that h5py turns
into an exception, but some (a variable-length datatype whose class bits are garbage, for example) make
it read wild memory and the process dies of a segmentation fault: no error line, no clean-up. Such a
crash cannot be caught in the process that suffers it, so :func:`probe_h5` makes the same reads in a
forked copy of the process first: every object header, every attribute's datatype, the values of the
attributes and datasets whose reads go through the library's variable-length and reference code (the
reads where the crashes were found). A child that dies of a signal means the file is damaged, and the
parent raises one :class:`~pycro_gpu.errors.DataError` instead of crashing; a child that finishes (or
that h5py stopped with exceptions) lets the caller go on, and the caller reports any exception itself.

Some damaged heaps make the library loop for ever instead: a probe that does not finish within
:data:`PROBE_TIMEOUT_S` (``PYCRO_GPU_PROBE_TIMEOUT_S``) is killed and the file refused the same way.

The command line probes its input files once per command (:func:`pycro_gpu.cli.main`). A probe costs
one ``fork`` plus a walk of the metadata (about 50 us per attribute). Where ``os.fork`` does not exist
(Windows) there is no probe and such a file still crashes the process; the same holds for reads the
probe does not make (the values of fixed-size numeric datasets, in which no crash has been seen).
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import os
import select
import signal
import warnings
from pathlib import Path

import h5py
import numpy as np
from h5py import h5a, h5d, h5i, h5o, h5t

from ..errors import DataError

__all__ = ["PROBE_TIMEOUT_S", "TIMEOUT_ENV", "probe_h5", "probe_timeout", "walk_metadata"]

#: seconds the child may take by default: the walk of a sound file takes milliseconds (about 50 us per
#: attribute), a damaged heap can make the library loop for ever
PROBE_TIMEOUT_S = 10.0
#: environment variable that sets the seconds the probe may take; 0 turns the probe off
TIMEOUT_ENV = "PYCRO_GPU_PROBE_TIMEOUT_S"

#: signals that mean the library crashed
_CRASH_SIGNALS = frozenset(
    getattr(signal, name)
    for name in ("SIGSEGV", "SIGBUS", "SIGABRT", "SIGFPE", "SIGILL", "SIGSYS")
    if hasattr(signal, name)
)
#: the signature of an HDF5 file, at offset 0, 512, 1024, 2048 ... (after a user block)
_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: the memory type of variable-length strings, made once
_VLEN_STR = h5py.string_dtype()
_VLEN_STR_MTYPE = h5t.py_create(_VLEN_STR)
#: children whose walk finished and that are still exiting (reaped by the next probe)
_EXITING: list[int] = []


def probe_h5(path: str | os.PathLike, *, timeout_s: float | None = None) -> None:
    """Raise :class:`DataError` when reading the metadata of the HDF5 file ``path`` crashes libhdf5.

    Does nothing for a path that is not an existing regular HDF5 file (the opener reports those), on a
    platform without ``os.fork``, or with a timeout of 0.

    Parameters
    ----------
    path : str or path-like
        The HDF5 file to probe.
    timeout_s : float, optional
        Seconds the probe may take (default: :func:`probe_timeout`); 0 turns the probe off.

    Raises
    ------
    DataError
        The child reading the file died of a signal (segmentation fault, bus error, abort), or did not
        finish within ``timeout_s`` (the library loops on damaged metadata).
    """
    timeout_s = probe_timeout() if timeout_s is None else float(timeout_s)
    p = Path(path)
    if timeout_s <= 0 or not hasattr(os, "fork") or not p.is_file() or not _has_signature(p):
        return
    timed_out, sig = _probe_in_child(str(p), timeout_s)
    if sig is not None:
        name = signal.Signals(sig).name
        msg = (
            f"{str(p)!r}: the HDF5 library crashed ({name}) reading this file's metadata: the file is "
            f"damaged (nothing was read or written)"
        )
        raise DataError(msg)
    if timed_out:
        msg = (
            f"{str(p)!r}: the HDF5 library did not finish reading this file's metadata within "
            f"{timeout_s:g} s: the file is damaged (its structure loops), or sound but huge or on a slow "
            f"disk: then raise {TIMEOUT_ENV} (0 turns this check off)"
        )
        raise DataError(msg)


def probe_timeout() -> float:
    """Seconds the probe may take: ``PYCRO_GPU_PROBE_TIMEOUT_S`` or :data:`PROBE_TIMEOUT_S`."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return PROBE_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        msg = f"{TIMEOUT_ENV} must be a number of seconds >= 0 (0: no probe), got {text!r}"
        raise DataError(msg)
    return value


def _has_signature(p: Path) -> bool:
    """The HDF5 signature at offset 0 or after a user block (512, 1024, ... bytes), read in Python."""
    try:
        with open(p, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            offset = 0
            while offset + len(_SIGNATURE) <= size:
                fh.seek(offset)
                if fh.read(len(_SIGNATURE)) == _SIGNATURE:
                    return True
                offset = 512 if offset == 0 else 2 * offset
    except OSError:
        return False
    return False


def _probe_in_child(path: str, timeout_s: float) -> tuple[bool, int | None]:
    """Walk ``path`` in a forked child: whether it ran out of time, and the signal of its crash (None
    when it finished, or ended another way: killed by the system, interrupted).

    The child writes one byte when its walk is done; the parent goes on at once and reaps the exiting
    child later (the exit of a large process takes as long as its fork), at the next probe.
    """
    _reap_finished()
    done_r, done_w = os.pipe()  # the child's byte, or its exit (whatever kills it), wakes the parent
    with warnings.catch_warnings():  # Python >= 3.12 warns that fork() in a threaded process may deadlock
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(done_r)
        _child(path, done_w)
    os.close(done_w)
    finished = None
    try:
        finished = _walk_finished(done_r, timeout_s)
    finally:  # interrupted (Ctrl-C) or out of time: the child goes too
        os.close(done_r)
        if finished:
            _EXITING.append(pid)
        else:
            status = _end(pid, kill=finished is None)
    if finished is None:
        return True, None
    if finished or not os.WIFSIGNALED(status) or os.WTERMSIG(status) not in _CRASH_SIGNALS:
        return False, None
    return False, os.WTERMSIG(status)


def _child(path: str, done_w: int) -> None:
    gc.disable()  # a collection would touch every object of the parent's heap: copies of all its pages
    try:
        faulthandler.disable()  # a crash here is the expected outcome, not one to report
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)  # never the parent's handlers (they may clean up files)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        walk_metadata(path)
    except BaseException:  # a Python error is the parent's to meet and report
        pass
    finally:
        with contextlib.suppress(OSError):
            os.write(done_w, b"1")
        os._exit(0)


def _walk_finished(done_r: int, timeout_s: float) -> bool | None:
    """True when the child wrote its byte, False when it died first, None when ``timeout_s`` ran out."""
    ready, _, _ = select.select([done_r], [], [], timeout_s)
    if not ready:
        return None
    return os.read(done_r, 1) == b"1"


def _end(pid: int, *, kill: bool) -> int:
    """The wait status of the child ``pid`` once it has ended (killed first when ``kill``)."""
    if kill:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1]


def _reap_finished() -> None:
    """Reap the children of earlier probes that have exited since (no zombies pile up)."""
    for pid in list(_EXITING):
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                continue
        _EXITING.remove(pid)


def walk_metadata(path: str | os.PathLike) -> int:
    """Make the reads of the probe in this process: every object header and attribute of ``path``.

    Opens every object reachable by hard links, decodes every attribute's datatype and dataspace and
    every dataset's datatype, dataspace and creation properties (filters), and reads the values whose
    reads go through variable-length or reference conversion (variable-length strings and sequences,
    object and region references, compounds and arrays of them): whole attributes, and the first
    element of such datasets. An object or attribute that h5py refuses with an exception is skipped.

    Returns
    -------
    int
        The number of attributes read.
    """
    with h5py.File(path, "r") as f:
        counts = [_walk_object(f.id)]

        def visit(name: bytes) -> None:
            with contextlib.suppress(Exception):
                counts.append(_walk_object(h5o.open(f.id, name)))

        h5o.visit(f.id, visit)
    return sum(counts)


def _walk_object(oid: h5o.ObjectID) -> int:
    n_read = 0

    def attribute(name: bytes, *_: object) -> None:
        nonlocal n_read
        with contextlib.suppress(Exception):
            aid = h5a.open(oid, name)
            space, tid = aid.get_space(), aid.get_type()
            if tid.get_class() == h5t.STRING and tid.is_variable_str():  # most metadata: the quick way
                aid.read(np.empty(space.shape, dtype=_VLEN_STR), mtype=_VLEN_STR_MTYPE)
            elif _variable(tid):
                aid.read(np.empty(space.shape, dtype=aid.dtype))
            else:
                return
            n_read += 1

    with contextlib.suppress(Exception):
        h5a.iterate(oid, attribute)
    if h5i.get_type(oid) == h5i.DATASET:
        with contextlib.suppress(Exception):
            _first_element(oid)
    return n_read


def _first_element(did: h5d.DatasetID) -> None:
    did.get_create_plist()
    space = did.get_space()
    if not _variable(did.get_type()) or space.get_simple_extent_type() != h5py.h5s.SIMPLE:
        return
    shape = space.shape
    if not shape or min(shape) == 0:
        return
    space.select_hyperslab((0,) * len(shape), (1,) * len(shape))
    buf = np.empty((1,) * len(shape), dtype=did.dtype)
    did.read(h5py.h5s.create_simple((1,) * len(shape)), space, buf)


def _variable(tid: h5t.TypeID) -> bool:
    """True for datatypes whose reads go through the library's variable-length or reference code."""
    cls = tid.get_class()
    if cls in (h5t.VLEN, h5t.REFERENCE):
        return True
    if cls == h5t.STRING:
        return bool(tid.is_variable_str())
    if cls == h5t.COMPOUND:
        return any(_variable(tid.get_member_type(i)) for i in range(tid.get_nmembers()))
    if cls == h5t.ARRAY:
        return _variable(tid.get_super())
    return False
