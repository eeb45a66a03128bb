import os
import subprocess
import sys

import pytest

import pycro_gpu
from pycro_gpu import config_context, get_config, set_config


def test_defaults_come_from_environment():
    code = "import pycro_gpu; c = pycro_gpu.get_config(); print(c['backend'], c['memory_mb'])"
    env = {**os.environ, "PYCRO_GPU_BACKEND": "NumPy", "PYCRO_GPU_MEMORY_MB": "256"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["numpy", "256.0"]


def test_bad_environment_value_is_named():
    env = {**os.environ, "PYCRO_GPU_MEMORY_MB": "lots"}
    proc = subprocess.run(
        [sys.executable, "-c", "import pycro_gpu; pycro_gpu.get_config()"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "PYCRO_GPU_MEMORY_MB" in proc.stderr and "'lots'" in proc.stderr


def test_config_context_restores_values():
    before = get_config()
    with config_context(backend="numpy", memory_mb=64, progress=False):
        cfg = get_config()
        assert (cfg["backend"], cfg["memory_mb"], cfg["progress"]) == ("numpy", 64.0, False)
    assert get_config() == before


def test_config_context_restores_after_error():
    before = get_config()
    with pytest.raises(RuntimeError), config_context(memory_mb=8):
        raise RuntimeError
    assert get_config() == before


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "x"])
def test_memory_budget_must_be_positive(bad):
    with pytest.raises(ValueError, match="memory_mb"):
        set_config(memory_mb=bad)


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="'tpu'"):
        set_config(backend="tpu")
    assert pycro_gpu.get_config()["backend"] in ("auto", "numpy", "cupy")
