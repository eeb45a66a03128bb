"""kill -9 a running job several times, resume it, and compare to an uninterrupted run bit for bit."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from pycro_gpu.io.usid import Dimension, write_main

RAW = "/Measurement_000/Channel_000/Raw_Data"
N_POS, N_F = 1200, 64

# The job, as a script: a deterministic per-position compute (float64 FFT magnitude, a compound
# field record and a plain mean), slow enough (a few ms per batch) that there are many batches to
# interrupt; batches of ~20 positions from a tiny memory budget. Prints one line per finished batch.
JOB = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from pycro_gpu.io.usid import Dimension
    from pycro_gpu.process import Job, Output, run_job

    FIT = np.dtype([("Amplitude [V]", np.float32), ("Frequency [Hz]", np.float32),
                    ("R2 Criterion", np.float64)])

    def compute(batch, xp):
        time.sleep(0.004)
        spec = xp.abs(xp.fft.rfft(xp.astype(batch, xp.float64), axis=1))
        peak = xp.max(spec, axis=1)
        arg = xp.astype(xp.argmax(spec, axis=1), xp.float64)
        return {"spectrum": spec, "fit": xp.stack([peak, arg, xp.mean(spec, axis=1)], axis=1),
                "mean": xp.mean(batch, axis=1)}

    def main(path, results):
        n_bins = 64 // 2 + 1
        job = Job("Spectrum", compute, [
            Output("spectrum", spec_dims=[Dimension("Bin", "", n_bins)], dtype=np.float32, units="V"),
            Output("fit", dtype=FIT),
            Output("mean", dtype=np.float64),
        ], parameters={"window": "none"}, work_multiplier=8.0)
        res = run_job(job, path, "/Measurement_000/Channel_000/Raw_Data", results=results or None,
                      memory_mb=0.08, progress=False, on_batch=lambda d, t: print(d, flush=True))
        print("DONE", res.resumed, res.n_computed, res.batch_rows, flush=True)

    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
    """
)


def _make_raw(path):
    rng = np.random.default_rng(7)
    data = rng.standard_normal((30, 40, N_F)).astype(np.float32)
    with h5py.File(path, "w") as f:
        g = f.create_group("Measurement_000/Channel_000")
        write_main(g, "Raw_Data", data, [Dimension("X", "m", 30), Dimension("Y", "m", 40)],
                   Dimension("Time", "s", N_F), "Deflection", "V", chunks=(50, N_F))  # fmt: skip


def _digest(path, name):
    with h5py.File(path, "r") as f:
        return hashlib.sha256(f[name][()].tobytes()).hexdigest()


def _run(script, path, results=""):
    return subprocess.run(
        [sys.executable, str(script), str(path), results],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout


def _run_and_kill(script, path, kill_after_lines, results=""):
    """Start the job; SIGKILL it after it reported ``kill_after_lines`` batches (plus a random delay)."""
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path), results], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith("DONE"):
                break
            if len(lines) >= kill_after_lines:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=60)
        proc.stdout.close()
    return lines, proc.returncode


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    """The uninterrupted reference run (results next to the raw data)."""
    tmp = tmp_path_factory.mktemp("kill")
    script = tmp / "job.py"
    script.write_text(JOB)
    pristine = tmp / "pristine.h5"
    _make_raw(pristine)
    clean = tmp / "clean.h5"
    shutil.copy(pristine, clean)
    out = _run(script, clean).split()
    assert out[-4:-2] == ["DONE", "False"] and out[-2] == str(N_POS)
    batch_rows = int(out[-1])
    assert N_POS // batch_rows >= 20  # many batches to interrupt
    return script, pristine, clean


@pytest.mark.parametrize(("where", "kill_points"), [("same_file", (3, 11)), ("other_file", (6,))])
def test_sigkill_resume_is_bit_identical(tmp_path, clean_run, where, kill_points):
    script, pristine, clean = clean_run
    killed = tmp_path / "killed.h5"
    shutil.copy(pristine, killed)
    raw_digest = _digest(pristine, RAW)
    res_killed = str(tmp_path / "killed_res.h5") if where == "other_file" else ""

    for after in kill_points:
        lines, rc = _run_and_kill(script, killed, after, res_killed)
        assert not lines[-1].startswith("DONE") and rc == -signal.SIGKILL
    final = _run(script, killed, res_killed).split()
    assert final[-4] == "DONE" and final[-3] == "True"  # resumed
    assert 0 < int(final[-2]) < N_POS  # only the rest was computed

    gpath = "/Measurement_000/Channel_000/Raw_Data-Spectrum_000"
    with h5py.File(clean, "r") as fa, h5py.File(res_killed or killed, "r") as fb:
        ga = fa[gpath]
        gb = fb[gpath if where == "same_file" else "/Raw_Data-Spectrum_000"]
        assert gb.attrs["status"] == "complete" and gb["completed_positions"][()].all()
        for name in ("spectrum", "fit", "mean"):
            assert ga[name].dtype == gb[name].dtype
            assert ga[name][()].tobytes() == gb[name][()].tobytes(), name
        # one results group only: the killed runs were resumed, not restarted
        assert sorted(k for k in gb.parent if "Spectrum" in k) == ["Raw_Data-Spectrum_000"]
        # the spectrum against a NumPy reference
        with h5py.File(pristine, "r") as raw:
            ref = np.abs(np.fft.rfft(raw[RAW][()].astype(np.float64), axis=1)).astype(np.float32)
        np.testing.assert_array_equal(gb["spectrum"][()], ref)
    # Raw_Data unchanged, by checksum, in the killed file and the clean one
    assert _digest(killed, RAW) == raw_digest == _digest(clean, RAW)
