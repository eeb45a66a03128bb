"""Frequency-domain filters: 1-D filters of long time series (G-mode SPM) and 2-D image filters.

1-D filters act on the one-sided spectrum of real signals (``rfft`` of the last axis): a filter is a
real weight per frequency bin ``k * samp_rate / signal_length``, ``k = 0 .. signal_length // 2``.
Filters combine by multiplication (:class:`CompositeFilter`). A noise floor per signal
(:func:`get_noise_floor`) lets :func:`fft_filter` zero the bins that hold only noise.

Filter *design* (the weights, ``O(n)`` values computed once) runs on the host in float64 with NumPy,
``math.erf`` and SciPy's ``firwin``; filter *application* (FFTs, mask, threshold, inverse FFT over a batch
of signals) runs on the arrays' own backend: pocketfft through ``scipy.fft`` with worker threads for NumPy
arrays (measured faster than ``numpy.fft``, see ``benchmarks/bench_filters.py``), cuFFT for CuPy, the
namespace's ``fft`` module otherwise. The mask multiply and the threshold are fused into one pass by the
kernel :func:`pycro_gpu.kernels.apply_spectral_mask` (numba, CPU and CUDA) where the arrays allow it,
with a plain array-API path for every other namespace. A light job (:data:`LIGHT_JOB_SAMPLES` samples in
all) of NumPy arrays takes ``numpy.fft`` and the array-API path: importing ``scipy.fft`` and numba would
cost it more than they save.

2-D masks (Gaussian, Butterworth, notch) are written against the array API and act on ``rfftn`` of the
last two axes of images; :func:`filter_image` applies them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .._lib.checks import check_int, check_positive_float, check_real, check_real_vector
from .._lib.typing import Array, Device, Namespace
from ..backend import array_namespace, device_of, from_host, is_cupy_namespace, is_numpy_namespace
from ..errors import ParameterError

__all__ = [
    "BandPassFilter",
    "CompositeFilter",
    "FrequencyFilter",
    "HarmonicPassFilter",
    "LowPassFilter",
    "NoiseBandFilter",
    "are_compatible_filters",
    "build_composite_filter",
    "butterworth_mask",
    "fft_filter",
    "filter_image",
    "filter_spectra",
    "gaussian_mask",
    "get_noise_floor",
    "image_frequencies",
    "irfft",
    "notch_mask",
    "rfft",
    "threshold_spectrum",
]

# --------------------------------------------------------------------------------------------------
# FFT backends
# --------------------------------------------------------------------------------------------------


#: A job over at most this many signal samples in all is light: NumPy's own FFT and the array-API mask and
#: noise floor finish it sooner than the imports of ``scipy.fft`` (0.3 s) and of the numba kernels (0.5 s)
#: take. ``pycro-gpu filter`` on G-mode files of 65536 samples per signal, whole processes, 2-core VM:
#: light 1.60-1.71 s against 1.90-2.12 s at 512 signals, 3.22-3.47 s against 2.58-2.90 s at 1024.
LIGHT_JOB_SAMPLES = 512 * 65536


def rfft(x: Array, *, xp: Namespace | None = None, light: bool = False) -> Array:
    """One-sided FFT of the last axis of real ``x`` on the backend of ``x``.

    Parameters
    ----------
    x : (..., n) real array
    light : bool, optional
        NumPy arrays: ``numpy.fft`` on one thread instead of ``scipy.fft`` with a thread per core (for a
        light job, see :data:`LIGHT_JOB_SAMPLES`, where importing ``scipy.fft`` costs more than it saves).

    Returns
    -------
    (..., n // 2 + 1) complex array
        ``complex64`` for ``float32`` input, ``complex128`` for ``float64``.
    """
    if xp is None:
        xp = array_namespace(x)
    if is_numpy_namespace(xp):
        if light:
            cdt = np.complex64 if x.dtype == np.float32 else np.complex128
            return np.fft.rfft(x, axis=-1).astype(cdt, copy=False)  # NumPy 1.x computes in double
        import scipy.fft

        return scipy.fft.rfft(x, axis=-1, workers=-1)
    return xp.fft.rfft(x, axis=-1)


def irfft(spectra: Array, n: int, *, xp: Namespace | None = None, light: bool = False) -> Array:
    """Inverse of :func:`rfft`: real signals of length ``n`` from one-sided spectra (last axis)."""
    if xp is None:
        xp = array_namespace(spectra)
    if is_numpy_namespace(xp):
        if light:
            return np.fft.irfft(spectra, n=n, axis=-1).astype(_real_dtype(xp, spectra), copy=False)
        import scipy.fft

        return scipy.fft.irfft(spectra, n=n, axis=-1, workers=-1, overwrite_x=True)
    return xp.fft.irfft(spectra, n=n, axis=-1)


def _rfft2(x: Array, xp: Namespace) -> Array:
    if is_numpy_namespace(xp):
        import scipy.fft

        return scipy.fft.rfftn(x, axes=(-2, -1), workers=-1)
    return xp.fft.rfftn(x, axes=(-2, -1))


def _irfft2(spectra: Array, shape: tuple[int, int], xp: Namespace) -> Array:
    if is_numpy_namespace(xp):
        import scipy.fft

        return scipy.fft.irfftn(spectra, s=shape, axes=(-2, -1), workers=-1, overwrite_x=True)
    return xp.fft.irfftn(spectra, s=shape, axes=(-2, -1))


def _real_dtype(xp: Namespace, x: Array) -> Any:
    return xp.float32 if x.dtype in (xp.float32, xp.complex64) else xp.float64


# --------------------------------------------------------------------------------------------------
# 1-D frequency filters
# --------------------------------------------------------------------------------------------------


def _positive_int(value: Any, name: str) -> int:
    """``value`` as an int >= 1 (Python or NumPy integers only), else ``ParameterError`` naming ``name``."""
    return check_int(value, name, minimum=1)


class FrequencyFilter:
    """Base class of 1-D frequency filters on the one-sided spectrum of real signals.

    Parameters
    ----------
    signal_length : int
        Number of samples ``n`` of each signal.
    samp_rate : float
        Sampling rate (Hz); every frequency parameter is in the same unit.

    Notes
    -----
    Subclasses implement ``_design(freqs) -> weights`` on the host in float64 over the bin frequencies
    ``freqs = k * samp_rate / n``, ``k = 0 .. n // 2``.
    """

    kind = "frequency"

    def __init__(self, signal_length: int, samp_rate: float) -> None:
        self.signal_length = _positive_int(signal_length, "signal_length")
        self.samp_rate = check_positive_float(samp_rate, "samp_rate")
        self._host: np.ndarray | None = None

    @property
    def n_bins(self) -> int:
        """Number of one-sided frequency bins, ``signal_length // 2 + 1``."""
        return self.signal_length // 2 + 1

    @property
    def nyquist(self) -> float:
        return 0.5 * self.samp_rate

    @property
    def frequencies(self) -> np.ndarray:
        """(n_bins,) float64 bin frequencies (host array)."""
        return np.fft.rfftfreq(self.signal_length, d=1.0 / self.samp_rate)

    def host_mask(self) -> np.ndarray:
        """(n_bins,) float64 filter weights on the host (computed once, then cached; do not modify)."""
        if self._host is None:
            self._host = np.asarray(self._design(self.frequencies), dtype=np.float64)
            self._host.setflags(write=False)
        return self._host

    def _design(self, freqs: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def mask(self, xp: Namespace | None = None, *, dtype: Any = None, device: Device = None) -> Array:
        """Filter weights as an array of namespace ``xp``.

        Parameters
        ----------
        xp : namespace, optional
            Target namespace (default: the configured backend).
        dtype : dtype, optional
            Real dtype of the weights (default float64).
        device : device, optional
            Device of the weights (default: the namespace's default device).

        Returns
        -------
        (n_bins,) real array
        """
        if xp is None:
            xp = array_namespace()
        return from_host(np.array(self.host_mask()), xp, device=device, dtype=dtype or xp.float64)

    def parameters(self) -> dict[str, Any]:
        """Parameters of the filter (JSON- and HDF5-attribute friendly), including ``kind``."""
        return {"kind": self.kind, "signal_length": self.signal_length, "samp_rate": self.samp_rate}

    def is_compatible(self, other: FrequencyFilter) -> bool:
        """True when ``other`` acts on signals of the same length and sampling rate."""
        if not isinstance(other, FrequencyFilter):
            msg = f"other must be a FrequencyFilter, got {type(other).__name__}"
            raise TypeError(msg)
        return self.signal_length == other.signal_length and self.samp_rate == other.samp_rate

    def __mul__(self, other: FrequencyFilter) -> CompositeFilter:
        return CompositeFilter([self, other])

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.parameters().items() if k != "kind")
        return f"{type(self).__name__}({args})"


def _erf_step_down(freqs: np.ndarray, f_start: float, f_stop: float) -> np.ndarray:
    """1 below ``f_start``, 0 above ``f_stop``, an erf roll-off over ``t in [-2.5, 2.5]`` between.

    ``math.erf`` element by element (the roll-off holds a few thousand bins at most): importing
    ``scipy.special`` for it cost 0.3-0.5 s of every filter command, more than the filtering of a small file.
    """
    out = np.where(freqs <= f_start, 1.0, 0.0)
    width = f_stop - f_start
    if width > 0:
        inside = (freqs > f_start) & (freqs < f_stop)
        t = 5.0 * (freqs[inside] - f_start) / width - 2.5
        erf_t = np.fromiter((math.erf(v) for v in t.tolist()), dtype=np.float64, count=t.size)
        out[inside] = 0.5 * (1.0 - erf_t / math.erf(2.5))
    return out


class LowPassFilter(FrequencyFilter):
    """Low-pass filter with an erf roll-off.

    Parameters
    ----------
    signal_length, samp_rate
        See :class:`FrequencyFilter`.
    f_cutoff : float
        Frequency above which every bin is zero; must be below the Nyquist frequency.
    roll_off : float, optional
        Width of the roll-off as a fraction of ``f_cutoff`` (0 <= roll_off < 1): the weight is exactly 1
        up to ``f_cutoff * (1 - roll_off)`` and falls to exactly 0 at ``f_cutoff``.

    Notes
    -----
    Between ``f1 = f_cutoff (1 - roll_off)`` and ``f_cutoff`` the weight is
    ``(1 - erf(t) / erf(2.5)) / 2`` with ``t = 5 (f - f1) / (f_cutoff - f1) - 2.5``, the erf edge of
    pycroscopy's ``LowPassFilter`` rescaled to meet 1 and 0 exactly (no step at either end).

    Examples
    --------
    >>> from pycro_gpu.filters import LowPassFilter
    >>> lpf = LowPassFilter(1000, 1e6, f_cutoff=100e3, roll_off=0.1)
    >>> w = lpf.host_mask()
    >>> float(w[89]), float(w[95]), float(w[100])
    (1.0, 0.5, 0.0)
    """

    kind = "low_pass"

    def __init__(self, signal_length: int, samp_rate: float, f_cutoff: float, roll_off: float = 0.05) -> None:
        super().__init__(signal_length, samp_rate)
        self.f_cutoff = check_positive_float(f_cutoff, "f_cutoff")
        if self.f_cutoff >= self.nyquist:
            msg = f"f_cutoff must be below the Nyquist frequency {self.nyquist:g}, got {f_cutoff!r}"
            raise ParameterError(msg)
        self.roll_off = check_real(roll_off, "roll_off", minimum=0, maximum=1, max_open=True)

    def _design(self, freqs: np.ndarray) -> np.ndarray:
        return _erf_step_down(freqs, self.f_cutoff * (1 - self.roll_off), self.f_cutoff)

    def parameters(self) -> dict[str, Any]:
        return {**super().parameters(), "f_cutoff": self.f_cutoff, "roll_off": self.roll_off}


def _bin_tolerance(f: FrequencyFilter) -> float:
    """Slack in Hz for band edges that fall exactly on a bin (round-off of ``k * fs / n``)."""
    return 1e-9 * f.samp_rate / f.signal_length


class BandPassFilter(FrequencyFilter):
    """Band-pass filter: a boxcar in frequency, or the magnitude response of a windowed FIR design.

    Parameters
    ----------
    signal_length, samp_rate
        See :class:`FrequencyFilter`.
    f_center : float
        Center of the pass band.
    f_width : float
        Full width of the pass band: bins with ``|f - f_center| <= f_width / 2`` pass.
    fir : bool, optional
        False (default): a boxcar, weights exactly 1 in the band and 0 outside. True: the magnitude
        ``|H(f)|`` of a Blackman-windowed FIR band-pass of ``fir_taps`` taps over the same band
        (``scipy.signal.firwin``), applied with zero phase; its stop band is below about -74 dB.
    fir_taps : int, optional
        Number of FIR taps (odd; at most ``signal_length``).
    """

    kind = "band_pass"

    def __init__(
        self,
        signal_length: int,
        samp_rate: float,
        f_center: float,
        f_width: float,
        fir: bool = False,
        fir_taps: int = 1999,
    ) -> None:
        super().__init__(signal_length, samp_rate)
        self.f_center = check_positive_float(f_center, "f_center")
        self.f_width = check_positive_float(f_width, "f_width")
        self.fir = bool(fir)
        self.fir_taps = _positive_int(fir_taps, "fir_taps")
        lo, hi = self.f_center - self.f_width / 2, self.f_center + self.f_width / 2
        if hi > self.nyquist:
            msg = f"band f_center + f_width / 2 = {hi:g} exceeds the Nyquist frequency {self.nyquist:g}"
            raise ParameterError(msg)
        if self.fir:
            if lo <= 0 or hi >= self.nyquist:
                msg = f"FIR band ({lo:g}, {hi:g}) must lie strictly between 0 and Nyquist {self.nyquist:g}"
                raise ParameterError(msg)
            if self.fir_taps > self.signal_length or self.fir_taps % 2 == 0:
                msg = f"fir_taps must be odd and at most signal_length={self.signal_length}, got {fir_taps!r}"
                raise ParameterError(msg)

    def _design(self, freqs: np.ndarray) -> np.ndarray:
        half = self.f_width / 2
        if not self.fir:
            return (np.abs(freqs - self.f_center) <= half + _bin_tolerance(self)).astype(np.float64)
        from scipy.signal import firwin

        taps = firwin(
            self.fir_taps,
            [self.f_center - half, self.f_center + half],
            pass_zero=False,
            window="blackman",
            fs=self.samp_rate,
        )
        return np.abs(np.fft.rfft(taps, n=self.signal_length))

    def parameters(self) -> dict[str, Any]:
        return {
            **super().parameters(),
            "f_center": self.f_center,
            "f_width": self.f_width,
            "fir": self.fir,
            "fir_taps": self.fir_taps,
        }


class HarmonicPassFilter(FrequencyFilter):
    """Keep bands around the first ``num_harm`` multiples of an excitation frequency, zero the rest.

    Parameters
    ----------
    signal_length, samp_rate
        See :class:`FrequencyFilter`.
    first_freq : float
        Excitation (first harmonic) frequency; must be below the Nyquist frequency.
    band_width : float
        Full width of the band kept around each harmonic ``k * first_freq``, ``k = 1 .. num_harm``.
    num_harm : int
        Number of harmonics kept (harmonics above Nyquist have no bins and are ignored).
    keep_dc : bool, optional
        Also keep the DC bin (pycroscopy's filter removes it; default False).
    """

    kind = "harmonic_pass"

    def __init__(
        self,
        signal_length: int,
        samp_rate: float,
        first_freq: float,
        band_width: float,
        num_harm: int,
        keep_dc: bool = False,
    ) -> None:
        super().__init__(signal_length, samp_rate)
        self.first_freq = check_positive_float(first_freq, "first_freq")
        if self.first_freq >= self.nyquist:
            msg = f"first_freq must be below the Nyquist frequency {self.nyquist:g}, got {first_freq!r}"
            raise ParameterError(msg)
        self.band_width = check_positive_float(band_width, "band_width")
        self.num_harm = _positive_int(num_harm, "num_harm")
        self.keep_dc = bool(keep_dc)

    def _design(self, freqs: np.ndarray) -> np.ndarray:
        half = self.band_width / 2 + _bin_tolerance(self)
        # Distance of each bin to its nearest kept harmonic (harmonics are evenly spaced).
        k = np.clip(np.rint(freqs / self.first_freq), 1, self.num_harm)
        out = (np.abs(freqs - k * self.first_freq) <= half).astype(np.float64)
        if self.keep_dc:
            out[0] = 1.0
        return out

    def parameters(self) -> dict[str, Any]:
        return {
            **super().parameters(),
            "first_freq": self.first_freq,
            "band_width": self.band_width,
            "num_harm": self.num_harm,
            "keep_dc": self.keep_dc,
        }


class NoiseBandFilter(FrequencyFilter):
    """Remove bands of noise: zero every bin within ``width / 2`` of each given frequency.

    Parameters
    ----------
    signal_length, samp_rate
        See :class:`FrequencyFilter`.
    freqs : sequence of float
        Center frequencies of the noise bands (0 removes DC).
    freq_widths : float or sequence of float
        Full width (> 0) of each band: one value for all, or one per frequency.

    Raises
    ------
    ParameterError
        ``freqs`` negative, above the Nyquist frequency or not finite real numbers; ``freq_widths`` not
        positive, or neither one value nor one per frequency.
    """

    kind = "noise_band"

    def __init__(
        self,
        signal_length: int,
        samp_rate: float,
        freqs: Sequence[float] | float,
        freq_widths: Sequence[float] | float,
    ) -> None:
        super().__init__(signal_length, samp_rate)
        f = check_real_vector(freqs, "freqs", minimum=0)
        w = check_real_vector(freq_widths, "freq_widths", minimum=0, min_open=True)
        if w.size == 1:
            w = np.full(f.shape, w[0])
        if w.shape != f.shape:
            msg = (
                f"freq_widths must be one value or one per frequency ({f.size}), got {w.size} values: "
                f"freqs={f.tolist()}, freq_widths={w.tolist()}"
            )
            raise ParameterError(msg)
        if np.any(f > self.nyquist):
            msg = f"freqs must lie in [0, {self.nyquist:g}] (the Nyquist frequency), got {f.tolist()}"
            raise ParameterError(msg)
        self.freqs = f
        self.freq_widths = w

    def _design(self, freqs: np.ndarray) -> np.ndarray:
        tol = _bin_tolerance(self)
        hit = np.abs(freqs[:, None] - self.freqs[None, :]) <= self.freq_widths[None, :] / 2 + tol
        return np.where(np.any(hit, axis=1), 0.0, 1.0)

    def parameters(self) -> dict[str, Any]:
        return {
            **super().parameters(),
            "freqs": self.freqs.tolist(),
            "freq_widths": self.freq_widths.tolist(),
        }


class CompositeFilter(FrequencyFilter):
    """Product of several compatible frequency filters (same ``signal_length`` and ``samp_rate``).

    Parameters
    ----------
    filters : sequence of FrequencyFilter
        Filters to combine; nested composites are flattened.

    Examples
    --------
    >>> from pycro_gpu.filters import HarmonicPassFilter, LowPassFilter
    >>> f = LowPassFilter(4000, 4e6, 500e3) * HarmonicPassFilter(4000, 4e6, 100e3, 10e3, 8)
    >>> [p["kind"] for p in f.filters_parameters()]
    ['low_pass', 'harmonic_pass']
    """

    kind = "composite"

    def __init__(self, filters: Sequence[FrequencyFilter]) -> None:
        flat: list[FrequencyFilter] = []
        for f in filters:
            if isinstance(f, CompositeFilter):
                flat.extend(f.filters)
            elif isinstance(f, FrequencyFilter):
                flat.append(f)
            else:
                msg = f"filters must be FrequencyFilter objects, got {type(f).__name__}"
                raise TypeError(msg)
        if not flat:
            msg = "filters must hold at least one FrequencyFilter"
            raise ParameterError(msg)
        if not are_compatible_filters(flat):
            sizes = sorted({(f.signal_length, f.samp_rate) for f in flat})
            msg = f"filters act on different (signal_length, samp_rate): {sizes}"
            raise ParameterError(msg)
        super().__init__(flat[0].signal_length, flat[0].samp_rate)
        self.filters = flat

    def _design(self, freqs: np.ndarray) -> np.ndarray:
        out = np.ones_like(freqs)
        for f in self.filters:
            out = out * f.host_mask()
        return out

    def filters_parameters(self) -> list[dict[str, Any]]:
        """Parameters of each filter, in order."""
        return [f.parameters() for f in self.filters]

    def parameters(self) -> dict[str, Any]:
        out = super().parameters()
        for i, p in enumerate(self.filters_parameters()):
            for k, v in p.items():
                if k not in ("signal_length", "samp_rate"):
                    out[f"filter_{i}_{k}"] = v
        return out


def are_compatible_filters(filters: FrequencyFilter | Iterable[FrequencyFilter]) -> bool:
    """True when all ``filters`` share ``signal_length`` and ``samp_rate``."""
    if isinstance(filters, FrequencyFilter):
        return True
    filters = list(filters)
    for f in filters:
        if not isinstance(f, FrequencyFilter):
            msg = f"filters must be FrequencyFilter objects, got {type(f).__name__}"
            raise TypeError(msg)
    return all(filters[0].is_compatible(f) for f in filters[1:])


def build_composite_filter(filters: FrequencyFilter | Sequence[FrequencyFilter]) -> FrequencyFilter:
    """One filter from one or several: the filter itself, or their :class:`CompositeFilter`."""
    if isinstance(filters, FrequencyFilter):
        return filters
    filters = list(filters)
    if len(filters) == 1 and isinstance(filters[0], FrequencyFilter):
        return filters[0]
    return CompositeFilter(filters)


# --------------------------------------------------------------------------------------------------
# Noise floor and thresholding
# --------------------------------------------------------------------------------------------------


_METHODS = ("auto", "kernel", "array_api")


def _check_method(method: str) -> None:
    if method not in _METHODS:
        msg = f"method must be one of {', '.join(_METHODS)}; got {method!r}"
        raise ValueError(msg)


def _two_sided_weights(n_bins: int, signal_length: int, xp: Namespace, dtype: Any, device: Device) -> Array:
    """Weights that turn a one-sided power sum into the two-sided one: 1 for DC (and Nyquist), else 2."""
    w = np.full(n_bins, 2.0)
    w[0] = 1.0
    if signal_length % 2 == 0:
        w[-1] = 1.0
    return from_host(w, xp, device=device, dtype=dtype)


def get_noise_floor(
    spectra: Array,
    tolerance: float,
    *,
    signal_length: int | None = None,
    rtol: float = 1e-2,
    max_iter: int = 50,
    method: str = "auto",
    xp: Namespace | None = None,
) -> Array:
    """Noise floor of each spectrum: the amplitude that pure noise exceeds with probability ``tolerance``.

    Parameters
    ----------
    spectra : (..., n_bins) complex array
        One-sided spectra (:func:`rfft` of real signals).
    tolerance : float
        In (0, 1). Smaller values give a higher floor (fewer noise bins survive).
    signal_length : int, optional
        Length ``n`` of the signals (default ``2 * (n_bins - 1)``); decides whether a Nyquist bin exists.
    rtol : float, optional
        Iterations stop when the noise estimate changes by less than ``rtol`` times itself.
    max_iter : int, optional
        At most this many estimates (pycroscopy: 50).
    method : {'auto', 'kernel', 'array_api'}, optional
        ``kernel``: :func:`pycro_gpu.kernels.noise_floor_rows` (numba, CPU; each row iterates on its
        own in one pass per iteration); ``array_api``: batch-wide array operations (the path for CuPy and
        other namespaces); ``auto``: the kernel for NumPy arrays.

    Returns
    -------
    (...,) real array
        One floor per spectrum, in the amplitude units of ``spectra``; NaN for a spectrum that holds
        NaN or inf (it has no noise floor; the iteration would otherwise settle on 0).

    Notes
    -----
    The algorithm of pycroscopy's ``get_noise_floor`` (M. B. Okatan): the magnitude of complex Gaussian
    noise is Rayleigh distributed with ``P(|F| > t) = exp(-t^2 / (2 s^2))``, so ``t = s sqrt(-2 ln tol)``.
    With ``s^2 = sum |F|^2 / (2 n)`` over the two-sided spectrum, bins above ``t`` are dropped and ``s``,
    ``t`` re-estimated until ``s`` settles. The threshold only decreases, so "drop everything above the
    current ``t``" equals pycroscopy's cumulative zeroing. The one-sided spectrum counts every bin but DC
    (and Nyquist) twice, which reproduces the two-sided sums. Convergence is relative here (``rtol``);
    pycroscopy stops on an absolute change of 1e-2, which depends on the data's units.

    Examples
    --------
    >>> import numpy as np
    >>> from pycro_gpu.filters import get_noise_floor, rfft
    >>> x = np.random.default_rng(0).standard_normal((2, 4096))
    >>> floors = get_noise_floor(rfft(x), 1e-3)
    >>> bool(np.all((floors > 150) & (floors < 250)))  # sqrt(4096 * 2 ln 1e3 / 2) ~ 168
    True
    """
    if xp is None:
        xp = array_namespace(spectra)
    tol = float(tolerance)
    if not 0 < tol < 1:
        msg = f"tolerance must be in (0, 1), got {tolerance!r}"
        raise ValueError(msg)
    n_bins = spectra.shape[-1]
    n = 2 * (n_bins - 1) if signal_length is None else _positive_int(signal_length, "signal_length")
    if n // 2 + 1 != n_bins:
        msg = f"signal_length={n} does not match spectra with {n_bins} one-sided bins"
        raise ValueError(msg)
    _check_method(method)
    rdt = _real_dtype(xp, spectra)
    on_host = is_numpy_namespace(xp) and isinstance(spectra, np.ndarray)
    if method == "kernel" and not on_host:
        msg = "get_noise_floor(method='kernel') needs NumPy arrays; use method='array_api'"
        raise ValueError(msg)
    if on_host and method != "array_api":
        from ..kernels import noise_floor_rows

        flat = np.ascontiguousarray(spectra).reshape(-1, n_bins)
        floors = noise_floor_rows(flat, tol, n, rtol=rtol, max_iter=max_iter)
        floors[~np.all(np.isfinite(flat), axis=-1)] = np.nan
        return floors.reshape(spectra.shape[:-1]).astype(rdt, copy=False)
    device = device_of(spectra)
    re, im = xp.real(spectra), xp.imag(spectra)
    zero = xp.zeros((), dtype=rdt, device=device)
    # a row with NaN or inf has no floor: it iterates as zeros (no invalid arithmetic) and gets NaN
    finite = xp.all(xp.isfinite(spectra), axis=-1)
    amp2 = xp.where(finite[..., None], re * re + im * im, zero)
    wamp2 = amp2 * _two_sided_weights(n_bins, n, xp, rdt, device)
    log_term = -2.0 * math.log(tol)
    sigma2 = xp.sum(wamp2, axis=-1) / (2 * n)
    thr2 = sigma2 * log_term
    active = xp.ones(sigma2.shape, dtype=xp.bool, device=device)
    for _ in range(1, max_iter):
        kept = xp.where(amp2 <= thr2[..., None], wamp2, zero)
        new2 = xp.sum(kept, axis=-1) / (2 * n)
        residual = xp.abs(xp.sqrt(new2) - xp.sqrt(sigma2))
        thr2 = xp.where(active, new2 * log_term, thr2)
        sigma2 = xp.where(active, new2, sigma2)
        active = active & (residual > rtol * xp.sqrt(new2))
        if not bool(xp.any(active)):
            break
    return xp.where(finite, xp.sqrt(thr2), xp.asarray(math.nan, dtype=rdt, device=device))


def threshold_spectrum(spectra: Array, floors: Array | float, *, xp: Namespace | None = None) -> Array:
    """Zero every bin whose magnitude is below the floor of its spectrum.

    Parameters
    ----------
    spectra : (..., n_bins) complex array
    floors : (...,) real array or float
        One floor per spectrum (e.g. from :func:`get_noise_floor`) or one for all.

    Returns
    -------
    (..., n_bins) complex array
        A new array; ``spectra`` is not modified.
    """
    if xp is None:
        xp = array_namespace(spectra)
    re, im = xp.real(spectra), xp.imag(spectra)
    if isinstance(floors, (int, float)):
        f2 = float(floors) ** 2
    else:
        f2 = (floors * floors)[..., None]
    zero = xp.zeros((), dtype=spectra.dtype, device=device_of(spectra))
    return xp.where(re * re + im * im < f2, zero, spectra)


# --------------------------------------------------------------------------------------------------
# Applying 1-D filters
# --------------------------------------------------------------------------------------------------


def _kernel_capable(spectra: Array, xp: Namespace) -> bool:
    if is_cupy_namespace(xp):
        return True
    return is_numpy_namespace(xp) and isinstance(spectra, np.ndarray)


def _as_mask(filters: Any, n: int, xp: Namespace, dtype: Any, device: Device) -> Array | None:
    """Weights (n // 2 + 1,) of ``filters`` (filter object(s) or a weight array), or None."""
    if filters is None:
        return None
    if isinstance(filters, FrequencyFilter) or (
        isinstance(filters, (list, tuple))
        and filters
        and all(isinstance(f, FrequencyFilter) for f in filters)
    ):
        f = build_composite_filter(filters)
        if f.signal_length != n:
            msg = f"filter signal_length={f.signal_length} does not match signals of length {n}"
            raise ValueError(msg)
        return f.mask(xp, dtype=dtype, device=device)
    mask = filters
    if isinstance(mask, np.ndarray) and not is_numpy_namespace(xp):
        mask = from_host(mask, xp, device=device)
    if tuple(mask.shape) != (n // 2 + 1,):
        msg = f"mask must have shape ({n // 2 + 1},) for signals of length {n}, got {tuple(mask.shape)}"
        raise ValueError(msg)
    return xp.astype(mask, dtype)


def filter_spectra(
    spectra: Array,
    mask: Array | None,
    floors: Array | float | None = None,
    *,
    method: str = "auto",
    overwrite: bool = False,
    kernel_target: str | None = None,
    xp: Namespace | None = None,
) -> Array:
    """Multiply spectra by a mask and zero the bins whose masked magnitude is below a floor.

    Parameters
    ----------
    spectra : (..., n_bins) complex array
    mask : (n_bins,) real array or None
        Filter weights (``None``: all ones).
    floors : (...,) real array or float, optional
        Floor per spectrum (``None``: no thresholding).
    method : {'auto', 'kernel', 'array_api'}, optional
        ``kernel``: the fused one-pass kernel :func:`pycro_gpu.kernels.apply_spectral_mask` (NumPy or
        CuPy arrays); ``array_api``: portable array operations; ``auto``: the kernel where it can run.
    overwrite : bool, optional
        Let the kernel path write into ``spectra`` (no copy). The array-API path never modifies it.
    kernel_target : {'cpu', 'cuda'}, optional
        Force the kernel's target (tests run ``'cuda'`` on host arrays under the CUDA simulator).

    Returns
    -------
    (..., n_bins) complex array
        ``where(|spectra * mask| < floors, 0, spectra * mask)``.
    """
    if xp is None:
        xp = array_namespace(spectra)
    _check_method(method)
    n_bins = spectra.shape[-1]
    rdt = _real_dtype(xp, spectra)
    device = device_of(spectra)
    capable = _kernel_capable(spectra, xp)
    if method == "kernel" and not capable:
        msg = "method='kernel' needs NumPy or CuPy arrays; use method='array_api' for this namespace"
        raise ValueError(msg)
    if capable and method != "array_api":
        from ..kernels import apply_spectral_mask

        lead = spectra.shape[:-1]
        work = spectra if overwrite else xp.asarray(spectra, copy=True)
        if is_numpy_namespace(xp):
            work = np.ascontiguousarray(work)
        flat = xp.reshape(work, (-1, n_bins))
        w = xp.ones(n_bins, dtype=rdt, device=device) if mask is None else xp.astype(mask, rdt)
        if floors is None:
            thr: Any = 0.0
        elif isinstance(floors, (int, float)):
            thr = float(floors)
        else:
            thr = xp.reshape(xp.astype(floors, xp.float64), (-1,))
        apply_spectral_mask(flat, w, thr, target=kernel_target)
        return xp.reshape(flat, (*lead, n_bins))
    out = spectra if mask is None else spectra * xp.astype(mask, rdt)
    if floors is not None:
        out = threshold_spectrum(out, floors, xp=xp)
    return out


def filtered_spectra(
    signals: Array,
    mask: Array | None,
    noise_tolerance: float | None,
    *,
    method: str = "auto",
    light: bool = False,
    xp: Namespace,
) -> tuple[Array, Array | None]:
    """Masked, thresholded one-sided spectra of real ``signals`` and their noise floors (or None).

    The floors come from the unfiltered spectra; :func:`fft_filter` and the G-mode
    :func:`~pycro_gpu.filters.signal_filter.filter_batch` share this step. ``light``: a light job
    (:data:`LIGHT_JOB_SAMPLES`) of NumPy arrays: NumPy's FFT, and under ``method="auto"`` the array-API
    path (CuPy arrays keep cuFFT and the CUDA kernel).
    """
    if light and method == "auto" and is_numpy_namespace(xp):
        method = "array_api"
    spectra = rfft(signals, xp=xp, light=light)
    floors = None
    if noise_tolerance is not None:
        floors = get_noise_floor(
            spectra, noise_tolerance, signal_length=signals.shape[-1], method=method, xp=xp
        )
    return filter_spectra(spectra, mask, floors, method=method, overwrite=True, xp=xp), floors


def fft_filter(
    signals: Array,
    filters: FrequencyFilter | Sequence[FrequencyFilter] | Array | None = None,
    *,
    noise_tolerance: float | None = None,
    return_noise_floors: bool = False,
    method: str = "auto",
    xp: Namespace | None = None,
) -> Array | tuple[Array, Array]:
    """Filter real signals in the frequency domain: ``irfft(threshold(rfft(x) * mask))``.

    Parameters
    ----------
    signals : (..., n) real array
        Signals along the last axis (e.g. G-mode lines or pixels), float32 or float64.
    filters : FrequencyFilter, sequence of them, or (n // 2 + 1,) real array, optional
        The filter (several are multiplied); their ``signal_length`` must be ``n``.
    noise_tolerance : float, optional
        In (0, 1): zero the bins below each signal's noise floor (:func:`get_noise_floor` of the
        unfiltered spectrum) after masking.
    return_noise_floors : bool, optional
        Also return the (...,) noise floors (needs ``noise_tolerance``).
    method : {'auto', 'kernel', 'array_api'}, optional
        Kernels or array operations for the noise floor and for mask + threshold (see
        :func:`get_noise_floor` and :func:`filter_spectra`).

    Returns
    -------
    filtered : (..., n) real array
        Same dtype and namespace as ``signals``.
    floors : (...,) real array
        Only with ``return_noise_floors``.

    Examples
    --------
    >>> import numpy as np
    >>> from pycro_gpu.filters import LowPassFilter, fft_filter
    >>> t = np.arange(1000) / 1e6
    >>> x = np.sin(2 * np.pi * 10e3 * t) + np.sin(2 * np.pi * 300e3 * t)
    >>> y = fft_filter(x, LowPassFilter(1000, 1e6, 100e3))
    >>> bool(np.allclose(y, np.sin(2 * np.pi * 10e3 * t)))
    True
    """
    if xp is None:
        xp = array_namespace(signals)
    if filters is None and noise_tolerance is None:
        msg = "fft_filter needs filters and/or noise_tolerance; got neither"
        raise ValueError(msg)
    if return_noise_floors and noise_tolerance is None:
        msg = "return_noise_floors=True needs a noise_tolerance"
        raise ValueError(msg)
    if signals.ndim < 1 or signals.shape[-1] < 2:
        msg = f"signals must have at least 2 samples along the last axis, got shape {tuple(signals.shape)}"
        raise ValueError(msg)
    if xp.isdtype(signals.dtype, "complex floating"):
        msg = f"fft_filter filters real signals, got dtype {signals.dtype}"
        raise ValueError(msg)
    if not xp.isdtype(signals.dtype, "real floating"):
        signals = xp.astype(signals, xp.float64)
    n = signals.shape[-1]
    rdt = signals.dtype
    mask = _as_mask(filters, n, xp, rdt, device_of(signals))
    spectra, floors = filtered_spectra(signals, mask, noise_tolerance, method=method, xp=xp)
    out = irfft(spectra, n, xp=xp)
    if out.dtype != rdt:
        out = xp.astype(out, rdt)
    if return_noise_floors:
        return out, floors
    return out


# --------------------------------------------------------------------------------------------------
# 2-D image filters
# --------------------------------------------------------------------------------------------------


def _shape2(shape: Sequence[int]) -> tuple[int, int]:
    if len(shape) < 2:
        msg = f"shape must have at least 2 dimensions (rows, columns), got {tuple(shape)}"
        raise ValueError(msg)
    return _positive_int(shape[-2], "shape[-2]"), _positive_int(shape[-1], "shape[-1]")


def image_frequencies(
    shape: Sequence[int], *, xp: Namespace | None = None, dtype: Any = None, device: Device = None
) -> tuple[Array, Array]:
    """Spatial frequencies (cycles per pixel) of the ``rfftn`` grid of images of ``shape``.

    Returns
    -------
    fy : (ny, 1) real array
        ``fftfreq(ny)`` along the rows.
    fx : (1, nx // 2 + 1) real array
        ``rfftfreq(nx)`` along the columns.
    """
    if xp is None:
        xp = array_namespace()
    ny, nx = _shape2(shape)
    dtype = dtype or xp.float64
    fy = xp.astype(xp.fft.fftfreq(ny, device=device), dtype)
    fx = xp.astype(xp.fft.rfftfreq(nx, device=device), dtype)
    return xp.reshape(fy, (ny, 1)), xp.reshape(fx, (1, nx // 2 + 1))


def _radius2(shape, xp, dtype, device):
    fy, fx = image_frequencies(shape, xp=xp, dtype=dtype, device=device)
    return fy * fy + fx * fx


_KINDS = ("low", "high", "band")


def _check_cutoffs(cutoff: Any, kind: str) -> tuple[float, float | None]:
    if kind not in _KINDS:
        msg = f"kind must be one of {', '.join(_KINDS)}; got {kind!r}"
        raise ParameterError(msg)
    if kind == "band":
        if not (isinstance(cutoff, (tuple, list)) and len(cutoff) == 2):
            msg = f"kind='band' needs cutoff=(low, high) in cycles per pixel, got {cutoff!r}"
            raise ParameterError(msg)
        lo, hi = (check_positive_float(c, "cutoff") for c in cutoff)
        if not lo < hi:
            msg = f"band cutoff must satisfy low < high, got {cutoff!r}"
            raise ParameterError(msg)
        return lo, hi
    return check_positive_float(cutoff, "cutoff"), None


def gaussian_mask(
    shape: Sequence[int],
    cutoff: float | tuple[float, float],
    *,
    kind: str = "low",
    xp: Namespace | None = None,
    dtype: Any = None,
    device: Device = None,
) -> Array:
    """Gaussian low-, high- or band-pass weights on the ``rfftn`` grid of images of ``shape``.

    Parameters
    ----------
    shape : (..., ny, nx)
        Image shape (the last two entries are used).
    cutoff : float or (float, float)
        Standard deviation of the Gaussian in cycles per pixel; ``(low, high)`` for ``kind='band'``.
    kind : {'low', 'high', 'band'}

    Returns
    -------
    (ny, nx // 2 + 1) real array

    Notes
    -----
    ``L(f; c) = exp(-|f|^2 / (2 c^2))``; high pass ``1 - L(f; c)``; band pass
    ``(1 - L(f; low)) L(f; high)``.
    """
    if xp is None:
        xp = array_namespace()
    dtype = dtype or xp.float64
    c, c_hi = _check_cutoffs(cutoff, kind)
    r2 = _radius2(shape, xp, dtype, device)
    low = xp.exp(-r2 / (2 * c * c))
    if kind == "low":
        return low
    if kind == "high":
        return 1 - low
    return (1 - low) * xp.exp(-r2 / (2 * c_hi * c_hi))


def butterworth_mask(
    shape: Sequence[int],
    cutoff: float | tuple[float, float],
    *,
    order: float = 2.0,
    kind: str = "low",
    squared: bool = True,
    xp: Namespace | None = None,
    dtype: Any = None,
    device: Device = None,
) -> Array:
    """Butterworth low-, high- or band-pass weights on the ``rfftn`` grid of images of ``shape``.

    Parameters
    ----------
    shape : (..., ny, nx)
        Image shape (the last two entries are used).
    cutoff : float or (float, float)
        Cut-off in cycles per pixel (scikit-image's ``cutoff_frequency_ratio``); ``(low, high)`` for
        ``kind='band'``.
    order : float, optional
        Filter order ``n``.
    kind : {'low', 'high', 'band'}
    squared : bool, optional
        True (default, as scikit-image): the squared Butterworth response of image-processing texts.

    Returns
    -------
    (ny, nx // 2 + 1) real array

    Notes
    -----
    ``L(f) = 1 / (1 + (|f| / c)^(2 n))``, ``H(f) = 1 - L(f)``; with ``squared=False`` their square roots.
    Band pass: ``H(f; low) L(f; high)``. Equal to the masks of ``skimage.filters.butterworth``.
    """
    if xp is None:
        xp = array_namespace()
    dtype = dtype or xp.float64
    c, c_hi = _check_cutoffs(cutoff, kind)
    order = check_positive_float(order, "order")
    r2 = _radius2(shape, xp, dtype, device)

    def low(cut):
        return 1 / (1 + (r2 / (cut * cut)) ** order)

    def root(v):
        return v if squared else xp.sqrt(v)

    if kind == "low":
        return root(low(c))
    if kind == "high":
        return root(1 - low(c))
    return root(1 - low(c)) * root(low(c_hi))


def _check_spots(spots: Any) -> list[tuple[float, float]]:
    """``spots`` as a list of ``(fy, fx)`` float pairs within [-0.5, 0.5] (else ``ParameterError``)."""
    out = []
    for i, s in enumerate(spots):
        if isinstance(s, (str, bytes)) or not hasattr(s, "__len__") or len(s) != 2:
            msg = f"each spot must be (fy, fx) in cycles per pixel within [-0.5, 0.5], got spots[{i}]={s!r}"
            raise ParameterError(msg)
        out.append(tuple(check_real(v, f"spots[{i}]", minimum=-0.5, maximum=0.5) for v in s))
    return out


def notch_mask(
    shape: Sequence[int],
    spots: Sequence[tuple[float, float]],
    radius: float,
    *,
    soft: bool = False,
    xp: Namespace | None = None,
    dtype: Any = None,
    device: Device = None,
) -> Array:
    """Notch (spot) weights that remove periodic noise at given spatial frequencies.

    Parameters
    ----------
    shape : (..., ny, nx)
        Image shape.
    spots : sequence of (fy, fx)
        Spatial frequencies of the periodic noise in cycles per pixel (each in [-0.5, 0.5]). A spot and
        its mirror ``(-fy, -fx)`` are removed together (real images have Hermitian spectra).
    radius : float
        Radius of each notch in cycles per pixel.
    soft : bool, optional
        False: weight 0 within ``radius``, 1 outside. True: Gaussian notches
        ``1 - exp(-d^2 / (2 radius^2))`` (less ringing).

    Returns
    -------
    (ny, nx // 2 + 1) real array
    """
    if xp is None:
        xp = array_namespace()
    dtype = dtype or xp.float64
    ny, nx = _shape2(shape)
    radius = check_positive_float(radius, "radius")
    fy, fx = image_frequencies(shape, xp=xp, dtype=dtype, device=device)
    out = xp.ones((ny, nx // 2 + 1), dtype=dtype, device=device)
    for s in _check_spots(spots):
        for sy, sx in (s, (-s[0], -s[1])):
            # distance on the periodic frequency grid (wrap fy: -0.5 and 0.5 are the same frequency)
            dy = xp.abs(fy - sy)
            dy = xp.minimum(dy, 1 - dy)
            d2 = dy * dy + (fx - sx) ** 2
            if soft:
                out = out * (1 - xp.exp(-d2 / (2 * radius * radius)))
            else:
                out = xp.where(d2 <= radius * radius, xp.zeros((), dtype=dtype, device=device), out)
    return out


def filter_image(image: Array, mask: Array, *, xp: Namespace | None = None) -> Array:
    """Filter images with frequency weights: ``irfftn(rfftn(image) * mask)`` over the last two axes.

    Parameters
    ----------
    image : (..., ny, nx) real array
        One image or a stack (a leading batch of images is filtered at once).
    mask : (ny, nx // 2 + 1) real array
        Weights from :func:`gaussian_mask`, :func:`butterworth_mask`, :func:`notch_mask` or a product.

    Returns
    -------
    (..., ny, nx) real array
        Same dtype as ``image`` (float64 for integer images).

    Examples
    --------
    >>> import numpy as np
    >>> from pycro_gpu.filters import butterworth_mask, filter_image
    >>> img = np.random.default_rng(0).standard_normal((64, 64)) + 5
    >>> out = filter_image(img, butterworth_mask(img.shape, 0.1, order=4, xp=np))
    >>> bool(np.isclose(out.mean(), img.mean()))  # the DC weight is 1: the mean is kept
    True
    """
    if xp is None:
        xp = array_namespace(image, mask)
    ny, nx = _shape2(image.shape)
    if tuple(mask.shape) != (ny, nx // 2 + 1):
        msg = f"mask must have shape ({ny}, {nx // 2 + 1}) for images of {(ny, nx)}, got {tuple(mask.shape)}"
        raise ValueError(msg)
    if not xp.isdtype(image.dtype, "real floating"):
        image = xp.astype(image, xp.float64)
    spectra = _rfft2(image, xp) * xp.astype(mask, image.dtype)
    out = _irfft2(spectra, (ny, nx), xp)
    return out if out.dtype == image.dtype else xp.astype(out, image.dtype)
