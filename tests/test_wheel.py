"""The wheel ships the kernels: build it, install it into a fresh venv outside the tree, run a kernel."""

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def test_wheel_ships_kernels(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(REPO_ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    wheel = next(dist.glob("pycro_gpu-*.whl"))
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "pycro_gpu/kernels/spectral_mask.py" in names
    assert "pycro_gpu/py.typed" in names
    assert not any(n.startswith(("kernels/", "tests/")) for n in names)

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    # Dependencies come from this environment's site-packages as a plain path entry: its .pth files
    # (the editable install of the source tree) are not processed, so only the wheel provides pycro_gpu.
    site = Path(
        subprocess.check_output(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    code = (
        "import numpy as np, pycro_gpu, pycro_gpu.kernels as k\n"
        "assert 'site-packages' in pycro_gpu.__file__ and 'venv' in pycro_gpu.__file__, pycro_gpu.__file__\n"
        "s = np.array([[1 + 1j, 0.1 + 0j, 2 + 0j]])\n"
        "k.apply_spectral_mask(s, np.array([1.0, 1.0, 0.5]), threshold=0.5)\n"
        "assert s.tolist() == [[1 + 1j, 0j, 1 + 0j]], s\n"
        "print(pycro_gpu.__version__)\n"
    )
    out = subprocess.run([str(py), "-c", code], cwd=tmp_path, check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "0.1.0"
