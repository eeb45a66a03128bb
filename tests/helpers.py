"""Helpers for tests only: host copies and dtype-aware comparison against NumPy references."""

from __future__ import annotations

import numpy as np

from pycro_gpu.backend import array_namespace, to_host


def to_numpy(x) -> np.ndarray:
    """Copy any backend's array to NumPy (tests only: library code never hides such copies)."""
    return np.asarray(to_host(x))


def assert_close(actual, desired, *, rtol=None, atol=0.0, xp=None):
    """Assert ``actual`` matches a NumPy reference with a tolerance set by its dtype.

    When ``xp`` is given, also assert that ``actual`` stayed in that namespace.
    """
    if xp is not None:
        got = array_namespace(actual)
        assert got.__name__.split(".")[-1] == xp.__name__.split(".")[-1], (got, xp)
    a = to_numpy(actual)
    if rtol is None:
        rtol = 1e-5 if a.dtype in (np.float32, np.complex64) else 1e-12
    np.testing.assert_allclose(a, np.asarray(desired), rtol=rtol, atol=atol)


def results_group(job_result, h5_obj):
    """The results group of a :class:`pycro_gpu.process.JobResult` in the open file of ``h5_obj``."""
    assert job_result.file == h5_obj.file.filename
    return h5_obj.file[job_result.group]


def h5_arrays(path) -> dict:
    """Every numeric dataset of the HDF5 file at ``path`` (object references left out), by path."""
    import h5py

    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind != "O":
            out[name] = obj[()]

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out
