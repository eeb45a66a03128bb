"""Batch fits (pycro_gpu.fitting) against SciPy least_squares and known truth."""

import numpy as np
import pytest
from scipy.optimize import least_squares
from scipy.special import erf as scipy_erf

from pycro_gpu.errors import DataError
from pycro_gpu.fitting import (
    exponential,
    fit,
    fit_loop,
    fit_sho,
    get_model,
    loop,
    loop_guess,
    loop_metrics,
    peaks,
    sho,
    sho_guess,
)
from tests.helpers import assert_close, to_numpy

F = np.linspace(300e3, 400e3, 87)


def _sho_np(f, p):
    a, w0, q, ph = (p[:, k : k + 1] for k in range(4))
    return a * np.exp(1j * ph) * w0**2 / (f**2 - 1j * f * w0 / q - w0**2)


def _sho_batch(rng, n, noise=0.03):
    truth = np.stack(
        [
            rng.uniform(0.5e-3, 2e-3, n),
            rng.uniform(330e3, 370e3, n),
            rng.uniform(50, 300, n),
            rng.uniform(-np.pi, np.pi, n),
        ],
        axis=1,
    )
    h = _sho_np(F, truth)
    sigma = noise * np.abs(h).max(axis=1, keepdims=True)
    h = h + sigma * (rng.standard_normal(h.shape) + 1j * rng.standard_normal(h.shape))
    return h, truth


def _scipy_fit(model, x, y, p0, complex_data=False):
    ev = get_model(model).evaluate if model not in ("gaussian", "lorentzian", "pseudo_voigt") else None

    def res(p):
        v = (ev(x, p[None]) if ev else peaks(x, p[None], shape=model))[0] - y
        return np.concatenate([v.real, v.imag]) if complex_data else v

    r = least_squares(res, p0, method="lm", x_scale="jac")
    dof = max(r.fun.size - p0.size, 1)
    cov = np.linalg.pinv(r.jac.T @ r.jac) * (2 * r.cost / dof)
    return r.x, np.sqrt(np.diag(cov)), 2 * r.cost


def _assert_same_minimum(p, chi2, _unused, x, y, g, model, complex_data=False, sigmas=0.03):
    """Same minimum as SciPy's lm from the same start: within ``sigmas`` standard errors, equal chi2."""
    ref, err, ref_chi2 = _scipy_fit(model, x, y, g, complex_data=complex_data)
    if model == "sho":
        ref[3] = p[3] + _wrap(ref[3] - p[3])
    assert np.all(np.abs(p - ref) <= sigmas * err + 1e-12 * np.abs(ref)), (p, ref, err)
    assert chi2 <= ref_chi2 * (1 + 1e-5) + 1e-30, (chi2, ref_chi2)


def _wrap(phi):
    return np.angle(np.exp(1j * phi))


# ---------------------------------------------------------------- models in array-API form


def test_sho_model_matches_formula_in_xp(xp, rng):
    p = np.array([[1e-3, 350e3, 100.0, 0.4], [2e-3, 340e3, 60.0, -1.0]])
    got = sho(xp.asarray(F), xp.asarray(p))
    assert_close(got, _sho_np(F, p), rtol=1e-12, xp=xp)
    # at resonance |H| = A Q and the response leads the drive phase by pi/2
    h0 = to_numpy(sho(xp.asarray(np.array([350e3])), xp.asarray(p[:1])))[0, 0]
    assert abs(abs(h0) - 0.1) < 1e-12 and abs(np.angle(h0) - (0.4 + np.pi / 2)) < 1e-12


def test_models_match_numpy_reference_in_xp(xp):
    t = np.linspace(0, 4, 30)
    cases = [
        ("exponential", np.array([[2.0, 0.7, 0.1]]), lambda p: p[:, :1] * np.exp(-t / p[:, 1:2]) + p[:, 2:]),
        (
            "double_exponential",
            np.array([[1.0, 0.3, 0.5, 2.0, 0.1]]),
            lambda p: p[:, :1] * np.exp(-t / p[:, 1:2]) + p[:, 2:3] * np.exp(-t / p[:, 3:4]) + p[:, 4:],
        ),
        (
            "stretched_exponential",
            np.array([[2.0, 0.7, 0.6, 0.1]]),
            lambda p: p[:, :1] * np.exp(-((t / p[:, 1:2]) ** p[:, 2:3])) + p[:, 3:],
        ),
    ]
    for name, p, ref in cases:
        got = get_model(name).evaluate(xp.asarray(t), xp.asarray(p))
        assert_close(got, ref(p), rtol=1e-12, xp=xp)
    x = np.linspace(-3, 3, 41)
    p = np.array([[2.0, 0.5, 1.2, 0.3, 0.1, 0.05]])
    z = (x - 0.5) / 1.2
    g, lor = np.exp(-4 * np.log(2) * z**2), 1 / (1 + 4 * z**2)
    got = peaks(xp.asarray(x), xp.asarray(p), shape="pseudo_voigt")
    assert_close(got, (2.0 * (0.3 * lor + 0.7 * g) + 0.1 + 0.05 * x)[None], rtol=1e-12, xp=xp)


def test_loop_model_matches_scipy_erf(xp):
    v = np.concatenate([np.linspace(-10, 10, 40), np.linspace(10, -10, 40)])
    p = np.array([[-1.0, 2.0, -3.0, 2.5, 0.01, 1.0, 2.0, 1.5, 0.8]])
    ref = np.empty(80)
    for sl, (a_sw, bl, bh) in ((slice(0, 40), (-3.0, 1.0, 2.0)), (slice(40, 80), (2.5, 1.5, 0.8))):
        vv = v[sl]
        g = (bh - bl) / 2 * (scipy_erf(1000 * (vv - a_sw)) + 1) + bl
        ref[sl] = -1.0 + 2.0 * (g * scipy_erf((vv - a_sw) / g) + bl) / (bl + bh) + 0.01 * vv
    assert_close(loop(xp.asarray(v), xp.asarray(p)), ref[None], rtol=0, atol=5e-7, xp=xp)


@pytest.mark.parametrize(
    ("name", "x", "p"),
    [
        ("sho", np.linspace(0.8, 1.2, 23), [1.3, 1.02, 40.0, 0.7]),
        (
            "loop",
            np.concatenate([np.linspace(-5, 5, 12), np.linspace(5, -5, 12)]),
            [-1, 2, -1, 1, 0.01, 1, 2, 1.5, 0.8],
        ),
        ("exponential", np.linspace(0, 3, 17), [2.0, 0.7, 0.1]),
        ("double_exponential", np.linspace(0, 3, 17), [1.0, 0.3, 0.5, 2.0, 0.1]),
        ("stretched_exponential", np.linspace(0, 3, 17), [2.0, 0.7, 0.6, 0.1]),
        ("gaussian", np.linspace(-3, 3, 19), [2.0, 0.4, 1.1, -1.0, -1.5, 0.7, 0.1, 0.05]),
        ("lorentzian", np.linspace(-3, 3, 19), [2.0, 0.4, 1.1, 0.1, 0.05]),
        ("pseudo_voigt", np.linspace(-3, 3, 19), [2.0, 0.4, 1.1, 0.3, 0.1, 0.05]),
    ],
)
def test_kernel_point_and_jacobian_match_model_and_finite_differences(name, x, p):
    """The kernels' point functions (plain Python) against the array-API model and central differences."""
    from pycro_gpu.kernels.model_loop import LOOP
    from pycro_gpu.kernels.model_peaks import peaks_model
    from pycro_gpu.kernels.model_relaxation import DOUBLE_EXPONENTIAL, EXPONENTIAL, STRETCHED_EXPONENTIAL
    from pycro_gpu.kernels.model_sho import SHO

    k = {"gaussian": 2, "lorentzian": 1, "pseudo_voigt": 1}.get(name, 1)
    kernel = {
        "sho": SHO,
        "loop": LOOP,
        "exponential": EXPONENTIAL,
        "double_exponential": DOUBLE_EXPONENTIAL,
        "stretched_exponential": STRETCHED_EXPONENTIAL,
    }.get(name) or peaks_model(name, k)
    spec = get_model(name, n_peaks=k)
    p = np.asarray(p, dtype=float)
    m, npar, no = x.size, kernel.n_params, kernel.n_out
    point, prepare = kernel.make_point(np.float64), kernel.make_prepare(np.float64)
    aux = np.empty(max(kernel.n_aux, 1))
    prepare(p, aux)
    vb, jb = np.empty(no * m), np.empty(npar * no * m)
    for j in range(m):
        point(x[j], j, m, p, aux, vb, jb, j, m, no * m)

    def model(q):
        v = spec.evaluate(x, q[None])[0]
        return np.concatenate([v.real, v.imag]) if no == 2 else v

    np.testing.assert_allclose(vb, model(p), rtol=1e-6, atol=1e-7 * np.abs(vb).max())
    for a in range(npar):
        h = 1e-6 * max(abs(p[a]), 1e-3)
        dp = np.zeros(npar)
        dp[a] = h
        fd = (model(p + dp) - model(p - dp)) / (2 * h)
        np.testing.assert_allclose(
            jb[a * no * m : (a + 1) * no * m], fd, rtol=2e-4, atol=1e-5 * np.abs(fd).max() + 1e-9
        )


# ---------------------------------------------------------------- SHO


def test_sho_guess_is_exact_on_noise_free_data(xp):
    truth = np.array([[1e-3, 352e3, 120.0, 0.5], [2e-3, 340e3, 80.0, -2.5], [5e-4, 361e3, 250.0, 3.0]])
    g = sho_guess(xp.asarray(_sho_np(F, truth)), xp.asarray(F))
    assert_close(g, truth, rtol=1e-6, xp=xp)


def test_sho_guess_falls_back_inside_the_band():
    # a flat, noisy spectrum has no resonance: the guess still lands in the band with positive A and Q
    rng = np.random.default_rng(3)
    h = 1e-3 * (rng.standard_normal((4, 87)) + 1j * rng.standard_normal((4, 87)))
    g = to_numpy(sho_guess(h, F))
    assert np.all(np.isfinite(g))
    assert np.all((g[:, 1] >= F[0]) & (g[:, 1] <= F[-1])) and np.all(g[:, 0] > 0)


def test_sho_fit_matches_scipy_lm_from_the_same_start(rng):
    h, _ = _sho_batch(rng, 24)
    res = fit_sho(h, F)
    g = to_numpy(res.guess)
    p = to_numpy(res.params)
    assert to_numpy(res.converged).all()
    chi2 = to_numpy(res.chi2)
    for i in range(h.shape[0]):
        _assert_same_minimum(p[i], chi2[i], None, F, h[i], g[i], "sho", complex_data=True)
    # chi-square and R^2 are those of the returned parameters
    resid = _sho_np(F, p) - h
    assert_close(res.chi2, np.sum(np.abs(resid) ** 2, axis=1), rtol=1e-8)
    ss = np.sum(np.abs(h - h.mean(axis=1, keepdims=True)) ** 2, axis=1)
    assert_close(res.r2, 1 - np.sum(np.abs(resid) ** 2, axis=1) / ss, rtol=1e-8)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_sho_converges_and_recovers_truth_at_3_percent_noise(rng, dtype):
    h, truth = _sho_batch(rng, 400)
    res = fit_sho(h.astype(dtype), F)
    p = to_numpy(res.params).astype(float)
    conv = to_numpy(res.converged)
    assert conv.mean() >= 0.99
    # sign convention: data made by the model with Q > 0 give Q > 0
    assert np.all(p[:, 2] > 0)
    rel = np.abs(p[:, :3] - truth[:, :3]) / truth[:, :3]
    assert np.median(rel[:, 0]) < 0.03 and np.median(rel[:, 1]) < 2e-4 and np.median(rel[:, 2]) < 0.04
    assert np.median(np.abs(_wrap(p[:, 3] - truth[:, 3]))) < 0.03
    assert np.median(to_numpy(res.r2)) > 0.9
    assert to_numpy(res.niter).max() < 20


def test_sho_nonfinite_spectra_are_flagged_and_do_not_stop_the_batch(rng):
    h, truth = _sho_batch(rng, 6, noise=0.0)
    h[1, 5] = np.nan
    h[4, 0] = np.inf
    res = fit_sho(h, F)
    conv = to_numpy(res.converged)
    assert conv.tolist() == [True, False, True, True, False, True]
    assert to_numpy(res.status)[[1, 4]].tolist() == [2, 2]
    assert np.isnan(to_numpy(res.r2)[[1, 4]]).all()
    assert_close(res.params[[0, 2, 3, 5], :3], truth[[0, 2, 3, 5], :3], rtol=1e-6)


def test_fit_sho_keeps_the_namespace(xp, rng):
    h, truth = _sho_batch(rng, 5, noise=0.0)
    res = fit_sho(xp.asarray(h), xp.asarray(F))
    assert_close(res.params[:, :3], truth[:, :3], rtol=1e-6, xp=xp)
    assert_close(res.r2, np.ones(5), rtol=1e-9, xp=xp)
    assert to_numpy(res.converged).all()


def test_fit_sho_accepts_a_guess_and_bounds(rng):
    h, truth = _sho_batch(rng, 3, noise=0.0)
    start = truth * np.array([1.2, 1.002, 0.8, 1.0]) + np.array([0, 0, 0, 0.2])
    res = fit_sho(h, F, guess=start, bounds=([0, 300e3, 1, -10], [1, 400e3, 1e4, 10]))
    assert_close(res.params, truth, rtol=1e-6, atol=1e-9)
    start[:, 3] = _wrap(start[:, 3])
    assert_close(res.guess, start, rtol=1e-12)
    # a bound that excludes the truth is respected
    res = fit_sho(h, F, bounds=([0, 300e3, 1, -10], [1, 400e3, 40.0, 10]))
    assert np.all(to_numpy(res.params)[:, 2] <= 40.0 + 1e-9)


def test_fit_sho_errors_name_the_problem(rng):
    h, _ = _sho_batch(rng, 2)
    with pytest.raises(DataError, match="complex"):
        fit_sho(h.real, F)
    with pytest.raises(DataError, match="one value per bin"):
        fit_sho(h, F[:-1])
    with pytest.raises(DataError, match=r"guess must have shape \(2, 4\)"):
        fit_sho(h, F, guess=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="model must be one of"):
        fit("voigt", F, h.real)


# ---------------------------------------------------------------- loop, peaks, relaxation

V = np.concatenate([np.linspace(-10, 10, 48), np.linspace(10, -10, 48)])


def _loop_batch(rng, n, noise):
    truth = np.stack(
        [
            rng.uniform(-1.5, -0.5, n),
            rng.uniform(1.5, 2.5, n),
            rng.uniform(-4, -2, n),
            rng.uniform(2, 4, n),
            rng.uniform(-0.02, 0.02, n),
            rng.uniform(0.5, 2, n),
            rng.uniform(0.5, 2, n),
            rng.uniform(0.5, 2, n),
            rng.uniform(0.5, 2, n),
        ],
        axis=1,
    )
    y = to_numpy(loop(V, truth))
    return y + noise * rng.standard_normal(y.shape), truth


def test_loop_fit_recovers_truth_and_matches_scipy(rng):
    y, truth = _loop_batch(rng, 12, noise=0.01)
    res = fit_loop(V, y)
    p, g = to_numpy(res.params), to_numpy(res.guess)
    assert to_numpy(res.converged).all()
    np.testing.assert_allclose(p[:, :5], truth[:, :5], atol=0.15)
    assert np.median(np.abs(p[:, 2:4] - truth[:, 2:4])) < 0.05
    chi2 = to_numpy(res.chi2)
    for i in range(4):
        _assert_same_minimum(p[i], chi2[i], None, V, y[i], g[i], "loop")


def test_loop_guess_and_metrics(xp):
    truth = np.array([[-1.0, 2.0, -3.0, 2.5, 0.0, 0.05, 0.05, 0.05, 0.05]])
    y = loop(xp.asarray(V), xp.asarray(truth))
    g = to_numpy(loop_guess(xp.asarray(V), y))
    np.testing.assert_allclose(g[0, :4], truth[0, :4], atol=0.25)
    met = loop_metrics(xp.asarray(truth))
    assert_close(met["Imprint"], np.array([-0.25]), xp=xp)
    assert_close(met["Work of Switching"], np.array([11.0]), xp=xp)
    assert_close(met["R+"], np.array([1.0]), xp=xp)


@pytest.mark.parametrize(
    ("shape", "k", "truth"),
    [
        ("gaussian", 2, [3.0, -1.0, 1.0, 1.5, 2.0, 0.8, 0.2, 0.05]),
        ("lorentzian", 1, [3.0, 0.5, 1.2, 0.2, 0.05]),
        ("pseudo_voigt", 1, [3.0, 0.5, 1.2, 0.4, 0.2, 0.05]),
    ],
)
def test_peak_fits_recover_truth_and_match_scipy(rng, shape, k, truth):
    x = np.linspace(-5, 5, 120)
    truth = np.array(truth)
    y = to_numpy(peaks(x, np.tile(truth, (6, 1)), shape=shape)) + 0.01 * rng.standard_normal((6, 120))
    res = fit(shape, x, y, n_peaks=k)
    p, g = to_numpy(res.params), to_numpy(res.guess)
    assert to_numpy(res.converged).all()
    np.testing.assert_allclose(np.median(p, axis=0), truth, atol=0.05)
    chi2 = to_numpy(res.chi2)
    for i in range(3):
        _assert_same_minimum(p[i], chi2[i], None, x, y[i], g[i], shape)


@pytest.mark.parametrize(
    ("name", "truth"),
    [
        ("exponential", [2.0, 0.7, 0.1]),
        ("double_exponential", [1.0, 0.3, 1.0, 2.0, 0.1]),
        ("stretched_exponential", [2.0, 0.7, 0.6, 0.1]),
    ],
)
def test_relaxation_fits_recover_truth_and_match_scipy(rng, name, truth):
    t = np.linspace(0, 8, 100)
    truth = np.array(truth)
    y = to_numpy(get_model(name).evaluate(t, np.tile(truth, (6, 1)))) + 0.002 * rng.standard_normal((6, 100))
    res = fit(name, t, y)
    p, g = to_numpy(res.params), to_numpy(res.guess)
    assert to_numpy(res.converged).all()
    np.testing.assert_allclose(np.median(p, axis=0), truth, rtol=0.05)
    chi2 = to_numpy(res.chi2)
    for i in range(3):
        _assert_same_minimum(p[i], chi2[i], None, t, y[i], g[i], name)


def test_fit_keeps_the_namespace_for_real_models(xp):
    t = np.linspace(0, 5, 40)
    truth = np.array([[2.0, 0.7, 0.1], [1.0, 1.5, -0.2]])
    res = fit("exponential", xp.asarray(t), exponential(xp.asarray(t), xp.asarray(truth)))
    assert_close(res.params, truth, rtol=1e-6, xp=xp)
    assert to_numpy(res.converged).all()


def test_sho_guess_r2_from_the_kernel_equals_the_model_on_the_host():
    # fit_sho(guess_r2=True) takes the start's R^2 from one kernel pass (no host model of the batch)
    from pycro_gpu import datasets
    from pycro_gpu.fitting import fit_sho, sho

    be = datasets.band_excitation(shape=(16, 16), n_freq=87, noise=0.03, seed=3)
    spectra, f = be.data.reshape(-1, 87), be.truth["frequency"]
    y = spectra.astype(np.complex128)
    centered = y - y.mean(axis=1, keepdims=True)
    for dtype, tol in ((np.complex128, 1e-12), (np.complex64, 1e-5)):
        res = fit_sho(spectra.astype(dtype), f, guess_r2=True)
        model = sho(f, np.asarray(res.guess, dtype=np.float64))
        expected = 1 - (np.abs(model - y) ** 2).sum(axis=1) / (np.abs(centered) ** 2).sum(axis=1)
        np.testing.assert_allclose(res.guess_r2, expected, atol=tol)
        assert np.all(np.asarray(res.guess_r2) <= np.asarray(res.r2) + 1e-6)
    assert fit_sho(spectra, f).guess_r2 is None


def test_start_r2_of_the_fit_launch_equals_a_launch_of_no_iterations():
    # the fit's first pass has the start's R^2: one launch instead of a second one with maxiter=0
    from pycro_gpu.kernels.lm import lm_fit_batch
    from pycro_gpu.kernels.model_sho import SHO

    from pycro_gpu import datasets
    from pycro_gpu.fitting._kernel_io import prepare_sho
    from pycro_gpu.fitting.guess import _sho_guess_scaled

    be = datasets.band_excitation(shape=(8, 8), n_freq=87, noise=0.03, seed=4)
    spectra = be.data.reshape(-1, 87).astype(np.complex128)
    spectra[5] = 0.0  # constant data: R^2 undefined
    spectra[9, 3] = np.nan  # skipped fit
    y, x, _, _, _ = prepare_sho(spectra, be.truth["frequency"], np)
    g = _sho_guess_scaled(y, x, np)
    g[7] = [1.0, 0.5, 30.0, 0.1]  # a start outside the bounds: projected first
    lo, hi = np.array([0.0, x.min(), -np.inf, -np.inf]), np.array([np.inf, x.max(), np.inf, np.inf])
    fit = lm_fit_batch(SHO, x, y, g, lo, hi, maxiter=50, start_r2=True)
    none = lm_fit_batch(SHO, x, y, g, lo, hi, maxiter=0)
    assert len(fit) == 6 and len(lm_fit_batch(SHO, x, y, g, lo, hi, maxiter=50)) == 5
    assert fit[5].tobytes() == none[2].tobytes()
    assert np.isnan(fit[5][[5, 9]]).all() and np.isfinite(np.delete(fit[5], [5, 9])).all()
