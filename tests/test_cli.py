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


def test_demo_denoises(tmp_path, capsys, monkeypatch):
    # the CLI wiring with two cheap steps; the whole demo runs in tests/test_demo.py
    from pycro_gpu import demo

    monkeypatch.setattr(demo, "STEPS", [s for s in demo.STEPS if s[0] in ("generate", "fft_filter")])
    assert main(["demo", "--out", str(tmp_path), "--backend", "numpy", "--seed", "3"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["backend"] == "numpy" and summary["seed"] == 3 and summary["size"] == "small"
    steps = summary["steps"]
    assert [steps[k]["status"] for k in ("generate", "fft_filter")] == ["ok", "ok"]
    # white noise of rms 0.5 V plus a 0.3 V tone; the harmonic pass keeps 3 narrow bands of 500 kHz
    assert steps["fft_filter"]["rms_error_before"] == pytest.approx((0.5**2 + 0.3**2 / 2) ** 0.5, rel=0.03)
    assert steps["fft_filter"]["rms_error_after"] < 0.2 * steps["fft_filter"]["rms_error_before"]
    out = capsys.readouterr().out
    assert "pycro-gpu demo (small, backend numpy)" in out and "report:" in out
    assert (tmp_path / "report.html").is_file() and (tmp_path / "beps.h5").is_file()


def test_backend_command_reports(capsys):
    assert main(["backend", "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "active backend    : numpy" in out


def test_main_leaves_the_callers_configuration_alone(capsys):
    from pycro_gpu import get_config
    from pycro_gpu.cli import main

    before = get_config()
    assert main(["info", "--memory-mb", "7", "-q", "no-such-file.h5"]) == 1  # fails after configuring
    assert main(["backend", "--memory-mb", "7"]) == 0
    assert get_config() == before
