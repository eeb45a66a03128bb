"""The Levenberg-Marquardt CUDA kernels: simulator runs against the CPU kernel, real sm_90 compilation.

* ``cudasim``: ``NUMBA_ENABLE_CUDASIM=1`` runs the CUDA kernels (one thread per fit) in numba's
  simulator on tiny batches; results must match the CPU kernel and the truth.
* ``ptx``: every model's CUDA kernel (float32 and float64) is lowered to PTX for sm_90 and assembled by
  ptxas: no spills allowed; registers are reported by benchmarks/bench_fit.py.
* ``gpu``: CuPy input runs on the device and stays there.
"""

import numpy as np
import pytest

from tests.helpers import to_numpy

F = np.linspace(300e3, 400e3, 40)


def _sho_np(f, p):
    a, w0, q, ph = (p[:, k : k + 1] for k in range(4))
    return a * np.exp(1j * ph) * w0**2 / (f**2 - 1j * f * w0 / q - w0**2)


def _sho_case(n, noise, seed=5):
    rng = np.random.default_rng(seed)
    truth = np.stack(
        [
            rng.uniform(0.5e-3, 2e-3, n),
            rng.uniform(340e3, 360e3, n),
            rng.uniform(30, 100, n),
            rng.uniform(-3, 3, n),
        ],
        axis=1,
    )
    h = _sho_np(F, truth)
    h = h + noise * np.abs(h).max(axis=1, keepdims=True) * (
        rng.standard_normal(h.shape) + 1j * rng.standard_normal(h.shape)
    )
    return h, truth


def _kernel_inputs(h, dtype):
    """Scaled SHO inputs as fit_sho prepares them."""
    fs = F.mean()
    amax = np.nanmax(np.abs(h))
    y = np.ascontiguousarray((h / amax).astype(np.complex64 if dtype == np.float32 else np.complex128))
    return (F / fs).astype(dtype), y.view(dtype), fs, amax


def _models():
    from pycro_gpu.kernels.model_loop import LOOP
    from pycro_gpu.kernels.model_peaks import peaks_model
    from pycro_gpu.kernels.model_relaxation import DOUBLE_EXPONENTIAL, EXPONENTIAL, STRETCHED_EXPONENTIAL
    from pycro_gpu.kernels.model_sho import SHO

    return {
        "sho": SHO,
        "loop": LOOP,
        "gaussian_2": peaks_model("gaussian", 2),
        "lorentzian_1": peaks_model("lorentzian", 1),
        "pseudo_voigt_1": peaks_model("pseudo_voigt", 1),
        "exponential": EXPONENTIAL,
        "double_exponential": DOUBLE_EXPONENTIAL,
        "stretched_exponential": STRETCHED_EXPONENTIAL,
    }


@pytest.mark.cudasim
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sho_cuda_kernels_match_cpu_under_simulator(dtype):
    from pycro_gpu.kernels.lm import lm_fit_batch
    from pycro_gpu.kernels.model_sho import SHO, cuda_sho_guess_kernel, sho_guess_batch

    h, truth = _sho_case(8, noise=0.02)
    h[3, 7] = np.nan
    x, y, fs, amax = _kernel_inputs(h, dtype)
    g_cpu = np.empty((8, 4), dtype)
    sho_guess_batch(x, y, g_cpu)
    from numba import cuda

    d_out = cuda.to_device(np.empty((8, 4), dtype))
    cuda_sho_guess_kernel(np.dtype(dtype).name)[1, 8](cuda.to_device(x), cuda.to_device(y), d_out)
    g_gpu = d_out.copy_to_host()
    ok = np.arange(8) != 3
    np.testing.assert_allclose(g_gpu[ok], g_cpu[ok], rtol=1e-4 if dtype == np.float32 else 1e-10)
    assert np.isnan(g_gpu[3]).all() and np.isnan(g_cpu[3]).all()
    lo = np.array([0, x.min(), -np.inf, -np.inf], dtype)
    hi = np.array([np.inf, x.max(), np.inf, np.inf], dtype)
    cpu = lm_fit_batch(SHO, x, y, g_cpu, lo, hi, maxiter=20)
    gpu = lm_fit_batch(SHO, x, y, g_cpu, lo, hi, maxiter=20, target="cuda")
    assert gpu[4].tolist() == cpu[4].tolist() and cpu[4][3] == 2 and (cpu[4][ok] == 0).all()
    tol = 1e-4 if dtype == np.float32 else 1e-8
    np.testing.assert_allclose(gpu[0][ok], cpu[0][ok], rtol=tol)
    np.testing.assert_allclose(gpu[2][ok], cpu[2][ok], rtol=tol)
    p = gpu[0][ok].astype(float)
    np.testing.assert_allclose(p[:, 0] * amax, truth[ok, 0], rtol=0.05)
    np.testing.assert_allclose(p[:, 1] * fs, truth[ok, 1], rtol=1e-3)
    assert (p[:, 2] > 0).all()


@pytest.mark.cudasim
@pytest.mark.parametrize("name", ["loop", "gaussian_2", "pseudo_voigt_1", "stretched_exponential"])
def test_real_model_cuda_kernels_match_cpu_under_simulator(name):
    from pycro_gpu.kernels.lm import lm_fit_batch

    from pycro_gpu.fitting import get_model

    rng = np.random.default_rng(2)
    if name == "loop":
        x = np.concatenate([np.linspace(-8, 8, 16), np.linspace(8, -8, 16)])
        truth = np.array([-1.0, 2.0, -3.0, 2.5, 0.01, 1.0, 2.0, 1.5, 0.8])
        spec = get_model("loop")
    elif name.startswith(("gaussian", "pseudo")):
        shape, k = name.rsplit("_", 1)
        x = np.linspace(-5, 5, 30)
        two = [3.0, -1.0, 1.0, 1.5, 2.0, 0.8, 0.2, 0.05]
        truth = np.array(two if k == "2" else [3.0, 0.5, 1.2, 0.4, 0.2, 0.05])
        spec = get_model(shape, n_peaks=int(k))
        name = shape
    else:
        x = np.linspace(0, 6, 30)
        truth = np.array([2.0, 0.7, 0.6, 0.1])
        spec = get_model(name)
    # noise-free data from perturbed starts: the simulated kernel must land on the truth
    y = spec.evaluate(x, np.tile(truth, (4, 1)))
    p0 = truth * (1 + 0.05 * rng.uniform(-1, 1, (4, truth.size)))
    from pycro_gpu.fitting.api import default_bounds

    lo, hi = default_bounds(name, truth.size, x)
    gpu = lm_fit_batch(spec.kernel_model(), x, y, p0, lo, hi, maxiter=50, target="cuda")
    assert (gpu[4] == 0).all(), gpu[4]
    np.testing.assert_allclose(gpu[0], np.tile(truth, (4, 1)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gpu[2], 1.0, atol=1e-9)


def test_sincos_reduced_matches_math():
    """The CUDA SHO kernel's sine and cosine (no local memory): within 1 ulp of 1 of libm's."""
    import math

    from pycro_gpu.kernels.model_sho import sincos_reduced

    rng = np.random.default_rng(0)
    quarter_turns = np.arange(-40, 41) * np.pi / 4
    xs = np.concatenate([rng.uniform(-10, 10, 2000), rng.uniform(-1e6, 1e6, 200), quarter_turns])
    for x in map(float, xs):
        s, c = sincos_reduced(x)
        assert abs(s - math.sin(x)) <= 2.3e-16 and abs(c - math.cos(x)) <= 2.3e-16, x
    for x in (1e7, -3e9, 1e300):  # reduced modulo the float64 2 pi first: an error of |x| / 2 pi * 2.4e-16
        s, c = sincos_reduced(x)
        assert abs(s * s + c * c - 1) <= 1e-15, x
        if abs(x) < 1e10:
            assert abs(s - math.sin(x)) <= 4e-17 * abs(x) and abs(c - math.cos(x)) <= 4e-17 * abs(x), x
    for x in (math.inf, -math.inf, math.nan):
        assert all(math.isnan(v) for v in sincos_reduced(x))


#: Kernels assembled in the test suite (each costs seconds of NVVM time); benchmarks/bench_fit.py
#: --ptx assembles every model in both precisions and reports registers and spills.
PTX_CASES = [
    ("sho", "float32"),
    ("sho", "float64"),
    ("loop", "float32"),
    ("double_exponential", "float32"),
]


@pytest.mark.ptx
@pytest.mark.parametrize(("name", "dtype"), PTX_CASES)
def test_lm_cuda_kernel_compiles_for_sm90_without_spills(name, dtype):
    from pycro_gpu.kernels.lm import cuda_lm_kernel, lm_kernel_signature

    from tests.ptx import assemble, compile_ptx

    model = _models()[name]
    report = assemble(compile_ptx(cuda_lm_kernel(model, dtype), lm_kernel_signature(model, dtype)))
    assert report["spill_store_bytes"] == 0 and report["spill_load_bytes"] == 0, report["log"]
    assert report["registers"] <= 255, report["log"]
    if name == "sho":  # the SHO fit keeps its normal equations in registers: no local memory at all
        assert report["stack_bytes"] == 0, report["log"]


@pytest.mark.ptx
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sho_guess_cuda_kernel_compiles_for_sm90_without_local_memory(dtype):
    """The guess keeps its per-thread scratch in shared memory: no spills and no stack frame."""
    from pycro_gpu.kernels.model_sho import cuda_sho_guess_kernel

    from tests.ptx import assemble, compile_ptx

    sig = f"void({dtype}[::1], {dtype}[:, ::1], {dtype}[:, ::1])"
    report = assemble(compile_ptx(cuda_sho_guess_kernel(dtype), sig))
    assert report["spill_store_bytes"] == 0 and report["spill_load_bytes"] == 0, report["log"]
    assert report["stack_bytes"] == 0, report["log"]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_fit_sho_on_cupy_stays_on_the_device(dtype):
    import cupy

    from pycro_gpu.fitting import fit_sho

    h, truth = _sho_case(2048, noise=0.03)
    res = fit_sho(cupy.asarray(h.astype(dtype)), cupy.asarray(F))
    assert isinstance(res.params, cupy.ndarray) and isinstance(res.converged, cupy.ndarray)
    cpu = fit_sho(h.astype(dtype), F)
    conv = to_numpy(res.converged)
    assert conv.mean() >= 0.99
    p, pc = to_numpy(res.params).astype(float), to_numpy(cpu.params).astype(float)
    both = conv & to_numpy(cpu.converged)
    rel = np.median(np.abs(p[both] - pc[both]) / np.abs(pc[both]), axis=0)
    np.testing.assert_allclose(rel[:3], 0, atol=1e-3)
    assert np.median(np.abs(p[:, 1] - truth[:, 1]) / truth[:, 1]) < 1e-3


@pytest.mark.gpu
def test_fit_loop_on_cupy():
    import cupy

    from pycro_gpu.fitting import fit_loop, loop

    v = np.concatenate([np.linspace(-8, 8, 32), np.linspace(8, -8, 32)])
    truth = np.array([[-1.0, 2.0, -3.0, 2.5, 0.01, 1.0, 2.0, 1.5, 0.8]] * 64)
    y = to_numpy(loop(v, truth))
    res = fit_loop(cupy.asarray(v), cupy.asarray(y))
    assert isinstance(res.params, cupy.ndarray)
    np.testing.assert_allclose(to_numpy(res.params), truth, rtol=1e-4, atol=1e-6)
