"""``pycro-gpu filter``: filters from options, results group, figure, one-line errors."""

import h5py
import numpy as np

from pycro_gpu.cli import main
from pycro_gpu.datasets import gmode, write_usid
from pycro_gpu.filters import HarmonicPassFilter, LowPassFilter, NoiseBandFilter, fft_filter

RAW = "/Measurement_000/Channel_000/Raw_Data"


def test_filter_command_writes_results_and_a_figure(tmp_path, capsys):
    ds = gmode((4, 4), 1024, noise=0.4, seed=2, dtype=np.float64)
    path = write_usid(ds, tmp_path / "g.h5")
    png = tmp_path / "fig" / "filter_position_0.png"
    argv = ["filter", str(path), "--low-pass", "300e3", "--harmonics", "62.5e3", "5e3", "3"]
    argv += ["--noise-band", "210e3", "4e3", "--noise-tolerance", "1e-3", "--plot", str(tmp_path / "fig")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Raw_Data-FFT_Filtering_000 (written; 16 positions computed)" in out
    filters = [
        LowPassFilter(1024, 1e6, 300e3),
        HarmonicPassFilter(1024, 1e6, 62.5e3, 5e3, 3),
        NoiseBandFilter(1024, 1e6, [210e3], [4e3]),
    ]
    with h5py.File(path, "r") as f:
        grp = f[RAW + "-FFT_Filtering_000"]
        expected = fft_filter(f[RAW][()], filters, noise_tolerance=1e-3)
        np.testing.assert_allclose(grp["Filtered_Data"][()], expected, atol=1e-12)
        assert grp.attrs["filter_2_freqs"].tolist() == [210e3]
    assert png.read_bytes()[:4] == b"\x89PNG"
    # the same command again reuses the finished group
    assert main([*argv[:-2], "-q"]) == 0
    with h5py.File(path, "r") as f:
        assert [k for k in f["Measurement_000/Channel_000"] if "FFT_Filtering" in k] == [
            "Raw_Data-FFT_Filtering_000"
        ]


def test_filter_command_errors_are_one_line(tmp_path, capsys):
    path = write_usid(gmode((2, 2), 256, seed=0), tmp_path / "g.h5")
    assert main(["filter", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pycro-gpu filter: error: give at least one filter") and err.count("\n") == 1
    assert main(["filter", str(path), "--low-pass", "600e3"]) == 1
    assert "f_cutoff must be below the Nyquist frequency 500000" in capsys.readouterr().err
    assert main(["filter", str(path), "--dataset", "/nope", "--low-pass", "1e5"]) == 1
    assert "'/nope' does not exist" in capsys.readouterr().err
