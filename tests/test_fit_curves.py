"""Peak and relaxation fits of a USID dataset (``pycro-gpu fit peaks|relaxation``) against the known truth."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pycro_gpu.cli import main
from pycro_gpu.fitting import fit_curves_dataset
from pycro_gpu.io.usid import Dimension, write_main


def _write(path, x, curves, name="Energy", units="eV"):
    n = curves.shape[0]
    with h5py.File(path, "w") as f:
        g = f.create_group("Measurement_000/Channel_000")
        write_main(g, "Raw_Data", curves, [Dimension("X", "m", n // 4), Dimension("Y", "m", 4)],
                   Dimension(name, units, x), "Intensity", "counts")  # fmt: skip
    return path


def test_gaussian_peaks_on_the_command_line_recover_the_truth(tmp_path, capsys):
    rng = np.random.default_rng(3)
    x = np.linspace(-5.0, 5.0, 121)
    n = 24
    amp, center, sigma = rng.uniform(1, 3, n), rng.uniform(-1.5, 1.5, n), rng.uniform(0.4, 0.9, n)
    curves = amp[:, None] * np.exp(-0.5 * ((x - center[:, None]) / sigma[:, None]) ** 2) + 0.2 + 0.01 * x
    curves += 0.002 * rng.standard_normal(curves.shape)
    path = _write(tmp_path / "p.h5", x, curves)
    argv = ["fit", "peaks", str(path), "--shape", "gaussian", "--n-peaks", "1", "--backend", "numpy"]
    assert main([*argv, "--plot", str(tmp_path / "fig")]) == 0
    out = capsys.readouterr().out
    assert "Gaussian_Fit_000" in out and "24 fits: 100.00% converged (24)" in out
    assert (tmp_path / "fig" / "fit_parameters.png").stat().st_size > 5000  # maps of the parameters
    with h5py.File(path, "r") as f:
        fit = f["Measurement_000/Channel_000/Raw_Data-Gaussian_Fit_000/Fit"][()][:, 0]
    assert fit.dtype.names == ("height_0", "center_0", "fwhm_0", "offset", "slope", "R2 Criterion")
    np.testing.assert_allclose(fit["center_0"], center, atol=5e-3)
    np.testing.assert_allclose(fit["height_0"], amp, rtol=1e-2)
    np.testing.assert_allclose(fit["fwhm_0"], 2 * np.sqrt(2 * np.log(2)) * sigma, rtol=1e-2)
    np.testing.assert_allclose(fit["slope"], 0.01, atol=2e-3)
    assert np.all(fit["R2 Criterion"] > 0.999)


def test_exponential_relaxation_and_refusals(tmp_path, capsys):
    rng = np.random.default_rng(4)
    t = np.linspace(0.0, 5.0, 60)
    n = 16
    amp, tau, off = rng.uniform(1, 2, n), rng.uniform(0.3, 1.5, n), rng.uniform(-0.2, 0.2, n)
    curves = amp[:, None] * np.exp(-t / tau[:, None]) + off[:, None]
    path = _write(tmp_path / "r.h5", t, curves, "Time", "s")
    res = fit_curves_dataset(path, model="exponential", backend="numpy", progress=False)
    with h5py.File(path, "r") as f:
        fit = f[res.group]["Fit"][()][:, 0]
        assert f[res.group]["Status"].shape == (n,)
    np.testing.assert_allclose(fit["tau"], tau, rtol=1e-4)
    assert fit_curves_dataset(path, model="exponential", backend="numpy", progress=False).reused
    # three samples cannot determine three parameters plus: refused before anything is written
    few = _write(tmp_path / "few.h5", t[:3], curves[:, :3], "Time", "s")
    before = few.read_bytes()
    assert main(["fit", "relaxation", str(few), "--decay", "exponential", "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exponential" in err
    assert few.read_bytes() == before
    with pytest.raises(ValueError, match="model must be one of"):
        fit_curves_dataset(path, model="sho")
