"""The svd / decompose / cluster commands on a USID file, with their figures."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pycro_gpu.cli import main
from pycro_gpu.io.usid import Dimension, write_main


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """Tiny matrices gain nothing from BLAS threads, and threaded OpenBLAS collapses on a busy machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture
def usid_file(tmp_path, rng):
    nx, ny, nf = 16, 12, 40
    truth = (np.arange(nx * ny) % nx >= nx // 2).astype(int) + 2 * (np.arange(nx * ny) // nx >= ny // 2)
    spectra = np.stack([np.exp(-((np.arange(nf) - c) ** 2) / 20.0) for c in (8, 16, 24, 32)])
    data = spectra[truth] + 0.01 * np.abs(rng.standard_normal((nx * ny, nf)))
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as f:
        write_main(
            f.create_group("Measurement_000/Channel_000"),
            "Raw_Data",
            data.astype(np.float32),
            [Dimension("X", "m", nx), Dimension("Y", "m", ny)],
            Dimension("Bias", "V", np.linspace(-1, 1, nf)),
            "Current",
            "nA",
        )
    return path, data, truth


def test_svd_command_writes_results_and_figures(usid_file, tmp_path, capsys):
    path, data, _ = usid_file
    rc = main(
        ["svd", str(path), "-k", "5", "--rebuild", "4", "--plot", str(tmp_path / "fig"), "--memory-mb", "1"]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "Raw_Data-SVD_000" in out
    assert "method gram, reads of the data 2, float64 products, estimated error" in out
    with h5py.File(path, "r") as f:
        g = f["Measurement_000/Channel_000/Raw_Data-SVD_000"]
        s_ref = np.linalg.svd(data.astype(np.float32).astype(np.float64), compute_uv=False)[:5]
        np.testing.assert_allclose(g["S"][()], s_ref, rtol=1e-5)
        rebuilt = g["Rebuilt_Data_000/Rebuilt_Data"][()]
        assert np.abs(rebuilt - data).max() < 0.1  # four spectra: four components hold the signal
    for name in ("svd_scree.png", "svd_components.png", "svd_abundance.png"):
        png = tmp_path / "fig" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_cluster_command(usid_file, tmp_path, capsys):
    from sklearn.metrics import adjusted_rand_score

    path, _, truth = usid_file
    rc = main(["cluster", str(path), "-n", "4", "-k", "4", "--plot", str(tmp_path / "c"), "-q"])
    assert rc == 0
    with h5py.File(path, "r") as f:
        g = f["Measurement_000/Channel_000/Raw_Data-Cluster_000"]
        assert adjusted_rand_score(g["Labels"][()][:, 0], truth) == pytest.approx(1.0)
        assert g["Counts"][()].tolist() == [48, 48, 48, 48]
    assert (tmp_path / "c" / "cluster_labels.png").stat().st_size > 3000
    assert (tmp_path / "c" / "cluster_mean_response.png").stat().st_size > 3000


def test_decompose_command(usid_file, tmp_path, capsys):
    path, data, _ = usid_file
    rc = main(["decompose", str(path), "--method", "nmf", "-k", "4", "--plot", str(tmp_path / "d")])
    assert rc == 0
    assert "Raw_Data-Decomposition_000 (computed, sklearn" in capsys.readouterr().out
    with h5py.File(path, "r") as f:
        g = f["Measurement_000/Channel_000/Raw_Data-Decomposition_000"]
        W, H = g["Projection"][()], g["Components"][()]
        assert W.shape == (192, 4) and H.shape == (4, 40)
        assert np.linalg.norm(W @ H - data) < 0.05 * np.linalg.norm(data)
    assert (tmp_path / "d" / "decomposition_components.png").exists()


def test_svd_command_errors(tmp_path, capsys):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros((3, 3))
    assert main(["svd", str(path), "-q"]) == 1
    assert "no USID Main dataset found" in capsys.readouterr().err
    assert main(["svd", str(path), "--dataset", "/nope", "-q"]) == 1
    assert "no dataset '/nope'" in capsys.readouterr().err
