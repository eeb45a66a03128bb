"""1-D frequency filters, noise floor, fused kernel path, and 2-D image masks."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pycro_gpu.errors import MissingDependencyError
from pycro_gpu.filters import (
    BandPassFilter,
    CompositeFilter,
    HarmonicPassFilter,
    LowPassFilter,
    NoiseBandFilter,
    butterworth_mask,
    fft_filter,
    filter_image,
    filter_spectra,
    gaussian_mask,
    get_noise_floor,
    notch_mask,
    rfft,
    threshold_spectrum,
)
from tests.helpers import assert_close, to_numpy

N = 2**14
FS = 4e6  # bin spacing FS / N = 244.140625 Hz; tones below sit exactly on bins
DF = FS / N


def _tone_freq(k):
    return k * DF


def _signal(rng, tones, noise=0.1, n_rows=3, n=N):
    t = np.arange(n) / FS
    x = np.zeros((n_rows, n))
    for k, amp in tones:
        x += amp * np.cos(2 * np.pi * _tone_freq(k) * t + 0.3 * k)
    return x + noise * rng.standard_normal((n_rows, n))


def _bin_amplitude(x, k):
    """Complex amplitude of bin k of each row (host, NumPy's FFT: an independent reference)."""
    return np.fft.rfft(to_numpy(x), axis=-1)[..., k]


# Tones: (bin index, amplitude). 100 kHz = bin 409.6 -> use exact bins near the round numbers.
K_IN = [(410, 1.0), (1229, 0.5)]  # ~100 kHz, ~300 kHz
K_OUT = [(2867, 0.8), (4915, 0.3)]  # ~700 kHz, ~1.2 MHz


def _check_tones(x, y, keep, remove, *, keep_rtol=1e-6, max_gain=1e-12):
    for k, _ in keep:
        np.testing.assert_allclose(_bin_amplitude(y, k), _bin_amplitude(x, k), rtol=keep_rtol)
    for k, _ in remove:
        ratio = np.abs(_bin_amplitude(y, k)) / np.abs(_bin_amplitude(x, k))
        assert np.all(ratio < max_gain), (k, ratio)


def test_low_pass_keeps_tones_in_band_and_removes_the_rest(xp, rng):
    x = _signal(rng, K_IN + K_OUT)
    lpf = LowPassFilter(N, FS, f_cutoff=500e3, roll_off=0.1)
    y = fft_filter(xp.asarray(x), lpf)
    assert y.dtype == xp.float64 and y.shape == x.shape
    _check_tones(x, y, K_IN, K_OUT)
    # everything at or above the cutoff is gone (weight exactly 0), everything below 450 kHz is kept
    spec_x, spec_y = np.fft.rfft(x), np.fft.rfft(to_numpy(y))
    f = np.fft.rfftfreq(N, 1 / FS)
    assert np.max(np.abs(spec_y[:, f >= 500e3])) < 1e-9 * np.max(np.abs(spec_x))
    np.testing.assert_allclose(spec_y[:, f <= 450e3], spec_x[:, f <= 450e3], rtol=1e-9, atol=1e-9)


def test_numpy_and_array_api_strict_agree(rng):
    import array_api_compat.numpy as npx
    import array_api_strict as xs

    x = _signal(rng, K_IN + K_OUT)
    filters = [LowPassFilter(N, FS, 1.3e6), HarmonicPassFilter(N, FS, _tone_freq(410), 20e3, 3)]
    a = fft_filter(npx.asarray(x), filters, noise_tolerance=1e-4)
    b = fft_filter(xs.asarray(x), filters, noise_tolerance=1e-4)
    np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=0, atol=1e-12 * np.abs(x).max())


def test_low_pass_weights_follow_the_erf_roll_off():
    lpf = LowPassFilter(1000, 1e6, f_cutoff=100e3, roll_off=0.2)
    from scipy.special import erf

    f = lpf.frequencies
    w = lpf.host_mask()
    assert np.all(w[f <= 80e3] == 1) and np.all(w[f >= 100e3] == 0)
    inside = (f > 80e3) & (f < 100e3)
    t = 5 * (f[inside] - 80e3) / 20e3 - 2.5
    np.testing.assert_allclose(w[inside], 0.5 * (1 - erf(t) / erf(2.5)), rtol=1e-15)
    assert np.all(np.diff(w) <= 0)
    assert w[90] == pytest.approx(0.5)


def test_harmonic_pass_keeps_bands_around_harmonics(xp, rng):
    k1 = 410
    keep = [(k1, 1.0), (2 * k1, 0.4), (3 * k1, 0.2)]
    remove = [(k1 // 2, 0.7), (3 * k1 // 2 + 7, 0.5), (4 * k1, 0.3), (0, 0.0)]
    x = _signal(rng, keep + remove[:3]) + 2.0  # + a DC offset, removed by the filter
    hpf = HarmonicPassFilter(N, FS, _tone_freq(k1), band_width=30 * DF, num_harm=3)
    w = hpf.host_mask()
    assert np.flatnonzero(w).tolist() == [k * k1 + d for k in (1, 2, 3) for d in range(-15, 16)]
    y = fft_filter(xp.asarray(x), hpf)
    _check_tones(x, y, keep, remove)


def test_band_pass_boxcar_and_fir(xp, rng):
    x = _signal(rng, K_IN + K_OUT)
    box = BandPassFilter(N, FS, f_center=_tone_freq(1229), f_width=200 * DF)
    assert np.flatnonzero(box.host_mask()).tolist() == list(range(1129, 1330))
    y = fft_filter(xp.asarray(x), box)
    _check_tones(x, y, [K_IN[1]], [K_IN[0], *K_OUT])
    # FIR (Blackman window, 1999 taps): stop band below -74 dB, pass band flat to 1e-3
    fir = BandPassFilter(N, FS, f_center=_tone_freq(1229), f_width=100e3, fir=True)
    y = fft_filter(xp.asarray(x), fir)
    _check_tones(x, y, [K_IN[1]], [K_IN[0], *K_OUT], keep_rtol=1e-3, max_gain=10 ** (-74 / 20))


def test_noise_band_removes_lines(xp, rng):
    lines = [(41, 1.0), (82, 0.5), (123, 0.5)]  # ~10, 20, 30 kHz interference
    x = _signal(rng, K_IN + lines)
    nbf = NoiseBandFilter(N, FS, [_tone_freq(k) for k, _ in lines], 3 * DF)
    assert np.flatnonzero(nbf.host_mask() == 0).tolist() == [40, 41, 42, 81, 82, 83, 122, 123, 124]
    y = fft_filter(xp.asarray(x), nbf)
    _check_tones(x, y, K_IN, lines)


def test_composite_is_the_product_and_checks_compatibility():
    a = LowPassFilter(N, FS, 1e6)
    b = NoiseBandFilter(N, FS, [50e3, 150e3], 2e3)
    c = a * b
    assert isinstance(c, CompositeFilter)
    np.testing.assert_array_equal(c.host_mask(), a.host_mask() * b.host_mask())
    params = c.parameters()
    assert params["filter_0_kind"] == "low_pass" and params["filter_1_freqs"] == [50e3, 150e3]
    with pytest.raises(ValueError, match=r"different \(signal_length, samp_rate\)"):
        CompositeFilter([a, LowPassFilter(N // 2, FS, 1e6)])
    with pytest.raises(ValueError, match="f_cutoff must be below the Nyquist frequency 2e"):
        LowPassFilter(N, FS, 3e6)
    with pytest.raises(ValueError, match="filter signal_length=16384 does not match signals of length 100"):
        fft_filter(np.zeros(100), a)


def _noise_floor_reference(x, tol, rtol=1e-2, max_iter=50):
    """pycroscopy's algorithm on the full two-sided FFT, with the relative stopping rule."""
    out = []
    for amp in np.abs(np.fft.fft(x, axis=-1)):
        amp = amp.copy()
        n = amp.size
        prev = np.sqrt(np.sum(amp**2) / (2 * n))
        thr = np.sqrt(2 * prev**2 * -np.log(tol))
        it = 1
        while it < max_iter:
            amp[amp > thr] = 0
            new = np.sqrt(np.sum(amp**2) / (2 * n))
            residual = abs(new - prev)
            thr = np.sqrt(2 * new**2 * -np.log(tol))
            prev = new
            it += 1
            if not residual > rtol * new:
                break
        out.append(thr)
    return np.array(out)


@pytest.mark.parametrize("n", [4096, 4095])
def test_noise_floor_matches_reference(xp, rng, n):
    x = _signal(rng, [(100, 3.0), (300, 1.0)], noise=0.2, n_rows=4, n=n)
    x[1] *= 50  # rows on different scales
    floors = get_noise_floor(rfft(xp.asarray(x)), 1e-3, signal_length=n)
    assert_close(floors, _noise_floor_reference(x, 1e-3), rtol=1e-10, xp=xp)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_noise_floor_kernel_equals_array_api_path(rng, dtype):
    x = _signal(rng, [(100, 3.0), (300, 1.0)], noise=0.2, n_rows=6, n=4001).astype(dtype)
    x[2] *= 1e-6
    spec = rfft(x).reshape(2, 3, -1)
    a = get_noise_floor(spec, 1e-3, signal_length=4001, method="kernel")
    b = get_noise_floor(spec, 1e-3, signal_length=4001, method="array_api")
    assert a.shape == (2, 3) and a.dtype == b.dtype == dtype
    np.testing.assert_allclose(a, b, rtol=1e-10 if dtype == np.float64 else 1e-5)
    np.testing.assert_allclose(a, _noise_floor_reference(x, 1e-3).reshape(2, 3), rtol=1e-5)


def test_noise_floor_kernel_parallel_path(rng, monkeypatch):
    import pycro_gpu.kernels.noise_floor as kn

    spec = rfft(_signal(rng, [(100, 3.0)], noise=0.2, n_rows=5, n=4096))
    serial = get_noise_floor(spec, 1e-3, method="kernel")
    monkeypatch.setattr(kn, "PARALLEL_MIN_BINS", 0)
    np.testing.assert_array_equal(get_noise_floor(spec, 1e-3, method="kernel"), serial)


def test_noise_floor_of_white_noise_is_the_rayleigh_quantile(rng):
    x = rng.standard_normal((8, 2**15))
    spec = rfft(x)
    floors = get_noise_floor(spec, 1e-2)
    # sigma of |F| for unit white noise is sqrt(n / 2); floor = sigma sqrt(-2 ln tol)
    expected = math.sqrt(2**15 / 2) * math.sqrt(-2 * math.log(1e-2))
    np.testing.assert_allclose(floors, expected, rtol=0.05)
    above = np.mean(np.abs(spec) > floors[:, None])
    assert 0.5e-2 < above < 2e-2


def test_threshold_with_noise_floor_matches_reference(xp, rng):
    x = _signal(rng, K_IN + K_OUT, noise=0.3)
    lpf = LowPassFilter(N, FS, 1.0e6)
    y, floors = fft_filter(xp.asarray(x), lpf, noise_tolerance=1e-3, return_noise_floors=True)
    # reference: pycroscopy's SignalFilter on the two-sided spectrum
    ref_floor = _noise_floor_reference(x, 1e-3)
    full = np.fft.fft(x, axis=-1)
    mask_full = np.concatenate([lpf.host_mask(), lpf.host_mask()[1:-1][::-1]])
    g = full * mask_full
    g[np.abs(g) < ref_floor[:, None]] = 0
    ref = np.real(np.fft.ifft(g, axis=-1))
    assert_close(floors, ref_floor, rtol=1e-10, xp=xp)
    assert_close(y, ref, rtol=0, atol=1e-12, xp=xp)
    # the noise is mostly gone: what is left is close to the tones below the cutoff
    clean = _signal(rng, [*K_IN, K_OUT[0]], noise=0)
    assert np.std(to_numpy(y) - clean) < 0.1 * np.std(x - clean)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_path_equals_array_api_path(rng, dtype):
    x = _signal(rng, K_IN + K_OUT, noise=0.3, n_rows=5, n=4000).astype(dtype)
    spec = rfft(x)
    assert spec.dtype == (np.complex64 if dtype == np.float32 else np.complex128)
    mask = LowPassFilter(4000, FS, 1.5e6).mask(np, dtype=dtype)
    floors = get_noise_floor(spec, 1e-3)
    ref = filter_spectra(spec, mask, floors, method="array_api")
    got = filter_spectra(spec, mask, floors, method="kernel")
    assert got is not spec and np.count_nonzero(got == 0) > 1000
    np.testing.assert_array_equal(got, ref)
    # 3-D batches and a scalar floor
    spec3 = spec.reshape(1, 5, -1)
    np.testing.assert_array_equal(
        filter_spectra(spec3, mask, 10.0, method="kernel"), threshold_spectrum(spec3 * mask, 10.0)
    )
    with pytest.raises(ValueError, match="method='kernel' needs NumPy or CuPy arrays"):
        import array_api_strict as xs

        filter_spectra(xs.asarray(spec), xs.asarray(mask), method="kernel")


@pytest.mark.cudasim
def test_kernel_cuda_path_equals_array_api_path_in_simulator(rng):
    x = _signal(rng, [(5, 1.0), (20, 0.5)], noise=0.3, n_rows=3, n=64)
    spec = rfft(x)
    mask = LowPassFilter(64, FS, 1.5e6).mask(np)
    floors = get_noise_floor(spec, 1e-2)
    ref = filter_spectra(spec, mask, floors, method="array_api")
    got = filter_spectra(spec, mask, floors, method="kernel", kernel_target="cuda")
    assert np.count_nonzero(got == 0) > 10
    np.testing.assert_array_equal(got, ref)


@pytest.mark.gpu
def test_fft_filter_on_cupy_equals_numpy(rng):
    import array_api_compat.cupy as cpx

    x = _signal(rng, K_IN + K_OUT, noise=0.3, n_rows=64)
    lpf = LowPassFilter(N, FS, 1.0e6)
    ref = fft_filter(x, lpf, noise_tolerance=1e-3)
    got = fft_filter(cpx.asarray(x), lpf, noise_tolerance=1e-3)
    np.testing.assert_allclose(to_numpy(got), ref, atol=1e-10)


def test_float32_signals_stay_float32(xp, rng):
    x = _signal(rng, K_IN + K_OUT).astype(np.float32)
    y = fft_filter(xp.asarray(x), LowPassFilter(N, FS, 500e3, 0.1))
    assert y.dtype == xp.float32
    _check_tones(x, y, K_IN, K_OUT, keep_rtol=1e-5, max_gain=1e-5)


# ---------------------------------------------------------------------------------------------- 2-D


@pytest.mark.parametrize("kind", ["low", "high"])
@pytest.mark.parametrize("squared", [True, False])
def test_butterworth_equals_scikit_image(xp, rng, kind, squared):
    from skimage.filters import butterworth

    img = rng.standard_normal((48, 61)) + 3
    ref = butterworth(img, 0.08, high_pass=kind == "high", order=3.0, squared_butterworth=squared, npad=0)
    mask = butterworth_mask(img.shape, 0.08, order=3.0, kind=kind, squared=squared, xp=xp)
    assert_close(filter_image(xp.asarray(img), mask), ref, rtol=0, atol=1e-12, xp=xp)


def test_gaussian_and_band_masks(xp):
    shape = (32, 40)
    fy = np.fft.fftfreq(32)[:, None]
    fx = np.fft.rfftfreq(40)[None, :]
    r2 = fy**2 + fx**2
    low = np.exp(-r2 / (2 * 0.1**2))
    assert_close(gaussian_mask(shape, 0.1, xp=xp), low, xp=xp)
    assert_close(gaussian_mask(shape, 0.1, kind="high", xp=xp), 1 - low, xp=xp)
    band = (1 - np.exp(-r2 / (2 * 0.05**2))) * np.exp(-r2 / (2 * 0.2**2))
    assert_close(gaussian_mask(shape, (0.05, 0.2), kind="band", xp=xp), band, xp=xp)
    bw = (1 - 1 / (1 + (r2 / 0.05**2) ** 2)) * (1 / (1 + (r2 / 0.2**2) ** 2))
    assert_close(butterworth_mask(shape, (0.05, 0.2), kind="band", xp=xp), bw, xp=xp)
    with pytest.raises(ValueError, match=r"kind='band' needs cutoff=\(low, high\)"):
        gaussian_mask(shape, 0.1, kind="band", xp=xp)


def test_notch_removes_periodic_noise(xp, rng):
    ny, nx = 64, 64
    y, x = np.mgrid[0:ny, 0:nx]
    smooth = np.exp(-((y - 30) ** 2 + (x - 20) ** 2) / 200.0)
    noise = 0.5 * np.cos(2 * np.pi * (5 * y / ny - 12 * x / nx))
    img = smooth + noise
    mask = notch_mask(img.shape, [(5 / ny, -12 / nx)], radius=1.5 / nx, xp=xp)
    out = to_numpy(filter_image(xp.asarray(img), mask))
    spec = np.fft.fft2(out)
    assert abs(spec[5, -12]) < 1e-9 and abs(spec[-5, 12]) < 1e-9
    # the one-sided grid holds the mirror spot (-5, 12): a disc of 9 bins is zeroed; the smooth
    # feature is otherwise untouched
    zeros = np.argwhere(to_numpy(mask) == 0).tolist()
    assert zeros == [[r, c] for r in (58, 59, 60) for c in (11, 12, 13)]
    np.testing.assert_allclose(out, smooth, atol=0.02)
    np.testing.assert_allclose(out.mean(), img.mean(), rtol=1e-12)


def _afm_image(test_data, tmp_path, channel):
    """One channel of the real AFM image (256 x 256), translated to USID by pycro_gpu's IBW reader."""
    import h5py

    from pycro_gpu.io.translators import translate
    from pycro_gpu.io.usid import USIDataset

    try:
        out = translate(test_data / "IgorIBWReader_P0089OP0027.ibw", tmp_path / "afm.h5")
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    with h5py.File(out, "r") as f:
        main = USIDataset(f[f"Measurement_000/Channel_{channel:03d}/Raw_Data"])
        assert main.n_dim_shape == (256, 256, 1)
        return main.quantity, np.asarray(main.get_n_dim_form()[..., 0], dtype=np.float64)


@pytest.mark.parametrize("channel", [0, 3])  # HeightRetrace (mean ~0), PhaseRetrace (mean ~45 deg)
def test_low_pass_of_real_afm_image(xp, test_data, tmp_path, channel):
    quantity, img = _afm_image(test_data, tmp_path, channel)
    assert quantity == ["HeightRetrace", "", "", "PhaseRetrace"][channel]
    cutoff = 0.1
    mask = butterworth_mask(img.shape, cutoff, order=8, xp=xp)
    out = to_numpy(filter_image(xp.asarray(img), mask))
    # mean preserved (DC weight 1)
    np.testing.assert_allclose(out.mean(), img.mean(), rtol=1e-10, atol=1e-12 * np.abs(img).max())
    fy = np.fft.fftfreq(256)[:, None]
    fx = np.fft.fftfreq(256)[None, :]
    r = np.hypot(fy, fx)
    p_in, p_out = np.abs(np.fft.fft2(img)) ** 2, np.abs(np.fft.fft2(out)) ** 2
    # power above twice the cutoff removed (Butterworth order 8: weight^2 < 4e-10 there)
    above = r >= 2 * cutoff
    assert p_in[above].sum() > 0 and p_out[above].sum() < 1e-9 * p_in[above].sum()
    # and the image was actually smoothed: pixel-to-pixel roughness dropped
    assert np.std(np.diff(out, axis=1)) < np.std(np.diff(img, axis=1))


def test_line_low_pass_of_real_afm_image(xp, test_data, tmp_path):
    """The scan lines as 1-D signals: the erf low pass keeps each line's mean, removes all above cutoff."""
    _, img = _afm_image(test_data, tmp_path, 3)
    lpf = LowPassFilter(256, 1.0, f_cutoff=0.1, roll_off=0.2)  # cycles per pixel
    out = to_numpy(fft_filter(xp.asarray(img), lpf))
    np.testing.assert_allclose(out.mean(axis=1), img.mean(axis=1), rtol=1e-12)
    spec_in, spec_out = np.fft.rfft(img, axis=1), np.fft.rfft(out, axis=1)
    f = np.fft.rfftfreq(256)
    assert np.max(np.abs(spec_out[:, f >= 0.1])) < 1e-10 * np.max(np.abs(spec_in))
    np.testing.assert_allclose(spec_out[:, f <= 0.08], spec_in[:, f <= 0.08], rtol=1e-9, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(16, 600),
    cut=st.floats(0.05, 0.45),
    roll=st.floats(0.0, 0.9),
    band=st.floats(0.0, 0.5),
    width=st.floats(1e-6, 0.1),  # a band has a positive width (a zero width is refused)
)
def test_filters_never_add_energy_and_are_linear(n, cut, roll, band, width):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((2, n))
    f = LowPassFilter(n, 1.0, cut, roll) * NoiseBandFilter(n, 1.0, [band], [width])
    w = f.host_mask()
    assert np.all((w >= 0) & (w <= 1))
    y = fft_filter(x, f)
    assert np.all(np.sum(y**2, axis=1) <= np.sum(x**2, axis=1) * (1 + 1e-12))
    np.testing.assert_allclose(fft_filter(2 * x[0] - x[1], f), 2 * y[0] - y[1], atol=1e-12)
