"""Spectrum-before/after figure of a filter."""

import numpy as np
import pytest

from pycro_gpu.datasets import gmode
from pycro_gpu.filters import HarmonicPassFilter, LowPassFilter, fft_filter
from pycro_gpu.filters.plot import plot_filter_spectrum


def test_plot_filter_spectrum_draws_and_saves(tmp_path):
    ds = gmode((1, 1), 2048, noise=0.5, seed=1, dtype=np.float64)
    x = ds.data.reshape(-1)
    fs, f1 = ds.truth["sample_rate"], ds.truth["excitation_frequency"]
    filters = [LowPassFilter(2048, fs, 400e3), HarmonicPassFilter(2048, fs, f1, 4e3, 3)]
    fig = plot_filter_spectrum(x, filters, clean=ds.truth["clean"].reshape(-1), path=tmp_path / "f.png")
    ax_t, ax_f = fig.axes[:2]
    # the filtered trace drawn is the filter's output; the spectrum panel shows both spectra
    np.testing.assert_allclose(
        ax_t.lines[1].get_ydata(), fft_filter(x, filters)[: ax_t.lines[1].get_ydata().size]
    )
    assert len(ax_f.lines) == 2 and ax_f.get_xlabel() == "Frequency (kHz)"
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="needs samp_rate"):
        plot_filter_spectrum(x, noise_tolerance=1e-3)
