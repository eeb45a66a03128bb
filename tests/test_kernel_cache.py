"""The on-disk kernel cache: every kernel compiles once per machine, and never serves stale code.

Each case runs fresh Python processes (a compiled kernel lives for the life of a process), with the cache
in a temporary directory (``PYCRO_GPU_CACHE_DIR``), and reads what the process loaded and compiled from
numba's own per-dispatcher statistics and from :func:`pycro_gpu.kernels.cache.compile_log`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pycro_gpu import datasets

KERNELS_SRC = Path(__file__).resolve().parents[1] / "kernels"

# Runs the CLI in-process, then prints (last line) what the kernel cache did, as JSON.
CLI_PROBE = textwrap.dedent(
    """
    import json, sys
    from pycro_gpu.cli import main
    rc = main(sys.argv[1:])
    from pycro_gpu.kernels import cache as _cache
    log = _cache.compile_log()
    top = lambda names: sorted({n for n in names if "." not in n})  # kernels, without their callees
    print(json.dumps({"rc": rc, "compiled": top(log.compiled), "loaded": top(log.loaded),
                      "all_compiled": sorted(log.compiled), "all_loaded": sorted(set(log.loaded)),
                      "numba": _cache.cache_statistics()}))
    """
)

# Fits SHO spectra with a *copy* of the kernels package (importable as ``kcopy``), so the test may edit it.
COPY_FIT = textwrap.dedent(
    """
    import json
    import numpy as np
    from kcopy import cache as _cache
    from kcopy.lm import lm_fit_batch
    from kcopy.model_sho import SHO
    x = np.linspace(1.0, 2.0, 64)
    w0, q, phi = 1.5, 50.0, 0.3
    h = np.exp(1j * phi) * w0**2 / (x**2 - 1j * x * w0 / q - w0**2)
    y = np.ascontiguousarray(np.tile(h, (4, 1))).view(np.float64)
    p0 = np.tile([0.8, 1.49, 45.0, 0.25], (4, 1))
    lo = np.array([0.0, 0.5, 1.0, -np.pi])
    hi = np.array([10.0, 3.0, 1e4, np.pi])
    params, chi2, r2, niter, status = lm_fit_batch(SHO, x, y, p0, lo, hi)
    log = _cache.compile_log()
    top = lambda names: sorted({n for n in names if "." not in n})  # kernels, without their callees
    print(json.dumps({"amplitude": params[:, 0].tolist(), "status": status.tolist(),
                      "compiled": top(log.compiled), "loaded": top(log.loaded), "all": sorted(log.compiled)}))
    """
)


def _env(cache_dir, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYCRO_GPU_CACHE_DIR", "NUMBA_CACHE_DIR")}
    env.update({"PYCRO_GPU_CACHE_DIR": str(cache_dir), "PYCRO_GPU_BACKEND": "numpy", **extra})
    return env


def _probe(script: str, args, env, cwd=None) -> tuple[dict, str]:
    proc = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.fixture(scope="module")
def be_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("be") / "be.h5"
    datasets.write_usid(datasets.band_excitation(shape=(8, 6), n_freq=87, noise=0.03), path)
    return path


def _fresh_copy(src: Path, tmp_path: Path, name: str) -> Path:
    dst = tmp_path / name
    shutil.copy(src, dst)
    return dst


def test_second_cli_fit_loads_every_kernel_from_the_cache_and_compiles_none(be_file, tmp_path):
    cache = tmp_path / "cache"
    first, first_err = _probe(CLI_PROBE, ["fit", "sho", _fresh_copy(be_file, tmp_path, "a.h5")], _env(cache))
    second, second_err = _probe(
        CLI_PROBE, ["fit", "sho", _fresh_copy(be_file, tmp_path, "b.h5")], _env(cache)
    )
    assert first["rc"] == second["rc"] == 0
    # the cold process compiled the SHO guess and the SHO fit driver, and numba counted misses for them
    assert first["compiled"] == ["lm-sho-float64-s136-cpu", "sho_guess-float64-cpu"]
    assert all(s["misses"] >= 1 for name, s in first["numba"].items() if name in first["all_compiled"])
    # the warm process: numba's statistics show a cache hit and no miss for every kernel (and compiled
    # callee) it ran
    assert second["all_compiled"] == []
    assert second["all_loaded"] == first["all_compiled"]
    ran = {name: s for name, s in second["numba"].items() if s["hits"] or s["misses"]}
    assert set(ran) == set(first["all_compiled"])
    assert all(s["hits"] >= 1 and s["misses"] == 0 for s in ran.values()), ran
    # the first run says once that it compiles, and how long it took; the warm run says nothing of it
    assert first_err.count("compiling numba kernels for this machine") == 1
    assert "compiled 2 kernels in" in first_err
    assert "compil" not in second_err
    # both runs wrote the same fit
    import h5py

    group = "Measurement_000/Channel_000/Raw_Data-SHO_Fit_000/Fit"
    with h5py.File(tmp_path / "a.h5", "r") as a, h5py.File(tmp_path / "b.h5", "r") as b:
        np.testing.assert_array_equal(a[group][()], b[group][()])


def test_quiet_run_does_not_announce_compilation(be_file, tmp_path):
    _, err = _probe(
        CLI_PROBE, ["fit", "sho", "-q", _fresh_copy(be_file, tmp_path, "a.h5")], _env(tmp_path / "c")
    )
    assert "compil" not in err


@pytest.fixture
def kernels_copy(tmp_path) -> Path:
    """A copy of the kernels package importable as ``kcopy`` from the returned folder."""
    root = tmp_path / "pkg"
    shutil.copytree(KERNELS_SRC, root / "kcopy", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_changed_kernel_source_is_not_served_from_a_stale_cache(kernels_copy, tmp_path):
    env = _env(tmp_path / "cache", PYTHONPATH=str(kernels_copy))
    cold, _ = _probe(COPY_FIT, [], env)
    warm, _ = _probe(COPY_FIT, [], env)
    assert cold["compiled"] == ["lm-sho-float64-s136-cpu"] and warm["compiled"] == []
    assert warm["loaded"] == ["lm-sho-float64-s136-cpu"]
    np.testing.assert_allclose(warm["amplitude"], 1.0, rtol=1e-6)
    # Edit a callee in another file than the cached driver (lm.py): the SHO model now has twice the
    # response per unit amplitude, so the fitted amplitude must halve. numba's own cache would miss this.
    model = kernels_copy / "kcopy" / "model_sho.py"
    src = model.read_text()
    edited = src.replace("gr = w02 * (", "gr = TWO * w02 * (").replace("gi = w02 * (", "gi = TWO * w02 * (")
    assert edited != src
    model.write_text(edited)
    after, _ = _probe(COPY_FIT, [], env)
    assert after["compiled"] == ["lm-sho-float64-s136-cpu"] and after["loaded"] == []
    np.testing.assert_allclose(after["amplitude"], 0.5, rtol=1e-6)
    assert after["status"] == [0, 0, 0, 0]


def test_unwritable_cache_dir_falls_back_to_the_user_cache(kernels_copy, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory would be")
    env = _env(blocker / "cache", PYTHONPATH=str(kernels_copy), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    cold, _ = _probe(COPY_FIT, [], env)
    warm, _ = _probe(COPY_FIT, [], env)
    assert cold["compiled"] == ["lm-sho-float64-s136-cpu"]
    assert warm["compiled"] == [] and warm["loaded"] == ["lm-sho-float64-s136-cpu"]
    assert list((tmp_path / "xdg" / "pycro_gpu" / "kernels").glob("lm-sho-float64-s136-cpu.*.nbi"))


def test_corrupt_cache_entries_are_recompiled_not_an_error(kernels_copy, tmp_path):
    cache = tmp_path / "cache"
    env = _env(cache, PYTHONPATH=str(kernels_copy))
    _probe(COPY_FIT, [], env)
    files = sorted(cache.glob("lm-sho-*"))
    assert {f.suffix for f in files} == {".nbi", ".nbc"}
    for f in files:
        f.write_bytes(b"\x80garbage" + f.read_bytes()[:40])
    again, err = _probe(COPY_FIT, [], env)
    assert again["compiled"] == ["lm-sho-float64-s136-cpu"]
    np.testing.assert_allclose(again["amplitude"], 1.0, rtol=1e-6)
    assert "Traceback" not in err
    warm, _ = _probe(COPY_FIT, [], env)  # the recompiled entry replaced the damaged one
    assert warm["loaded"] == ["lm-sho-float64-s136-cpu"] and warm["compiled"] == []


def test_compile_command_warms_the_cache_for_a_later_fit(be_file, tmp_path):
    env = _env(tmp_path / "cache")

    def compile_command(*options):
        proc = subprocess.run(
            [sys.executable, "-m", "pycro_gpu.cli", "compile", *options],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    out = compile_command("--models", "sho", "--samples", "87", "--no-cuda")
    assert "LM sho float64 data, <= 136 samples" in out and "compiled in" in out
    fit, _ = _probe(CLI_PROBE, ["fit", "sho", _fresh_copy(be_file, tmp_path, "a.h5")], env)
    assert fit["compiled"] == []
    assert fit["loaded"] == ["lm-sho-float64-s136-cpu", "sho_guess-float64-cpu"]
    assert "0 compiled" in compile_command("--models", "sho", "--samples", "87", "-q")
    assert str(tmp_path / "cache") in compile_command("--clear")
    assert not list((tmp_path / "cache").glob("*.nb[ci]"))


def test_kernel_names_state_every_compile_time_parameter():
    from pycro_gpu.kernels.lm import Model, kernel_cache_name
    from pycro_gpu.kernels.model_peaks import peaks_model
    from pycro_gpu.kernels.model_sho import SHO

    assert kernel_cache_name(SHO, "float64", "s136-cpu") == "lm-sho-float64-s136-cpu"
    assert kernel_cache_name(peaks_model("gaussian", 2), "float32", "cuda") == "lm-gaussian_2-float32-cuda"
    # a model defined outside the kernels package is not covered by the source stamp: never cached on disk
    user_model = Model("sho", 4, 2, lambda F: None, lambda F: None, 6)
    assert kernel_cache_name(user_model, "float64", "s136-cpu") is None


def test_source_digest_changes_with_any_kernel_file(tmp_path):
    from pycro_gpu.kernels.cache import source_digest

    folder = tmp_path / "k"
    shutil.copytree(KERNELS_SRC, folder, ignore=shutil.ignore_patterns("__pycache__"))
    before = source_digest(folder)
    assert before == source_digest(KERNELS_SRC)
    (folder / "noise_floor.py").write_text((folder / "noise_floor.py").read_text() + "\n# edited\n")
    assert source_digest(folder) != before


# Guess and fit of noisy SHO spectra; writes the parameters to argv[1].
FIT_TO_FILE = textwrap.dedent(
    """
    import sys
    import numpy as np
    from benchmarks.gpu_check import sho_spectra
    from pycro_gpu.fitting import fit_sho
    spectra, freqs, _ = sho_spectra(np.random.default_rng(5), 256, n_bins=87, noise=0.02)
    np.save(sys.argv[1], np.stack([fit_sho(spectra[s:s + 32], freqs).params for s in range(0, 256, 32)]))
    """
)


def test_loading_process_computes_bitwise_what_the_compiling_process_did(tmp_path):
    # A compiled kernel carries copies of the functions it calls; a compiling process binds them to the
    # callees it compiled first. Unless a loading process does the same, its last bits differ (seen
    # on these spectra: 227 of 1024 parameters), which breaks resume and multi-worker reproducibility.
    env = _env(tmp_path / "cache")
    _probe(FIT_TO_FILE + "\nprint('{}')", [tmp_path / "compiled.npy"], env, cwd=KERNELS_SRC.parent)
    _probe(FIT_TO_FILE + "\nprint('{}')", [tmp_path / "loaded.npy"], env, cwd=KERNELS_SRC.parent)
    assert list((tmp_path / "cache").glob("lm-sho-float64-s136-cpu.core.*.nbi"))  # the callees are cached
    np.testing.assert_array_equal(np.load(tmp_path / "loaded.npy"), np.load(tmp_path / "compiled.npy"))


def test_compile_time_counts_a_kernel_and_the_callees_compiled_inside_it_once(monkeypatch):
    from pycro_gpu.kernels import cache

    clock = iter([0.0, 1.0, 3.0, 4.0, 10.0, 12.0])
    monkeypatch.setattr(cache.time, "perf_counter", lambda: next(clock))
    log = cache.CompileLog()
    log._miss("lm-x")  # t=0: the driver misses, then its callee compiles inside it
    log._miss("lm-x.core")  # t=1
    log._done("lm-x.core")  # t=3
    log._done("lm-x")  # t=4
    first = log.snapshot()
    log._miss("guess")  # t=10
    log._done("guess")  # t=12
    assert log.compile_seconds == 6.0  # 4 s + 2 s of wall time, not 4 + 2 + 2
    assert log.compiled == {"lm-x": 4.0, "lm-x.core": 2.0, "guess": 2.0}
    assert log.summary().startswith("compiled 2 kernels in 6.0 s")
    assert log.summary(since=first).startswith("compiled 1 kernel in 2.0 s")
    assert log.summary(since=log.snapshot()) is None


def test_cuda_kernels_get_their_named_cache_without_a_device():
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        pytest.skip("the CUDA simulator compiles nothing, so nothing is cached")
    from numba.cuda.dispatcher import CUDACache
    from pycro_gpu.kernels.cache import KernelCache
    from pycro_gpu.kernels.lm import cuda_lm_kernel
    from pycro_gpu.kernels.model_sho import SHO, cuda_sho_guess_kernel
    from pycro_gpu.kernels.spectral_mask import cuda_spectral_mask

    kernels = {
        "lm-sho-float32-cuda": cuda_lm_kernel(SHO, "float32"),
        "sho_guess-float64-cuda": cuda_sho_guess_kernel("float64"),
        "spectral_mask-cuda": cuda_spectral_mask(),
    }
    for name, kernel in kernels.items():
        assert isinstance(kernel._cache, KernelCache) and isinstance(kernel._cache, CUDACache)
        assert kernel._cache._kernel_name == name


# SHO fits on the GPU (CuPy), parameters to argv[1]; prints what the kernel cache did.
GPU_FIT = textwrap.dedent(
    """
    import json, sys
    import cupy as cp
    import numpy as np
    from benchmarks.gpu_check import sho_spectra
    from pycro_gpu.fitting import fit_sho
    from pycro_gpu.kernels import cache
    spectra, freqs, _ = sho_spectra(np.random.default_rng(5), 4096, n_bins=87, noise=0.02)
    res = fit_sho(cp.asarray(spectra.astype(np.complex64)), cp.asarray(freqs))
    np.save(sys.argv[1], cp.asnumpy(res.params))
    log = cache.compile_log()
    print(json.dumps({"compiled": sorted(log.compiled), "loaded": sorted(set(log.loaded))}))
    """
)


@pytest.mark.gpu
def test_cuda_kernels_compile_once_and_load_bitwise_on_a_gpu(tmp_path):
    env = _env(tmp_path / "cache", PYCRO_GPU_BACKEND="cupy")
    cold, _ = _probe(GPU_FIT, [tmp_path / "compiled.npy"], env, cwd=KERNELS_SRC.parent)
    warm, _ = _probe(GPU_FIT, [tmp_path / "loaded.npy"], env, cwd=KERNELS_SRC.parent)
    assert {"lm-sho-float32-cuda", "sho_guess-float32-cuda"} <= set(cold["compiled"])
    assert warm["compiled"] == [] and {"lm-sho-float32-cuda", "sho_guess-float32-cuda"} <= set(warm["loaded"])
    np.testing.assert_array_equal(np.load(tmp_path / "loaded.npy"), np.load(tmp_path / "compiled.npy"))
