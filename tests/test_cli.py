import json
import os
import subprocess
import sys

import pytest

from pycro_gpu.backend import cupy_available
from pycro_gpu.cli import COMMANDS, main


def _run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "pycro_gpu.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_help_lists_every_command():
    proc = _run("--help")
    assert proc.returncode == 0
    for name in COMMANDS:
        assert name in proc.stdout


def test_usage_error_exits_2():
    proc = _run("demo", "--size", "gigantic")
    assert proc.returncode == 2


def test_cupy_backend_without_gpu_is_one_line():
    if cupy_available():
        pytest.skip("a CUDA device is present")
    proc = _run("demo", "--quiet", env={"PYCRO_GPU_BACKEND": "cupy"})
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "pycro-gpu[gpu]" in lines[0]


def test_demo_denoises(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--backend", "numpy"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["backend"] == "numpy"
    # white noise of rms 0.5 over a 1024 Hz band; a 200 Hz low-pass keeps ~200/1024 of its power
    assert summary["rms_error_before"] == pytest.approx(0.5, rel=0.02)
    assert summary["rms_error_after"] == pytest.approx(0.5 * (200 / 1024) ** 0.5, rel=0.05)
    assert "low-pass filtered" in capsys.readouterr().out


def test_backend_command_reports(capsys):
    assert main(["backend", "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "active backend    : numpy" in out
