"""SignalFilter over a USID Main dataset through the streamed engine: results, resume, reuse."""

import h5py
import numpy as np
import pytest

from pycro_gpu.datasets import gmode, write_usid
from pycro_gpu.filters import (
    HarmonicPassFilter,
    LowPassFilter,
    SignalFilter,
    fft_filter,
    get_noise_floor,
    rfft,
    sampling_rate_of,
)
from pycro_gpu.io.usid import USIDataset, check_main

RAW = "Measurement_000/Channel_000/Raw_Data"
N = 2048
FS = 1e6
F1 = 62.5e3


@pytest.fixture
def gmode_file(tmp_path):
    ds = gmode((6, 8), N, sample_rate=FS, excitation_frequency=F1, noise=0.5, seed=3, dtype=np.float32)
    path = write_usid(ds, tmp_path / "gmode.h5")
    return path, ds


def _filters():
    return [LowPassFilter(N, FS, 300e3, 0.1), HarmonicPassFilter(N, FS, F1, 4e3, 3)]


def test_signal_filter_writes_filtered_condensed_and_noise_floors(gmode_file):
    path, ds = gmode_file
    with h5py.File(path, "r+") as f:
        raw = f[RAW]
        assert sampling_rate_of(raw) == pytest.approx(FS)
        sf = SignalFilter(raw, _filters(), noise_threshold=1e-3, write_condensed=True)
        res = sf.compute(batch_rows=10, progress=False)
        assert res.group == "/Measurement_000/Channel_000/Raw_Data-FFT_Filtering_000"
        assert not res.reused and not res.resumed and res.n_computed == 48
        grp = f[res.group]
        x = raw[()]
        expected, floors = fft_filter(x, _filters(), noise_tolerance=1e-3, return_noise_floors=True)
        filt = grp["Filtered_Data"]
        check_main(filt)
        assert filt.dtype == np.float32 and USIDataset(filt).spec_dims[0].name == "Time"
        np.testing.assert_allclose(filt[()], expected, atol=1e-5)
        np.testing.assert_allclose(grp["Noise_Floors"][()][:, 0], floors, rtol=1e-6)
        np.testing.assert_allclose(floors, get_noise_floor(rfft(x.astype(np.float64)), 1e-3), rtol=1e-3)
        mask = sf.composite_filter.host_mask()
        np.testing.assert_array_equal(grp["Composite_Filter_OneSided"][()], mask.astype(np.float32))
        # pycroscopy's Composite_Filter: two-sided, FFT-shifted, the weight of |f| at each frequency f
        two = grp["Composite_Filter"][()]
        freqs = np.fft.fftshift(np.fft.fftfreq(N, 1 / FS))
        assert two.shape == (N,)
        np.testing.assert_array_equal(
            two, mask.astype(np.float32)[np.rint(np.abs(freqs) * N / FS).astype(int)]
        )
        hot = np.flatnonzero(mask > 0)
        cond = USIDataset(grp["Condensed_Data"])
        np.testing.assert_allclose(cond.spec_dims[0].values, hot * FS / N)
        spec = np.fft.rfft(expected.astype(np.float64))[:, hot]
        np.testing.assert_allclose(cond[()], spec, atol=1e-3 * np.abs(spec).max())
        # against the ground truth: filtering removed most of the noise and the 210 kHz interference
        clean = ds.truth["clean"].reshape(48, N)
        assert np.std(filt[()] - clean) < 0.25 * np.std(x - clean)
        assert grp.attrs["status"] == "complete" and grp.attrs["filter_1_kind"] == "harmonic_pass"


def test_signal_filter_resumes_and_reuses(gmode_file):
    path, _ = gmode_file
    with h5py.File(path, "r+") as f:
        ref = SignalFilter(f[RAW], _filters(), noise_threshold=1e-3).compute(batch_rows=8, progress=False)
        full = f[ref.group]["Filtered_Data"][()]
    # a second file: kill the job after two batches, then run again
    other = path.with_name("other.h5")
    other.write_bytes(path.read_bytes())
    with h5py.File(other, "r+") as f:
        del f[ref.group]

        def stop(done, total):
            if done >= 16:
                raise KeyboardInterrupt

        sf = SignalFilter(f[RAW], _filters(), noise_threshold=1e-3)
        with pytest.raises(KeyboardInterrupt):
            sf.compute(batch_rows=8, progress=False, on_batch=stop)
        grp = f[ref.group]
        assert grp.attrs["status"] == "running"
        assert int(grp["completed_positions"][()].sum()) == 16
        res = sf.compute(batch_rows=8, progress=False)
        assert res.resumed and res.n_computed == 48 - 16 and res.group == ref.group
        np.testing.assert_array_equal(f[res.group]["Filtered_Data"][()], full)
        again = sf.compute(progress=False)
        assert again.reused and again.group == ref.group
        new = SignalFilter(f[RAW], _filters(), noise_threshold=1e-2).compute(progress=False)
        assert new.group.endswith("FFT_Filtering_001")


def test_signal_filter_rejects_bad_setups(gmode_file):
    path, _ = gmode_file
    with h5py.File(path, "r") as f:
        raw = f[RAW]
        with pytest.raises(ValueError, match=f"filter signal_length=1000 does not match the {N} samples"):
            SignalFilter(raw, LowPassFilter(1000, FS, 100e3))
        with pytest.raises(ValueError, match="needs frequency_filters and/or noise_threshold"):
            SignalFilter(raw)
        with pytest.raises(ValueError, match=r"noise_threshold must be in \(0, 1\), got 2"):
            SignalFilter(raw, noise_threshold=2)
        with pytest.raises(ValueError, match="write_condensed=True needs frequency_filters"):
            SignalFilter(raw, noise_threshold=0.1, write_condensed=True)
        fig = SignalFilter(raw, _filters()).test(5)
        expected = fft_filter(raw[5].astype(np.float64), _filters())
        line = fig.axes[0].lines[1].get_ydata()
        np.testing.assert_allclose(line, expected[: line.size], atol=1e-12)


@pytest.mark.gpu
def test_signal_filter_on_cupy_equals_numpy(gmode_file):
    path, _ = gmode_file
    with h5py.File(path, "r+") as f:
        sf = SignalFilter(f[RAW], _filters(), noise_threshold=1e-3, write_condensed=True)
        cpu = sf.compute(backend="numpy", progress=False)
        gpu = sf.compute(backend="cupy", override=True, progress=False)
        assert gpu.group != cpu.group and f[gpu.group].attrs["backend"] == "cupy"
        for name in ("Filtered_Data", "Noise_Floors", "Condensed_Data"):
            a, b = f[cpu.group][name][()], f[gpu.group][name][()]
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * np.abs(a).max())


def test_filter_dataset_is_the_signal_filter_with_the_job_signature(gmode_file, tmp_path):
    import os

    from pycro_gpu.filters import filter_dataset

    path, _ = gmode_file
    before = os.stat(path).st_mtime_ns
    res = filter_dataset(path, RAW, results=tmp_path / "r.h5", frequency_filters=_filters(), progress=False)
    assert os.stat(path).st_mtime_ns == before  # results elsewhere: the raw file was only read
    with h5py.File(path, "r+") as f:
        ref = SignalFilter(f[RAW], _filters()).compute(progress=False)
        expected = f[ref.group]["Filtered_Data"][()]
    with h5py.File(res.file, "r") as f:
        np.testing.assert_array_equal(f[res.group]["Filtered_Data"][()], expected)
    again = filter_dataset(path, RAW, frequency_filters=_filters(), progress=False)  # in place: reused
    assert again.reused and again.group == ref.group


def test_light_jobs_take_numpy_fft_and_the_array_api_path_with_the_same_results(gmode_file, monkeypatch):
    from pycro_gpu.filters import signal_filter

    path, _ = gmode_file
    with h5py.File(path, "r+") as f:
        raw = f[RAW]
        light = SignalFilter(raw, _filters(), noise_threshold=1e-3)
        assert light._job().compute.keywords["light"]  # 48 x 2048 samples
        monkeypatch.setattr(signal_filter, "LIGHT_JOB_SAMPLES", 48 * N - 1)
        heavy = SignalFilter(raw, _filters(), noise_threshold=1e-3)
        assert not heavy._job().compute.keywords["light"]
        a = f[light.compute(progress=False).group]
        b = f[heavy.compute(override=True, progress=False).group]
        assert a.name != b.name
        np.testing.assert_allclose(a["Filtered_Data"][()], b["Filtered_Data"][()], atol=1e-5)
        np.testing.assert_allclose(a["Noise_Floors"][()], b["Noise_Floors"][()], rtol=1e-6)


def test_a_light_filter_command_imports_neither_numba_nor_scipy(gmode_file):
    import subprocess
    import sys

    path, _ = gmode_file
    argv = ["filter", str(path), "--low-pass", "300e3", "--noise-tolerance", "1e-3", "-q"]
    code = (
        "import sys\n"
        "from pycro_gpu.cli import main\n"
        f"assert main({argv!r}) == 0\n"
        "print(sorted(m for m in ('numba', 'scipy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"  # numba 0.5 s, scipy.fft 0.3 s, scipy.special 0.3 s of imports
    with h5py.File(path, "r") as f:
        grp = f[RAW + "-FFT_Filtering_000"]
        expected = fft_filter(f[RAW][()], LowPassFilter(N, FS, 300e3), noise_tolerance=1e-3, method="kernel")
        np.testing.assert_allclose(grp["Filtered_Data"][()], expected, atol=1e-5)
