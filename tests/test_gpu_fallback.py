"""A GPU library that fails to import (for any reason) falls back to its CPU library with one warning.

No GPU is needed: a finder on ``sys.meta_path`` makes ``import cuml`` / ``import cucim...`` raise what a
CUDA driver mismatch raises, and CuPy data are played by NumPy arrays (``is_cupy_namespace`` answers
True for NumPy), so the code takes the branch it takes for CuPy arrays. The results must equal the
scikit-learn / scikit-image results, with exactly one :class:`GPUFallbackWarning` that names the
library and the cause, however many calls (batches, sub-modules) follow.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import warnings

import numpy as np
import pytest
import skimage.filters
import skimage.transform
from sklearn import decomposition as skd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

import pycro_gpu.backend
import pycro_gpu.filters.image
from pycro_gpu._lib import optional
from pycro_gpu.cluster import cluster
from pycro_gpu.decomposition import decompose
from pycro_gpu.errors import GPUFallbackWarning
from pycro_gpu.filters import image as image_ops

DRIVER_MISMATCH = "cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version"


class _BrokenLibrary(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``name`` and its sub-modules; executing any of them raises ``error``."""

    def __init__(self, name: str, error: BaseException) -> None:
        self.name, self.error, self.imports = name, error, 0

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name or fullname.startswith(self.name + "."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        self.imports += 1
        raise self.error


@pytest.fixture(autouse=True)
def _fresh_process_state(monkeypatch):
    """Each test is a new process as far as the warn-once and no-retry bookkeeping goes."""
    monkeypatch.setattr(optional, "_FAILED_IMPORTS", {})
    monkeypatch.setattr(optional, "_REPORTED", set())


def _break(monkeypatch, name: str, error: BaseException) -> _BrokenLibrary:
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        monkeypatch.delitem(sys.modules, module)
    finder = _BrokenLibrary(name, error)
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    return finder


@pytest.fixture
def numpy_as_cupy(monkeypatch):
    """NumPy arrays take the CuPy branches of ml_engine and image_op."""
    monkeypatch.setattr(pycro_gpu.backend, "is_cupy_namespace", pycro_gpu.backend.is_numpy_namespace)
    monkeypatch.setattr(pycro_gpu.filters.image, "is_cupy_namespace", pycro_gpu.backend.is_numpy_namespace)


def _fallback_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, GPUFallbackWarning)]


def _aligned(a, b):
    return a * np.sign(np.sum(a * b, axis=1, keepdims=True))


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError(DRIVER_MISMATCH),
        OSError("libcudart.so.12: cannot open shared object file: No such file or directory"),
        AttributeError("module 'cupy' has no attribute 'cuda'"),
        ImportError("libcuml++.so: undefined symbol: _ZN4raft"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_broken_cuml_decomposes_with_scikit_learn_clusters_with_array_api_kmeans_and_warns_once(
    error, monkeypatch, numpy_as_cupy, rng
):
    finder = _break(monkeypatch, "cuml", error)
    centers = rng.standard_normal((3, 12)) * 4
    truth = rng.integers(0, 3, 150)
    X = centers[truth] + 0.05 * rng.standard_normal((150, 12))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        pca = decompose(X, "pca", 2)
        again = decompose(X, "truncated_svd", 2)
        clustered = cluster(X, 3)
    [message] = _fallback_warnings(record)
    assert message.startswith(f"cuml failed to import ({type(error).__name__}: {error})")
    assert "using scikit-learn on the host instead" in message
    assert finder.imports == 1  # the failed import is not retried by later calls
    assert pca.engine == again.engine == "sklearn" and clustered.engine == "array-api"
    ref = skd.PCA(2).fit(X)
    np.testing.assert_allclose(_aligned(pca.components, ref.components_), ref.components_, atol=1e-10)
    np.testing.assert_allclose(pca.explained_variance_ratio, ref.explained_variance_ratio_, rtol=1e-10)
    svd_ref = skd.TruncatedSVD(2, random_state=0).fit(X)
    np.testing.assert_allclose(
        _aligned(again.components, svd_ref.components_), svd_ref.components_, atol=1e-8
    )
    kmeans = KMeans(3, random_state=0, n_init=10).fit_predict(X)
    assert adjusted_rand_score(clustered.labels, kmeans) == pytest.approx(1.0)
    assert adjusted_rand_score(clustered.labels, truth) == pytest.approx(1.0)


def test_cuml_not_installed_is_scikit_learn_without_a_warning(monkeypatch, numpy_as_cupy, rng):
    _break(monkeypatch, "cuml", ModuleNotFoundError("No module named 'cuml'", name="cuml"))
    X = rng.standard_normal((60, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = decompose(X, "pca", 2)
    assert d.engine == "sklearn"
    ref = skd.PCA(2).fit(X)
    np.testing.assert_allclose(_aligned(d.components, ref.components_), ref.components_, atol=1e-10)


def test_broken_cucim_runs_scikit_image_on_the_host_and_warns_once(monkeypatch, numpy_as_cupy, rng):
    finder = _break(monkeypatch, "cucim", RuntimeError(DRIVER_MISMATCH))
    img = rng.standard_normal((30, 34)) + np.linspace(0, 2, 34)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        smooth = image_ops.gaussian(img, 1.5)
        med = image_ops.median(img, 3)  # its footprint is an array argument, moved to the host too
        rotated = image_ops.rotate(img, 30)  # another cuCIM sub-module: no second warning
        frames = [image_ops.sobel(img[i : i + 10]) for i in range(3)]  # one call per frame
    [message] = _fallback_warnings(record)
    assert message == (
        f"cucim failed to import (RuntimeError: {DRIVER_MISMATCH}); "
        "using scikit-image on host copies of CuPy images instead (this warning is shown once)"
    )
    assert finder.imports == 2  # once for cucim.skimage.filters, once for .transform: never retried
    np.testing.assert_allclose(smooth, skimage.filters.gaussian(img, 1.5, preserve_range=True), rtol=1e-12)
    np.testing.assert_array_equal(med, skimage.filters.median(img, footprint=np.ones((3, 3), bool)))
    np.testing.assert_allclose(rotated, skimage.transform.rotate(img, 30, preserve_range=True), rtol=1e-12)
    for i, frame in enumerate(frames):
        np.testing.assert_allclose(frame, skimage.filters.sobel(img[i : i + 10]), rtol=1e-12)


def test_cucim_not_installed_warns_with_the_extra_to_install(monkeypatch, numpy_as_cupy, rng):
    _break(monkeypatch, "cucim", ModuleNotFoundError("No module named 'cucim'", name="cucim"))
    img = rng.standard_normal((16, 16))
    with pytest.warns(
        GPUFallbackWarning, match=r"^cucim is not installed \(pip install 'pycro-gpu\[gpu\]'\)"
    ):
        out = image_ops.sobel(img)
    np.testing.assert_allclose(out, skimage.filters.sobel(img), rtol=1e-12)


def test_an_installed_library_that_imports_is_returned_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert optional.import_gpu_library("json", instead="nothing") is sys.modules["json"]
