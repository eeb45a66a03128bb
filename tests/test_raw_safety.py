"""The file that holds the raw data is never damaged, and interrupted runs leave nothing behind.

* A write that fails for lack of space (an injected ``OSError(ENOSPC)``) leaves the raw file readable by
  h5py and by ``pycro-gpu info``, its Raw_Data bytes unchanged.
* Before allocating, a job refuses outputs larger than the free space (plus a margin) and outputs out of
  proportion to a dataset whose file holds almost none of its values; the input stays untouched.
* A results file appears whole or not at all: a job killed right after it appeared is accepted and
  completed by the next run; stale temporary files of killed runs are removed by the next run.
* SIGTERM ends a command with one line, exit code 143, and no temporary file.
* Files are read-only until a job writes: refused, failed and reused jobs leave the input
  byte-identical, modification time included.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import namedtuple

import h5py
import numpy as np
import pytest

from pycro_gpu import datasets
from pycro_gpu.cli import main
from pycro_gpu.io.hdf5 import (
    MAX_OUTPUT_FLOOR_BYTES,
    create_h5_atomically,
    remove_stale_temporaries,
    temporary_path,
)
from pycro_gpu.io.usid import Dimension, write_main
from tests.conftest import REPO_ROOT

RAW = "/Measurement_000/Channel_000/Raw_Data"
SHO = f"{RAW}-SHO_Fit_000"

# ----------------------------------------------------------------------------------------------------
# inputs and fingerprints
# ----------------------------------------------------------------------------------------------------


def _be(path):
    return datasets.write_usid(datasets.band_excitation(shape=(8, 6), n_freq=32, seed=1), path)


def _gmode(path):
    return datasets.write_usid(datasets.gmode((6, 4), 512, seed=0), path)


def _spectra(path):
    rng = np.random.default_rng(5)
    centers = np.abs(rng.standard_normal((3, 32))) * 4
    data = centers[rng.integers(0, 3, 600)] + np.abs(0.2 * rng.standard_normal((600, 32)))
    with h5py.File(path, "w") as f:
        write_main(f.create_group("Measurement_000/Channel_000"), "Raw_Data", data,
                   [Dimension("X", "m", 30), Dimension("Y", "m", 20)], Dimension("Bias", "V", 32),
                   "Current", "nA", chunks=(50, 32))  # fmt: skip
    return path


#: per command: the input maker, the arguments before FILE, after it, and a call that fails validation
Command = namedtuple("Command", "make head tail invalid")
COMMANDS = {
    "fit": Command(_be, ["fit", "sho"], ["--backend", "numpy"], ["--dataset", "/no/such/dataset"]),
    "filter": Command(_gmode, ["filter"], ["--low-pass", "2e5"], ["--low-pass", "1e12"]),
    "svd": Command(_spectra, ["svd"], ["-k", "3", "--method", "gram"], ["-k", "100000"]),
    "cluster": Command(_spectra, ["cluster"], ["-n", "3"], ["-n", "100000"]),
    "decompose": Command(_spectra, ["decompose"], ["--method", "pca", "-k", "3"], ["-k", "100000"]),
}


def _argv(command, path, *extra, tail=None):
    c = COMMANDS[command]
    return [*c.head, str(path), *(c.tail if tail is None else tail), "-q", *extra]


def _state(path):
    """(sha256 of the file's bytes, modification time in ns): equal means untouched."""
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def _raw_digest(path):
    with h5py.File(path, "r") as f:
        return hashlib.sha256(f[RAW][()].tobytes()).hexdigest()


def _temporaries(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


def _one_error_line(err, command):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"pycro-gpu {command}: error: "), err
    return lines[0]


# ----------------------------------------------------------------------------------------------------
# a full disk
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["fit", "svd"])  # a position-wise and a multi-pass job
def test_enospc_during_writes_leaves_raw_readable(command, tmp_path, monkeypatch, capsys):
    raw = COMMANDS[command].make(tmp_path / "raw.h5")
    digest = _raw_digest(raw)
    writes = []

    def no_space(self, key, value):
        writes.append(self.name)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(h5py.Dataset, "__setitem__", no_space)
    assert main(_argv(command, raw)) == 1
    line = _one_error_line(capsys.readouterr().err, command)
    assert "No space left on device" in line
    assert writes  # the job got as far as writing its outputs
    monkeypatch.undo()
    assert _raw_digest(raw) == digest
    assert main(["info", str(raw)]) == 0
    assert RAW in capsys.readouterr().out
    assert main(_argv(command, raw)) == 0  # with space again: computed or resumed to the end
    assert _raw_digest(raw) == digest
    with h5py.File(raw, "r") as f:
        groups = [g for g in f["Measurement_000/Channel_000"] if g.startswith("Raw_Data-")]
        assert len(groups) == 1 and f[RAW].parent[groups[0]].attrs["status"] == "complete"


def test_enospc_creating_the_results_file(tmp_path, monkeypatch, capsys):
    raw = _be(tmp_path / "raw.h5")
    before = _state(raw)
    real_file = h5py.File

    class NoSpaceFile(real_file):
        def __init__(self, name, mode="r", *args, **kwargs):
            if mode == "w":
                raise OSError(errno.ENOSPC, "No space left on device")
            super().__init__(name, mode, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", NoSpaceFile)
    out = tmp_path / "results.h5"
    assert main(_argv("fit", raw, "--results", str(out))) == 1
    line = _one_error_line(capsys.readouterr().err, "fit")
    assert f"cannot create {str(out)!r}" in line and "No space left on device" in line
    assert not out.exists() and _temporaries(tmp_path) == []
    assert _state(raw) == before


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_free_space_refusal(command, tmp_path, monkeypatch, capsys):
    raw = COMMANDS[command].make(tmp_path / "raw.h5")
    before = _state(raw)
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=10_000))
    assert main(_argv(command, raw)) == 1
    line = _one_error_line(capsys.readouterr().err, command)
    assert re.search(
        r"not enough free space in '.+': the results need [\d.]+ [kM]?B plus a margin of [\d.]+ MB, "
        r"10\.0 kB are free; write them to another disk with --results FILE",
        line,
    ), line
    assert _state(raw) == before


def test_results_on_another_disk_pass_the_free_space_check(tmp_path, monkeypatch, capsys):
    full, other = tmp_path / "full", tmp_path / "other"
    full.mkdir()
    other.mkdir()
    raw = _be(full / "raw.h5")
    before = _state(raw)
    real = shutil.disk_usage

    def usage(path):
        u = real(path)
        return u._replace(free=10_000) if os.path.samefile(path, full) else u

    monkeypatch.setattr(shutil, "disk_usage", usage)
    assert main(_argv("fit", raw)) == 1
    assert "not enough free space" in capsys.readouterr().err
    assert main(_argv("fit", raw, "--results", str(other / "fit.h5"))) == 0
    assert _state(raw) == before
    with h5py.File(other / "fit.h5", "r") as f:
        assert f["Raw_Data-SHO_Fit_000"].attrs["status"] == "complete"


def test_translate_free_space_refusal(tmp_path, monkeypatch, capsys):
    np.save(tmp_path / "spectra.npy", np.ones((64, 256)))
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=10_000))
    assert main(["translate", str(tmp_path / "spectra.npy")]) == 1
    line = _one_error_line(capsys.readouterr().err, "translate")
    assert "the results need 13" in line and "10.0 kB are free" in line  # 131 kB of float64 values
    assert not (tmp_path / "spectra.h5").exists() and _temporaries(tmp_path) == []


#: in a private mount namespace on a 20 MB tmpfs (``python - DIR``): a 10 MB BE file, the disk filled
#: to 10 kB, ``fit sho``; then the disk filled by "another program" right after the job's check
TMPFS_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, shutil, subprocess, sys
    import h5py
    from pycro_gpu import datasets
    from pycro_gpu.cli import main
    from pycro_gpu.process import _target

    folder = sys.argv[1]
    raw, filler = f"{folder}/be.h5", f"{folder}/filler"
    datasets.write_usid(datasets.band_excitation(shape=(40, 40), n_freq=256, seed=1), raw)

    def fill(leave):
        subprocess.run(["fallocate", "-l", str(shutil.disk_usage(folder).free - leave), filler], check=True)

    def raw_digest():
        with h5py.File(raw, "r") as f:
            return hashlib.sha256(f["Measurement_000/Channel_000/Raw_Data"][()].tobytes()).hexdigest()

    out = {"digest": raw_digest()}
    fill(10_000)
    out["full"] = main(["fit", "sho", raw, "--backend", "numpy", "-q"])
    subprocess.run(["rm", filler], check=True)
    out["info_after_full"] = main(["info", raw])
    out["digest_after_full"] = raw_digest()
    reserve = _target.SpaceReservation

    class FillsTheDisk(reserve):  # another program takes every free byte once the job checked
        def __init__(self, path, nbytes):
            super().__init__(path, nbytes)
            fill(0)

    _target.SpaceReservation = FillsTheDisk
    out["filled_during"] = main(["fit", "sho", raw, "--backend", "numpy", "-q"])
    subprocess.run(["rm", filler], check=True)
    out["info_after_filled"] = main(["info", raw])
    out["digest_after_filled"] = raw_digest()
    with h5py.File(raw, "r") as f:
        out["status"] = f["Measurement_000/Channel_000/Raw_Data-SHO_Fit_000"].attrs["status"]
    print(json.dumps(out))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("unshare") is None,
                    reason="needs Linux mount namespaces (unshare)")  # fmt: skip
def test_full_tmpfs(tmp_path):
    """The issue's case on a real small file system: refused when full, finished when filled meanwhile."""
    import json

    mount = tmp_path / "tmpfs"
    mount.mkdir()
    (tmp_path / "script.py").write_text(TMPFS_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    namespace = ["unshare", "--mount", "--map-root-user", "sh", "-c"]  # the mount ends with the process
    probe = subprocess.run([*namespace, f"mount -t tmpfs tmpfs {mount}"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {probe.stderr.strip()}")
    script = f"exec {sys.executable} {tmp_path / 'script.py'} {mount}"
    done = subprocess.run([*namespace, f"mount -t tmpfs -o size=20m tmpfs {mount} && {script}"],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["full"] == 1 and "not enough free space" in done.stderr
    assert out["info_after_full"] == 0 and out["digest_after_full"] == out["digest"]
    assert out["filled_during"] == 0 and out["status"] == "complete"  # the reserved blocks sufficed
    assert out["info_after_filled"] == 0 and out["digest_after_filled"] == out["digest"]


# ----------------------------------------------------------------------------------------------------
# a file that declares far more than it holds
# ----------------------------------------------------------------------------------------------------


def _hollow(path, n_pos=10**7, n_spec=10**5):
    """A USID file declaring ``n_pos x n_spec`` float32 values (4 TB) in a few kB: no chunk written."""
    with h5py.File(path, "w") as f:
        g = f.create_group("Measurement_000/Channel_000")
        main_ = g.create_dataset("Raw_Data", (n_pos, n_spec), np.float32, chunks=(1000, 1000))
        main_.attrs["quantity"], main_.attrs["units"] = "Deflection", "V"
        ancillaries = (("Position", (n_pos, 1), ["X"]), ("Spectroscopic", (1, n_spec), ["Time"]))
        for kind, shape, labels in ancillaries:
            for suffix, dtype in (("Indices", np.uint32), ("Values", np.float32)):
                d = g.create_dataset(f"{kind}_{suffix}", shape, dtype, chunks=True)
                d.attrs["labels"], d.attrs["units"] = labels, ["s" if kind != "Position" else "m"]
                main_.attrs[f"{kind}_{suffix}"] = d.ref
    return path


@pytest.mark.parametrize(
    ("argv", "output"),
    [
        (["filter", "--low-pass", "1e5", "--samp-rate", "1e6"], "4.0 TB"),  # Filtered_Data
        (["svd", "-k", "2", "--method", "randomized"], "2.0 GB"),  # U of 10**7 positions, sketches
    ],
)
def test_declared_huge_dataset_is_refused(argv, output, tmp_path, monkeypatch, capsys):
    raw = _hollow(tmp_path / "hollow.h5")
    assert raw.stat().st_size < 100_000
    before = _state(raw)
    real = shutil.disk_usage  # plenty of free space: the bound alone refuses
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=10**18))
    assert main([argv[0], str(raw), *argv[1:], "-q"]) == 1
    line = _one_error_line(capsys.readouterr().err, argv[0])
    assert f"refusing to allocate {output} of results for {RAW}: it declares shape (10000000, 100000)" in line
    assert "but its file holds 0 B of its values" in line
    assert _state(raw) == before


def test_bound_accepts_outputs_of_a_fully_stored_input(tmp_path):
    from pycro_gpu.io.hdf5 import check_output_size

    with h5py.File(tmp_path / "u.h5", "w") as f:
        u = f.create_dataset("U", data=np.ones((1000, 1), np.float32))  # 4 kB stored of 4 kB declared
        check_output_size(100 * MAX_OUTPUT_FLOOR_BYTES, u)  # a rebuild from one component: accepted


# ----------------------------------------------------------------------------------------------------
# killed and terminated runs
# ----------------------------------------------------------------------------------------------------

#: runs ``main(argv)`` with the batch compute replaced by STALL (see the tests): ``python - MARKER ARGV...``
RUNNER = textwrap.dedent(
    """
    import pathlib, sys, time
    from pycro_gpu.io.translators import _writer
    from pycro_gpu.process import _engine
    from pycro_gpu.cli import main

    marker, argv = pathlib.Path(sys.argv[1]), sys.argv[2:]
    compute_batch, write_channel = _engine.compute_batch, _writer._write_channel

    def slow_compute(*args, **kwargs):  # every batch waits: the job runs long enough to be killed
        marker.touch()
        time.sleep(0.2)
        return compute_batch(*args, **kwargs)

    def stalled_write(*args, **kwargs):  # the translation stops half-way, its temporary file open
        marker.touch()
        # short sleeps, as real work is short calls: a SIGTERM that the kernel hands to another thread
        # (OpenBLAS's) only runs its Python handler once the main thread returns from a C call
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.05)

    _engine.compute_batch, _writer._write_channel = slow_compute, stalled_write
    sys.exit(main(argv))
    """
)


def _start(tmp_path, argv):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    marker = tmp_path / "marker"
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    return subprocess.Popen(
        [sys.executable, str(script), str(marker), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ), marker


def _wait_for(proc, path):
    """Poll until ``path`` exists (or the process ended)."""
    while not path.exists() and proc.poll() is None:
        time.sleep(0.001)


def test_kill_right_after_the_results_file_appears(tmp_path, capsys):
    raw = _be(tmp_path / "raw.h5")
    clean = tmp_path / "clean.h5"
    assert main(_argv("fit", raw, "--results", str(clean), "--memory-mb", "0.05")) == 0
    out = tmp_path / "out.h5"
    proc, _ = _start(tmp_path, _argv("fit", raw, "--results", str(out), "--memory-mb", "0.05"))
    try:
        _wait_for(proc, out)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert h5py.is_hdf5(out)  # whole: never a 96-byte stub
    assert main(_argv("fit", raw, "--results", str(out), "--memory-mb", "0.05")) == 0
    assert _temporaries(tmp_path) == []
    with h5py.File(out, "r") as got, h5py.File(clean, "r") as want:
        group = "Raw_Data-SHO_Fit_000"
        assert got[group].attrs["status"] == "complete"
        for name in ("Guess", "Fit", "completed_positions"):
            np.testing.assert_array_equal(got[group][name][()], want[group][name][()], err_msg=name)


def _dead_pid():
    """The process id of a process that has ended."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)  # fmt: skip
    return int(done.stdout)


def _temporary_of(final, pid):
    """A temporary name of ``final`` as process ``pid`` of this host writes it."""
    name = temporary_path(final).name
    return final.with_name(re.sub(r"-\d+-([0-9a-f]{8})\.tmp$", rf"-{pid}-\1.tmp", name))


@pytest.mark.parametrize("results_exist", [False, True], ids=["new-results", "resumed-results"])
def test_stale_results_temporaries_are_removed(tmp_path, results_exist):
    raw = _be(tmp_path / "raw.h5")
    out = tmp_path / "out.h5"
    if results_exist:  # a run killed between linking the new file into place and removing its temporary
        h5py.File(out, "w").close()
    dead_pid = _dead_pid()
    stale, live = _temporary_of(out, dead_pid), _temporary_of(out, os.getppid())
    elsewhere = tmp_path / f".out.h5.pycro-otherhost-{dead_pid}-0123abcd.tmp"
    unrelated = tmp_path / ".notes.tmp"
    for p in (stale, live, elsewhere, unrelated):
        p.write_bytes(b"\0" * 96)
    assert main(_argv("fit", raw, "--results", str(out))) == 0
    assert not stale.exists()
    assert live.exists() and elsewhere.exists() and unrelated.exists()  # owner alive, unknown, not ours


def test_stale_translate_temporaries_are_removed(tmp_path):
    np.save(tmp_path / "spectra.npy", np.ones((4, 8)))
    stale = _temporary_of(tmp_path / "spectra.h5", _dead_pid())
    stale.write_bytes(b"\0" * 700)
    assert main(["translate", str(tmp_path / "spectra.npy"), "-q"]) == 0
    assert _temporaries(tmp_path) == []
    assert h5py.is_hdf5(tmp_path / "spectra.h5")


@pytest.mark.parametrize("command", ["translate", "fit"])
def test_sigterm_ends_the_command_cleanly(command, tmp_path):
    if command == "translate":
        np.save(tmp_path / "spectra.npy", np.ones((64, 256)))
        argv, out = ["translate", str(tmp_path / "spectra.npy")], tmp_path / "spectra.h5"
    else:
        raw = _be(tmp_path / "raw.h5")
        before = _state(raw)
        out = tmp_path / "out.h5"
        argv = _argv("fit", raw, "--results", str(out))
    proc, marker = _start(tmp_path, argv)
    try:
        _wait_for(proc, marker)  # in the middle of the work, a temporary or results file open
        assert proc.poll() is None
        assert _temporaries(tmp_path) != [] if command == "translate" else out.exists()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.communicate()  # reaped, pipes closed (else the next test meets their ResourceWarnings)
    assert proc.returncode == 143
    assert err.strip() == f"pycro-gpu {command}: terminated"
    assert _temporaries(tmp_path) == []
    assert not out.exists()  # no partial output, no empty results file
    if command == "fit":
        assert _state(raw) == before


def test_sigterm_handler_is_scoped_to_the_command(tmp_path):
    np.save(tmp_path / "spectra.npy", np.ones((4, 8)))
    previous = signal.getsignal(signal.SIGTERM)
    assert main(["translate", str(tmp_path / "spectra.npy"), "-q"]) == 0
    assert signal.getsignal(signal.SIGTERM) is previous


# ----------------------------------------------------------------------------------------------------
# read-only until something is written
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_reused_and_failed_jobs_leave_the_input_untouched(command, tmp_path, capsys):
    raw = COMMANDS[command].make(tmp_path / "raw.h5")
    fresh = _state(raw)
    assert main(_argv(command, raw, tail=COMMANDS[command].invalid)) == 1  # refused by validation
    _one_error_line(capsys.readouterr().err, command)
    assert _state(raw) == fresh
    assert main(_argv(command, raw)) == 0  # computed: written into the file
    computed = _state(raw)
    assert computed != fresh
    time.sleep(0.01)  # a write now would get a new modification time
    assert main(_argv(command, raw)[:-1]) == 0  # reused (not quiet: it says so)
    assert "reused" in capsys.readouterr().out
    assert _state(raw) == computed
    assert main(_argv(command, raw, tail=COMMANDS[command].invalid)) == 1
    assert _state(raw) == computed


@pytest.mark.parametrize("command", ["svd", "cluster", "decompose"])
@pytest.mark.parametrize("role", ["input", "results"])
def test_empty_file_stays_empty(command, role, tmp_path, capsys):
    """A 0-byte file, as input or as --results, is refused and not rewritten into an HDF5 file."""
    empty = tmp_path / "empty.h5"
    empty.touch()
    before = _state(empty)
    if role == "input":
        argv = _argv(command, empty)
    else:
        argv = _argv(command, _spectra(tmp_path / "raw.h5"), "--results", str(empty))
    assert main(argv) == 1
    assert "is not an HDF5 file (0 bytes" in _one_error_line(capsys.readouterr().err, command)
    assert _state(empty) == before


def test_reused_results_elsewhere_leave_both_files_untouched(tmp_path, capsys):
    raw = _spectra(tmp_path / "raw.h5")
    out = tmp_path / "out.h5"
    assert main(_argv("svd", raw, "--results", str(out))) == 0
    raw_state, out_state = _state(raw), _state(out)
    time.sleep(0.01)
    assert main(_argv("svd", raw, "--results", str(out))) == 0
    assert _state(raw) == raw_state and _state(out) == out_state


def test_read_only_caller_file(tmp_path):
    """A caller's read-only file: reuse works, a computation says how to make it writable."""
    from pycro_gpu.decomposition import svd_dataset
    from pycro_gpu.process import ResultsReadOnlyError

    raw = _spectra(tmp_path / "raw.h5")
    with h5py.File(raw, "r") as f, pytest.raises(ResultsReadOnlyError, match="open it with mode 'r\\+'"):
        svd_dataset(f[RAW], k=2, method="gram", progress=False)
    first = svd_dataset(str(raw), RAW, k=2, method="gram", progress=False)
    state = _state(raw)
    with h5py.File(raw, "r") as f:
        again = svd_dataset(f[RAW], k=2, method="gram", progress=False)
    assert again.reused and again.group == first.group
    assert _state(raw) == state


# ----------------------------------------------------------------------------------------------------
# the building blocks
# ----------------------------------------------------------------------------------------------------


def test_create_h5_atomically(tmp_path):
    path = create_h5_atomically(tmp_path / "new.h5")
    with h5py.File(path, "r") as f:
        assert len(f) == 0
    assert _temporaries(tmp_path) == []
    with pytest.raises(FileExistsError):
        create_h5_atomically(path)
    assert _temporaries(tmp_path) == []


def test_space_reservation(tmp_path):
    from pycro_gpu.io.hdf5 import SpaceReservation

    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 4096)

    def allocated():
        return path.stat().st_blocks * 512

    before = allocated()
    reservation = SpaceReservation(path, 2**20)
    if reservation.nbytes == 0:
        pytest.skip("this file system cannot reserve blocks (fallocate)")
    assert path.stat().st_size == 4096 and allocated() >= before + 2**20  # blocks, not size
    with path.open("ab") as f:
        f.write(b"y" * 8192)  # the job's writes
    reservation.release()
    assert path.stat().st_size == 4096 + 8192 and allocated() < before + 2**20
    assert path.read_bytes() == b"x" * 4096 + b"y" * 8192


def test_remove_stale_temporaries_keeps_its_own(tmp_path):
    own = temporary_path(tmp_path / "x.h5")
    own.write_bytes(b"")
    assert remove_stale_temporaries(tmp_path) == []
    assert own.exists()
