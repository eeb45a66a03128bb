"""Streamed SVD over row batches (pycro_gpu.decomposition._svd_streamed) against numpy.linalg.svd."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest
import scipy.linalg

from pycro_gpu._config import rows_for_budget
from pycro_gpu.decomposition._svd_streamed import choose_method, streamed_svd
from pycro_gpu.process.rows import ArrayRows, HDF5Rows
from tests.helpers import to_numpy


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """Tiny matrices gain nothing from BLAS threads, and threaded OpenBLAS collapses on a busy machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def low_rank_plus_noise(rng, m=2000, n=96, rank=6, noise=1e-2, complex_=False):
    scales = np.logspace(2, 0, rank)
    A = (rng.standard_normal((m, rank)) * scales) @ rng.standard_normal((rank, n))
    A += noise * rng.standard_normal((m, n))
    if complex_:
        A = A + 1j * ((rng.standard_normal((m, rank)) * scales) @ rng.standard_normal((rank, n)))
    return A


def subspace_angle(a, b):
    """Largest principal angle (radians) between the column spaces of a and b."""
    return float(np.max(scipy.linalg.subspace_angles(a, b)))


def check(res, A, k, *, rtol=1e-4, max_angle=1e-4, xp=None):
    s_ref = np.linalg.svd(A, compute_uv=False)[:k]
    _, _, vh = np.linalg.svd(A, full_matrices=False)
    S, U, V = to_numpy(res.S), to_numpy(res.U), to_numpy(res.V)
    np.testing.assert_allclose(S, s_ref, rtol=rtol)
    assert V.shape == (k, A.shape[1]) and U.shape == (A.shape[0], k)
    assert subspace_angle(V.conj().T, vh[:k].conj().T) < max_angle
    np.testing.assert_allclose(U.conj().T @ U, np.eye(k), atol=1e-8)
    # U S V reproduces the projection of A on the top-k right subspace
    np.testing.assert_allclose((U * S) @ V, A @ V.conj().T @ V, atol=1e-8 * s_ref[0])
    if xp is not None:
        assert type(res.S) is type(xp.asarray([1.0]))


@pytest.mark.parametrize("method", ["sketch", "gram", "randomized"])
@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
def test_streamed_svd_matches_numpy(xp, rng, method, complex_):
    A = low_rank_plus_noise(rng, complex_=complex_)
    k = 6  # the rank: the randomized range finder resolves the signal, not the noise floor
    res = streamed_svd(ArrayRows(xp.asarray(A)), k, method=method, memory_mb=0.5, progress=False)
    assert res.method == method
    assert res.info["n_batches"] > 3  # really streamed
    if method == "sketch":  # a 0.5 MiB budget caps the warm-start sample at ~85 rows: one or two reads
        assert res.info["reads"] == res.info["sketch_reads"] in (1, 2) and res.info["converged"]
    else:
        # randomized: five range-finder reads, U from the rows A Q of the last (no U read)
        assert res.info["reads"] == {"gram": 2, "randomized": 5}[method]
    check(res, A, k, xp=xp)


@pytest.mark.parametrize("method", ["sketch", "randomized"])
@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
def test_single_precision_products_on_every_namespace(xp, rng, method, complex_, monkeypatch):
    """float32 / complex64 rows multiplied in their own precision by the randomized method, summed in
    double, on every namespace (forced here: on a sample this small the rounding estimate often keeps
    double precision); the sketch keeps double precision (its U = Y C would amplify the rounding)."""
    import pycro_gpu.decomposition._svd_streamed as streamed

    monkeypatch.setattr(streamed, "SINGLE_PRECISION_SHARE", np.inf)
    A = low_rank_plus_noise(rng, complex_=complex_).astype(np.complex64 if complex_ else np.float32)
    k = 6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the estimate may exceed tol: checked below
        res = streamed_svd(ArrayRows(xp.asarray(A)), k, method=method, memory_mb=0.5, progress=False)
    single = method == "randomized"
    assert res.info["arithmetic"] == (A.dtype.name if single else ("complex128" if complex_ else "float64"))
    A64 = A.astype(np.complex128 if complex_ else np.float64)
    s_ref = np.linalg.svd(A64, compute_uv=False)[:k]
    _, _, vh = np.linalg.svd(A64, full_matrices=False)
    S, U, V = to_numpy(res.S), to_numpy(res.U), to_numpy(res.V)
    assert S.dtype == np.float64  # summed in double precision
    rel = float(np.max(np.abs(S - s_ref) / s_ref))
    # the estimate bounds the real error (with a floor of double-precision rounding)
    assert rel <= 1e-5 and rel <= max(res.info["error_estimate"], 1e-12), (rel, res.info["error_estimate"])
    assert subspace_angle(V.conj().T, vh[:k].conj().T) < 1e-4
    np.testing.assert_allclose(U.conj().T @ U, np.eye(k), atol=1e-6)
    # U = A V / S to the rounding of single-precision products (u s_1 / s_k of s_1 at most)
    np.testing.assert_allclose((U * S) @ V, A64 @ V.conj().T @ V, atol=1e-6 * s_ref[0])


def test_gram_resolves_noise_singular_values(xp, rng):
    """The one-pass method is exact (not sketched): top-k beyond the rank match too."""
    A = low_rank_plus_noise(rng, m=1500, n=64)
    res = streamed_svd(ArrayRows(xp.asarray(A)), 16, method="gram", memory_mb=0.25, progress=False)
    check(res, A, 16)


def test_refinement_recovers_precision_lost_by_squaring(rng):
    """Singular values spanning 1e7: the Gram alone loses them, the U-pass refinement restores them."""
    m, n = 1200, 40
    q1, _ = np.linalg.qr(rng.standard_normal((m, n)))
    q2, _ = np.linalg.qr(rng.standard_normal((n, n)))
    s = np.logspace(0, -7, n)
    A = (q1 * s) @ q2.T
    k = 30  # s_k ~ 6e-6: the Gram alone is good to ~eps / s_k**2, the refinement to ~eps / s_k
    raw = streamed_svd(ArrayRows(A), k, method="gram", refine=False, memory_mb=0.1, progress=False)
    ref = streamed_svd(ArrayRows(A), k, method="gram", refine=True, memory_mb=0.1, progress=False)
    err_raw = np.max(np.abs(np.asarray(raw.S) - s[:k]) / s[:k])
    err_ref = np.max(np.abs(np.asarray(ref.S) - s[:k]) / s[:k])
    assert ref.info["refined"] and not raw.info["refined"]
    assert err_ref < 1e-8
    assert err_ref < err_raw / 100


def test_hdf5_source_and_float32(tmp_path, rng):
    A = low_rank_plus_noise(rng, m=3000, n=80).astype(np.float32)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        d = f.create_dataset("a", data=A, chunks=(128, 80))
        src = HDF5Rows(d)
        res = streamed_svd(src, 6, memory_mb=0.5, progress=False)
        assert res.method == "sketch" and res.info["reads"] == 1  # l = 16 <= 80 / 4
        gram = streamed_svd(src, 6, method="gram", memory_mb=0.5, progress=False)
        # batches hold whole chunks
        assert res.info["batch_rows"] % 128 == 0 and gram.info["batch_rows"] % 128 == 0
        starts = [s for s, _, _ in src.batches(500)]
        assert starts == list(range(0, 3000, 384))
    check(res, A.astype(np.float64), 6, rtol=1e-6)
    check(gram, A.astype(np.float64), 6, rtol=1e-6)


def test_hdf5_source_without_prefetch_reads_same_blocks(tmp_path, rng):
    A = rng.standard_normal((50, 7))
    with h5py.File(tmp_path / "b.h5", "w") as f:
        d = f.create_dataset("a", data=A)
        for prefetch in (True, False):
            got = np.concatenate([np.array(b) for _, _, b in HDF5Rows(d, prefetch=prefetch).batches(8)])
            np.testing.assert_array_equal(got, A)


def test_choose_method_and_budget():
    assert choose_method((10**6, 256), np.float32, memory_mb=256) == "gram"
    assert choose_method((10**6, 256), np.float32, memory_mb=256, k=8) == "sketch"
    assert choose_method((10**6, 256), np.float32, memory_mb=256, k=54) == "sketch"  # l = 64 = 256 / 4
    assert choose_method((10**6, 256), np.float32, memory_mb=256, k=55) == "gram"
    assert choose_method((10**6, 256), np.float32, memory_mb=256, k=8, oversample=60) == "gram"
    assert choose_method((1000, 20000), np.float64, memory_mb=256) == "randomized"
    assert choose_method((10**6, 4096), np.complex64, memory_mb=1024) == "randomized"
    assert rows_for_budget(256, 8, 1) == 512
    assert rows_for_budget(256, 8, 1, reserve=2**30) >= 1


def test_bad_k_and_method(rng):
    src = ArrayRows(rng.standard_normal((10, 4)))
    with pytest.raises(ValueError, match="k must be between 1 and min"):
        streamed_svd(src, 5, progress=False)
    with pytest.raises(ValueError, match="method must be one of"):
        streamed_svd(src, 2, method="qr", progress=False)


def test_rank_deficient_does_not_divide_by_zero(rng):
    A = np.outer(rng.standard_normal(30), rng.standard_normal(8))
    res = streamed_svd(ArrayRows(A), 3, method="gram", progress=False)
    S, U = np.asarray(res.S), np.asarray(res.U)
    assert np.all(np.isfinite(U))
    np.testing.assert_allclose(S[0], np.linalg.norm(A, 2), rtol=1e-12)
    assert S[1] < 1e-6 * S[0]
    assert not res.info["refined"]


def test_wide_data_takes_the_randomized_path(xp, rng):
    A = low_rank_plus_noise(rng, m=60, n=1500, rank=5)
    res = streamed_svd(ArrayRows(xp.asarray(A)), 5, memory_mb=1, progress=False)
    assert res.method == "randomized"  # 1500 x 1500 Gram does not fit half of 1 MiB
    check(res, A, 5)


def test_non_finite_data_is_a_data_error(rng):
    from pycro_gpu.errors import DataError

    A = rng.standard_normal((40, 6))
    A[3, 2] = np.nan
    for method in ("sketch", "gram", "randomized"):
        with pytest.raises(DataError, match="non-finite values"):
            streamed_svd(ArrayRows(A), 2, method=method, progress=False)


def test_auto_picks_gram_only_for_tall_data_and_dense_where_the_matrix_fits():
    from pycro_gpu.decomposition._svd_streamed import choose_method

    assert choose_method((1_000_000, 256), np.float64, memory_mb=256) == "gram"
    assert choose_method((1_000_000, 256), np.float64, memory_mb=256, k=16) == "sketch"
    # wide or square data that fit the budget: the exact dense SVD (milliseconds for these sizes)
    assert choose_method((144, 1536), np.float64, memory_mb=4096) == "dense"
    assert choose_method((144, 1536), np.float64, memory_mb=4096, k=8) == "dense"
    assert choose_method((1000, 1000), np.float64, memory_mb=4096) == "dense"
    # wide data that do not fit: the randomized range finder
    assert choose_method((2000, 16384), np.float64, memory_mb=64) == "randomized"
    # tall, but the 20000 x 20000 Gram matrix does not fit a 256 MiB budget
    assert choose_method((10_000_000, 20_000), np.float64, memory_mb=256) == "randomized"


def test_dense_method_is_exact_and_randomized_reports_its_error(rng):
    from pycro_gpu.decomposition import svd

    A = rng.standard_normal((120, 400)) * (1.0 / np.arange(1, 401)) ** 0.3  # slow decay, wide
    ref = np.linalg.svd(A, compute_uv=False)[:8]
    dense = svd(A, 8, memory_mb=64, progress=False)
    assert dense.method == "dense" and dense.info["reads"] == 1 and dense.info["converged"]
    np.testing.assert_allclose(np.asarray(dense.S), ref, rtol=1e-12)
    np.testing.assert_allclose(
        np.asarray(dense.U) * np.asarray(dense.S) @ np.asarray(dense.V),
        A @ np.asarray(dense.V).T @ np.asarray(dense.V),
        atol=1e-10,
    )
    with pytest.warns(RuntimeWarning, match="above tol"):
        rnd = svd(A, 8, method="randomized", n_iter=1, tol=1e-12, progress=False)
    err = np.max(np.abs(np.asarray(rnd.S) - ref) / ref)
    assert not rnd.info["converged"] and rnd.info["error_estimate"] > 1e-12
    # the estimate backs up the error it reports (it is not smaller than the true error)
    assert rnd.info["error_estimate"] >= 0.5 * err
