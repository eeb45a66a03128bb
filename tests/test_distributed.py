"""The streamed engine on a Dask LocalCluster: same results as one process, resumable after a kill.

One small cluster (2 worker processes, 1 thread each) serves the whole module. The jobs' compute
functions live at module level so that the workers import them by name (``tests.test_distributed``).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from pycro_gpu.errors import DataError
from pycro_gpu.io.usid import Dimension, write_main
from pycro_gpu.process import COMPLETED, Job, Output, run_job
from tests.conftest import REPO_ROOT

distributed = pytest.importorskip("distributed")

from pycro_gpu.distributed import (  # noqa: E402
    DaskExecutor,
    add_dask_arguments,
    executor_from_args,
    make_client,
)

pytestmark = pytest.mark.slow

RAW = "/Measurement_000/Channel_000/Raw_Data"
NX, NY, NT = 24, 16, 128  # 384 positions x 128 samples
SAMP_RATE = 1e6
BATCH = 32  # 12 batches


# ---- jobs (module level: pickled by reference to the workers) ------------------------------------


def lowpass_compute(batch, xp, cutoff, delay=0.0):
    """Per-position FFT low-pass filter (array API path of pycro_gpu.filters.fft_filter)."""
    from pycro_gpu.filters.fft import LowPassFilter, fft_filter

    if delay:
        time.sleep(delay)
    n = batch.shape[1]
    x = xp.astype(batch, xp.float64)
    out = fft_filter(x, LowPassFilter(n, SAMP_RATE, cutoff), method="array_api", xp=xp)
    return {"Filtered": out, "rms": xp.sqrt(xp.mean(out * out, axis=1))}


def lowpass_job(delay=0.0):
    return Job(
        "LowPass",
        functools.partial(lowpass_compute, cutoff=100e3, delay=delay),
        [
            Output("Filtered", spec_dims=[Dimension("Time", "s", NT)], dtype=np.float64, units="V"),
            Output("rms", dtype=np.float64),
        ],
        parameters={"cutoff": 100e3},
    )


def project_compute(batch, xp, components, singular_values):
    """SVD projection U = X V / S of each position onto fixed components (the U pass of an SVD)."""
    v = xp.asarray(components)
    s = xp.asarray(singular_values)
    return {"U": (xp.astype(batch, xp.float64) @ v) / s}


def projection_job(components, singular_values):
    k = components.shape[1]
    return Job(
        "SVD_Projection",
        functools.partial(project_compute, components=components, singular_values=singular_values),
        [Output("U", shape=k, dtype=np.float64)],
        parameters={"k": k},
    )


def sho_compute(batch, xp, freqs, delay=0.0):
    """SHO fit of every band-excitation spectrum (batched Levenberg-Marquardt kernel)."""
    from pycro_gpu.fitting import fit_sho

    if delay:
        time.sleep(delay)
    res = fit_sho(batch, xp.asarray(freqs))
    return {"Fit": res.params, "R2": res.r2, "converged": res.converged}


def sho_job(path, delay=0.0):
    """SHO fit job of the BE file ``path`` (drive frequencies from its spectroscopic values)."""
    with h5py.File(path, "r") as f:
        freqs = f[f[RAW].attrs["Spectroscopic_Values"]][0].astype(np.float64)
    return Job(
        "SHO_Fit",
        functools.partial(sho_compute, freqs=freqs, delay=delay),
        [
            Output("Fit", shape=4, dtype=np.float64),
            Output("R2", dtype=np.float64),
            Output("converged", dtype=np.uint8),
        ],
        parameters={"model": "sho"},
    )


def backend_code_compute(batch, xp):
    from pycro_gpu.backend import namespace_name

    code = {"numpy": 1.0, "cupy": 2.0}[namespace_name(xp)]
    return {"code": xp.full((batch.shape[0],), code)}


def wrong_outputs_compute(batch, xp):
    return {"nope": xp.mean(batch, axis=1)}


# ---- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address="127.0.0.1:0",  # no fixed port: never clashes with another cluster
        silence_logs=logging.ERROR,
    )
    c = distributed.Client(cluster, set_as_default=False)
    yield c
    c.close()
    cluster.close()


def _make_raw(path, libver="earliest"):
    rng = np.random.default_rng(11)
    t = np.arange(NT) / SAMP_RATE
    tones = np.sin(2 * np.pi * 20e3 * t) + 0.5 * np.sin(2 * np.pi * 300e3 * t)
    data = rng.standard_normal((NX, NY, 1)) * tones + 0.1 * rng.standard_normal((NX, NY, NT))
    with h5py.File(path, "w", libver=libver) as f:
        g = f.create_group("Measurement_000/Channel_000")
        write_main(g, "Raw_Data", data.astype(np.float32), [Dimension("X", "m", NX), Dimension("Y", "m", NY)],
                   Dimension("Time", "s", t), "Deflection", "V", chunks=(16, NT))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def raw_master(tmp_path_factory):
    return _make_raw(tmp_path_factory.mktemp("raw") / "raw.h5")


@pytest.fixture
def raw(raw_master, tmp_path):
    """A fresh copy of the raw file per test (results go next to the raw data)."""
    return shutil.copy(raw_master, tmp_path / "raw.h5")


def _outputs(path, group, names):
    with h5py.File(path, "r") as f:
        g = f[group]
        return {n: g[n][()] for n in names}, g[COMPLETED][()], g.attrs["status"]


def _local_reference(raw_master, tmp_path, job, names):
    path = shutil.copy(raw_master, tmp_path / "local.h5")
    res = run_job(job, path, RAW, batch_rows=BATCH, progress=False)
    return _outputs(res.file, res.group, names)[0]


# ---- results identical to one process ----------------------------------------------------------------


def test_fft_filter_on_two_workers_matches_one_process(client, raw, raw_master, tmp_path):
    names = ["Filtered", "rms"]
    ref = _local_reference(raw_master, tmp_path, lowpass_job(), names)
    # the filter really filtered: the 300 kHz tone is gone, the 20 kHz one kept
    spec = np.abs(np.fft.rfft(ref["Filtered"], axis=1))
    f = np.fft.rfftfreq(NT, 1 / SAMP_RATE)
    assert spec[:, f > 150e3].max() < 1e-6 * spec.max()

    seen = []
    ex = DaskExecutor(client)
    res = run_job(lowpass_job(), raw, RAW, batch_rows=BATCH, executor=ex, progress=False,
                  on_batch=lambda d, n: seen.append(d))  # fmt: skip
    assert not res.resumed and res.n_computed == NX * NY and res.batch_rows == BATCH
    assert len(seen) == NX * NY // BATCH and seen[-1] == NX * NY
    got, done, status = _outputs(res.file, res.group, names)
    assert status == "complete" and done.all()
    for n in names:
        np.testing.assert_array_equal(got[n], ref[n])
    # both workers did work (each task records where it ran in the scheduler's task stream)
    assert len(client.nthreads()) == 2


def test_signal_filter_with_dask_executor_matches_local(client, raw, raw_master, tmp_path):
    # a library routine that runs on the engine (FFT_Filtering group) takes the executor as it is
    from pycro_gpu.filters import LowPassFilter, SignalFilter

    def run(path, executor):
        with h5py.File(path, "r+") as f:
            sf = SignalFilter(f[RAW], LowPassFilter(NT, SAMP_RATE, 100e3))
            res = sf.compute(batch_rows=BATCH, executor=executor, progress=False)
            return f[res.group]["Filtered_Data"][()], f[res.group][COMPLETED][()]

    ref, _ = run(shutil.copy(raw_master, tmp_path / "local.h5"), None)
    got, done = run(raw, DaskExecutor(client))
    assert done.all()
    np.testing.assert_array_equal(got, ref)


def test_svd_projection_to_another_file_matches_one_process(client, raw, raw_master, tmp_path):
    with h5py.File(raw_master, "r") as f:
        x = f[RAW][()].astype(np.float64)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    k = 4
    job = projection_job(np.ascontiguousarray(vt[:k].T), s[:k])
    ref = _local_reference(raw_master, tmp_path, job, ["U"])["U"]
    # U of the projection is numpy's U (same components): a true SVD check, not only a consistency one
    u = np.linalg.svd(x, full_matrices=False)[0][:, :k]
    np.testing.assert_allclose(ref, u, atol=1e-10)

    out = tmp_path / "results.h5"
    res = run_job(job, raw, RAW, results=out, batch_rows=BATCH, executor=DaskExecutor(client), progress=False)
    assert res.file == str(out)
    got, done, _ = _outputs(out, res.group, ["U"])
    assert done.all()
    np.testing.assert_array_equal(got["U"], ref)


@pytest.fixture(scope="module")
def be_master(tmp_path_factory):
    """Band-excitation file: 16 x 16 positions x 87 bins of SHO responses with 2% noise, and the truth."""
    from benchmarks.gpu_check import sho_spectra

    spectra, freqs, truth = sho_spectra(np.random.default_rng(5), 256, n_bins=87, noise=0.02)
    path = tmp_path_factory.mktemp("be") / "be.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("Measurement_000/Channel_000")
        write_main(g, "Raw_Data", spectra, [Dimension("X", "m", 16), Dimension("Y", "m", 16)],
                   Dimension("Frequency", "Hz", freqs), "Response", "V")  # fmt: skip
    return path, truth


SHO_NAMES = ["Fit", "R2", "converged"]


def test_sho_fit_on_two_workers_matches_one_process(client, be_master, tmp_path):
    master, truth = be_master
    ref = _local_reference(master, tmp_path, sho_job(master), SHO_NAMES)
    # the fit is a fit: converged, and amplitude, frequency and Q recovered from the known truth
    assert ref["converged"].mean() >= 0.99
    np.testing.assert_allclose(np.median(ref["Fit"][:, :3] / truth[:, :3], axis=0), 1.0, rtol=0.02)

    path = shutil.copy(master, tmp_path / "be.h5")
    res = run_job(sho_job(path), path, RAW, batch_rows=BATCH, executor=DaskExecutor(client), progress=False)
    got, done, status = _outputs(res.file, res.group, SHO_NAMES)
    assert status == "complete" and done.all()
    for n in SHO_NAMES:
        np.testing.assert_array_equal(got[n], ref[n])
    # the workers loaded the kernels this process compiled (or loaded): none compiles them again
    kernels = {"sho_guess-float64-cpu", "lm-sho-float64-s136-cpu"}
    logs = list(client.run(_kernel_log).values())
    assert kernels <= {name for log in logs for name in log["loaded"]}, logs
    assert not kernels & {name for log in logs for name in log["compiled"]}, logs


def _kernel_log() -> dict:
    from pycro_gpu.kernels import cache

    log = cache.compile_log()
    return {"loaded": list(log.loaded), "compiled": list(log.compiled)}


def test_sho_fit_dataset_on_two_workers_matches_one_process(client, be_master, tmp_path, monkeypatch):
    # The library's dataset-level fit (Raw_Data-SHO_Fit_NNN, compound Guess/Fit) on the cluster.
    import inspect

    from pycro_gpu import process
    from pycro_gpu.fitting.dataset import fit_sho_dataset

    master, truth = be_master
    names = ["Guess", "Fit", "Converged"]
    local = shutil.copy(master, tmp_path / "local.h5")
    ref_res = fit_sho_dataset(local, RAW, batch_rows=BATCH, progress=False)
    ref = _outputs(ref_res.file, ref_res.group, names)[0]
    assert ref_res.group.endswith("Raw_Data-SHO_Fit_000")
    assert ref["Converged"].mean() >= 0.99
    q = ref["Fit"]["Quality Factor"][:, 0]
    assert np.median(np.abs(q / truth[:, 2] - 1)) < 0.02  # Q recovered from the known truth

    path = shutil.copy(master, tmp_path / "be.h5")
    ex = DaskExecutor(client)
    calls = []
    dask_map = ex.map

    def counting_map(task, slices, source):
        calls.append(len(slices))
        yield from dask_map(task, slices, source)

    ex.map = counting_map
    kwargs = {}
    if "executor" in inspect.signature(fit_sho_dataset).parameters:
        kwargs["executor"] = ex
    else:  # until fit_sho_dataset passes an executor through: make it the engine's default
        monkeypatch.setattr(process, "LocalExecutor", lambda **kw: ex)
    res = fit_sho_dataset(path, RAW, batch_rows=BATCH, progress=False, **kwargs)
    monkeypatch.undo()
    assert calls == [256 // BATCH]  # every batch went through the Dask executor
    got, done, status = _outputs(res.file, res.group, names)
    assert status == "complete" and done.all()
    for n in names:
        np.testing.assert_array_equal(got[n], ref[n])


# ---- kill the driver mid-way, resume -----------------------------------------------------------------

DRIVER = textwrap.dedent(
    """
    import sys
    from pycro_gpu.distributed import DaskExecutor
    from pycro_gpu.process import run_job
    from tests.test_distributed import BATCH, RAW, sho_job

    path = sys.argv[1]
    job = sho_job(path, delay=0.15)
    with DaskExecutor(scheduler=sys.argv[2], max_in_flight=2) as ex:
        run_job(job, path, RAW, batch_rows=BATCH, executor=ex, progress=False,
                on_batch=lambda d, n: print(d, flush=True))
    print("DONE", flush=True)
    """
)


def test_kill_sho_fit_midway_and_resume(client, be_master, tmp_path):
    # The SHO fit runs from a separate driver process on the module's cluster (by scheduler address);
    # the driver is killed with SIGKILL after 3 of 8 batches, then resumed here: identical results.
    master, _ = be_master
    ref = _local_reference(master, tmp_path, sho_job(master), SHO_NAMES)
    path = shutil.copy(master, tmp_path / "be.h5")
    n_pos = 256
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path), client.scheduler.address],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.strip())
            if len(lines) == 3:  # three batches written and marked, five to go
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        rest, err = proc.communicate(timeout=120)  # also closes the pipes
    lines += rest.split()
    assert proc.returncode == -signal.SIGKILL, (lines, err)
    assert "DONE" not in lines
    with h5py.File(path, "r") as f:
        [group] = [g for g in f["Measurement_000/Channel_000"] if g.startswith("Raw_Data-SHO_Fit_")]
        group = f"/Measurement_000/Channel_000/{group}"
        done_before = int(f[group][COMPLETED][()].sum())
        assert f[group].attrs["status"] == "running"
    assert BATCH * 3 <= done_before < n_pos

    res = run_job(sho_job(path), path, RAW, batch_rows=BATCH, executor=DaskExecutor(client), progress=False)
    assert res.resumed and res.group == group
    assert res.n_computed <= n_pos - done_before + BATCH  # only what was missing (batch-trimmed)
    got, done, status = _outputs(path, group, SHO_NAMES)
    assert status == "complete" and done.all()
    for n in SHO_NAMES:
        np.testing.assert_array_equal(got[n], ref[n])


# ---- executor behaviour ----------------------------------------------------------------------------


def test_worker_errors_reach_the_driver(client, raw):
    job = Job("Wrong", wrong_outputs_compute, [Output("mean", dtype=np.float64)])
    with pytest.raises(DataError, match="missing \\['mean'\\], unexpected \\['nope'\\]"):
        run_job(job, raw, RAW, batch_rows=BATCH, executor=DaskExecutor(client), progress=False)
    with h5py.File(raw, "r") as f:  # nothing computed: no results group left behind
        assert not [g for g in f["Measurement_000/Channel_000"] if g.startswith("Raw_Data-Wrong")]


def test_backend_auto_resolves_on_each_worker(client, raw):
    job = Job("Backend", backend_code_compute, [Output("code", dtype=np.float64)])
    ex = DaskExecutor(client, backend="auto")
    res = run_job(job, raw, RAW, batch_rows=BATCH, executor=ex, backend="numpy", progress=False)
    got, _, _ = _outputs(res.file, res.group, ["code"])
    from pycro_gpu.backend import cupy_available

    # every worker resolved 'auto' itself: cupy where it has a GPU (none here), numpy otherwise
    assert set(np.unique(got["code"])) == {2.0 if cupy_available() else 1.0}


@pytest.mark.gpu
def test_gpu_workers_match_a_local_gpu_run(client, raw, raw_master, tmp_path):
    # on a GPU machine: both workers compute with CuPy; identical to a local CuPy run, close to NumPy
    names = ["Filtered", "rms"]
    local = shutil.copy(raw_master, tmp_path / "local_gpu.h5")
    ref_res = run_job(lowpass_job(), local, RAW, batch_rows=BATCH, backend="cupy", progress=False)
    ref = _outputs(ref_res.file, ref_res.group, names)[0]
    cpu = _local_reference(raw_master, tmp_path, lowpass_job(), names)
    ex = DaskExecutor(client, backend="cupy")
    res = run_job(lowpass_job(), raw, RAW, batch_rows=BATCH, executor=ex, backend="cupy", progress=False)
    got, done, _ = _outputs(res.file, res.group, names)
    assert done.all()
    for n in names:
        np.testing.assert_array_equal(got[n], ref[n])
        np.testing.assert_allclose(got[n], cpu[n], rtol=1e-9, atol=1e-12)


def test_latest_format_file_gives_a_clear_error(client, tmp_path):
    raw = _make_raw(tmp_path / "latest.h5", libver="latest")
    with pytest.raises(DataError, match="write results to another file"):
        run_job(lowpass_job(), raw, RAW, batch_rows=BATCH, executor=DaskExecutor(client), progress=False)
    # ... and results in another file work
    res = run_job(lowpass_job(), raw, RAW, results=tmp_path / "out.h5", batch_rows=BATCH,
                  executor=DaskExecutor(client), progress=False)  # fmt: skip
    assert _outputs(res.file, res.group, ["rms"])[1].all()


def test_bad_arguments_are_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        make_client(workers=0)
    with pytest.raises(ValueError, match="either scheduler"):
        make_client("tcp://127.0.0.1:1", workers=2)
    with pytest.raises(DataError, match=r"scheduler file .*missing\.json.* does not exist"):
        make_client(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="max_in_flight must be >= 1"):
        DaskExecutor(object(), max_in_flight=0)
    with pytest.raises(ValueError, match="backend must be one of"):
        DaskExecutor(object(), backend="gpu")


def _parser():
    p = argparse.ArgumentParser()
    add_dask_arguments(p)
    return p


def test_command_line_options(client):
    assert executor_from_args(_parser().parse_args([])) is None
    with pytest.raises(SystemExit):  # --scheduler and --workers exclude each other (argparse: exit 2)
        _parser().parse_args(["--scheduler", "tcp://x:1", "--workers", "2"])
    args = _parser().parse_args(["--scheduler", client.scheduler.address])
    with executor_from_args(args) as ex:  # connects to a running scheduler, does not own it
        assert ex.client.nthreads() == client.nthreads()
    assert client.status == "running"
    args = _parser().parse_args(["--workers", "3", "--threads-per-worker", "2"])
    assert (args.scheduler, args.workers, args.threads_per_worker) == (None, 3, 2)


def test_executor_with_its_own_local_cluster(raw, raw_master, tmp_path):
    # workers=N starts a local cluster (threads here, to keep the test fast) and closes it on exit
    ref = _local_reference(raw_master, tmp_path, lowpass_job(), ["rms"])
    with DaskExecutor(workers=2, processes=False) as ex:
        assert len(ex.client.nthreads()) == 2 and ex.numba_threads >= 1
        res = run_job(lowpass_job(), raw, RAW, batch_rows=BATCH, executor=ex, progress=False)
        cluster = ex._cluster
    assert ex.client is None and cluster.status.name == "closed"
    np.testing.assert_array_equal(_outputs(res.file, res.group, ["rms"])[0]["rms"], ref["rms"])


def test_cli_fit_sho_on_two_workers_matches_local(tmp_path):
    """``pycro-gpu fit sho FILE --workers 2`` writes the same SHO fit as the local run."""
    from pycro_gpu import datasets

    ds = datasets.band_excitation(shape=(6, 6), n_freq=40, seed=5)
    local, dask_file = tmp_path / "local.h5", tmp_path / "dask.h5"
    datasets.write_usid(ds, local)
    shutil.copy(local, dask_file)
    env = {**os.environ, "PYCRO_GPU_BACKEND": "numpy"}
    for path, extra in ((local, []), (dask_file, ["--workers", "2"])):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pycro_gpu",
                "fit",
                "sho",
                str(path),
                "--quiet",
                "--memory-mb",
                "1",
                *extra,
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO_ROOT,
            check=False,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
    group = "Measurement_000/Channel_000/Raw_Data-SHO_Fit_000"
    with h5py.File(local, "r") as a, h5py.File(dask_file, "r") as b:
        np.testing.assert_array_equal(a[group]["Fit"][()], b[group]["Fit"][()])
        assert a[group]["Fit"].shape[0] == 36 and np.all(b[group][COMPLETED][()] == 1)
