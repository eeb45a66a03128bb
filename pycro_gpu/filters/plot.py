"""Figures of a frequency filter at work: one signal's time trace and spectrum before and after."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import to_host
from .fft import FrequencyFilter, build_composite_filter, fft_filter

__all__ = ["plot_filter_spectrum"]


def plot_filter_spectrum(
    signal: Any,
    filters: FrequencyFilter | Sequence[FrequencyFilter] | None = None,
    *,
    samp_rate: float | None = None,
    noise_tolerance: float | None = None,
    filtered: Any = None,
    clean: Any = None,
    n_show: int | None = None,
    units: str = "V",
    title: str = "FFT filter: before and after",
    path: str | Path | None = None,
):
    """Spectrum and time trace of one signal before and after filtering (matplotlib, no pyplot).

    Parameters
    ----------
    signal : (n,) real array
        Raw signal (any backend; copied to the host for drawing).
    filters : FrequencyFilter or sequence of them, optional
        The filter; its pass band is shaded and, unless ``filtered`` is given, it is applied.
    samp_rate : float, optional
        Sampling rate (Hz); default: the filters' ``samp_rate``.
    noise_tolerance : float, optional
        Noise-floor thresholding applied with the filter (see :func:`fft_filter`).
    filtered : (n,) real array, optional
        The filtered signal if already computed (e.g. read from ``Filtered_Data``).
    clean : (n,) real array, optional
        Ground truth, drawn dashed.
    n_show : int, optional
        Samples drawn in the time trace.
    units, title : str
        Signal units and figure title.
    path : str or Path, optional
        Also save the figure there as PNG.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ..viz import filter_figure, save_figure

    x = np.asarray(to_host(signal), dtype=np.float64).reshape(-1)
    filt = build_composite_filter(filters) if filters is not None else None
    rate = samp_rate if samp_rate is not None else (filt.samp_rate if filt is not None else None)
    if rate is None:
        msg = "plot_filter_spectrum needs samp_rate (or filters, which carry it)"
        raise ValueError(msg)
    if filtered is None:
        if filt is None and noise_tolerance is None:
            msg = "plot_filter_spectrum needs filters, noise_tolerance or an already filtered signal"
            raise ValueError(msg)
        filtered = fft_filter(x, filt, noise_tolerance=noise_tolerance)
    y = np.asarray(to_host(filtered), dtype=np.float64).reshape(-1)
    if y.shape != x.shape:
        msg = f"filtered must have the shape of signal {x.shape}, got {y.shape}"
        raise ValueError(msg)
    t = np.arange(x.size) / float(rate)
    fig = filter_figure(
        t,
        x,
        y,
        clean,
        mask=None if filt is None else filt.host_mask(),
        sample_rate=float(rate),
        n_show=n_show,
        title=title,
        units=units,
    )
    if path is not None:
        save_figure(fig, path)
    return fig
