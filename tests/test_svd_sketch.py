"""The sketch method of the streamed SVD: one read, its error estimate, fall-backs, spill store."""

from __future__ import annotations

import itertools
import warnings

import h5py
import numpy as np
import pytest
import scipy.linalg

from pycro_gpu.decomposition._svd_sinks import SpillRows
from pycro_gpu.decomposition._svd_sketch import row_sample, warm_start
from pycro_gpu.decomposition._svd_streamed import streamed_svd
from pycro_gpu.process.rows import ArrayRows, HDF5Rows, sample_spans
from tests.helpers import results_group, to_numpy


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def spectrum_matrix(rng, kind, m=20000, n=128):
    """Test matrices: low rank + noise (strong and weak), power-law spectra, a localised component."""
    if kind in ("low_rank", "weak_signal"):
        H = rng.standard_normal((8, n)) * np.logspace(1, 0, 8)[:, None]
        noise = 0.1 if kind == "low_rank" else 1.0
        return rng.standard_normal((m, 8)) @ H + noise * rng.standard_normal((m, n))
    if kind in ("power1", "power05"):
        p = 1.0 if kind == "power1" else 0.5
        V = np.linalg.qr(rng.standard_normal((n, n)))[0]
        return (rng.standard_normal((m, n)) / np.arange(1, n + 1) ** p) @ V.T
    if kind == "localised":  # a strong component in 1% of the rows, in one place: samples can miss it
        A = spectrum_matrix(rng, "low_rank", m, n)
        s = m // 2
        A[s : s + m // 100] += 30 * np.outer(rng.standard_normal(m // 100), rng.standard_normal(n))
        return A
    raise ValueError(kind)


def rel_err(S, A, k):
    s = np.linalg.svd(A, compute_uv=False)[:k]
    return np.abs(to_numpy(S) - s) / s


def check_factors(res, A, k, atol):
    U, S, V = to_numpy(res.U), to_numpy(res.S), to_numpy(res.V)
    np.testing.assert_allclose(U.conj().T @ U, np.eye(k), atol=1e-10)
    np.testing.assert_allclose(V @ V.conj().T, np.eye(k), atol=1e-10)
    _, _, vh = np.linalg.svd(A, full_matrices=False)
    assert np.max(scipy.linalg.subspace_angles(V.conj().T, vh[:k].conj().T)) < 1e-4
    np.testing.assert_allclose((U * S) @ V, A @ V.conj().T @ V, atol=atol * S[0])


def test_auto_sketch_reads_the_data_once(xp, rng):
    A = spectrum_matrix(rng, "low_rank", m=8000, n=128)
    res = streamed_svd(ArrayRows(xp.asarray(A)), 8, memory_mb=4, progress=False)
    assert res.method == "sketch" and res.info["reads"] == 1 and res.info["converged"]
    assert res.info["n_batches"] > 3
    assert np.max(rel_err(res.S, A, 8)) < 1e-9
    assert res.info["error_estimate"] <= 1e-5
    check_factors(res, A, 8, atol=1e-7)  # U from span(Y), V from span(A^H Y): consistent to ~1e-8
    assert type(res.S) is type(xp.asarray([1.0]))


@pytest.mark.parametrize("kind", ["low_rank", "weak_signal", "power1", "power05", "localised"])
def test_error_estimate_bounds_the_returned_singular_values(rng, kind):
    """The documented claim: the returned values are at least as accurate as the estimate says."""
    A = spectrum_matrix(rng, kind)
    for reads in (1, 2):
        with pytest.warns(RuntimeWarning, match="above tol"):  # tol=0: every read is the last
            res = streamed_svd(ArrayRows(A), 8, method="sketch", n_iter=reads - 1, tol=0.0, progress=False)
        assert res.info["sketch_reads"] == reads and not res.info["converged"]
        assert np.max(rel_err(res.S, A, 8)) <= res.info["error_estimate"], (kind, reads)


def test_missed_localised_component_costs_a_second_read(rng):
    A = spectrum_matrix(rng, "localised")
    # the 16 sample blocks avoid rows 10000..10200 (the component), so one read cannot resolve it
    spans = sample_spans(A.shape[0], 8192)
    assert all(e <= 10000 or s >= 10200 for s, e in spans)
    res = streamed_svd(ArrayRows(A), 8, progress=False)
    assert res.method == "sketch" and res.info["reads"] == 2
    assert np.max(rel_err(res.S, A, 8)) < 1e-8
    check_factors(res, A, 8, atol=1e-6)


def test_auto_falls_back_to_gram_on_a_slow_spectrum(rng):
    A = spectrum_matrix(rng, "power05")
    res = streamed_svd(ArrayRows(A), 8, progress=False)
    # the forecast on the row sample expects the sketch to miss tol: the exact Gram method, no read lost
    assert res.method == "gram" and res.info["converged"] and res.info["error_estimate"] < 1e-12
    assert res.info["sketch_reads"] == 0 and res.info["reads"] == 2
    assert res.info["sketch_forecast"] > 1e-5
    assert np.max(rel_err(res.S, A, 8)) < 1e-12


@pytest.mark.parametrize("noise", [0.3, 1.0, 3.0, 10.0])
def test_forecast_from_the_sample_tracks_the_first_read(rng, noise):
    """The forecast of the first read's error estimate (from the row sample alone) is within 4x of it."""
    H = rng.standard_normal((8, 128)) * np.logspace(1, 0, 8)[:, None]
    A = rng.standard_normal((20000, 8)) @ H + noise * rng.standard_normal((20000, 128))
    src = ArrayRows(A)
    smp = row_sample(src, np.float64, max_rows=20000, sample_rows=8192)
    _omega, ahead = warm_start(smp, src.xp, 8, 18, cdt=np.float64, device=None, seed=0, with_forecast=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # tol=0: one read, then "above tol"
        res = streamed_svd(src, 8, method="sketch", n_iter=0, tol=0.0, progress=False)
    ratio = ahead.first / res.info["error_estimate"]
    assert 0.25 <= ratio <= 4.0, (noise, ahead.first, res.info["error_estimate"])


def test_auto_sketches_when_the_forecast_expects_two_reads_to_do(rng):
    H = rng.standard_normal((8, 128)) * np.logspace(1, 0, 8)[:, None]
    A = rng.standard_normal((20000, 8)) @ H + 1.0 * rng.standard_normal((20000, 128))
    res = streamed_svd(ArrayRows(A), 8, progress=False)
    assert res.method == "sketch" and res.info["converged"] and res.info["sketch_reads"] in (1, 2)
    assert np.max(rel_err(res.S, A, 8)) <= max(res.info["error_estimate"], 1e-12)


def test_explicit_sketch_iterates_to_tol(rng):
    A = spectrum_matrix(rng, "power1")
    res = streamed_svd(ArrayRows(A), 8, method="sketch", progress=False)
    assert res.info["converged"] and 1 < res.info["reads"] <= 5
    assert np.max(rel_err(res.S, A, 8)) <= 1e-5


def test_complex_and_float32(rng):
    A = spectrum_matrix(rng, "low_rank", m=6000, n=64)
    A = (A + 1j * spectrum_matrix(rng, "low_rank", m=6000, n=64)).astype(np.complex64)
    res = streamed_svd(ArrayRows(A), 4, method="sketch", progress=False)
    assert res.info["converged"]
    A64 = A.astype(np.complex128)
    assert np.max(rel_err(res.S, A64, 4)) < 1e-6
    check_factors(res, A64, 4, atol=1e-5)


def test_rank_deficient_pads_with_zeros(rng):
    A = np.outer(rng.standard_normal(500), rng.standard_normal(64)) + np.outer(
        rng.standard_normal(500), rng.standard_normal(64)
    )
    res = streamed_svd(ArrayRows(A), 4, method="sketch", oversample=2, progress=False)
    S, U, V = to_numpy(res.S), to_numpy(res.U), to_numpy(res.V)
    np.testing.assert_allclose(S[:2], np.linalg.svd(A, compute_uv=False)[:2], rtol=1e-12)
    assert np.all(S[2:] < 1e-6 * S[0]) and np.all(np.isfinite(U))
    np.testing.assert_allclose(V @ V.T, np.eye(4), atol=1e-12)
    np.testing.assert_allclose((U * S) @ V, A, atol=1e-10 * S[0])


def test_foreign_source_without_sample_warm_starts_from_first_batch(rng):
    A = spectrum_matrix(rng, "low_rank", m=3000, n=64)

    class Rows:  # only the row-source protocol, no sample()
        shape, dtype, xp = A.shape, A.dtype, ArrayRows(A).xp

        def batches(self, rows):
            for s in range(0, A.shape[0], rows):
                yield s, min(s + rows, A.shape[0]), A[s : s + rows]

    res = streamed_svd(Rows(), 4, method="sketch", progress=False)
    assert res.info["converged"]
    assert np.max(rel_err(res.S, A, 4)) < 1e-8


def test_hdf5_prefetch_and_thread_cap_give_the_same_result(tmp_path, rng):
    A = spectrum_matrix(rng, "low_rank", m=5000, n=64)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        d = f.create_dataset("a", data=A, chunks=(100, 64))
        a = streamed_svd(HDF5Rows(d, prefetch=True), 4, method="sketch", progress=False)
        b = streamed_svd(HDF5Rows(d, prefetch=False), 4, method="sketch", progress=False)
    np.testing.assert_allclose(to_numpy(a.S), to_numpy(b.S), rtol=1e-13)
    np.testing.assert_allclose(np.abs(to_numpy(a.U)), np.abs(to_numpy(b.U)), atol=1e-12)


def test_light_passes_never_raise_a_thread_cap(tmp_path):
    from threadpoolctl import threadpool_info

    from pycro_gpu.decomposition._svd_streamed import _light_pass_threads

    with h5py.File(tmp_path / "a.h5", "w") as f:
        src = HDF5Rows(f.create_dataset("a", data=np.ones((10, 4))))
        with _light_pass_threads(src, src.xp)():  # the module fixture already caps BLAS at 1 thread
            assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")


def test_sample_spans_are_spread_aligned_and_disjoint():
    spans = sample_spans(1_000_000, 8192, align=512)
    assert len(spans) == 16 and spans[0][0] == 0 and spans[-1][1] == 1_000_000 - 1_000_000 % 512
    assert all(s % 512 == 0 and (e - s) == 512 for s, e in spans)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    assert sample_spans(100, 500) == [(0, 100)]
    small = sample_spans(1000, 10, align=1)
    assert sum(e - s for s, e in small) >= 10 and small[-1][1] == 1000


@pytest.mark.parametrize("memory_bytes", [0, 10**9], ids=["temp-file", "memory"])
def test_spill_rows_round_trip(rng, memory_bytes):
    Y = rng.standard_normal((1000, 7))
    spill = SpillRows(1000, 7, np.float64, memory_bytes=memory_bytes)
    assert (spill.file is None) == bool(memory_bytes)
    for s in range(0, 1000, 300):
        spill.write(s, min(s + 300, 1000), np.asfortranarray(Y[s : s + 300]))
    buf = np.empty((400, 7))
    got = np.concatenate([spill.read(s, min(s + 400, 1000), buf).copy() for s in range(0, 1000, 400)])
    np.testing.assert_array_equal(got, Y)
    spill.close()


def test_svd_dataset_sketch_spills_to_a_temp_file_and_matches(tmp_path, rng):
    from pycro_gpu.decomposition import svd_dataset
    from pycro_gpu.io.usid import Dimension, write_main

    A = spectrum_matrix(rng, "low_rank", m=4096, n=96)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        main = write_main(
            f.create_group("Measurement_000/Channel_000"),
            "Raw_Data",
            A,
            [Dimension("X", "m", 64), Dimension("Y", "m", 64)],
            Dimension("Bias", "V", np.linspace(-1, 1, 96)),
            "Current",
            "nA",
        )
        results = {}
        sizes = []
        for mb in (1, 64):  # the 4096 x 16 sketch (0.5 MiB) spills past a quarter of 1 MiB
            grp = results_group(svd_dataset(main, k=6, memory_mb=mb, override=True, progress=False), main)
            # 1 MiB also caps the warm-start sample at 341 rows: one or two reads
            assert grp.attrs["method_used"] == "sketch" and grp.attrs["reads"] == grp.attrs["sketch_reads"]
            assert grp.attrs["error_estimate"] <= 1e-5
            results[mb] = (grp["S"][()], grp["U"][()], grp["V"][()])
            f.flush()
            sizes.append((tmp_path / "d.h5").stat().st_size)
    for S, U, V in results.values():
        np.testing.assert_allclose(S, np.linalg.svd(A, compute_uv=False)[:6], rtol=1e-9)
        np.testing.assert_allclose((U * S) @ V, A @ V.T @ V, atol=1e-7 * S[0])
    # the sketch (4096 x 16 float64 = 512 KiB, wider than U) never went into the results file
    assert sizes[0] < A.nbytes + 4096 * 6 * 8 + 300 * 2**10


def test_auto_randomized_stops_reading_once_the_estimate_meets_tol(rng):
    # wide data that do not fit the budget take the randomized method; a steep spectrum converges early
    H = rng.standard_normal((8, 3000)) * np.logspace(1, 0, 8)[:, None]
    A = rng.standard_normal((600, 8)) @ H + 0.01 * rng.standard_normal((600, 3000))
    auto = streamed_svd(ArrayRows(A), 8, memory_mb=64, progress=False)
    fixed = streamed_svd(ArrayRows(A), 8, method="randomized", memory_mb=64, progress=False)
    assert auto.method == fixed.method == "randomized"
    assert fixed.info["reads"] == 4 + 1  # n_iter + 1 power reads; U from the last one's rows A Q
    assert auto.info["reads"] < fixed.info["reads"] and auto.info["converged"]
    assert auto.info["error_estimate"] <= 1e-5
    assert np.max(rel_err(auto.S, A, 8)) <= auto.info["error_estimate"]
    check_factors(auto, A, 8, atol=1e-6)


def test_auto_narrows_the_sketch_only_where_the_forecast_allows(rng):
    # rank 8 then flat noise: 4 extra columns resolve it as well as 10 (and cost 1/3 less arithmetic)
    A = spectrum_matrix(rng, "low_rank")
    auto = streamed_svd(ArrayRows(A), 8, progress=False)
    wide = streamed_svd(ArrayRows(A), 8, method="sketch", progress=False)
    assert auto.info["sketch_columns"] == 8 + 4 and wide.info["sketch_columns"] == 8 + 10
    assert auto.info["reads"] == wide.info["reads"] == 1 and auto.info["converged"]
    assert np.max(rel_err(auto.S, A, 8)) <= auto.info["error_estimate"] <= 1e-5
    check_factors(auto, A, 8, atol=1e-7)
    # a weaker signal is forecast too close to tol for the narrow sketch: all the columns
    B = spectrum_matrix(rng, "weak_signal")
    res = streamed_svd(ArrayRows(B), 8, progress=False)
    assert res.method == "sketch" and res.info["sketch_columns"] == 8 + 10 and res.info["converged"]


def test_subspace_angle_estimate_bounds_the_real_angle(rng):
    from pycro_gpu.decomposition._svd_sketch import ritz_estimate, subspace_angle_estimate

    A = spectrum_matrix(rng, "power1", m=4000, n=96)
    _, _, vh = np.linalg.svd(A, full_matrices=False)
    Q = np.linalg.qr(rng.standard_normal((96, 14)))[0]
    for _ in range(4):  # power steps: the estimate follows the real angle down
        ZH = (A.T @ (A @ Q)).T
        lam, E, _est, R = ritz_estimate(ZH, Q, 8, np)
        estimate = subspace_angle_estimate(R, lam)
        real = np.max(scipy.linalg.subspace_angles(Q @ E[:, :8], vh[:8].T))
        assert real <= estimate <= max(50 * real, 1e-12), (real, estimate)
        Q = np.linalg.qr(ZH.T)[0]


@pytest.mark.parametrize("shape", [(4000, 96), (300, 2000)], ids=["tall", "wide"])
def test_range_start_from_the_sample_is_near_the_data_subspace(xp, rng, shape):
    from pycro_gpu.decomposition._svd_sketch import range_start

    m, n = shape
    H = rng.standard_normal((8, n)) * np.logspace(1, 0, 8)[:, None]
    A = rng.standard_normal((m, 8)) @ H + 0.1 * rng.standard_normal((m, n))
    smp = A[:: max(1, m // 200)]  # 200 rows of the tall matrix, all 300 of the wide one
    Q = range_start(xp.asarray(smp), 100_000, xp, 8, 18, cdt=xp.float64, device=None, seed=0)
    Q = to_numpy(Q)
    assert Q.shape == (n, 18)
    np.testing.assert_allclose(Q.T @ Q, np.eye(18), atol=1e-12)
    # the top-8 subspace of the data lies in span(Q) up to the sample's noise, where a Gaussian start
    # of the same width is nearly orthogonal to it
    _, _, vh = np.linalg.svd(A, full_matrices=False)
    assert np.max(scipy.linalg.subspace_angles(Q, vh[:8].T)) < 0.05
    # a sample that is a large part of the data: the Gaussian start (the steps would cost a read)
    gaussian = to_numpy(
        range_start(xp.asarray(smp), 2 * smp.shape[0], xp, 8, 18, cdt=xp.float64, device=None, seed=0)
    )
    np.testing.assert_allclose(gaussian.T @ gaussian, np.eye(18), atol=1e-12)
    assert np.max(scipy.linalg.subspace_angles(gaussian, vh[:8].T)) > 0.5


def test_randomized_estimates_bound_the_errors_from_the_warm_start(rng):
    # a power-law spectrum: the explicit method reads n_iter + 1 times from the warm start, and the
    # estimates still bound the real singular-value error and subspace angle after each number of reads
    A = spectrum_matrix(rng, "power1", m=6000, n=400)
    _, s, vh = np.linalg.svd(A, full_matrices=False)
    for n_iter in (1, 2, 3):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = streamed_svd(ArrayRows(A), 8, method="randomized", n_iter=n_iter, progress=False)
        assert bool(caught) == (not res.info["converged"])  # an unconverged result says so
        assert res.info["reads"] == n_iter + 1
        err = np.max(np.abs(to_numpy(res.S) - s[:8]) / s[:8])
        angle = np.max(scipy.linalg.subspace_angles(to_numpy(res.V).T, vh[:8].T))
        assert err <= res.info["error_estimate"], (n_iter, err, res.info)
        assert angle <= res.info["angle_estimate"], (n_iter, angle, res.info)


@pytest.mark.parametrize("dtype", [np.float32, np.complex64, np.float64])
def test_a_first_read_forecast_to_miss_tol_only_points_the_second(rng, monkeypatch, dtype):
    # rank 16 in strong noise: the forecast expects the first sketch read to miss tol by far, so that
    # read keeps no rows and multiplies single-precision data in single precision; the second read, in
    # double precision, gives the result as accurately as two double-precision reads
    import pycro_gpu.decomposition._svd_sketch as sketch_module

    H = rng.standard_normal((16, 256)) * np.logspace(1, 0, 16)[:, None]
    A = rng.standard_normal((40000, 16)) @ H + 2.0 * rng.standard_normal((40000, 256))
    if np.dtype(dtype).kind == "c":
        A = A + 1j * (rng.standard_normal((40000, 16)) @ H)
    A = A.astype(dtype)
    calls: list[tuple[str, bool]] = []
    real_batch = sketch_module.sketch_batch

    def spy(*args, **kwargs):
        calls.append((kwargs["cdt"], kwargs["keep_rows"]))
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(sketch_module, "sketch_batch", spy)
    res = streamed_svd(ArrayRows(A), 16, progress=False)
    assert res.method == "sketch" and res.info["sketch_reads"] == 2 and res.info["converged"]
    assert res.info["sketch_forecast"] > 10 * 1e-5
    reads = list(dict.fromkeys(calls))  # (dtype, rows kept) of the first read's batches, then the second's
    double = "complex128" if np.dtype(dtype).kind == "c" else "float64"
    assert reads == [(np.dtype(dtype).name, False), (double, True)]
    A_exact = A.astype(np.complex128 if np.dtype(dtype).kind == "c" else np.float64)
    assert np.max(rel_err(res.S, A_exact, 16)) <= res.info["error_estimate"] <= 1e-5
    check_factors(res, A_exact, 16, atol=1e-5)
