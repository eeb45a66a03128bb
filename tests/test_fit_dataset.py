"""Dataset-level fits: USID Main datasets through the streamed engine, resumable, and the CLI."""

import h5py
import numpy as np
import pytest

from pycro_gpu.cli import main as cli_main
from pycro_gpu.datasets import beps, write_usid
from pycro_gpu.fitting import fit_loop, fit_sho, loop_metrics
from pycro_gpu.fitting.dataset import (
    LOOP_FIELDS,
    SHO_FIELDS,
    SWITCHING_FIELDS,
    fit_loop_dataset,
    fit_sho_dataset,
    project_loops,
)

RAW = "/Measurement_000/Channel_000/Raw_Data"


@pytest.fixture(scope="module")
def beps_case(tmp_path_factory):
    d = beps(shape=(4, 4), n_freq=24, n_dc=16, noise=0.02, seed=1)
    path = write_usid(d, tmp_path_factory.mktemp("fit") / "beps.h5", exclude=("clean",))
    return d, path


def test_sho_dataset_fit_matches_array_fit_and_truth(beps_case, tmp_path):
    d, src = beps_case
    path = tmp_path / "beps.h5"
    path.write_bytes(src.read_bytes())
    res = fit_sho_dataset(path, RAW, backend="numpy", progress=False)
    assert res.group == RAW + "-SHO_Fit_000" and res.n_computed == 16
    spectra = d.as_2d().reshape(-1, 24)
    ref = fit_sho(spectra, d.truth["frequency"])
    with h5py.File(path, "r") as f:
        g = f[res.group]
        assert g["Fit"].dtype.names == SHO_FIELDS and g["Guess"].dtype.names == SHO_FIELDS
        assert g["Fit"].shape == (16, 16) and g["Converged"].shape == (16, 16)
        fit = g["Fit"][()].reshape(-1)
        guess = g["Guess"][()].reshape(-1)
        conv = g["Converged"][()].reshape(-1)
    for k, name in enumerate(SHO_FIELDS[:3]):
        np.testing.assert_allclose(fit[name], np.asarray(ref.params)[:, k], rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(guess[name], np.asarray(ref.guess)[:, k], rtol=1e-4, atol=1e-9)
    for got, want in ((fit, ref.params), (guess, ref.guess)):
        dphi = np.angle(np.exp(1j * (got["Phase [rad]"] - np.asarray(want)[:, 3])))
        assert np.abs(dphi).max() < 1e-4
    np.testing.assert_allclose(fit["R2 Criterion"], np.asarray(ref.r2), rtol=1e-5)
    assert np.all(guess["R2 Criterion"] <= fit["R2 Criterion"] + 1e-6)
    assert conv.mean() >= 0.99
    w0_truth = np.repeat(d.truth["resonance_frequency"].reshape(-1), 16)
    assert np.median(np.abs(fit["Frequency [Hz]"] - w0_truth)) < 100.0


def test_sho_dataset_fit_resumes_and_reuses(beps_case, tmp_path):
    _, src = beps_case
    path = tmp_path / "beps.h5"
    path.write_bytes(src.read_bytes())
    first = fit_sho_dataset(path, RAW, backend="numpy", progress=False, batch_rows=4)
    with h5py.File(path, "r+") as f:
        g = f[first.group]
        done = g["Fit"][()]
        # as if the run had been killed after 2 of 4 batches
        g.attrs["status"] = "running"
        g["completed_positions"][8:] = 0
        g["Fit"][8:] = np.zeros(8 * 16, dtype=g["Fit"].dtype).reshape(8, 16)
    again = fit_sho_dataset(path, RAW, backend="numpy", progress=False, batch_rows=4)
    assert again.group == first.group and again.resumed and again.n_computed == 8
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f[first.group]["Fit"][()], done)
    reused = fit_sho_dataset(path, RAW, backend="numpy", progress=False)
    assert reused.reused and reused.n_computed == 0


def test_loop_dataset_fit_on_projected_sho_results(beps_case, tmp_path):
    _, src = beps_case
    path = tmp_path / "beps.h5"
    path.write_bytes(src.read_bytes())
    sho_res = fit_sho_dataset(path, RAW, backend="numpy", progress=False)
    with h5py.File(path, "r+") as f:
        fit = f[sho_res.group]["Fit"]
        loops_ds = project_loops(fit)
        rows = fit[()]
        expected = rows["Amplitude [V]"].astype(np.float64) * np.cos(rows["Phase [rad]"])
        np.testing.assert_allclose(loops_ds[()], expected, rtol=1e-6, atol=1e-12)
        res = fit_loop_dataset(loops_ds, backend="numpy", progress=False)
        g = f[res.group]
        assert res.group.endswith("Piezoresponse-Loop_Fit_000")
        assert g["Fit"].dtype.names == LOOP_FIELDS and g["Switching"].dtype.names == SWITCHING_FIELDS
        got = g["Fit"][()]
        switching = g["Switching"][()]
        bias = np.asarray(loops_ds.spec_dims[0].values)
        ref = fit_loop(bias, np.asarray(loops_ds[()], dtype=np.float64))
        params = np.stack([got[k] for k in LOOP_FIELDS[:9]], axis=1)
        np.testing.assert_allclose(params, np.asarray(ref.params), rtol=1e-5, atol=1e-9)
        met = loop_metrics(np.asarray(ref.params))
        for k in SWITCHING_FIELDS:
            np.testing.assert_allclose(switching[k], met[k], rtol=1e-5, atol=1e-9)
        assert np.median(got["R2 Criterion"]) > 0.95


def test_cli_fit_sho_and_loop(beps_case, tmp_path, capsys):
    _, src = beps_case
    path = tmp_path / "beps.h5"
    path.write_bytes(src.read_bytes())
    assert cli_main(["fit", "sho", str(path), "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "Raw_Data-SHO_Fit_000" in out and "converged" in out
    loops = RAW + "-SHO_Fit_000/Piezoresponse"
    assert cli_main(["fit", "loop", str(path), "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "Piezoresponse-Loop_Fit_000" in out
    with h5py.File(path, "r") as f:
        assert loops in f and f[loops + "-Loop_Fit_000/Fit"].shape == (16,)
    assert cli_main(["fit", "sho", str(path), "--dataset", "/nope", "--quiet"]) == 1
