"""Image operations (scikit-image / cuCIM dispatch), image windowing and window-SVD denoising."""

import numpy as np
import pytest

from pycro_gpu.datasets import lattice_image
from pycro_gpu.filters import image as image_ops
from pycro_gpu.filters.windows import extract_windows, stitch_windows, svd_denoise, window_starts
from tests.helpers import assert_close, to_numpy


@pytest.fixture
def img(rng):
    return rng.standard_normal((40, 52)) + np.linspace(0, 3, 52)[None, :]


def test_operations_equal_scikit_image(xp, img):
    import skimage.filters
    import skimage.transform

    if "cupy" in xp.__name__:  # cuCIM on the GPU: same algorithms, other summation order
        pytest.importorskip("cucim")

        def assert_close(actual, desired, xp=None):
            np.testing.assert_allclose(to_numpy(actual), desired, rtol=1e-6, atol=1e-6)
    else:
        from tests.helpers import assert_close

    assert_close(image_ops.gaussian(xp.asarray(img), 1.5), skimage.filters.gaussian(img, 1.5), xp=xp)
    assert_close(
        image_ops.median(xp.asarray(img), 3), skimage.filters.median(img, footprint=np.ones((3, 3))), xp=xp
    )
    assert_close(image_ops.sobel(xp.asarray(img)), skimage.filters.sobel(img), xp=xp)
    assert_close(
        image_ops.rotate(xp.asarray(img), 30), skimage.transform.rotate(img, 30, preserve_range=True), xp=xp
    )
    assert_close(
        image_ops.difference_of_gaussians(xp.asarray(img), 1, 4),
        skimage.filters.difference_of_gaussians(img, 1, 4),
        xp=xp,
    )
    t = image_ops.image_op("threshold_otsu", xp.asarray(img))
    assert float(t) == pytest.approx(skimage.filters.threshold_otsu(img))


def test_unknown_operation_is_named(img):
    with pytest.raises(ValueError, match=r"image operation must be one of .*; got 'blur'"):
        image_ops.image_op("blur", img)


@pytest.mark.gpu
def test_cupy_images_run_through_cucim(img):
    import cupy

    pytest.importorskip("cucim")
    import skimage.filters

    out = image_ops.gaussian(cupy.asarray(img), 1.5)
    assert isinstance(out, cupy.ndarray)
    np.testing.assert_allclose(to_numpy(out), skimage.filters.gaussian(img, 1.5), atol=1e-6)


def _reference_windows(img, wy, wx, rows, cols):
    return np.stack([img[r : r + wy, c : c + wx] for r in rows for c in cols])


def test_window_starts_cover_the_image():
    assert window_starts((40, 52), 16, 8) == ([0, 8, 16, 24], [0, 8, 16, 24, 32, 36])
    assert window_starts((40, 52), (10, 20), (15, 40)) == ([0, 15, 30], [0, 32])
    with pytest.raises(ValueError, match=r"window_size \(50, 50\) is larger than the image \(40, 52\)"):
        window_starts((40, 52), 50)


def test_extract_and_stitch_windows(xp, img):
    rows, cols = window_starts(img.shape, (16, 12), (6, 5))
    ref = _reference_windows(img, 16, 12, rows, cols)
    win = extract_windows(xp.asarray(img), (16, 12), (6, 5))
    assert_close(win, ref, xp=xp)
    assert_close(stitch_windows(win, img.shape, (6, 5)), img, xp=xp)
    mag = extract_windows(xp.asarray(img), (16, 12), (6, 5), fft="magnitude", taper="hann")
    tap = ref * np.outer(np.hanning(16), np.hanning(12))
    assert_close(mag, np.abs(np.fft.fftshift(np.fft.fft2(tap), axes=(-2, -1))), rtol=1e-10, xp=xp)
    cpx = extract_windows(xp.asarray(img), (16, 12), (6, 5), fft="complex")
    assert_close(cpx, np.fft.fft2(ref), rtol=1e-10, xp=xp)


def test_svd_denoise_matches_reference(xp, img):
    rows, cols = window_starts(img.shape, 10, 4)
    win = _reference_windows(img, 10, 10, rows, cols).reshape(len(rows) * len(cols), 100)
    u, s, vh = np.linalg.svd(win, full_matrices=False)
    low = ((u[:, :5] * s[:5]) @ vh[:5]).reshape(-1, 10, 10)
    acc, cnt = np.zeros(img.shape), np.zeros(img.shape)
    k = 0
    for r in rows:
        for c in cols:
            acc[r : r + 10, c : c + 10] += low[k]
            cnt[r : r + 10, c : c + 10] += 1
            k += 1
    cleaned, sv = svd_denoise(xp.asarray(img), 10, 5, 4, return_spectrum=True)
    assert_close(sv, s, rtol=1e-10, xp=xp)
    assert_close(cleaned, acc / cnt, rtol=1e-9, atol=1e-12, xp=xp)
    with pytest.raises(ValueError, match=r"n_components must be in \[1, 100\]"):
        svd_denoise(xp.asarray(img), 10, 101, 4)


def test_svd_denoise_cleans_a_lattice():
    ds = lattice_image((96, 96), spacing=8.0, angle=0.0, vacancy_fraction=0.0, noise=0.3, dtype=np.float64)
    noisy = ds.data
    clean = ds.truth["clean"]
    out = svd_denoise(noisy, 16, 12, 4)
    err_in = np.sqrt(np.mean((noisy - clean) ** 2))
    err_out = np.sqrt(np.mean((out - clean) ** 2))
    assert err_out < 0.5 * err_in, (err_in, err_out)


def test_filters_public_api_is_sorted_and_complete():
    import pycro_gpu.filters as filters

    assert filters.__all__ == sorted(filters.__all__)
    assert all(hasattr(filters, name) for name in filters.__all__)
