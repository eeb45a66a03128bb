import importlib
import re

import pytest

import pycro_gpu
from tests.conftest import REPO_ROOT


def test_all_is_sorted_and_complete():
    assert pycro_gpu.__all__ == sorted(pycro_gpu.__all__)
    for name in pycro_gpu.__all__:
        assert hasattr(pycro_gpu, name), name
    public = {n for n in dir(pycro_gpu) if not n.startswith("_") and callable(getattr(pycro_gpu, n))}
    assert public <= set(pycro_gpu.__all__), public - set(pycro_gpu.__all__)


def test_version_is_the_installed_distributions_and_costs_no_metadata_import():
    import importlib.metadata
    import subprocess
    import sys

    assert pycro_gpu.__version__.count(".") >= 2
    assert pycro_gpu.__version__ == importlib.metadata.version("pycro-gpu")
    # importlib.metadata and its e-mail parser cost ~50 ms of every command's start
    code = (
        "import sys, pycro_gpu\nassert 'importlib.metadata' not in sys.modules\nprint(pycro_gpu.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == pycro_gpu.__version__


def test_submodules_load_lazily():
    import subprocess
    import sys

    code = (
        "import sys, pycro_gpu\n"
        "assert 'pycro_gpu.decomposition' not in sys.modules and 'sklearn' not in sys.modules\n"
        "assert callable(pycro_gpu.decomposition.svd) and hasattr(pycro_gpu.io, 'usid')\n"
        "assert 'cupy' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


#: Public import paths: each keeps working, with every name of its ``__all__``.
PUBLIC_PATHS = (
    "pycro_gpu",
    "pycro_gpu.backend",
    "pycro_gpu.cluster",
    "pycro_gpu.datasets",
    "pycro_gpu.decomposition",
    "pycro_gpu.distributed",
    "pycro_gpu.errors",
    "pycro_gpu.filters",
    "pycro_gpu.fitting",
    "pycro_gpu.io",
    "pycro_gpu.io.hdf5",
    "pycro_gpu.io.translators",
    "pycro_gpu.io.usid",
    "pycro_gpu.kernels",
    "pycro_gpu.process",
    "pycro_gpu.viz",
    "pycro_gpu.viz.report",
)


@pytest.mark.parametrize("path", PUBLIC_PATHS)
def test_public_path_imports_with_all_its_names(path):
    module = importlib.import_module(path)
    names = getattr(module, "__all__", None)
    assert names, f"{path} has no __all__"
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, missing
    assert len(set(names)) == len(names)


def test_cli_entry_point():
    assert '\npycro-gpu = "pycro_gpu.cli:main"\n' in (REPO_ROOT / "pyproject.toml").read_text()
    from pycro_gpu.cli import main

    assert callable(main)


def test_distributed_is_the_process_module():
    import pycro_gpu.distributed
    import pycro_gpu.process.distributed

    assert pycro_gpu.distributed is pycro_gpu.process.distributed


def test_every_package_is_in_the_wheel_list():
    # pyproject.toml lists the packages explicitly (kernels/ maps to pycro_gpu.kernels)
    text = (REPO_ROOT / "pyproject.toml").read_text()
    listed = set(re.findall(r'^    "(pycro_gpu[\w.]*)",$', text, re.M))
    root = REPO_ROOT / "pycro_gpu"
    found = {".".join(("pycro_gpu", *p.parent.relative_to(root).parts)) for p in root.rglob("__init__.py")}
    assert found | {"pycro_gpu.kernels"} == listed


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("pycro_gpu.report", "pycro_gpu.viz.report"),
        ("pycro_gpu.plots_decomposition", "pycro_gpu.viz.results"),
    ],
)
def test_moved_modules_keep_their_old_path_for_one_release(old, new):
    import subprocess
    import sys

    code = (
        "import warnings\n"
        "warnings.simplefilter('error')\n"
        f"try:\n    import {old}\nexcept DeprecationWarning as w:\n    print(w)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert f"{old} is now {new}" in out
    sys.modules.pop(old, None)
    with pytest.deprecated_call(match=f"{old} is now {new}"):
        module = importlib.import_module(old)
    target = importlib.import_module(new)
    for name in module.__all__:
        assert getattr(module, name) is getattr(target, name)
