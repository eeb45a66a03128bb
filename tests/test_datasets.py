"""Synthetic generators against their documented ground truth, computed independently here."""

import math

import numpy as np
import pytest
from scipy import special

from pycro_gpu import datasets as ds


def _sho(w, a, w0, q, phi):
    """The SHO of DESIGN.md written out again (independent of the library)."""
    return a * np.exp(1j * phi) * w0**2 / (w**2 - 1j * w * w0 / q - w0**2)


# ---------------------------------------------------------------------------------------------- SHO


@pytest.mark.parametrize(("a", "w0", "q", "phi"), [(1e-3, 350e3, 200.0, 0.3), (2.0, 1e5, 15.0, -2.0)])
def test_sho_response_analytic_points(a, w0, q, phi):
    h = ds.sho_response(np.array([w0, 1e-6 * w0]), a, w0, q, phi)
    # at resonance H = i A Q e^{i phi}; far below it -A e^{i phi}
    np.testing.assert_allclose(h[0], 1j * a * q * np.exp(1j * phi), rtol=1e-12)
    np.testing.assert_allclose(abs(h[0]), a * q, rtol=1e-12)
    np.testing.assert_allclose(np.angle(h[0] * np.exp(-1j * (phi + np.pi / 2))), 0.0, atol=1e-12)
    np.testing.assert_allclose(h[1], -a * np.exp(1j * phi), rtol=1e-7)  # O(w / (w0 Q))


def test_sho_response_peak_and_half_power_width():
    w0, q = 350e3, 120.0
    w = np.linspace(w0 * 0.97, w0 * 1.03, 600001)
    mag = np.abs(ds.sho_response(w, 1.0, w0, q, 0.0))
    assert w[np.argmax(mag)] == pytest.approx(w0 * math.sqrt(1 - 1 / (2 * q**2)), abs=2 * (w[1] - w[0]))
    above = w[mag**2 >= mag.max() ** 2 / 2]
    assert above[-1] - above[0] == pytest.approx(w0 / q, rel=1e-3)


def test_sho_response_broadcasts():
    w = np.linspace(1, 2, 7)
    h = ds.sho_response(w, np.ones((3, 1)), np.full((1, 4), 1.5), 10.0, 0.0)
    assert h.shape == (3, 4, 7)
    np.testing.assert_allclose(h[2, 3], _sho(w, 1.0, 1.5, 10.0, 0.0))


# ---------------------------------------------------------------------------------------- BE data


@pytest.fixture(scope="module")
def be():
    return ds.band_excitation((12, 10), 48, seed=3, noise=0.03)


def test_band_excitation_shapes_and_description(be):
    data, truth = be
    assert data.shape == (12, 10, 48) and data.dtype == np.complex64
    assert be.as_2d().shape == (120, 48) and be.n_positions == 120
    assert [d[:2] for d in be.pos_dims] == [("Y", "m"), ("X", "m")]
    assert be.spec_dims[0][:2] == ("Frequency", "Hz")
    np.testing.assert_array_equal(be.spec_dims[0][2], truth["frequency"])
    np.testing.assert_allclose(truth["frequency"][[0, -1]], [340e3, 360e3])
    for key in ("amplitude", "resonance_frequency", "quality_factor", "phase", "domains"):
        assert truth[key].shape == (12, 10), key


def test_band_excitation_clean_is_the_sho_of_the_truth(be):
    _, t = be
    expected = _sho(
        t["frequency"],
        t["amplitude"][..., None],
        t["resonance_frequency"][..., None],
        t["quality_factor"][..., None],
        t["phase"][..., None],
    )
    np.testing.assert_allclose(t["clean"], expected, rtol=1e-12)
    # the strongest bin sits next to w0 and the phase there is phi + pi/2 (minus the bin offset)
    f = t["frequency"]
    peak = f[np.argmax(np.abs(t["clean"]), axis=-1)]
    assert np.all(np.abs(peak - t["resonance_frequency"]) <= (f[1] - f[0]))


def test_band_excitation_noise_level(be):
    data, t = be
    resid = data.astype(np.complex128) - t["clean"]
    sigma = np.sqrt(np.mean(np.abs(resid) ** 2))
    # 3 % of the median resonance peak |H(w0)| = A Q
    assert t["noise_sigma"] == pytest.approx(0.03 * np.median(t["amplitude"] * t["quality_factor"]))
    assert sigma == pytest.approx(t["noise_sigma"], rel=0.05)
    assert np.mean(resid.real**2) == pytest.approx(np.mean(resid.imag**2), rel=0.1)


def test_band_excitation_domains(be):
    _, t = be
    labels = t["domains"]
    assert set(np.unique(labels)) == {0, 1, 2}
    # one phase per domain: -pi/2, 0, pi/2 (180 degrees between the outer ones)
    for k, phi in enumerate([-np.pi / 2, 0.0, np.pi / 2]):
        np.testing.assert_allclose(t["phase"][labels == k], phi)
    # amplitude: a_k (1 - 0.5 exp(-d**2)), d the distance to the nearest wall pixel (one that has a
    # 4-neighbour in another domain), found here by brute force
    ny, nx = labels.shape
    wall = [
        (r, c)
        for r in range(ny)
        for c in range(nx)
        if any(
            0 <= r + dr < ny and 0 <= c + dc < nx and labels[r + dr, c + dc] != labels[r, c]
            for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))
        )
    ]
    rr, cc = np.mgrid[:ny, :nx]
    d = np.min([np.hypot(rr - r, cc - c) for r, c in wall], axis=0)
    a_k = np.array([0.75e-3, 1e-3, 1.25e-3])[labels]
    np.testing.assert_allclose(t["amplitude"], a_k * (1 - 0.5 * np.exp(-(d**2))), rtol=1e-12)
    np.testing.assert_allclose(t["quality_factor"], np.array([160.0, 200.0, 240.0])[labels], rtol=1e-12)


def test_band_excitation_is_deterministic_by_seed():
    a = ds.band_excitation((4, 4), 16, seed=7)
    b = ds.band_excitation((4, 4), 16, seed=7)
    c = ds.band_excitation((4, 4), 16, seed=8)
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(a.data, c.data)


def test_band_excitation_noise_free_and_double():
    data, t = ds.band_excitation((3, 3), 16, noise=0.0, dtype=np.complex128)
    assert data.dtype == np.complex128
    np.testing.assert_array_equal(data, t["clean"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": (0, 4)}, "shape"),
        ({"shape": 5}, "shape"),
        ({"noise": -0.1}, "noise"),
        ({"n_freq": 2}, "n_freq"),
        ({"dtype": np.float32}, "dtype"),
        ({"bandwidth": 500e3}, "bandwidth"),
        ({"quality": 0.0}, "quality"),
    ],
)
def test_band_excitation_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ds.band_excitation(**kwargs)


# -------------------------------------------------------------------------------------- loop model


def test_loop_model_branches_match_the_formula():
    p = np.array([-1.0, 2.0, -3.0, 4.0, 0.01, 0.5, 1.5, 0.8, 0.3])
    dc = np.concatenate([np.linspace(10, -10, 41), np.linspace(-10, 10, 41)])
    f = ds.loop_model(dc, p)
    v1, v2 = dc[:41], dc[41:]
    # independent evaluation of DESIGN.md's formula for each branch
    for v, vals, a_sw, b_lo, b_hi in ((v1, f[:41], -3.0, 0.5, 1.5), (v2, f[41:], 4.0, 0.8, 0.3)):
        g = (b_hi - b_lo) / 2 * (special.erf(1000 * (v - a_sw)) + 1) + b_lo
        y = (g * special.erf((v - a_sw) / g) + b_lo) / (b_lo + b_hi)
        np.testing.assert_allclose(vals, -1.0 + 2.0 * y + 0.01 * v, rtol=1e-12)
    # saturation: R- = a0 far below the switch, R+ = a0 + a1 far above (plus the slope a4 V)
    np.testing.assert_allclose(f[0], -1.0 + 2.0 + 0.1, rtol=1e-9)  # V=+10 on branch 1
    np.testing.assert_allclose(f[40], -1.0 - 0.1, rtol=1e-9)  # V=-10
    # exactly at the switch (erf(0) = 0): y = b_lo / (b_lo + b_hi)
    at = ds.loop_model(np.array([-3.0, 4.0]), p)
    np.testing.assert_allclose(at, [-1 + 2 * 0.5 / 2.0 - 0.03, -1 + 2 * 0.8 / 1.1 + 0.04], rtol=1e-12)
    # hysteresis: at V = 0 the descending branch is still high, the ascending one still low
    assert f[20] > 0.9 and f[61] < -0.9


def test_loop_model_batches_and_rejects_wrong_parameter_count():
    p = np.tile(np.array([0.0, 1.0, -1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0]), (2, 3, 1))
    dc = np.linspace(-5, 5, 10)
    assert ds.loop_model(dc, p).shape == (2, 3, 10)
    with pytest.raises(ValueError, match="9 loop parameters"):
        ds.loop_model(dc, np.ones(8))


def test_loop_switching_parameters():
    p = np.array([-1.0, 2.0, -3.0, 4.0, 0.01, 0.5, 1.5, 0.8, 0.3])
    s = ds.loop_switching_parameters(p)
    assert (s["V-"], s["V+"], s["Imprint"]) == (-3.0, 4.0, 0.5)
    assert (s["R+"], s["R-"], s["Switchable Polarization"], s["Work of Switching"]) == (1.0, -1.0, 2.0, 14.0)


# --------------------------------------------------------------------------------------------- BEPS


@pytest.fixture(scope="module")
def beps():
    return ds.beps((6, 5), 24, 40, seed=2)


def test_beps_shapes_and_dc_waveform(beps):
    data, t = beps
    assert data.shape == (6, 5, 40, 24) and data.dtype == np.complex64
    dc = t["dc_offset"]
    np.testing.assert_allclose(dc[[0, 19, 20, 39]], [10, -10, -10, 10])
    assert np.all(np.diff(dc[:20]) < 0) and np.all(np.diff(dc[20:]) > 0)
    assert [d[:2] for d in beps.spec_dims] == [("DC_Offset", "V"), ("Frequency", "Hz")]
    assert beps.as_2d().shape == (30, 40 * 24)


def test_beps_loops_follow_the_loop_model(beps):
    _, t = beps
    p = t["loop_parameters"]
    assert p.shape == (6, 5, 9)
    np.testing.assert_allclose(t["loop"], ds.loop_model(t["dc_offset"], p), rtol=1e-12)
    # the projected piezoresponse amplitude * cos(phase) is the loop
    np.testing.assert_allclose(t["amplitude"] * np.cos(t["phase"]), t["loop"], atol=1e-15)
    # V- < 0 < V+ and a saturated, hysteretic loop: R+ at +v_max, R- at -v_max, both branches at V=0
    assert np.all(p[..., 2] < 0) and np.all(p[..., 3] > 0)
    np.testing.assert_allclose(t["loop"][..., 0], p[..., 0] + p[..., 1] + p[..., 4] * 10, rtol=1e-6)
    assert np.all(p[..., 4] >= -0.1) and np.all(p[..., 4] <= 0.1)
    assert np.all((p[..., 5:] >= 1e-3) & (p[..., 5:] <= 100))
    zero_down, zero_up = np.argmin(abs(t["dc_offset"][:20])), 20 + np.argmin(abs(t["dc_offset"][20:]))
    # the loop is open at V = 0: the descending branch is still above the ascending one
    assert np.all(t["loop"][..., zero_down] - t["loop"][..., zero_up] > 0.5 * p[..., 1])
    np.testing.assert_array_equal(t["switching"]["V+"], p[..., 3])


def test_beps_spectra_are_sho_of_loop_amplitude(beps):
    data, t = beps
    w0 = t["resonance_frequency"][..., None, None]
    q = t["quality_factor"][..., None, None]
    expected = _sho(t["frequency"], t["amplitude"][..., None], w0, q, t["phase"][..., None])
    np.testing.assert_allclose(t["clean"], expected, rtol=1e-12)
    resid = data - t["clean"]
    assert np.sqrt(np.mean(np.abs(resid) ** 2)) == pytest.approx(t["noise_sigma"], rel=0.05)
    assert t["noise_sigma"] == pytest.approx(0.03 * 1e-3 * 200)


# -------------------------------------------------------------------------------------------- G-mode


def test_gmode_harmonics_sit_on_their_bins():
    g = ds.gmode((3, 4), 2048, noise=0.0, interference_frequency=None, seed=1)
    data, t = g
    assert data.shape == (3, 4, 2048) and data.dtype == np.float32
    spec = np.fft.rfft(t["clean"], axis=-1)
    bins = [128, 256, 384]
    # a cosine of amplitude A_h and phase phi_h gives A_h n/2 e^{i phi_h} in its bin
    np.testing.assert_allclose(np.abs(spec[..., bins]) * 2 / 2048, t["harmonic_amplitudes"], rtol=1e-9)
    np.testing.assert_allclose(np.angle(spec[..., bins] * np.exp(-1j * t["harmonic_phases"])), 0, atol=1e-9)
    others = np.delete(np.abs(spec), bins, axis=-1)
    assert others.max() < 1e-9 * np.abs(spec).max()
    np.testing.assert_allclose(t["harmonic_amplitudes"][..., 1] / t["harmonic_amplitudes"][..., 0], 0.3)
    np.testing.assert_allclose(data, t["clean"], rtol=1e-6, atol=1e-6)


def test_gmode_noise_and_interference():
    data, t = ds.gmode((4, 4), 4096, seed=5)
    resid = data - t["clean"] - t["interference"]
    assert resid.std() == pytest.approx(t["noise_sigma"], rel=0.02)
    spec = np.abs(np.fft.rfft(t["interference"]))
    freqs = np.fft.rfftfreq(4096, 1 / t["sample_rate"])
    assert freqs[np.argmax(spec)] == pytest.approx(210e3, abs=freqs[1])
    np.testing.assert_allclose(t["interference"], 0.3 * np.sin(2 * np.pi * 210e3 * t["time"]), atol=1e-12)


def test_gmode_rejects_aliasing():
    with pytest.raises(ValueError, match="Nyquist"):
        ds.gmode(excitation_frequency=200e3, harmonics=(0.3, 0.1))


# ---------------------------------------------------------------------------------------------- STS


def test_dynes_dos_analytic_points():
    gap, gamma = 1.5e-3, 0.1e-3
    # at E = 0: i Gamma / sqrt(-Gamma**2 - Delta**2) -> Gamma / sqrt(Gamma**2 + Delta**2)
    assert ds.dynes_dos(0.0, gap, gamma) == pytest.approx(gamma / np.hypot(gamma, gap), rel=1e-12)
    # far outside the gap: 1 + Delta**2 / (2 E**2) to leading order; symmetric in E
    e = 30 * gap
    assert ds.dynes_dos(e, gap, gamma) == pytest.approx(1 + gap**2 / (2 * e**2), rel=1e-3)
    assert ds.dynes_dos(-e, gap, gamma) == ds.dynes_dos(e, gap, gamma)


@pytest.fixture(scope="module")
def sts():
    return ds.sts_grid((6, 7), 401, seed=3)


def test_sts_grid_didv_and_coherence_peaks(sts):
    data, t = sts
    assert data.shape == (6, 7, 401) and data.dtype == np.float32
    assert sts.spec_dims[0][:2] == ("Bias", "V") and (sts.quantity, sts.units) == ("Current", "A")
    v, gap, gamma = t["bias"], t["gap"][..., None], t["broadening"]
    z = np.abs(v) + 1j * gamma
    np.testing.assert_allclose(t["didv"], 1e-9 * np.real(z / np.sqrt(z**2 - gap**2)), rtol=1e-12)
    # the coherence peaks sit at V = +-Delta (to a bias step plus the broadening)
    pos = v > 0
    peak = v[pos][np.argmax(t["didv"][..., pos], axis=-1)]
    assert np.all(np.abs(peak - t["gap"]) <= (v[1] - v[0]) + gamma)
    # two domains of gap 0.7 and 1.3 times 1.5 meV (with +-3 % smooth variation)
    for k, g in enumerate([0.7 * 1.5e-3, 1.3 * 1.5e-3]):
        np.testing.assert_allclose(t["gap"][t["domains"] == k], g, rtol=0.15)


def test_sts_grid_current_is_the_integral_of_didv(sts):
    data, t = sts
    i = t["clean"]
    mid = len(t["bias"]) // 2
    np.testing.assert_allclose(i[..., mid], 0, atol=1e-25)  # I(0) = 0 (bias 0 is on the grid)
    np.testing.assert_allclose(i, -i[..., ::-1], atol=1e-22)  # odd in V
    grad = np.gradient(i, t["bias"], axis=-1)
    away = np.abs(np.abs(t["bias"]) - t["gap"][..., None]) > 5 * t["broadening"]
    np.testing.assert_allclose(grad[away], t["didv"][away], rtol=0.02, atol=1e-12)
    # normal-state slope at the edges: I(v_max) ~ G_N v_max (the gap only shifts it slightly)
    assert i[..., -1] == pytest.approx(np.full(i.shape[:2], 1e-9 * 10e-3), rel=0.05)
    assert (data - i).std() == pytest.approx(t["noise_sigma"], rel=0.05)
    assert t["noise_sigma"] == pytest.approx(0.01 * 1e-9 * 10e-3)


def test_sts_grid_rejects_a_gap_beyond_the_bias_range():
    with pytest.raises(ValueError, match="gap must be smaller than v_max"):
        ds.sts_grid(gap=20e-3)


# ------------------------------------------------------------------------------------------ lattice


def test_lattice_image_reciprocal_lattice_and_atoms():
    img = ds.lattice_image((128, 128), spacing=8.0, angle=0.0, noise=0.0, background=0.0, vacancy_fraction=0)
    data, t = img
    # with no rotation and spacing 8, the corner sublattice alone has peaks at k = 128/8 = 16 cycles,
    # the centred second sublattice cancels half of them: the first surviving peaks sit at (16, 16)
    power = np.abs(np.fft.fft2(t["clean"] - t["clean"].mean()))
    assert power[16, 16] > 0.1 * power.max()
    assert power[16, 0] < 0.5 * power[16, 16]  # 1 - 0.5 of the intensity survives there
    np.testing.assert_allclose(t["lattice_vectors"], [[0, 8], [8, 0]], atol=1e-12)
    # the clean image peaks on the atoms: pixel values at corner sites are ~1
    inner = t["atoms"][(t["sublattice"] == 0) & np.all((t["atoms"] > 4) & (t["atoms"] < 123), axis=1)]
    r, c = np.round(inner).astype(int).T
    np.testing.assert_allclose(t["clean"][r, c], 1.0, atol=0.02)
    np.testing.assert_array_equal(data, t["clean"].astype(np.float32))


def test_lattice_image_noise_vacancies_and_rotation():
    data, t = ds.lattice_image((96, 80), angle=20.0, vacancy_fraction=0.1, noise=0.1, seed=4)
    assert data.shape == (96, 80)
    assert (data - t["clean"]).std() == pytest.approx(0.1, rel=0.05)
    n_corner = np.sum(t["sublattice"] == 0)
    frac = len(t["vacancies"]) / (len(t["vacancies"]) + n_corner)
    assert 0.05 < frac < 0.15
    a, b = t["lattice_vectors"]
    assert np.hypot(*a) == pytest.approx(8.0) and np.dot(a, b) == pytest.approx(0.0, abs=1e-12)
    assert math.degrees(math.atan2(a[0], a[1])) == pytest.approx(20.0)
    # sites are all inside the (slightly padded) image
    assert np.all(t["atoms"] > -1) and np.all(t["atoms"][:, 0] < 96) and np.all(t["atoms"][:, 1] < 80)


# --------------------------------------------------------------------------------------------- USID


def test_write_usid_beps_round_trip(tmp_path, beps):
    h5py = pytest.importorskip("h5py")
    from pycro_gpu.io.usid import USIDataset, check_main

    path = ds.write_usid(beps, tmp_path / "beps.h5")
    with h5py.File(path, "r") as f:
        raw = f["Measurement_000/Channel_000/Raw_Data"]
        check_main(raw)
        main = USIDataset(raw)
        assert main.shape == (30, 40 * 24) and main.dtype == np.complex64
        assert (main.quantity, main.units) == ("Response", "V")
        assert [(d.name, d.units) for d in main.pos_dims] == [("X", "m"), ("Y", "m")]
        assert [(d.name, d.units) for d in main.spec_dims] == [("Frequency", "Hz"), ("DC_Offset", "V")]
        # row = y * nx + x, column = dc * n_freq + f, as in the generator's (Y, X, DC, Frequency) order
        np.testing.assert_array_equal(main[()], beps.data.reshape(30, 960))
        np.testing.assert_array_equal(main.get_n_dim_form(), beps.data.transpose(1, 0, 3, 2))
        np.testing.assert_allclose(main.spec_dims[1].values, beps.truth["dc_offset"], rtol=1e-6)
        np.testing.assert_allclose(main.pos_dims[0].values, np.arange(5) * 10e-9, rtol=1e-6)
        gt = f["Measurement_000/Ground_Truth"]
        np.testing.assert_array_equal(gt["loop_parameters"][()], beps.truth["loop_parameters"])
        np.testing.assert_array_equal(gt["switching/V+"][()], beps.truth["switching"]["V+"])
        assert gt.attrs["noise_sigma"] == beps.truth["noise_sigma"]
    with pytest.raises(FileExistsError):
        ds.write_usid(beps, path)


def test_write_usid_image_gets_one_spectral_step(tmp_path):
    h5py = pytest.importorskip("h5py")
    from pycro_gpu.io.usid import USIDataset

    img = ds.lattice_image((20, 30), seed=1)
    ds.write_usid(img, tmp_path / "img.h5", truth=False)
    ds.write_usid(img, tmp_path / "img2.h5", exclude=("clean", "atoms"))
    with h5py.File(tmp_path / "img2.h5", "r") as f:
        assert sorted(f["Measurement_000/Ground_Truth"]) == ["lattice_vectors", "sublattice", "vacancies"]
    with h5py.File(tmp_path / "img.h5", "r") as f:
        main = USIDataset(f["Measurement_000/Channel_000/Raw_Data"])
        assert main.n_dim_shape == (30, 20, 1)
        np.testing.assert_array_equal(main[()][:, 0], img.data.ravel())
        assert "Ground_Truth" not in f["Measurement_000"]
