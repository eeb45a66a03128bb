"""One error line for every failure at the CLI boundary (issue 18, item 4).

Damaged HDF5 files (libhdf5's exceptions, and its crashes kept in a forked probe), declared sizes larger
than the memory budget, permission, disk-space and memory errors, data the command cannot use, and an
exception that no input explains: each ends as one line on stderr and a non-zero exit code, never a
traceback; ``PYCRO_GPU_DEBUG=1`` shows the traceback; NumPy's warnings only with ``-v``.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
import warnings

import h5py
import numpy as np
import pytest

from pycro_gpu import datasets
from pycro_gpu._lib.h5errors import damaged, hdf5_message, one_line, raised_by_h5py
from pycro_gpu.cli import info as info_command
from pycro_gpu.cli import main
from pycro_gpu.errors import DataError
from pycro_gpu.io import probe
from pycro_gpu.io.hdf5 import open_h5

RAW = "/Measurement_000/Channel_000/Raw_Data"
FILE_COMMANDS = (["info"], ["svd", "-q"], ["cluster", "-q"], ["decompose", "-q"], ["translate", "-q"])


def one_error_line(capsys, command: str) -> str:
    """The one line on stderr, which must be the error line of ``command``."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pycro-gpu {command}: error: "), err
    return lines[0]


def write_odd_main(path, data: np.ndarray) -> None:
    """A USID file whose Main dataset holds ``data`` of any dtype (strings, compounds ...)."""
    n, m = data.shape
    with h5py.File(path, "w") as f:
        g = f.create_group("Measurement_000/Channel_000")
        raw = g.create_dataset("Raw_Data", data=data)
        anc = {
            "Position_Indices": np.arange(n, dtype="u4")[:, None],
            "Position_Values": np.arange(n, dtype="f4")[:, None],
            "Spectroscopic_Indices": np.arange(m, dtype="u4")[None],
            "Spectroscopic_Values": np.arange(m, dtype="f4")[None] * 1e-6,
        }
        for name, values in anc.items():
            d = g.create_dataset(name, data=values)
            d.attrs["labels"] = ["X"] if name.startswith("Position") else ["Time"]
            d.attrs["units"] = ["m"] if name.startswith("Position") else ["s"]
            raw.attrs[name] = d.ref
        raw.attrs["quantity"] = "Q"
        raw.attrs["units"] = "V"


@pytest.fixture
def be_file(tmp_path):
    path = tmp_path / "be.h5"
    datasets.write_usid(datasets.band_excitation((3, 4), 16, seed=1), path, truth=False)
    return path


def break_object_header(path, name: str) -> None:
    """Set the version byte of the object header of ``name`` to 7 (HDF5 knows versions 1 and 2)."""
    with h5py.File(path, "r") as f:
        address = h5py.h5o.get_info(f[name].id).addr
    with open(path, "r+b") as fh:
        fh.seek(address)
        assert fh.read(1) == b"\x01"  # version 1 object header (h5py's default format)
        fh.seek(address)
        fh.write(b"\x07")


# ------------------------------------------------------------------------------- HDF5 errors
@pytest.mark.parametrize("argv", FILE_COMMANDS, ids=lambda a: a[0])
def test_a_damaged_object_header_is_one_line_in_every_command(argv, be_file, tmp_path, capsys):
    break_object_header(be_file, RAW)
    before = be_file.read_bytes()
    out = [str(tmp_path / "out.h5")] if argv[0] == "translate" else ["--results", str(tmp_path / "out.h5")]
    out = [] if argv[0] == "info" else out
    assert main([argv[0], str(be_file), *out, *argv[1:]]) == 1
    line = one_error_line(capsys, argv[0])
    assert "bad object header version number" in line and "PYCRO_GPU_DEBUG" not in line
    assert be_file.read_bytes() == before


def test_a_damaged_dataset_named_with_dataset_is_one_line(be_file, tmp_path, capsys):
    break_object_header(be_file, RAW)
    assert main(["svd", str(be_file), "--dataset", RAW, "--results", str(tmp_path / "o.h5"), "-q"]) == 1
    line = one_error_line(capsys, "svd")
    assert f"cannot read {RAW!r}" in line and "bad object header version number" in line


def test_a_damaged_ancillary_is_named(be_file, capsys):
    break_object_header(be_file, "/Measurement_000/Channel_000/Spectroscopic_Values")
    assert main(["info", str(be_file)]) == 1
    line = one_error_line(capsys, "info")
    assert "is damaged: HDF5 says:" in line and "bad object header version number" in line


def test_hdf5_errors_raised_in_h5py_are_told_from_programming_errors(be_file):
    with h5py.File(be_file, "r") as f, pytest.raises(KeyError) as from_h5py:
        f["no/such/object"]
    assert raised_by_h5py(from_h5py.value)
    assert hdf5_message(from_h5py.value).startswith("Unable to synchronously open object")
    with pytest.raises(KeyError) as ours:
        {}["x"]
    assert not raised_by_h5py(ours.value)
    assert one_line("Unable to open\n   (bad\tmessage)  ") == "Unable to open (bad message)"
    assert damaged("/a", KeyError("x\ny")) == "/a is damaged: HDF5 says: x y"


# ------------------------------------------------------------------------------- crashes of libhdf5
@pytest.fixture
def crashing_file(test_data, tmp_path):
    """AFM_Force_Curve.h5 with byte 75953 set to 0x92 (the issue's file): reading the attribute
    'quantity' of Raw_Data makes libhdf5 crash (segmentation fault)."""
    data = bytearray((test_data / "AFM_Force_Curve.h5").read_bytes())
    data[75953] = 0x92
    path = tmp_path / "afm_bad.h5"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("argv", FILE_COMMANDS, ids=lambda a: a[0])
def test_a_file_that_crashes_libhdf5_is_one_line_in_process(argv, crashing_file, tmp_path, capsys):
    before = crashing_file.read_bytes()
    out = [str(tmp_path / "out.h5")] if argv[0] == "translate" else []
    assert main([argv[0], str(crashing_file), *out, *argv[1:]]) == 1
    line = one_error_line(capsys, argv[0])
    assert "the HDF5 library crashed (SIGSEGV) reading this file's metadata: the file is damaged" in line
    assert crashing_file.read_bytes() == before
    assert not (tmp_path / "out.h5").exists()


def test_the_probe_passes_sound_files_and_refuses_a_crash(crashing_file, be_file):
    probe.probe_h5(be_file)  # nothing to say
    with pytest.raises(DataError, match=r"crashed \(SIGSEGV\)"):
        probe.probe_h5(crashing_file)
    assert probe.walk_metadata(be_file) > 0  # the reads of the probe, in this process, on a sound file


def test_a_probe_that_does_not_finish_refuses_the_file(be_file, monkeypatch):
    monkeypatch.setattr(probe, "walk_metadata", lambda path: time.sleep(30))  # as a looping heap does
    t0 = time.monotonic()
    with pytest.raises(DataError, match=r"did not finish reading this file's metadata within 0.5 s"):
        probe.probe_h5(be_file, timeout_s=0.5)
    assert time.monotonic() - t0 < 10  # the child was killed, not waited for


def test_the_probe_timeout_comes_from_the_environment(monkeypatch, crashing_file):
    monkeypatch.setenv(probe.TIMEOUT_ENV, "2.5")
    assert probe.probe_timeout() == 2.5
    monkeypatch.setenv(probe.TIMEOUT_ENV, "0")  # no probe: no fork
    monkeypatch.setattr(probe.os, "fork", lambda: pytest.fail("forked"))
    probe.probe_h5(crashing_file)
    for bad in ("soon", "-1", "inf"):
        monkeypatch.setenv(probe.TIMEOUT_ENV, bad)
        with pytest.raises(DataError, match=f"PYCRO_GPU_PROBE_TIMEOUT_S must be .* got {bad!r}"):
            probe.probe_timeout()


def test_a_crashing_file_in_a_subprocess_exits_1_not_by_a_signal(crashing_file):
    run = subprocess.run(
        [sys.executable, "-m", "pycro_gpu.cli", "info", str(crashing_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert run.returncode == 1 and run.returncode != -signal.SIGSEGV
    assert run.stderr.count("\n") == 1 and "crashed (SIGSEGV)" in run.stderr


# ------------------------------------------------------------------------------- declared sizes, memory
def write_huge_declared(path, n_pos: int = 10**9) -> None:
    """A USID file of a few kilobytes that declares ``n_pos`` positions (no chunk written)."""
    with h5py.File(path, "w") as f:
        g = f.create_group("Measurement_000/Channel_000")
        raw = g.create_dataset("Raw_Data", shape=(n_pos, 4), dtype="f4", chunks=(1024, 4))
        steps = np.arange(4)[None]
        anc = {
            "Position_Indices": g.create_dataset("Position_Indices", (n_pos, 1), "u4", chunks=(4096, 1)),
            "Position_Values": g.create_dataset("Position_Values", (n_pos, 1), "f4", chunks=(4096, 1)),
            "Spectroscopic_Indices": g.create_dataset("Spectroscopic_Indices", data=steps.astype("u4")),
            "Spectroscopic_Values": g.create_dataset("Spectroscopic_Values", data=steps.astype("f4")),
        }
        for name, d in anc.items():
            d.attrs["labels"] = ["X"] if name.startswith("Position") else ["Bias"]
            d.attrs["units"] = ["m"] if name.startswith("Position") else ["V"]
            raw.attrs[name] = d.ref
        raw.attrs["quantity"] = "Q"
        raw.attrs["units"] = "V"


@pytest.mark.parametrize("command", ["info", "svd", "cluster", "decompose", "filter"])
def test_declared_sizes_beyond_the_budget_are_refused_before_allocating(command, tmp_path, capsys):
    path = tmp_path / "huge.h5"
    write_huge_declared(path)
    assert path.stat().st_size < 20_000
    extra = [] if command == "info" else ["--results", str(tmp_path / "o.h5"), "-q"]
    extra += ["--low-pass", "1"] if command == "filter" else []
    assert main([command, str(path), *extra]) == 1
    line = one_error_line(capsys, command)
    assert "declares 1,000,000,000 positions x 4 spectroscopic steps" in line
    assert "more than the working-memory budget of 1024 MiB" in line


def test_reading_a_whole_dataset_beyond_the_budget_is_refused(tmp_path):
    from pycro_gpu import config_context
    from pycro_gpu.io.usid import open_main

    path = tmp_path / "be256.h5"  # 12 x 256 complex64: 24 KiB of data, 268 ancillary entries (10 KiB)
    datasets.write_usid(datasets.band_excitation((3, 4), 256, seed=1), path, truth=False)
    with h5py.File(path, "r") as f, config_context(memory_mb=16 / 1024):
        main_dataset = open_main(f)
        with pytest.raises(DataError, match=r"reading all of .*Raw_Data needs 24 KiB, more than the working"):
            main_dataset.get_n_dim_form()
    with h5py.File(path, "r") as f, config_context(memory_mb=32 / 1024):
        assert open_main(f).get_n_dim_form().shape == (4, 3, 256)


def test_a_budget_larger_than_the_machine_is_one_line(be_file, capsys):
    assert main(["svd", str(be_file), "--memory-mb", "1e12", "-q"]) == 2
    line = one_error_line(capsys, "svd")
    assert "--memory-mb 1e+12 is more than this process can have" in line


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (MemoryError("Unable to allocate 3.73 GiB"), "out of memory: Unable to allocate 3.73 GiB"),
        (PermissionError(errno.EACCES, "Permission denied", "/d/x.h5"), "permission denied: /d/x.h5"),
        (OSError(errno.ENOSPC, "No space left on device", "/d/r.h5"), "no space left on the device: /d"),
        (DataError("first line\n  second line"), "first line second line"),
        (ValueError("k must be >= 1"), "ValueError: k must be >= 1"),
    ],
    ids=["memory", "permission", "disk-full", "multi-line", "value"],
)
def test_errors_of_the_environment_are_one_line_saying_what(exc, text, be_file, monkeypatch, capsys):
    def fail(args):
        raise exc

    monkeypatch.setattr(info_command, "run", fail)
    assert main(["info", str(be_file)]) == 1
    line = one_error_line(capsys, "info")
    assert line.startswith(f"pycro-gpu info: error: {text}") and "PYCRO_GPU_DEBUG" not in line
    if isinstance(exc, MemoryError):
        assert line.endswith("lower the working-memory budget with --memory-mb (the budget is 1024 MiB)")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full (a device that is always full)")
def test_results_on_a_full_device_is_one_line_saying_so(be_file, capsys):
    before = be_file.read_bytes()
    assert main(["svd", str(be_file), "--results", "/dev/full", "-q"]) == 1
    line = one_error_line(capsys, "svd")
    # read-only first: /dev/full is found not to be an HDF5 results file before anything is written
    assert line.startswith("pycro-gpu svd: error: ") and "'/dev/full'" in line
    assert "no space left on the device" in line or "cannot open HDF5 file '/dev/full'" in line
    assert be_file.read_bytes() == before


def test_open_h5_names_a_permission_problem(be_file, monkeypatch):
    monkeypatch.setattr("pycro_gpu.io.hdf5.os.access", lambda path, mode: False)
    with pytest.raises(DataError, match=r"permission denied: cannot read '.*be.h5' \(mode 'r'\)"):
        open_h5(be_file)
    with pytest.raises(DataError, match=r"permission denied: cannot create files in"):
        open_h5(be_file.parent / "new.h5", "a")


# ------------------------------------------------------------------------------- data a command cannot use
@pytest.mark.parametrize("dtype", ["compound", "bytes", "string", "bool"])
@pytest.mark.parametrize("command", ["cluster", "filter", "svd", "decompose"])
def test_data_that_are_not_numbers_are_one_line_naming_the_dtype(command, dtype, tmp_path, capsys):
    data = {
        "compound": np.zeros((6, 5), dtype=[("a", "f4"), ("b", "f4")]),
        "bytes": np.full((6, 5), b"ab", dtype="S2"),
        "string": np.full((6, 5), "ab", dtype=h5py.string_dtype()),
        "bool": np.zeros((6, 5), dtype=bool),
    }[dtype]
    path = tmp_path / f"{dtype}.h5"
    write_odd_main(path, data)
    extra = ["--low-pass", "1e3"] if command == "filter" else []
    assert main([command, str(path), *extra, "--results", str(tmp_path / "o.h5"), "-q"]) == 1
    line = one_error_line(capsys, command)
    assert "has dtype" in line and "needs real or complex" in line


def test_fit_loop_on_a_plain_band_excitation_file_is_one_line(be_file, capsys):
    assert main(["fit", "sho", str(be_file), "-q", "--backend", "numpy"]) == 0
    assert main(["fit", "loop", str(be_file), "-q", "--backend", "numpy"]) == 1  # one spectroscopic step
    one_error_line(capsys, "fit")


# ------------------------------------------------------------------------------- programming errors, warnings
def test_an_unexpected_exception_is_one_line_with_the_way_to_its_traceback(be_file, monkeypatch, capsys):
    def broken(args):
        return args.no_such_option

    monkeypatch.setattr(info_command, "run", broken)
    assert main(["info", str(be_file)]) == 1
    line = one_error_line(capsys, "info")
    assert line == (
        "pycro-gpu info: error: AttributeError: 'Namespace' object has no attribute 'no_such_option' "
        "(run with PYCRO_GPU_DEBUG=1 for the traceback)"
    )
    monkeypatch.setenv("PYCRO_GPU_DEBUG", "1")
    assert main(["info", str(be_file)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "return args.no_such_option" in err
    assert err.splitlines()[-1] == (
        "pycro-gpu info: error: AttributeError: 'Namespace' object has no attribute 'no_such_option'"
    )


def test_numpy_warnings_show_only_with_verbose(be_file, monkeypatch, capsys):
    def divide(args):
        np.log(np.zeros(2))  # RuntimeWarning: divide by zero encountered in log
        np.zeros(2) / np.zeros(2)  # RuntimeWarning: invalid value encountered in divide
        return 0

    def show(message, category, filename, lineno, file=None, line=None):
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    monkeypatch.setattr(info_command, "run", divide)
    with warnings.catch_warnings():
        # as outside pytest, which records warnings or turns them into errors: shown on stderr once
        warnings.simplefilter("default")
        warnings.showwarning = show
        assert main(["info", str(be_file)]) == 0
        assert capsys.readouterr().err == ""
        assert main(["info", str(be_file), "-v"]) == 0
    err = capsys.readouterr().err
    assert "RuntimeWarning: divide by zero encountered in log" in err
    assert "RuntimeWarning: invalid value encountered in divide" in err
