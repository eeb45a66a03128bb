"""Test harness: the ``xp`` fixture over backends, CUDA-simulator and GPU markers, test data.

* ``xp`` runs a test body on NumPy, on array_api_strict (which rejects NumPy-only habits that break on
  CuPy) and on CuPy where a CUDA device is usable; elsewhere the CuPy case skips with that reason.
* ``@pytest.mark.cudasim`` tests run CUDA kernels in numba's simulator. ``NUMBA_ENABLE_CUDASIM=1``
  must be set before numba is imported, so ``make test`` runs them in a second pytest invocation
  (``-m cudasim``); without the variable they are skipped with that reason.
* ``@pytest.mark.gpu`` tests need a real device and skip cleanly without one.
* Real instrument files come from ``PYCRO_GPU_TEST_DATA`` (default ``../shared/data``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Under pytest-xdist every test process keeps its own kernel cache (shared with the Dask workers and
# subprocesses it starts). Two processes that compile the same kernel at once bind its callees in the
# order of their own histories (the last bits of the results differ) and the last writer wins on disk,
# so a Dask worker could load another test process's build than the one its driver runs, and the tests
# compare them bit for bit. Set before anything compiles or loads a kernel.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _XDIST_WORKER and "PYCRO_GPU_CACHE_DIR" not in os.environ:
    _tree = hashlib.sha1(str(REPO_ROOT).encode()).hexdigest()[:8]
    os.environ["PYCRO_GPU_CACHE_DIR"] = str(
        Path(tempfile.gettempdir()) / f"pycro_gpu_test_kernels_{_tree}_{_XDIST_WORKER}"
    )

from pycro_gpu.backend import cupy_available  # noqa: E402 (after the cache directory is chosen)

IN_CUDASIM = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"
TEST_DATA = Path(os.environ.get("PYCRO_GPU_TEST_DATA", REPO_ROOT.parent / "shared" / "data"))


def _backend_params():
    params = [pytest.param("numpy", id="numpy"), pytest.param("array_api_strict", id="strict")]
    params.append(
        pytest.param(
            "cupy",
            id="cupy",
            marks=pytest.mark.skipif(not cupy_available(), reason="no usable CUDA device for cupy"),
        )
    )
    return params


@pytest.fixture(params=_backend_params())
def xp(request):
    """Array namespace under test: numpy, array_api_strict, or cupy (where a device exists)."""
    name = request.param
    for marker in request.node.iter_markers("skip_xp_backend"):
        if marker.args[0] == name:
            pytest.skip(marker.kwargs.get("reason", f"not for {name}"))
    if name == "numpy":
        import array_api_compat.numpy as npx

        return npx
    if name == "array_api_strict":
        import array_api_strict

        return array_api_strict
    import array_api_compat.cupy as cpx

    return cpx


@pytest.fixture
def test_data() -> Path:
    """Folder of the real instrument files; skips the test where it is absent."""
    if not TEST_DATA.is_dir():
        pytest.skip(f"test data folder {TEST_DATA} not found (set PYCRO_GPU_TEST_DATA)")
    return TEST_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261126)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "skip_xp_backend(name, reason): skip the xp fixture's case for one backend"
    )


def pytest_collection_modifyitems(config, items):
    skip_sim = pytest.mark.skip(
        reason="CUDA-simulator test: run with NUMBA_ENABLE_CUDASIM=1 (make test does, in a second pass)"
    )
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device (cupy.is_available() is False)")
    for item in items:
        if "cudasim" in item.keywords and not IN_CUDASIM:
            item.add_marker(skip_sim)
        if "gpu" in item.keywords and not cupy_available():
            item.add_marker(skip_gpu)
