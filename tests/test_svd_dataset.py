"""Dataset-level SVD: Raw_Data-SVD_000 with U, S, V Main datasets, and rebuild() of Rebuilt_Data."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pycro_gpu.decomposition import rebuild, svd, svd_dataset
from pycro_gpu.io.usid import Dimension, USIDataset, check_main, write_main
from tests.helpers import results_group


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """Tiny matrices gain nothing from BLAS threads, and threaded OpenBLAS collapses on a busy machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _make(path, rng, *, complex_=False, dtype=np.float32, nx=30, ny=20, nf=48, rank=4):
    m = nx * ny
    A = (rng.standard_normal((m, rank)) * np.logspace(1.5, 0, rank)) @ rng.standard_normal((rank, nf))
    if complex_:
        A = A + 1j * (rng.standard_normal((m, rank)) @ rng.standard_normal((rank, nf)))
    A = A + 0.01 * rng.standard_normal((m, nf))
    A = A.astype(dtype)
    f = h5py.File(path, "w")
    grp = f.create_group("Measurement_000/Channel_000")
    main = write_main(
        grp,
        "Raw_Data",
        A,
        [Dimension("X", "m", nx), Dimension("Y", "m", ny)],
        Dimension("Frequency", "Hz", np.linspace(300e3, 320e3, nf)),
        "Amplitude",
        "V",
    )
    return f, main, A


@pytest.mark.parametrize(
    ("complex_", "dtype"), [(False, np.float32), (True, np.complex64), (False, np.float64)]
)
def test_svd_dataset_writes_pycroscopy_layout(tmp_path, rng, complex_, dtype):
    f, main, A = _make(tmp_path / "d.h5", rng, complex_=complex_, dtype=dtype)
    with f:
        grp = results_group(svd_dataset(main, k=6, memory_mb=0.25, progress=False), main)
        assert grp.name == "/Measurement_000/Channel_000/Raw_Data-SVD_000"
        assert grp.attrs["status"] == "complete" and grp.attrs["num_components"] == 6
        assert grp.attrs["reads"] == 2 and grp.attrs["method_used"] == "gram"
        check_main(grp["U"])
        check_main(grp["V"])
        U, V = USIDataset(grp["U"]), USIDataset(grp["V"])
        assert U.shape == (600, 6) and V.shape == (6, 48)
        # U shares the source's position dimensions, V its spectroscopic ones
        assert [d.name for d in U.pos_dims] == ["X", "Y"] and U.spec_dims[0].name == "Principal Component"
        assert [d.name for d in V.spec_dims] == ["Frequency"] and V.quantity == "Amplitude"
        assert U.h5_pos_inds == main.h5_pos_inds
        assert U.dtype.kind == ("c" if complex_ else "f") and U.dtype.itemsize == np.dtype(dtype).itemsize
        A64 = A.astype(np.complex128 if complex_ else np.float64)
        s_ref = np.linalg.svd(A64, compute_uv=False)[:6]
        np.testing.assert_allclose(grp["S"][()], s_ref, rtol=1e-4)
        u, s, v = U[()].astype(A64.dtype), grp["S"][()], V[()].astype(A64.dtype)
        proj = A64 @ v.conj().T @ v
        tol = 1e-5 if np.dtype(dtype).itemsize <= 8 else 1e-10
        np.testing.assert_allclose((u * s) @ v, proj, atol=tol * s_ref[0])
        # the same request finds the finished group instead of computing again
        again = results_group(svd_dataset(main, k=6, memory_mb=0.25, progress=False), main)
        assert again.name == grp.name
        assert "Raw_Data-SVD_001" not in main.parent


def test_rebuild_writes_denoised_main(tmp_path, rng):
    f, main, A = _make(tmp_path / "r.h5", rng, dtype=np.float64)
    with f:
        grp = results_group(svd_dataset(main, k=8, progress=False), main)
        res = rebuild(grp, components=4, memory_mb=0.05)
        assert res.group == grp.name + "/Rebuilt_Data_000" and not res.reused
        out = f[res.group]["Rebuilt_Data"]
        check_main(out)
        u, s, vh = np.linalg.svd(A, full_matrices=False)
        ref = (u[:, :4] * s[:4]) @ vh[:4]
        np.testing.assert_allclose(out[()], ref, atol=1e-9 * s[0])
        assert USIDataset(out).n_dim_shape == (30, 20, 48)
        second = rebuild(grp, components=[0, 2])
        assert second.group.endswith("Rebuilt_Data_001")
        rebuilt = f[second.group]["Rebuilt_Data"][()]
        np.testing.assert_allclose(rebuilt, (u[:, [0, 2]] * s[[0, 2]]) @ vh[[0, 2]], atol=1e-9 * s[0])
        assert rebuild(grp, components=4).reused  # the same components again: the finished group
        with pytest.raises(ValueError, match="components must select among the 8"):
            rebuild(grp, components=[9])


def test_failed_rebuild_leaves_no_group(tmp_path, rng, monkeypatch):
    import pycro_gpu.decomposition._rebuild as dec

    f, main, _ = _make(tmp_path / "fail.h5", rng, dtype=np.float64)
    with f:
        grp = results_group(svd_dataset(main, k=4, progress=False), main)

        calls = []
        real = dec.from_host

        def broken(*args, **kwargs):  # the first call moves S V to the backend; the next one fails
            calls.append(1)
            if len(calls) > 1:
                raise MemoryError("device full")
            return real(*args, **kwargs)

        monkeypatch.setattr(dec, "from_host", broken)
        with pytest.raises(MemoryError, match="device full"):
            rebuild(grp, components=2, memory_mb=0.05)
        assert not [n for n in grp if n.startswith("Rebuilt_Data")]
        monkeypatch.undo()
        assert rebuild(grp, components=2).group.endswith("Rebuilt_Data_000")


def test_svd_of_dataset_in_memory_result(tmp_path, rng):
    f, main, A = _make(tmp_path / "m.h5", rng, dtype=np.float64)
    with f:
        res = svd(main, 4, memory_mb=0.05, progress=False)
    np.testing.assert_allclose(np.asarray(res.S), np.linalg.svd(A, compute_uv=False)[:4], rtol=1e-10)
    assert res.info["n_batches"] > 4


@pytest.mark.gpu
def test_svd_dataset_on_cupy_matches_numpy(tmp_path, rng):
    f, main, _ = _make(tmp_path / "g.h5", rng, dtype=np.float32)
    with f:
        g_np = results_group(svd_dataset(main, k=5, memory_mb=0.25, backend="numpy", progress=False), main)
        g_cp = results_group(
            svd_dataset(main, k=5, memory_mb=0.25, backend="cupy", override=True, progress=False), main
        )
        assert g_cp.name.endswith("SVD_001")
        np.testing.assert_allclose(g_cp["S"][()], g_np["S"][()], rtol=1e-5)
        np.testing.assert_allclose(g_cp["V"][()], g_np["V"][()], atol=1e-5)  # same sign convention
        np.testing.assert_allclose(g_cp["U"][()], g_np["U"][()], atol=1e-4)


def test_wide_eels_spectrum_image_is_exact(test_data, tmp_path):
    """The 294 x 1024 EELS spectrum image: ``auto`` reads it once and takes the exact dense SVD."""
    from pycro_gpu.io.translators import translate
    from pycro_gpu.io.usid import find_main_datasets

    path = translate(test_data / "DMReader_SpectrumImage_SI-EELS.dm3", tmp_path / "eels.h5")
    res = svd_dataset(path, k=8, progress=False)
    with h5py.File(path, "r") as f:
        raw = next(m for m in find_main_datasets(f) if m.name.endswith("Raw_Data"))
        A = raw[()].astype(np.float64)
        g = f[res.group]
        assert A.shape == (294, 1024) and g.attrs["method_used"] == "dense" and g.attrs["reads"] == 1
        assert g.attrs["error_estimate"] < 1e-10
        S = g["S"][()]  # stored in float64 as computed (U and V in the data's float32)
        assert S.dtype == np.float64 and g["V"].dtype == g["U"].dtype == np.float32
        S64 = np.asarray(svd(raw, 8, progress=False).S)
    ref = np.linalg.svd(A, compute_uv=False)[:8]
    np.testing.assert_allclose(S64, ref, rtol=1e-10)
    np.testing.assert_allclose(S, ref, rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_randomized_u_comes_from_the_last_read_and_a_resume_gives_the_same_bits(tmp_path, dtype, monkeypatch):
    """The randomized method forms U from the rows A Q of its last range read (no U read); a run that
    fails after the last read resumes from the checkpoint, reads A Q again and writes the same U."""
    import pycro_gpu.decomposition._svd_streamed as streamed

    kwargs = dict(k=4, method="randomized", n_iter=2, memory_mb=0.25, progress=False)
    paths = [tmp_path / "clean.h5", tmp_path / "resumed.h5"]
    for p in paths:
        f, _main, A = _make(p, np.random.default_rng(5), complex_=np.dtype(dtype).kind == "c", dtype=dtype)
        f.close()
    with h5py.File(paths[0], "r+") as f:
        clean = results_group(svd_dataset(f["Measurement_000/Channel_000/Raw_Data"], **kwargs), f)
        assert clean.attrs["reads"] == 3 and clean.attrs["status"] == "complete"
        expected = {name: clean[name][()] for name in ("U", "S", "V")}
    A64 = A.astype(np.complex128 if np.dtype(dtype).kind == "c" else np.float64)
    u, s, v = (expected[n].astype(A64.dtype) for n in ("U", "S", "V"))
    np.testing.assert_allclose(u * s, A64 @ v.conj().T, atol=1e-5 * float(expected["S"][0]))  # U = A V / S

    real_u_stage = streamed._u_stage

    def crash(*args, **kw):
        raise KeyboardInterrupt("killed after the last range read")

    monkeypatch.setattr(streamed, "_u_stage", crash)
    with h5py.File(paths[1], "r+") as f, pytest.raises(KeyboardInterrupt):
        svd_dataset(f["Measurement_000/Channel_000/Raw_Data"], **kwargs)
    monkeypatch.setattr(streamed, "_u_stage", real_u_stage)
    with h5py.File(paths[1], "r+") as f:
        grp = results_group(svd_dataset(f["Measurement_000/Channel_000/Raw_Data"], **kwargs), f)
        assert grp.name.endswith("SVD_000") and grp.attrs["status"] == "complete"
        for name, value in expected.items():
            assert grp[name][()].tobytes() == value.tobytes(), name


def test_an_unfinished_job_of_another_version_is_computed_again_not_resumed(tmp_path, monkeypatch):
    """A checkpoint holds intermediate states of one version's algorithm (another version may start the
    range finder elsewhere): an unfinished group started by another pycro_gpu is left as it is, with a
    warning, and the job runs again in a new group."""
    import pycro_gpu.decomposition._svd_streamed as streamed

    kwargs = dict(k=4, method="randomized", n_iter=2, memory_mb=0.25, progress=False)
    path = tmp_path / "data.h5"
    f, _main, _data = _make(path, np.random.default_rng(5))
    f.close()
    with h5py.File(path, "r+") as f:
        clean = results_group(svd_dataset(f["Measurement_000/Channel_000/Raw_Data"], **kwargs), f)
        expected = {name: clean[name][()] for name in ("U", "S", "V")}
        del f[clean.name]
    real_u_stage = streamed._u_stage

    def crash(*args, **kw):
        raise KeyboardInterrupt("killed after the last range read")

    monkeypatch.setattr(streamed, "_u_stage", crash)
    with h5py.File(path, "r+") as f, pytest.raises(KeyboardInterrupt):
        svd_dataset(f["Measurement_000/Channel_000/Raw_Data"], **kwargs)
    monkeypatch.setattr(streamed, "_u_stage", real_u_stage)
    with h5py.File(path, "r+") as f:
        (old,) = [g for name, g in f["Measurement_000/Channel_000"].items() if "-SVD_" in name]
        assert old.attrs["status"] == "running" and "_checkpoint" in old
        old.attrs["pycro_gpu_version"] = "0.0.1"
        old_name = old.name
    with h5py.File(path, "r+") as f, pytest.warns(RuntimeWarning, match=r"not resuming .*pycro_gpu 0\.0\.1"):
        new_name = results_group(svd_dataset(f["Measurement_000/Channel_000/Raw_Data"], **kwargs), f).name
    with h5py.File(path, "r") as f:
        grp = f[new_name]
        assert new_name != old_name and grp.attrs["status"] == "complete"
        for name, value in expected.items():
            assert grp[name][()].tobytes() == value.tobytes(), name
        assert f[old_name].attrs["status"] == "running"  # left as it was


@pytest.mark.parametrize("method", ["auto", "gram", "sketch"])
def test_svd_command_on_real_data_imports_no_scipy(tmp_path, method):
    """Importing scipy.linalg costs 0.2 to 0.4 s of every process: the SVD of real data does without it
    (NumPy hands ``a.T @ a`` to BLAS syrk itself), and the result matches LAPACK's."""
    import subprocess
    import sys

    path = tmp_path / "d.h5"
    f, _main, A = _make(path, np.random.default_rng(3), dtype=np.float64)
    f.close()
    code = (
        "import sys\n"
        "from pycro_gpu.cli import main\n"
        f"assert main(['svd', {str(path)!r}, '-k', '4', '--method', {method!r}, '-q']) == 0\n"
        "assert 'scipy' not in sys.modules, sorted(m for m in sys.modules if m.startswith('scipy'))[:5]\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    with h5py.File(path, "r") as f:
        grp = f["Measurement_000/Channel_000/Raw_Data-SVD_000"]
        assert grp.attrs["method_used"] == ("gram" if method == "auto" else method)  # 48 columns: Gram
        np.testing.assert_allclose(grp["S"][()], np.linalg.svd(A, compute_uv=False)[:4], rtol=1e-10)
