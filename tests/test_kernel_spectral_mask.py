import numpy as np
import pytest
from pycro_gpu.kernels import apply_spectral_mask

from tests.helpers import to_numpy


def _reference(spectra, mask, threshold):
    out = spectra * mask
    out[np.abs(out) < threshold] = 0
    return out


def _case(rng, n_rows, n_bins, dtype):
    s = rng.standard_normal((n_rows, n_bins)) + 1j * rng.standard_normal((n_rows, n_bins))
    mask = rng.uniform(0, 1, n_bins)
    return s.astype(dtype), mask


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_cpu_kernel_matches_numpy(rng, dtype):
    s, mask = _case(rng, 37, 129, dtype)
    expected = _reference(s.copy(), mask.astype(s.real.dtype), 0.8)
    got = apply_spectral_mask(s, mask, 0.8)
    assert got is s
    np.testing.assert_allclose(got, expected, rtol=1e-6 if dtype == np.complex64 else 1e-15)
    assert np.count_nonzero(got == 0) == np.count_nonzero(expected == 0) > 0


def test_parallel_and_serial_cpu_paths_agree(rng, monkeypatch):
    import pycro_gpu.kernels.spectral_mask as km

    s, mask = _case(rng, 9, 300, np.complex128)
    thr = rng.uniform(0, 1.5, 9)
    serial = apply_spectral_mask(s.copy(), mask, thr)
    monkeypatch.setattr(km, "PARALLEL_MIN_BINS", 0)
    np.testing.assert_array_equal(apply_spectral_mask(s.copy(), mask, thr), serial)


def test_per_row_thresholds(rng):
    s, mask = _case(rng, 4, 50, np.complex128)
    thr = np.array([0.0, 0.5, 1.0, 100.0])
    expected = s * mask
    for i, t in enumerate(thr):
        expected[i, np.abs(expected[i]) < t] = 0
    got = apply_spectral_mask(s.copy(), mask, thr)
    np.testing.assert_array_equal(got, expected)
    assert np.all(got[3] == 0) and np.count_nonzero(got[0]) == 50
    with pytest.raises(ValueError, match=r"shape \(4,\), got shape \(3,\)"):
        apply_spectral_mask(s, mask, thr[:3])


def test_shape_mismatch_is_named(rng):
    s, mask = _case(rng, 3, 8, np.complex128)
    with pytest.raises(ValueError, match=r"\(3, 8\) and \(7,\)"):
        apply_spectral_mask(s, mask[:7])


@pytest.mark.cudasim
def test_cuda_kernel_under_simulator(rng):
    s, mask = _case(rng, 5, 40, np.complex128)
    expected = _reference(s.copy(), mask, 0.8)
    got = apply_spectral_mask(s.copy(), mask, 0.8, target="cuda")
    np.testing.assert_allclose(got, expected, rtol=1e-15)
    thr = np.array([0.0, 0.5, 0.8, 1.0, 3.0])
    expected = s * mask
    for i, t in enumerate(thr):
        expected[i, np.abs(expected[i]) < t] = 0
    np.testing.assert_array_equal(apply_spectral_mask(s.copy(), mask, thr, target="cuda"), expected)


@pytest.mark.gpu
def test_cuda_kernel_on_cupy(rng):
    import cupy

    s, mask = _case(rng, 300, 1025, np.complex64)
    expected = _reference(s.copy(), mask.astype(np.float32), 0.8)
    d = cupy.asarray(s)
    apply_spectral_mask(d, cupy.asarray(mask, dtype=cupy.float32), 0.8)
    np.testing.assert_allclose(to_numpy(d), expected, rtol=1e-6)


@pytest.mark.ptx
@pytest.mark.parametrize(
    "sig",
    [
        "void(complex64[:, ::1], float32[::1], float64[::1])",
        "void(complex128[:, ::1], float64[::1], float64[::1])",
    ],
)
def test_cuda_kernel_compiles_for_sm90_without_spills(sig):
    from pycro_gpu.kernels.spectral_mask import cuda_spectral_mask

    from tests.ptx import assemble, compile_ptx

    report = assemble(compile_ptx(cuda_spectral_mask(), sig))
    assert report["spill_store_bytes"] == 0 and report["spill_load_bytes"] == 0, report["log"]
    assert report["registers"] <= 64, report["log"]
