"""Flattening and 2-D FFT filtering of images, in Python and as ``pycro-gpu image`` on a real IBW scan."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pycro_gpu.cli import main
from pycro_gpu.filters.flatten import flatten_lines, flatten_plane
from pycro_gpu.io.translators import translate
from pycro_gpu.io.usid import Dimension, find_main_datasets, write_main
from tests.helpers import to_numpy


def test_flatten_plane_and_lines_against_numpy_lstsq(xp, rng):
    img = rng.standard_normal((2, 6, 9))
    out = to_numpy(flatten_plane(xp.asarray(img)))
    y, x = np.mgrid[0:6, 0:9]
    X = np.stack([np.ones(54), x.ravel(), y.ravel()], axis=1)
    for k in range(2):
        coef, *_ = np.linalg.lstsq(X, img[k].ravel(), rcond=None)
        np.testing.assert_allclose(out[k].ravel(), img[k].ravel() - X @ coef, atol=1e-12)
    lines = to_numpy(flatten_lines(xp.asarray(img[0]), 2))
    for row in range(6):
        p = np.polyfit(np.arange(9), img[0, row], 2)
        np.testing.assert_allclose(lines[row], img[0, row] - np.polyval(p, np.arange(9)), atol=1e-12)
    with pytest.raises(ValueError, match="order must be an integer >= 0"):
        flatten_lines(xp.asarray(img), -1)


def _tilted_copy(src, dst, tilt):
    """A copy of a translated file whose first channel has ``tilt`` (an (ny, nx) plane) added."""
    import shutil

    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        m = find_main_datasets(f)[0]
        ny, nx = len(m.pos_dims[1]), len(m.pos_dims[0])
        m[:, 0] = m[:, 0] + tilt.reshape(ny * nx).astype(m.dtype)  # X fastest: row-major (y, x)
        return m.name, ny, nx


def test_image_flatten_plane_removes_a_synthetic_tilt_from_an_ibw_scan(test_data, tmp_path, capsys):
    raw = translate(test_data / "IgorIBWReader_P0089OP0027.ibw", tmp_path / "scan.h5")
    with h5py.File(raw, "r") as f:
        m = find_main_datasets(f)[0]
        ny, nx = len(m.pos_dims[1]), len(m.pos_dims[0])
        image = m[()][:, 0].astype(np.float64).reshape(ny, nx)
    scale = float(np.ptp(image))
    y, x = np.mgrid[0:ny, 0:nx]
    tilt = scale * (3.0 + 0.02 * x - 0.05 * y)
    name, _, _ = _tilted_copy(raw, tmp_path / "tilted.h5", tilt)
    for path in (raw, tmp_path / "tilted.h5"):
        rc = main(
            ["image", str(path), "--dataset", name, "--flatten", "plane", "--plot", str(tmp_path / "fig")]
        )
        assert rc == 0
    out = capsys.readouterr().out
    assert "plane flattened" in out and (tmp_path / "fig" / "image.png").stat().st_size > 5000
    with h5py.File(raw, "r") as a, h5py.File(tmp_path / "tilted.h5", "r") as b:
        grp = f"{name}-Image_000/Processed"
        flat_a, flat_b = a[grp][()], b[grp][()]
    # the tilt is gone: both flattened images agree to 1e-6 of the image's range
    assert np.max(np.abs(flat_a - flat_b)) < 1e-6 * scale
    # a reference plane fit with numpy lstsq
    X = np.stack([np.ones(image.size), x.ravel(), y.ravel()], axis=1)
    coef, *_ = np.linalg.lstsq(X, image.ravel(), rcond=None)
    np.testing.assert_allclose(flat_a[:, 0], image.ravel() - X @ coef, atol=1e-9 * scale)


def test_image_fft_low_pass_and_errors(tmp_path, capsys):
    from pycro_gpu.filters import filter_image, gaussian_mask

    rng = np.random.default_rng(0)
    nx, ny = 32, 24
    img = rng.standard_normal((ny, nx))
    with h5py.File(tmp_path / "i.h5", "w") as f:
        g = f.create_group("Measurement_000/Channel_000")
        pos = [Dimension("X", "m", nx), Dimension("Y", "m", ny)]
        write_main(g, "Raw_Data", img.reshape(-1, 1), pos, Dimension("arb", "", 1), "Height", "m")
    assert main(["image", str(tmp_path / "i.h5"), "--fft", "low", "--cutoff", "0.1", "-q"]) == 0
    with h5py.File(tmp_path / "i.h5", "r") as f:
        out = f["Measurement_000/Channel_000/Raw_Data-Image_000/Processed"][()][:, 0].reshape(ny, nx)
    np.testing.assert_allclose(out, filter_image(img, gaussian_mask(img.shape, 0.1, xp=np)), atol=1e-12)
    assert main(["image", str(tmp_path / "i.h5"), "--fft", "band", "--cutoff", "0.1", "-q"]) == 1
    assert "needs two cutoffs" in capsys.readouterr().err
    assert main(["image", str(tmp_path / "i.h5"), "-q"]) == 1
    assert "nothing to do" in capsys.readouterr().err


def test_filter_refuses_an_image_and_points_to_the_image_command(test_data, tmp_path, capsys):
    raw = translate(test_data / "IgorIBWReader_P0089OP0027.ibw", tmp_path / "scan.h5")
    with h5py.File(raw, "r") as f:
        name = find_main_datasets(f)[0].name
    before = raw.read_bytes()
    assert main(["filter", str(raw), "--dataset", name, "--samp-rate", "1", "--low-pass", "0.1", "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a time axis" in err and "pycro-gpu image" in err
    assert raw.read_bytes() == before
