"""Synthetic datasets with known ground truth: the embedded demo data and the test/benchmark inputs.

Every generator is deterministic for a given ``seed`` (NumPy ``default_rng``), returns host NumPy
data, and documents exactly how the data was made so tests and benchmarks can compare fits, filters
and decompositions against the truth.

=========================  ==================================================  ===========================
generator                  data (N-D, positions first)                         physics
=========================  ==================================================  ===========================
:func:`band_excitation`    ``(ny, nx, n_freq)`` complex SHO spectra, domains   SHO, :func:`sho_response`
:func:`beps`               ``(ny, nx, n_dc, n_freq)`` complex, with loops      SHO x :func:`loop_model`
:func:`gmode`              ``(ny, nx, n_samples)`` float deflection            sine + harmonics + noise
:func:`sts_grid`           ``(ny, nx, n_bias)`` float tunnelling current       Dynes superconducting gap
:func:`lattice_image`      ``(rows, cols)`` float image of atomic columns      Gaussians on a lattice
=========================  ==================================================  ===========================

Each returns a :class:`SyntheticDataset`, which unpacks as ``data, truth = band_excitation()`` and
also carries the USID description (quantity, units, position and spectroscopic dimensions) that
:func:`write_usid` writes.

The models follow ``DESIGN.md`` exactly:

* SHO: ``H(w) = A exp(i phi) w0**2 / (w**2 - i w w0 / Q - w0**2)`` (frequencies in Hz), so
  ``|H(w0)| = A Q`` and ``arg H(w0) = phi + pi/2``.
* BE loop (9 parameters ``a0..a4, b0..b3``): see :func:`loop_model`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage, special

from ._lib.checks import check_int, check_positive_float, check_seed
from .errors import ParameterError

__all__ = [
    "LOOP_PARAMETER_NAMES",
    "SHO_PARAMETER_NAMES",
    "SyntheticDataset",
    "band_excitation",
    "beps",
    "dynes_dos",
    "gmode",
    "lattice_image",
    "loop_model",
    "loop_switching_parameters",
    "sho_response",
    "sts_grid",
    "write_usid",
]

#: Names (with units) of the SHO parameters, in the order of the compound results of BE tools.
SHO_PARAMETER_NAMES = ("Amplitude [V]", "Frequency [Hz]", "Quality Factor", "Phase [rad]")
#: Names of the 9 loop-model parameters, in the order of :func:`loop_model`.
LOOP_PARAMETER_NAMES = ("a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2", "b3")


@dataclass(frozen=True)
class SyntheticDataset:
    """A synthetic dataset, its ground truth and its USID description.

    Unpacks as ``data, truth = dataset``.

    Attributes
    ----------
    data : numpy.ndarray
        N-D data, position dimensions first (slowest first), then spectroscopic dimensions.
    truth : dict
        Ground truth; keys are documented by the generator.
    name : str
        Short name of the dataset kind (``"band_excitation"``, ``"beps"``, ...).
    quantity, units : str
        Physical quantity and units of ``data``.
    pos_dims, spec_dims : tuple of (name, units, values)
        Position and spectroscopic dimensions in the order of the axes of ``data`` (slowest first).
    """

    data: np.ndarray
    truth: dict[str, Any]
    name: str
    quantity: str
    units: str
    pos_dims: tuple[tuple[str, str, np.ndarray], ...] = field(default=())
    spec_dims: tuple[tuple[str, str, np.ndarray], ...] = field(default=())

    def __iter__(self):
        yield self.data
        yield self.truth

    @property
    def n_positions(self) -> int:
        """Number of positions (product of the position dimensions)."""
        return int(math.prod(len(v) for _, _, v in self.pos_dims))

    def as_2d(self) -> np.ndarray:
        """Return the data as the USID 2-D ``(n_positions, n_spectral)`` matrix (a view when possible)."""
        return self.data.reshape(self.n_positions, -1)


# ----------------------------------------------------------------------------------------------------
# models


def sho_response(frequency, amplitude, resonance, quality, phase) -> np.ndarray:
    """Simple-harmonic-oscillator response of band excitation (the model of ``DESIGN.md``).

    Parameters
    ----------
    frequency : (n_freq,) array
        Drive frequencies w (Hz).
    amplitude, resonance, quality, phase : array, broadcastable to a common shape ``S``
        A (V), w0 (Hz), Q (dimensionless, > 0) and phi (rad).

    Returns
    -------
    (*S, n_freq) complex128 array
        ``A exp(i phi) w0**2 / (w**2 - i w w0 / Q - w0**2)``.

    Notes
    -----
    At resonance ``H(w0) = i A Q exp(i phi)``: the magnitude is ``A Q`` and the phase ``phi + pi/2``.
    Far below resonance ``H -> -A exp(i phi)``. ``|H|`` peaks at ``w0 sqrt(1 - 1/(2 Q**2))``.

    Examples
    --------
    >>> import numpy as np
    >>> h = sho_response(np.array([300e3]), 1.0, 300e3, 100.0, 0.0)
    >>> round(float(abs(h[0])), 6), round(float(np.angle(h[0])), 6)
    (100.0, 1.570796)
    """
    w = np.asarray(frequency, dtype=np.float64)
    a, w0, q, phi = np.broadcast_arrays(
        *(np.asarray(p, dtype=np.float64) for p in (amplitude, resonance, quality, phase))
    )
    a, w0, q, phi = (p[..., None] for p in (a, w0, q, phi))
    return a * np.exp(1j * phi) * w0**2 / (w**2 - 1j * w * w0 / q - w0**2)


def loop_model(dc, params) -> np.ndarray:
    """The 9-parameter band-excitation hysteresis-loop model of ``DESIGN.md``.

    Parameters
    ----------
    dc : (n_dc,) array
        DC bias (V). The first ``n_dc // 2`` steps are branch 1 (the branch that switches at
        ``a2 = V-``, i.e. the descending sweep), the rest branch 2 (switching at ``a3 = V+``).
    params : (..., 9) array
        ``a0, a1, a2, a3, a4, b0, b1, b2, b3``.

    Returns
    -------
    (..., n_dc) float64 array

    Notes
    -----
    Per branch, with switching voltage ``a_sw`` and widths ``(b_lo, b_hi)`` = ``(b0, b1)`` on branch 1
    and ``(b2, b3)`` on branch 2::

        g = (b_hi - b_lo) / 2 (erf(1000 (V - a_sw)) + 1) + b_lo
        y = (g erf((V - a_sw) / g) + b_lo) / (b_lo + b_hi)
        f = a0 + a1 y + a4 V

    ``y`` rises from 0 (``V << a_sw``) to 1 (``V >> a_sw``), so each branch goes from ``R- = a0`` to
    ``R+ = a0 + a1`` (plus the linear term ``a4 V``).
    """
    v = np.asarray(dc, dtype=np.float64)
    p = np.asarray(params, dtype=np.float64)
    if p.shape[-1] != 9:
        msg = f"params must have 9 loop parameters on the last axis, got shape {p.shape}"
        raise ValueError(msg)
    half = v.shape[0] // 2
    out = []
    for vb, a_sw, b_lo, b_hi in (
        (v[:half], p[..., 2], p[..., 5], p[..., 6]),
        (v[half:], p[..., 3], p[..., 7], p[..., 8]),
    ):
        a_sw, b_lo, b_hi = a_sw[..., None], b_lo[..., None], b_hi[..., None]
        g = (b_hi - b_lo) / 2 * (special.erf(1000.0 * (vb - a_sw)) + 1) + b_lo
        y = (g * special.erf((vb - a_sw) / g) + b_lo) / (b_lo + b_hi)
        out.append(p[..., 0:1] + p[..., 1:2] * y + p[..., 4:5] * vb)
    return np.concatenate(out, axis=-1)


def loop_switching_parameters(params) -> dict[str, np.ndarray]:
    """Derived switching quantities of loop-model parameters.

    Parameters
    ----------
    params : (..., 9) array
        Loop parameters ``a0..a4, b0..b3`` (see :func:`loop_model`).

    Returns
    -------
    dict of (...) arrays
        ``V-`` = a2, ``V+`` = a3, ``Imprint`` = (V- + V+)/2, ``R+`` = a0 + a1, ``R-`` = a0,
        ``Switchable Polarization`` = a1, ``Work of Switching`` = |a3 - a2| |a1|.
    """
    p = np.asarray(params, dtype=np.float64)
    return {
        "V-": p[..., 2],
        "V+": p[..., 3],
        "Imprint": (p[..., 2] + p[..., 3]) / 2,
        "R+": p[..., 0] + p[..., 1],
        "R-": p[..., 0],
        "Switchable Polarization": p[..., 1],
        "Work of Switching": np.abs(p[..., 3] - p[..., 2]) * np.abs(p[..., 1]),
    }


# ----------------------------------------------------------------------------------------------------
# helpers


def _check_shape(shape, name: str = "shape") -> tuple[int, int]:
    """``(rows, columns)``: a pair of Python or NumPy integers >= 1 (else ``ParameterError``)."""
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") or len(shape) != 2:
        msg = f"{name} must be a pair of positive integers (rows, columns), got {shape!r}"
        raise ParameterError(msg)
    return check_int(shape[0], f"{name}[0]", minimum=1), check_int(shape[1], f"{name}[1]", minimum=1)


def _check_positive(value, name: str, *, minimum: float = 0.0, integer: bool = False):
    ok = (
        isinstance(value, (int, np.integer))
        if integer
        else isinstance(value, (int, float, np.integer, np.floating))
    )
    if not ok or isinstance(value, (bool, np.bool_)) or not value > minimum or not math.isfinite(value):
        kind = "an integer" if integer else "a number"
        msg = f"{name} must be {kind} > {minimum:g}, got {value!r}"
        raise ParameterError(msg)
    return int(value) if integer else float(value)


def _check_noise(noise) -> float:
    if isinstance(noise, (bool, np.bool_)) or not isinstance(noise, (int, float, np.integer, np.floating)):
        ok = False
    else:
        ok = math.isfinite(noise) and noise >= 0
    if not ok:
        msg = f"noise must be a finite number >= 0, got {noise!r}"
        raise ParameterError(msg)
    return float(noise)


_FLOAT = (np.float32, np.float64)
_COMPLEX = (np.complex64, np.complex128)


def _check_dtype(dtype, allowed: tuple[type, type]) -> np.dtype:
    """``numpy.dtype(dtype)``, one of the two ``allowed`` types."""
    dtype = np.dtype(dtype)
    if dtype not in allowed:
        msg = f"dtype must be {np.dtype(allowed[0])} or {np.dtype(allowed[1])}, got {dtype}"
        raise ValueError(msg)
    return dtype


def _check_sho(center_frequency, bandwidth, amplitude, quality) -> tuple[float, float, float, float]:
    """Checked SHO band (Hz), mean amplitude and quality of :func:`band_excitation` and :func:`beps`."""
    center_frequency = _check_positive(center_frequency, "center_frequency")
    bandwidth = _check_positive(bandwidth, "bandwidth")
    if bandwidth >= center_frequency:
        msg = f"bandwidth must be smaller than center_frequency ({center_frequency:g} Hz), got {bandwidth!r}"
        raise ValueError(msg)
    amplitude = _check_positive(amplitude, "amplitude")
    quality = _check_positive(quality, "quality", minimum=0.5)
    return center_frequency, bandwidth, amplitude, quality


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], corr: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field with correlation length ``corr`` pixels."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=corr, mode="wrap")
    f = f - f.mean()
    sd = f.std()
    return f / sd if sd > 0 else f


def _variation(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """The slow variation over a map: :func:`_smooth_field` with a correlation length of a quarter of it."""
    return _smooth_field(rng, shape, max(shape) / 4)


def _resonance(
    rng: np.random.Generator, shape: tuple[int, int], center: float, bandwidth: float
) -> np.ndarray:
    """Resonance frequency map: ``center + 0.12 bandwidth * field``, the shift clipped to +-0.3 bandwidth."""
    return center + np.clip(0.12 * bandwidth * _variation(rng, shape), -0.3 * bandwidth, 0.3 * bandwidth)


def _domains(rng: np.random.Generator, shape: tuple[int, int], n_domains: int) -> np.ndarray:
    """Integer domain labels 0..n-1 from quantiles of a smooth random field (equal area shares)."""
    corr = max(shape) / 6.0
    f = _smooth_field(rng, shape, corr)
    if n_domains == 1:
        return np.zeros(shape, dtype=np.int64)
    edges = np.quantile(f, np.linspace(0, 1, n_domains + 1)[1:-1])
    return np.digitize(f, edges).astype(np.int64)


def _wall_distance(labels: np.ndarray) -> np.ndarray:
    """Distance (pixels) of each pixel to the nearest pixel that touches another domain."""
    wall = np.zeros(labels.shape, dtype=bool)
    rows = labels[1:, :] != labels[:-1, :]
    cols = labels[:, 1:] != labels[:, :-1]
    wall[1:, :] |= rows
    wall[:-1, :] |= rows
    wall[:, 1:] |= cols
    wall[:, :-1] |= cols
    if not wall.any():
        return np.full(labels.shape, np.inf)
    return ndimage.distance_transform_edt(~wall)


def _domain_offsets(n_domains: int) -> np.ndarray:
    """``s_k``: ``n_domains`` values evenly spaced in [-1, 1] (``[0]`` for one domain)."""
    return np.array([0.0]) if n_domains == 1 else np.linspace(-1, 1, n_domains)


def _domain_values(n_domains: int, center: float, spread: float) -> np.ndarray:
    """``n_domains`` values evenly spaced in ``center * (1 +- spread)``: ``center (1 + spread s_k)``."""
    return center * (1 + spread * _domain_offsets(n_domains))


def _grid(ny: int, nx: int, step: float) -> tuple[tuple[str, str, np.ndarray], ...]:
    return (("Y", "m", np.arange(ny) * step), ("X", "m", np.arange(nx) * step))


def _add_complex_noise(rng, clean: np.ndarray, sigma: float) -> np.ndarray:
    noise = rng.standard_normal((*clean.shape, 2)) * (sigma / math.sqrt(2))
    return clean + (noise[..., 0] + 1j * noise[..., 1])


# ----------------------------------------------------------------------------------------------------
# generators


def band_excitation(
    shape=(32, 32),
    n_freq: int = 64,
    *,
    center_frequency: float = 350e3,
    bandwidth: float = 20e3,
    amplitude: float = 1e-3,
    quality: float = 200.0,
    n_domains: int = 3,
    noise: float = 0.03,
    seed: int = 0,
    dtype=np.complex64,
    pixel_size: float = 10e-9,
) -> SyntheticDataset:
    """Band-excitation SHO spectra over a 2-D grid with ferroelectric-like domains.

    Parameters
    ----------
    shape : (ny, nx) ints
        Position grid (rows Y, columns X).
    n_freq : int
        Frequency bins, evenly spaced over ``center_frequency +- bandwidth / 2``.
    center_frequency, bandwidth : float
        Band of the excitation (Hz).
    amplitude : float
        Mean SHO amplitude A (V).
    quality : float
        Mean quality factor Q.
    n_domains : int
        Number of domain kinds; domain ``k`` has phase ``-pi/2 + pi k / (n - 1)`` (``0`` for one).
    noise : float
        Complex Gaussian noise: ``E|n|**2 = (noise * median |H(w0)|)**2``, real and imaginary parts
        independent with variance ``(noise * median |H(w0)|)**2 / 2``. ``0.03`` is 3 %.
    seed : int
        Seed of ``numpy.random.default_rng``.
    dtype : {numpy.complex64, numpy.complex128}
        Data type of the spectra (the truth is float64).
    pixel_size : float
        Step of the position grid (m).

    Returns
    -------
    SyntheticDataset
        ``data``: ``(ny, nx, n_freq)`` complex spectra, ``sho_response`` of the truth plus noise.
        ``truth``: ``frequency`` (n_freq,) Hz; ``amplitude`` (V), ``resonance_frequency`` (Hz),
        ``quality_factor``, ``phase`` (rad), each ``(ny, nx)`` float64; ``domains`` (ny, nx) int labels;
        ``clean`` (ny, nx, n_freq) complex128 noise-free spectra; ``noise_sigma`` (float, V) the
        standard deviation of the complex noise.

    Notes
    -----
    Per domain ``k`` of ``n``: amplitude ``A (1 + 0.25 s_k)``, quality ``Q (1 + 0.2 s_k)`` with
    ``s_k`` evenly spaced in [-1, 1]; the amplitude drops by half at domain walls
    (``1 - 0.5 exp(-(d / 1 px)**2)`` with ``d`` the distance to the wall). The resonance frequency
    follows a smooth random field ``center_frequency + 0.12 bandwidth * field`` (clipped to the
    central 60 % of the band), like a topography-driven contact-resonance shift.

    Examples
    --------
    >>> data, truth = band_excitation((4, 5), 32, seed=1)
    >>> data.shape, data.dtype, truth["amplitude"].shape
    ((4, 5, 32), dtype('complex64'), (4, 5))
    """
    ny, nx = _check_shape(shape)
    n_freq = _check_positive(n_freq, "n_freq", minimum=3, integer=True)
    n_domains = _check_positive(n_domains, "n_domains", minimum=0, integer=True)
    center_frequency, bandwidth, amplitude, quality = _check_sho(
        center_frequency, bandwidth, amplitude, quality
    )
    noise = _check_noise(noise)
    dtype = _check_dtype(dtype, _COMPLEX)
    pixel_size = check_positive_float(pixel_size, "pixel_size")

    rng = np.random.default_rng(check_seed(seed))
    freq = np.linspace(center_frequency - bandwidth / 2, center_frequency + bandwidth / 2, n_freq)
    labels = _domains(rng, (ny, nx), n_domains)
    walls = 1.0 - 0.5 * np.exp(-(_wall_distance(labels) ** 2))
    amp = _domain_values(n_domains, amplitude, 0.25)[labels] * walls
    q = _domain_values(n_domains, quality, 0.2)[labels]
    phases = (
        np.array([0.0]) if n_domains == 1 else -np.pi / 2 + np.pi * np.arange(n_domains) / (n_domains - 1)
    )
    phi = phases[labels]
    w0 = _resonance(rng, (ny, nx), center_frequency, bandwidth)

    clean = sho_response(freq, amp, w0, q, phi)
    sigma = noise * float(np.median(amp * q))
    data = _add_complex_noise(rng, clean, sigma).astype(dtype)
    truth = {
        "frequency": freq,
        "amplitude": amp,
        "resonance_frequency": w0,
        "quality_factor": q,
        "phase": phi,
        "domains": labels,
        "clean": clean,
        "noise_sigma": sigma,
    }
    return SyntheticDataset(
        data=data,
        truth=truth,
        name="band_excitation",
        quantity="Response",
        units="V",
        pos_dims=_grid(ny, nx, pixel_size),
        spec_dims=(("Frequency", "Hz", freq),),
    )


def _triangle_dc(n_dc: int, v_max: float) -> np.ndarray:
    """One bipolar cycle: ``n_dc // 2`` steps from +v_max down to -v_max, then back up."""
    half = n_dc // 2
    down = np.linspace(v_max, -v_max, half)
    up = np.linspace(-v_max, v_max, n_dc - half)
    return np.concatenate([down, up])


def beps(
    shape=(16, 16),
    n_freq: int = 32,
    n_dc: int = 64,
    *,
    v_max: float = 10.0,
    center_frequency: float = 350e3,
    bandwidth: float = 20e3,
    amplitude: float = 1e-3,
    quality: float = 200.0,
    n_domains: int = 2,
    noise: float = 0.03,
    seed: int = 0,
    dtype=np.complex64,
    pixel_size: float = 10e-9,
) -> SyntheticDataset:
    """Band-excitation piezoresponse spectroscopy (BEPS): SHO spectra over DC bias steps with loops.

    Parameters
    ----------
    shape : (ny, nx) ints
        Position grid.
    n_freq : int
        Frequency bins per DC step (``center_frequency +- bandwidth / 2``).
    n_dc : int
        DC bias steps (>= 8): one bipolar cycle, ``n_dc // 2`` steps from ``+v_max`` down to ``-v_max``
        (loop branch 1), then back up to ``+v_max`` (branch 2), the order :func:`loop_model` expects.
    v_max : float
        Largest DC bias (V).
    center_frequency, bandwidth, amplitude, quality, noise, seed, dtype, pixel_size
        As in :func:`band_excitation`; ``amplitude`` is the saturated loop amplitude ``R``.
    n_domains : int
        Regions with different coercive voltages and imprint (switching behaviour).

    Returns
    -------
    SyntheticDataset
        ``data``: ``(ny, nx, n_dc, n_freq)`` complex spectra. ``truth``:

        * ``dc_offset`` (n_dc,) V and ``frequency`` (n_freq,) Hz;
        * ``loop_parameters`` (ny, nx, 9): ``a0..a4, b0..b3`` of :func:`loop_model`;
        * ``loop`` (ny, nx, n_dc): the noise-free piezoresponse ``loop_model(dc_offset, params)``;
        * ``amplitude`` = ``|loop|`` and ``phase`` = ``0`` where ``loop >= 0`` else ``pi``, each
          (ny, nx, n_dc); ``resonance_frequency`` and ``quality_factor`` (ny, nx), constant over DC;
          so the projected piezoresponse ``amplitude * cos(phase)`` equals ``loop``;
        * ``switching``: :func:`loop_switching_parameters` of the loop parameters;
        * ``domains`` (ny, nx) labels; ``clean`` (ny, nx, n_dc, n_freq); ``noise_sigma`` (float).

    Notes
    -----
    Loop parameters per position: saturated response ``R = amplitude (1 + 0.2 s_k)`` per domain
    (``a0 = -R``, ``a1 = 2 R``), coercive voltage ``Vc = v_max (0.35 + 0.1 s_k)``, imprint
    ``0.08 v_max * field`` (smooth random field), ``a2 = -Vc + imprint``, ``a3 = Vc + imprint``,
    slope ``a4 = 0.01 R / v_max``, widths ``b`` uniform in ``v_max * [0.06, 0.15]``.
    The noise standard deviation is ``noise * R_mean * Q`` (3 % of the typical resonance peak).
    """
    ny, nx = _check_shape(shape)
    n_freq = _check_positive(n_freq, "n_freq", minimum=3, integer=True)
    n_dc = _check_positive(n_dc, "n_dc", minimum=7, integer=True)
    v_max = _check_positive(v_max, "v_max")
    n_domains = _check_positive(n_domains, "n_domains", minimum=0, integer=True)
    center_frequency, bandwidth, amplitude, quality = _check_sho(
        center_frequency, bandwidth, amplitude, quality
    )
    noise = _check_noise(noise)
    dtype = _check_dtype(dtype, _COMPLEX)
    pixel_size = check_positive_float(pixel_size, "pixel_size")

    rng = np.random.default_rng(check_seed(seed))
    freq = np.linspace(center_frequency - bandwidth / 2, center_frequency + bandwidth / 2, n_freq)
    dc = _triangle_dc(n_dc, v_max)
    labels = _domains(rng, (ny, nx), n_domains)
    s = _domain_offsets(n_domains)
    r = amplitude * (1 + 0.2 * s[labels])
    vc = v_max * (0.35 + 0.1 * s[labels])
    imprint = 0.08 * v_max * _variation(rng, (ny, nx))
    widths = rng.uniform(0.06, 0.15, size=(ny, nx, 4)) * v_max
    params = np.stack(
        [-r, 2 * r, -vc + imprint, vc + imprint, 0.01 * r / v_max, *np.moveaxis(widths, -1, 0)], axis=-1
    )
    loop = loop_model(dc, params)
    amp = np.abs(loop)
    phi = np.where(loop >= 0, 0.0, np.pi)
    w0 = _resonance(rng, (ny, nx), center_frequency, bandwidth)
    q = quality * (1 + 0.1 * _variation(rng, (ny, nx))).clip(0.5, 1.5)
    clean = sho_response(freq, amp, w0[..., None], q[..., None], phi)
    sigma = noise * amplitude * quality
    data = _add_complex_noise(rng, clean, sigma).astype(dtype)
    truth = {
        "dc_offset": dc,
        "frequency": freq,
        "loop_parameters": params,
        "loop": loop,
        "amplitude": amp,
        "phase": phi,
        "resonance_frequency": w0,
        "quality_factor": q,
        "switching": loop_switching_parameters(params),
        "domains": labels,
        "clean": clean,
        "noise_sigma": sigma,
    }
    return SyntheticDataset(
        data=data,
        truth=truth,
        name="beps",
        quantity="Response",
        units="V",
        pos_dims=_grid(ny, nx, pixel_size),
        spec_dims=(("DC_Offset", "V", dc), ("Frequency", "Hz", freq)),
    )


def gmode(
    shape=(16, 16),
    n_samples: int = 2048,
    *,
    sample_rate: float = 1e6,
    excitation_frequency: float = 62.5e3,
    amplitude: float = 1.0,
    harmonics=(0.3, 0.1),
    n_domains: int = 2,
    noise: float = 0.5,
    interference_frequency: float | None = 210e3,
    interference_amplitude: float = 0.3,
    seed: int = 0,
    dtype=np.float32,
    pixel_size: float = 10e-9,
) -> SyntheticDataset:
    """G-mode-like deflection time series: excitation sine plus harmonics, interference and noise.

    Parameters
    ----------
    shape : (ny, nx) ints
        Position grid; one time series per position.
    n_samples : int
        Samples per position.
    sample_rate : float
        Sampling rate (Hz).
    excitation_frequency : float
        Drive frequency f (Hz); ``f * n_samples / sample_rate`` should be an integer for the
        response to sit on exact FFT bins (the default: bin 128 of 2048).
    amplitude : float
        Mean amplitude of the response at f (V).
    harmonics : sequence of float
        Relative amplitudes of the harmonics 2f, 3f, ... (times the local fundamental amplitude).
    n_domains : int
        Domain kinds: domain ``k`` has fundamental amplitude ``amplitude (1 + 0.3 s_k)`` and phase
        ``pi k`` (up/down polarization); harmonic ``h`` has phase ``h`` times that.
    noise : float
        Standard deviation of the white Gaussian noise, relative to ``amplitude``.
    interference_frequency : float or None
        Frequency of a spurious tone (Hz, not a harmonic) added everywhere; ``None`` for none.
    interference_amplitude : float
        Its amplitude relative to ``amplitude``.
    seed, dtype, pixel_size
        As in :func:`band_excitation` (``dtype`` float32 or float64).

    Returns
    -------
    SyntheticDataset
        ``data``: ``(ny, nx, n_samples)`` deflection (V). ``truth``: ``time`` (n_samples,) s;
        ``clean`` (ny, nx, n_samples) float64 the response without noise and interference;
        ``harmonic_amplitudes`` and ``harmonic_phases`` (ny, nx, 1 + len(harmonics)) for f, 2f, ...;
        ``domains`` (ny, nx); ``excitation_frequency``, ``sample_rate``, ``noise_sigma`` (V),
        ``interference`` (n_samples,) the spurious tone (zeros when ``None``).

    Notes
    -----
    ``clean(t) = sum_h A_h cos(2 pi h f t + phi_h)`` for ``h = 1, 2, ...``.
    """
    ny, nx = _check_shape(shape)
    n_samples = _check_positive(n_samples, "n_samples", minimum=7, integer=True)
    sample_rate = _check_positive(sample_rate, "sample_rate")
    excitation_frequency = _check_positive(excitation_frequency, "excitation_frequency")
    n_harm = 1 + len(harmonics)
    if n_harm * excitation_frequency >= sample_rate / 2:
        msg = (
            f"excitation_frequency x {n_harm} harmonics must stay below the Nyquist frequency "
            f"{sample_rate / 2:g} Hz, got excitation_frequency={excitation_frequency!r}"
        )
        raise ValueError(msg)
    if interference_frequency is not None:
        interference_frequency = _check_positive(interference_frequency, "interference_frequency")
        if interference_frequency >= sample_rate / 2:
            msg = (
                f"interference_frequency must be below {sample_rate / 2:g} Hz, got {interference_frequency!r}"
            )
            raise ValueError(msg)
    amplitude = _check_positive(amplitude, "amplitude")
    n_domains = _check_positive(n_domains, "n_domains", minimum=0, integer=True)
    noise = _check_noise(noise)
    dtype = _check_dtype(dtype, _FLOAT)
    pixel_size = check_positive_float(pixel_size, "pixel_size")

    rng = np.random.default_rng(check_seed(seed))
    t = np.arange(n_samples) / sample_rate
    labels = _domains(rng, (ny, nx), n_domains)
    a1 = _domain_values(n_domains, amplitude, 0.3)[labels] * (1 + 0.05 * _variation(rng, (ny, nx)))
    phi1 = np.pi * labels.astype(np.float64)
    rel = np.array([1.0, *(float(h) for h in harmonics)])
    orders = np.arange(1, n_harm + 1)
    amps = a1[..., None] * rel
    phases = np.angle(np.exp(1j * phi1[..., None] * orders))
    clean = np.zeros((ny, nx, n_samples))
    for h in range(n_harm):
        clean += amps[..., h : h + 1] * np.cos(
            2 * np.pi * orders[h] * excitation_frequency * t + phases[..., h : h + 1]
        )
    interference = np.zeros(n_samples)
    if interference_frequency is not None:
        interference = interference_amplitude * amplitude * np.sin(2 * np.pi * interference_frequency * t)
    sigma = noise * amplitude
    data = (clean + interference + sigma * rng.standard_normal(clean.shape)).astype(dtype)
    truth = {
        "time": t,
        "clean": clean,
        "harmonic_amplitudes": amps,
        "harmonic_phases": phases,
        "domains": labels,
        "excitation_frequency": excitation_frequency,
        "sample_rate": sample_rate,
        "noise_sigma": sigma,
        "interference": interference,
    }
    return SyntheticDataset(
        data=data,
        truth=truth,
        name="gmode",
        quantity="Deflection",
        units="V",
        pos_dims=_grid(ny, nx, pixel_size),
        spec_dims=(("Time", "s", t),),
    )


def dynes_dos(energy, gap, broadening) -> np.ndarray:
    """Dynes density of states of a superconductor, normalised to the normal state.

    Parameters
    ----------
    energy : array
        Energy relative to the Fermi level (eV; a bias in V times e).
    gap, broadening : array, broadcastable with ``energy``
        Gap ``Delta`` and Dynes broadening ``Gamma`` (eV, > 0).

    Returns
    -------
    float64 array
        ``N(E) = Re[(|E| + i Gamma) / sqrt((|E| + i Gamma)**2 - Delta**2)]``: 0 deep in the gap (for a
        small ``Gamma``), coherence peaks at ``|E| = Delta``, 1 far from it.
    """
    z = np.abs(np.asarray(energy, dtype=np.float64)) + 1j * np.asarray(broadening, dtype=np.float64)
    return np.real(z / np.sqrt(z**2 - np.asarray(gap, dtype=np.float64) ** 2))


def sts_grid(
    shape=(16, 16),
    n_bias: int = 201,
    *,
    v_max: float = 10e-3,
    gap: float = 1.5e-3,
    broadening: float = 0.1e-3,
    conductance: float = 1e-9,
    n_domains: int = 2,
    noise: float = 0.01,
    seed: int = 0,
    dtype=np.float32,
    pixel_size: float = 1e-9,
) -> SyntheticDataset:
    """Scanning tunnelling spectroscopy on a grid: I(V) curves of a superconductor with gap variations.

    Parameters
    ----------
    shape : (ny, nx) ints
        Position grid.
    n_bias : int
        Bias steps, evenly spaced over ``[-v_max, v_max]`` (V).
    gap : float
        Mean superconducting gap ``Delta`` (eV, i.e. V of bias).
    broadening : float
        Dynes broadening ``Gamma`` (eV).
    conductance : float
        Normal-state conductance ``G_N`` (S).
    n_domains : int
        Regions of different gap: domain ``k`` has ``gap (1 + 0.3 s_k)``, ``s_k`` evenly in [-1, 1],
        plus 3 % smooth variation.
    noise : float
        White Gaussian noise on the current, relative to ``G_N v_max``.
    seed, dtype, pixel_size
        As in :func:`band_excitation` (``dtype`` float32 or float64).

    Returns
    -------
    SyntheticDataset
        ``data``: ``(ny, nx, n_bias)`` current (A). ``truth``: ``bias`` (n_bias,) V; ``gap`` (ny, nx) V;
        ``broadening`` (float); ``didv`` (ny, nx, n_bias) the noise-free differential conductance (S),
        ``G_N dynes_dos(bias, gap, broadening)``; ``clean`` (ny, nx, n_bias) the noise-free current, the
        integral of ``didv`` from 0 (trapezoids, so ``I(0) = 0`` and ``I(-V) = -I(V)``); ``domains``;
        ``noise_sigma`` (A).
    """
    ny, nx = _check_shape(shape)
    n_bias = _check_positive(n_bias, "n_bias", minimum=4, integer=True)
    v_max = _check_positive(v_max, "v_max")
    gap = _check_positive(gap, "gap")
    if gap >= v_max:
        msg = f"gap must be smaller than v_max ({v_max:g} V) to show the coherence peaks, got {gap!r}"
        raise ValueError(msg)
    broadening = _check_positive(broadening, "broadening")
    conductance = _check_positive(conductance, "conductance")
    n_domains = _check_positive(n_domains, "n_domains", minimum=0, integer=True)
    noise = _check_noise(noise)
    dtype = _check_dtype(dtype, _FLOAT)
    pixel_size = check_positive_float(pixel_size, "pixel_size")

    rng = np.random.default_rng(check_seed(seed))
    bias = np.linspace(-v_max, v_max, n_bias)
    labels = _domains(rng, (ny, nx), n_domains)
    gaps = _domain_values(n_domains, gap, 0.3)[labels] * (1 + 0.03 * _variation(rng, (ny, nx)))
    didv = conductance * dynes_dos(bias, gaps[..., None], broadening)
    # current: integral of dI/dV from V = 0, by trapezoids on each side of the (symmetric) bias grid
    steps = (didv[..., 1:] + didv[..., :-1]) / 2 * np.diff(bias)
    cum = np.concatenate([np.zeros((ny, nx, 1)), np.cumsum(steps, axis=-1)], axis=-1)
    zero = np.interp(0.0, bias, np.arange(n_bias))
    lo, frac = int(np.floor(zero)), zero - np.floor(zero)
    i0 = cum[..., lo] + frac * (cum[..., min(lo + 1, n_bias - 1)] - cum[..., lo])
    clean = cum - i0[..., None]
    sigma = noise * conductance * v_max
    data = (clean + sigma * rng.standard_normal(clean.shape)).astype(dtype)
    truth = {
        "bias": bias,
        "gap": gaps,
        "broadening": broadening,
        "conductance": conductance,
        "didv": didv,
        "clean": clean,
        "domains": labels,
        "noise_sigma": sigma,
    }
    return SyntheticDataset(
        data=data,
        truth=truth,
        name="sts_grid",
        quantity="Current",
        units="A",
        pos_dims=_grid(ny, nx, pixel_size),
        spec_dims=(("Bias", "V", bias),),
    )


def lattice_image(
    shape=(128, 128),
    *,
    spacing: float = 8.0,
    angle: float = 10.0,
    atom_sigma: float = 1.2,
    second_intensity: float = 0.5,
    vacancy_fraction: float = 0.02,
    noise: float = 0.1,
    background: float = 0.2,
    seed: int = 0,
    dtype=np.float32,
    pixel_size: float = 0.05e-9,
) -> SyntheticDataset:
    """Noisy image of a square lattice of atomic columns with a second sublattice and vacancies.

    Parameters
    ----------
    shape : (rows, cols) ints
        Image size (pixels).
    spacing : float
        Lattice constant (pixels, > 2).
    angle : float
        Rotation of the lattice (degrees).
    atom_sigma : float
        Gaussian width of a column (pixels).
    second_intensity : float
        Peak intensity of the body-centre sublattice (the corner sublattice has 1); 0 for none.
    vacancy_fraction : float
        Fraction of corner-sublattice sites left empty, in [0, 1).
    noise : float
        Standard deviation of the additive white Gaussian noise (the corner columns peak at 1).
    background : float
        Amplitude of a linear background ramp across the image.
    seed, dtype, pixel_size
        As in :func:`band_excitation` (``dtype`` float32 or float64; ``pixel_size`` in m).

    Returns
    -------
    SyntheticDataset
        ``data``: ``(rows, cols)`` intensity. ``truth``: ``clean`` (rows, cols) float64 image without
        noise; ``atoms`` (n, 2) float64 (row, col) column positions in pixels; ``sublattice`` (n,)
        int 0 (corner) or 1 (centre); ``vacancies`` (m, 2) empty corner sites; ``lattice_vectors``
        (2, 2) (row, col) pixels; ``noise_sigma``.
    """
    rows, cols = _check_shape(shape)
    spacing = _check_positive(spacing, "spacing", minimum=2.0)
    atom_sigma = _check_positive(atom_sigma, "atom_sigma")
    if not 0 <= vacancy_fraction < 1:
        msg = f"vacancy_fraction must be in [0, 1), got {vacancy_fraction!r}"
        raise ValueError(msg)
    noise = _check_noise(noise)
    dtype = _check_dtype(dtype, _FLOAT)
    pixel_size = check_positive_float(pixel_size, "pixel_size")

    rng = np.random.default_rng(check_seed(seed))
    th = math.radians(angle)
    a = spacing * np.array([math.sin(th), math.cos(th)])  # (row, col)
    b = spacing * np.array([math.cos(th), -math.sin(th)])
    vectors = np.stack([a, b])
    n = math.ceil(math.hypot(rows, cols) / spacing) + 2
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    center = np.array([rows / 2, cols / 2])

    def in_image(p: np.ndarray) -> np.ndarray:
        return p[(p[:, 0] > -1) & (p[:, 0] < rows) & (p[:, 1] > -1) & (p[:, 1] < cols)]

    corner = in_image(center + i.reshape(-1, 1) * a + j.reshape(-1, 1) * b)
    empty = rng.random(corner.shape[0]) < vacancy_fraction
    vacancies, corner = corner[empty], corner[~empty]
    sites = [corner]
    sub = [np.zeros(corner.shape[0], dtype=np.int64)]
    heights = [np.ones(corner.shape[0])]
    if second_intensity > 0:
        centre = in_image(center + (i.reshape(-1, 1) + 0.5) * a + (j.reshape(-1, 1) + 0.5) * b)
        sites.append(centre)
        sub.append(np.ones(centre.shape[0], dtype=np.int64))
        heights.append(np.full(centre.shape[0], float(second_intensity)))
    atoms = np.concatenate(sites)
    sublattice = np.concatenate(sub)
    height = np.concatenate(heights)

    rr, cc = np.arange(rows, dtype=np.float64), np.arange(cols, dtype=np.float64)
    # separable Gaussians: each atom is an outer product of a row and a column profile
    gr = np.exp(-((rr[None, :] - atoms[:, 0:1]) ** 2) / (2 * atom_sigma**2))
    gc = np.exp(-((cc[None, :] - atoms[:, 1:2]) ** 2) / (2 * atom_sigma**2))
    clean = np.einsum("n,nr,nc->rc", height, gr, gc)
    clean += background * (rr[:, None] / max(rows - 1, 1) + cc[None, :] / max(cols - 1, 1)) / 2
    sigma = noise
    data = (clean + sigma * rng.standard_normal(clean.shape)).astype(dtype)
    truth = {
        "clean": clean,
        "atoms": atoms,
        "sublattice": sublattice,
        "vacancies": vacancies,
        "lattice_vectors": vectors,
        "noise_sigma": sigma,
    }
    return SyntheticDataset(
        data=data,
        truth=truth,
        name="lattice_image",
        quantity="Intensity",
        units="a.u.",
        pos_dims=_grid(rows, cols, pixel_size),
        spec_dims=(),
    )


# ----------------------------------------------------------------------------------------------------
# USID output


def write_usid(dataset: SyntheticDataset, path, *, mode: str = "w-", truth: bool = True, exclude=()):
    """Write a synthetic dataset as a USID HDF5 file at ``/Measurement_000/Channel_000/Raw_Data``.

    Parameters
    ----------
    dataset : SyntheticDataset
        From one of the generators of this module.
    path : str or pathlib.Path
        File to create.
    mode : str
        h5py file mode (default ``"w-"``: fail if the file exists; ``"w"`` overwrites).
    truth : bool
        Also store the ground truth: arrays in the group ``/Measurement_000/Ground_Truth`` (nested
        dicts as sub-groups), scalars as its attributes.
    exclude : sequence of str
        Ground-truth keys not to store (e.g. ``("clean",)``: the noise-free data is as large as the data).

    Returns
    -------
    pathlib.Path
        The file written. The Main dataset is 2-D ``(n_positions, n_spectral)``, the data of
        :meth:`SyntheticDataset.as_2d`, with the position dimensions (e.g. X, Y in m) and spectroscopic
        dimensions (e.g. Frequency in Hz, DC_Offset in V) of the dataset, listed fastest-varying first as
        USID stores them. An image gets one spectroscopic step (``Intensity``, 1 value).

    Examples
    --------
    >>> import h5py, tempfile, pathlib
    >>> from pycro_gpu.io.usid import find_main_datasets
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "be.h5"
    >>> _ = write_usid(band_excitation((4, 6), 16), path)
    >>> with h5py.File(path, "r") as f:
    ...     main = find_main_datasets(f)[0]
    ...     main.shape, main.n_dim_labels
    ((24, 16), ['X', 'Y', 'Frequency'])
    """
    from pathlib import Path

    import h5py

    from .io.usid import Dimension, write_main

    path = Path(path)
    pos = [Dimension(n, u, np.asarray(v)) for n, u, v in reversed(dataset.pos_dims)]
    spec = [Dimension(n, u, np.asarray(v)) for n, u, v in reversed(dataset.spec_dims)]
    if not spec:
        spec = [Dimension(dataset.quantity, dataset.units, 1)]
    with h5py.File(path, mode) as f:
        meas = f.create_group("Measurement_000")
        meas.attrs["data_type"] = dataset.name
        meas.attrs["generator"] = f"pycro_gpu.datasets.{dataset.name}"
        chan = meas.create_group("Channel_000")
        write_main(
            chan,
            "Raw_Data",
            dataset.as_2d(),
            pos_dims=pos,
            spec_dims=spec,
            quantity=dataset.quantity,
            units=dataset.units,
        )
        if truth:
            kept = {k: v for k, v in dataset.truth.items() if k not in set(exclude)}
            _write_truth(meas.create_group("Ground_Truth"), kept)
    return path


def _write_truth(group, truth: dict[str, Any]) -> None:
    for key, value in truth.items():
        if isinstance(value, dict):
            _write_truth(group.create_group(key), value)
        elif isinstance(value, np.ndarray):
            group.create_dataset(key, data=value)
        else:
            group.attrs[key] = value
