import subprocess
import sys

import numpy as np
import pytest

from pycro_gpu import BackendUnavailableError, config_context
from pycro_gpu.backend import (
    array_namespace,
    cupy_available,
    device_of,
    from_host,
    get_namespace,
    is_cupy_namespace,
    is_numpy_namespace,
    namespace_name,
    resolve_backend,
    to_host,
)
from tests.helpers import assert_close


def test_import_does_not_load_gpu_libraries():
    code = (
        "import sys, pycro_gpu, pycro_gpu.kernels, pycro_gpu.cli\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('cupy', 'cupyx', 'cuml', 'cucim')]\n"
        "assert not bad, bad\n"
        "assert 'numba.cuda' not in sys.modules\n"
        "import cupy\n"  # cupy is installed by the test extra: the check above is meaningful
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_auto_without_gpu_is_numpy():
    if cupy_available():
        pytest.skip("a CUDA device is present: auto picks cupy")
    assert resolve_backend("auto") == "numpy"
    assert is_numpy_namespace(get_namespace("auto"))


def test_explicit_cupy_without_gpu_is_one_clear_error():
    if cupy_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(BackendUnavailableError) as info:
        resolve_backend("cupy")
    text = str(info.value)
    assert "pycro-gpu[gpu]" in text and "\n" not in text
    with config_context(backend="cupy"), pytest.raises(BackendUnavailableError):
        get_namespace()


@pytest.mark.gpu
def test_cupy_backend_on_a_device():
    xp = get_namespace("cupy")
    assert is_cupy_namespace(xp)
    assert float(xp.sum(xp.ones(4))) == 4.0


def test_namespace_round_trip(xp, rng):
    host = rng.standard_normal((5, 3))
    a = from_host(host, xp)
    assert namespace_name(array_namespace(a)) == namespace_name(xp)
    assert device_of(a) == device_of(from_host(host, xp))
    np.testing.assert_array_equal(to_host(a), host)
    b = from_host(host, xp, device=device_of(a), dtype=xp.float32)
    assert b.dtype == xp.float32
    assert_close(b, host.astype(np.float32), xp=xp)


def test_array_namespace_ignores_scalars(xp):
    a = xp.asarray([1.0, 2.0])
    assert namespace_name(array_namespace(a, 2.0, None)) == namespace_name(xp)


def test_mixed_namespaces_are_rejected():
    import array_api_strict

    with pytest.raises(TypeError, match="one array library"):
        array_namespace(np.ones(2), array_api_strict.ones(2))


def test_mixed_devices_are_rejected():
    import array_api_strict

    a = array_api_strict.ones(2)
    b = array_api_strict.ones(2, device=array_api_strict.Device("device1"))
    with pytest.raises(ValueError, match="different devices"):
        device_of(a, b)
