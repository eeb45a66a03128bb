"""decompose(): PCA / IncrementalPCA / TruncatedSVD / NMF / FastICA against scikit-learn directly."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.linalg
from sklearn import decomposition as skd

from pycro_gpu.decomposition import CAPABILITIES, decompose
from pycro_gpu.errors import DataError
from tests.helpers import assert_close, to_numpy


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """Tiny matrices gain nothing from BLAS threads, and threaded OpenBLAS collapses on a busy machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture
def lowrank(rng):
    m, n, r = 400, 30, 3
    return (rng.standard_normal((m, r)) * [10.0, 5.0, 2.0]) @ rng.standard_normal(
        (r, n)
    ) + 0.01 * rng.standard_normal((m, n))


def _aligned(a, b):
    """Flip the sign of each row of a to match b."""
    s = np.sign(np.sum(a * b, axis=1, keepdims=True))
    return a * s


def _tolerances(result, rtol, atol, scale=1.0):
    """(rtol, atol) against scikit-learn: as given for it, 1e-6 (relative to ``scale``) for cuML.

    The engine is whichever the data and the installed libraries give: cuML on CuPy where it imports,
    scikit-learn everywhere else; the values are checked, not the engine's name.
    """
    assert result.engine in {"sklearn", "cuml"}
    return (rtol, atol) if result.engine == "sklearn" else (max(rtol, 1e-6), max(atol, 1e-6 * scale))


def test_pca_matches_sklearn(xp, lowrank):
    d = decompose(xp.asarray(lowrank), "pca", 3)
    ref = skd.PCA(n_components=3, random_state=0).fit(lowrank)
    assert d.method == "pca"
    comp = to_numpy(d.components)
    rtol, atol = _tolerances(d, 0, 1e-10)
    assert_close(_aligned(comp, ref.components_), ref.components_, rtol=rtol, atol=atol, xp=None)
    rtol, _ = _tolerances(d, 1e-10, 0)
    assert_close(d.explained_variance_ratio, ref.explained_variance_ratio_, rtol=rtol, xp=xp)
    W, W_ref = np.abs(to_numpy(d.weights)), np.abs(ref.transform(lowrank))
    rtol, atol = _tolerances(d, 0, 1e-8, scale=float(W_ref.max()))
    np.testing.assert_allclose(W, W_ref, rtol=rtol, atol=atol)
    assert type(d.weights) is type(xp.asarray([1.0]))


def test_truncated_svd_matches_sklearn(xp, lowrank):
    d = decompose(xp.asarray(lowrank), "truncated_svd", 3)
    ref = skd.TruncatedSVD(3, random_state=0).fit(lowrank)
    rtol, atol = _tolerances(d, 0, 1e-8)
    comp = _aligned(to_numpy(d.components), ref.components_)
    np.testing.assert_allclose(comp, ref.components_, rtol=rtol, atol=atol)


def test_incremental_pca_streams_hdf5(tmp_path, lowrank):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        ds = f.create_dataset("x", data=lowrank)
        d = decompose(ds, "incremental_pca", 3, memory_mb=0.05)  # ~50-row batches
        assert d.estimator.n_samples_seen_ == lowrank.shape[0]
    ref = skd.PCA(3).fit(lowrank)
    angle = np.max(scipy.linalg.subspace_angles(to_numpy(d.components).T, ref.components_.T))
    assert angle < 1e-6
    np.testing.assert_allclose(to_numpy(d.explained_variance_ratio), ref.explained_variance_ratio_, rtol=1e-4)
    assert to_numpy(d.weights).shape == (400, 3)


def test_nmf_matches_sklearn(rng):
    W0 = rng.random((200, 2))
    H0 = np.stack([np.exp(-((np.arange(40) - 10) ** 2) / 20), np.exp(-((np.arange(40) - 28) ** 2) / 30)])
    X = W0 @ H0
    d = decompose(X, "nmf", 2)
    ref = skd.NMF(2, init="nndsvda", max_iter=1000, random_state=0)
    Wr = ref.fit_transform(X)
    np.testing.assert_allclose(to_numpy(d.components), ref.components_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(to_numpy(d.weights), Wr, rtol=1e-8, atol=1e-12)
    assert np.linalg.norm(to_numpy(d.weights) @ to_numpy(d.components) - X) < 1e-2 * np.linalg.norm(X)
    with pytest.raises(DataError, match="non-negative"):
        decompose(X - 1.0, "nmf", 2)


def test_fast_ica_unmixes_sources(rng):
    t = np.linspace(0, 8, 2000)
    S = np.stack([np.sin(2 * t), np.sign(np.sin(3 * t))], axis=1)
    A = np.array([[1.0, 0.5, 0.2], [0.3, 1.0, 0.8]])
    X = S @ A
    d = decompose(X, "fast_ica", 2)
    W = to_numpy(d.weights)
    corr = np.abs(np.corrcoef(W.T, S.T)[:2, 2:])
    assert np.all(np.max(corr, axis=1) > 0.99)
    # mixing spectra rebuild the data
    rebuilt = W @ to_numpy(d.components) + d.estimator.mean_
    np.testing.assert_allclose(rebuilt, X, atol=1e-8)


def test_complex_pca_gives_complex_components(rng):
    m, n = 300, 12
    base = rng.standard_normal((m, 1)) @ (rng.standard_normal((1, n)) + 1j * rng.standard_normal((1, n)))
    d = decompose(base, "pca", 1)
    comp = to_numpy(d.components)
    assert comp.shape == (1, n) and np.iscomplexobj(comp)
    ref = skd.PCA(1).fit(np.concatenate([base.real, base.imag], axis=1))
    np.testing.assert_allclose(np.abs(comp[0]), np.abs(ref.components_[0, :n] + 1j * ref.components_[0, n:]))


def test_capabilities_table_and_errors(lowrank):
    assert set(CAPABILITIES) == {"pca", "incremental_pca", "truncated_svd", "nmf", "fast_ica"}
    assert CAPABILITIES["nmf"]["gpu"] is None and CAPABILITIES["fast_ica"]["gpu"] is None
    assert CAPABILITIES["pca"]["gpu"] == "cuml.PCA"
    with pytest.raises(ValueError, match="method must be one of"):
        decompose(lowrank, "lda", 2)
    with pytest.raises(ValueError, match="n_components must be between 1 and 30"):
        decompose(lowrank, "pca", 31)


@pytest.mark.gpu
def test_cupy_pca_uses_cuml_and_stays_on_device(lowrank):
    import cupy

    pytest.importorskip("cuml")
    d = decompose(cupy.asarray(lowrank), "pca", 3)
    assert d.engine == "cuml"
    assert isinstance(d.components, cupy.ndarray) and isinstance(d.weights, cupy.ndarray)
    ref = skd.PCA(3).fit(lowrank)
    np.testing.assert_allclose(_aligned(to_numpy(d.components), ref.components_), ref.components_, atol=1e-6)
    # a CPU-only method comes back to the device
    n = decompose(cupy.asarray(np.abs(lowrank)), "nmf", 2)
    assert n.engine == "sklearn" and isinstance(n.components, cupy.ndarray)
