import pycro_gpu


def test_all_is_sorted_and_complete():
    assert pycro_gpu.__all__ == sorted(pycro_gpu.__all__)
    for name in pycro_gpu.__all__:
        assert hasattr(pycro_gpu, name), name
    public = {n for n in dir(pycro_gpu) if not n.startswith("_") and callable(getattr(pycro_gpu, n))}
    assert public <= set(pycro_gpu.__all__), public - set(pycro_gpu.__all__)


def test_version_is_set():
    assert pycro_gpu.__version__.count(".") >= 2


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
