"""Frequency-domain filters of signals and images, image windowing, and image operations.

* :mod:`.fft`: 1-D filters of long time series (low pass, band pass, harmonic pass, noise bands,
  composites), noise floors and thresholding, :func:`fft_filter`; 2-D Gaussian, Butterworth and notch
  masks with :func:`filter_image`.
* :mod:`.image`: image operations dispatched to cuCIM (GPU) or scikit-image (CPU).
* :mod:`.windows`: windows over an image (optionally their FFTs) and window-SVD denoising.
* :mod:`.signal_filter`: :class:`SignalFilter` over a USID Main dataset, streamed and resumable.
"""

from __future__ import annotations

from . import image
from .fft import (
    BandPassFilter,
    CompositeFilter,
    FrequencyFilter,
    HarmonicPassFilter,
    LowPassFilter,
    NoiseBandFilter,
    are_compatible_filters,
    build_composite_filter,
    butterworth_mask,
    fft_filter,
    filter_image,
    filter_spectra,
    gaussian_mask,
    get_noise_floor,
    image_frequencies,
    irfft,
    notch_mask,
    rfft,
    threshold_spectrum,
)
from .image import image_op
from .signal_filter import SignalFilter, filter_dataset, sampling_rate_of
from .windows import extract_windows, stitch_windows, svd_denoise, window_starts

__all__ = [
    "BandPassFilter",
    "CompositeFilter",
    "FrequencyFilter",
    "HarmonicPassFilter",
    "LowPassFilter",
    "NoiseBandFilter",
    "SignalFilter",
    "are_compatible_filters",
    "build_composite_filter",
    "butterworth_mask",
    "extract_windows",
    "fft_filter",
    "filter_dataset",
    "filter_image",
    "filter_spectra",
    "gaussian_mask",
    "get_noise_floor",
    "image",
    "image_frequencies",
    "image_op",
    "irfft",
    "notch_mask",
    "rfft",
    "sampling_rate_of",
    "stitch_windows",
    "svd_denoise",
    "threshold_spectrum",
    "window_starts",
]
