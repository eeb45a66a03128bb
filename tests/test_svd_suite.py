"""Honest accuracy on every spectrum of the SVD benchmark suite (issue 15): each method's error estimate
backs up the singular values it returns, and ``converged`` means what it says.

The matrices are the small (``--quick``) versions of ``benchmarks/bench_svd.py``'s cases, made by the
same code; the reference is LAPACK's SVD of the same data in float64/complex128.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import scipy.linalg

from benchmarks.bench_svd import QUICK, case_blocks
from pycro_gpu.decomposition._svd_streamed import streamed_svd
from pycro_gpu.process.rows import ArrayRows

TOL = 1e-5


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module", params=sorted(QUICK))
def suite_case(request):
    case = QUICK[request.param]
    A = np.concatenate(list(case_blocks(case)))
    exact = A.astype(np.complex128 if A.dtype.kind == "c" else np.float64)
    _, s, vh = np.linalg.svd(exact, full_matrices=False)
    return request.param, case, A, s[: case.k], vh[: case.k].conj().T


def _methods(case):
    tall = case.rows >= 4 * case.cols
    return ["auto", "dense", "randomized", *(["sketch", "gram"] if tall else [])]


def test_every_method_reports_an_error_estimate_that_backs_its_singular_values(suite_case):
    name, case, A, s_ref, v_ref = suite_case
    for method in _methods(case):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            res = streamed_svd(ArrayRows(A), case.k, method=method, tol=TOL, memory_mb=64, progress=False)
        S = np.asarray(res.S, dtype=np.float64)
        actual = float(np.max(np.abs(S - s_ref) / s_ref))
        estimate = res.info["error_estimate"]
        # the estimate is an upper bound of the real error (with a floor of float64 rounding)
        assert actual <= max(estimate, 1e-12), (name, method, actual, estimate)
        # converged <=> the estimate meets tol, and a result that does not says so in a warning
        assert res.info["converged"] == (estimate <= TOL), (name, method)
        above = [w for w in caught if "above tol" in str(w.message)]
        assert bool(above) == (not res.info["converged"]), (name, method)
        if res.info["converged"]:  # tol bounds the singular values (vectors: angle ~ sqrt(tol) at worst)
            assert actual <= TOL, (name, method, actual)
        if res.method in ("gram", "dense"):  # exact methods: exact vectors too
            angle = float(np.max(scipy.linalg.subspace_angles(np.asarray(res.V).conj().T, v_ref)))
            assert actual <= 1e-12 and angle < 1e-9, (name, method, actual, angle)


def test_auto_meets_the_accuracy_of_issue_15_on_every_case(suite_case):
    name, case, A, s_ref, v_ref = suite_case
    res = streamed_svd(ArrayRows(A), case.k, memory_mb=64, progress=False)
    S = np.asarray(res.S, dtype=np.float64)
    assert res.info["converged"], name
    assert np.max(np.abs(S - s_ref) / s_ref) <= 1e-6, name
    assert np.max(scipy.linalg.subspace_angles(np.asarray(res.V).conj().T, v_ref)) < 1e-4, name


def test_quick_benchmark_runs_every_contender_and_checks_accuracy(tmp_path):
    from benchmarks.bench_svd import main

    out = tmp_path / "out"
    args = ["--quick", "--repeat", "1", "--cases", "tall-fast", "wide-300", "--dir", str(tmp_path)]
    assert main([*args, "--out", str(out)]) == 0
    cases = json.loads((out / "bench_svd_quick.json").read_text())["cases"]
    assert [c["case"] for c in cases] == ["tall-fast", "wide-300"]
    tall, wide = (c["contenders"] for c in cases)
    assert set(tall) == {
        "bare read",
        "pycro-gpu auto",
        "pycro-gpu sketch",
        "pycro-gpu gram",
        "pycroscopy",
        "full SVD",
    }
    assert set(wide) == {"bare read", "pycro-gpu auto", "pycroscopy", "full SVD"}
    for contenders in (tall, wide):
        for label, r in contenders.items():
            assert r["seconds"] > 0 and r["ratio_to_bare"] > 0, label
            if label != "bare read":
                assert r["s_rel_err"] < 1e-6 and r["v_angle"] < 1e-4, label
    assert wide["pycro-gpu auto"]["method_used"] == "dense"
    assert (out / "bench_svd_quick.md").read_text().count("\n") == 4
    assert not list(tmp_path.glob("*.h5"))  # scratch files removed


@pytest.mark.parametrize("method", ["auto", "sketch", "randomized"])
def test_single_precision_products_add_no_more_than_their_estimate(suite_case, method, monkeypatch):
    """Single-precision data multiply in single precision in the light reads; the estimate of what that
    adds bounds the real difference to double-precision products, and is part of the error estimate."""
    import pycro_gpu.decomposition._svd_streamed as streamed

    name, case, A, _s_ref, _v_ref = suite_case
    if A.dtype not in (np.float32, np.complex64) or (method == "sketch" and case.rows < 4 * case.cols):
        pytest.skip("double-precision data, or a sketch of wide data")
    double_name = "complex128" if A.dtype.kind == "c" else "float64"

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return streamed_svd(ArrayRows(A), case.k, method=method, tol=TOL, memory_mb=64, progress=False)

    single = run()
    if single.method in ("gram", "sketch"):  # double precision throughout (the sketch: for U = Y C)
        assert single.info["arithmetic"] == double_name and "single_precision_error" not in single.info, name
        return
    assert single.info["arithmetic"] == A.dtype.name, (name, method)
    bound = single.info["single_precision_error"]
    assert 0 < bound <= single.info["error_estimate"], (name, method)
    monkeypatch.setattr(streamed, "SINGLE_PRECISION_SHARE", 0.0)
    double = run()
    assert double.info["arithmetic"] in ("float64", "complex128"), (name, method)
    s1, s2 = (np.asarray(r.S, dtype=np.float64) for r in (single, double))
    assert float(np.max(np.abs(s1 - s2) / s2)) <= bound, (name, method)
    # U = A V / S to within the same bound (of s_1)
    A64 = A.astype(double_name)
    U, S, V = (np.asarray(x) for x in (single.U, single.S, single.V))
    assert float(np.max(np.abs(U * S - A64 @ V.conj().T))) <= bound * float(S[0]), (name, method)


def test_float32_data_whose_spectrum_spans_decades_multiply_in_double_precision():
    rng = np.random.default_rng(3)
    m, n, k = 20000, 96, 8
    U = np.linalg.qr(rng.standard_normal((m, k)))[0]
    V = np.linalg.qr(rng.standard_normal((n, k)))[0]
    s = np.logspace(0, -5, k) * 1e3  # single-precision rounding (6e-8 s_1) would be 6e-3 of s_k
    A = ((U * s) @ V.T).astype(np.float32)
    res = streamed_svd(ArrayRows(A), k, method="randomized", tol=TOL, memory_mb=64, progress=False)
    assert res.info["arithmetic"] == "float64"
    assert res.info["single_precision_error"] > TOL
    exact = np.linalg.svd(A.astype(np.float64), compute_uv=False)[:k]
    assert np.max(np.abs(np.asarray(res.S) - exact) / exact) <= max(res.info["error_estimate"], 1e-12)


def test_double_precision_data_multiply_in_double_precision(suite_case):
    name, case, A, _s_ref, _v_ref = suite_case
    if A.dtype not in (np.float64, np.complex128):
        pytest.skip("single-precision data")
    res = streamed_svd(ArrayRows(A), case.k, tol=TOL, memory_mb=64, progress=False)
    assert res.info["arithmetic"] == A.dtype.name and "single_precision_error" not in res.info, name
