import numpy as np


def test_numba_cuda_import_restores_row_stack_for_numpy_2_5(monkeypatch):
    """numba-cuda <= 0.30 overloads numpy.row_stack, which NumPy 2.5 removed (seen on a GPU machine)."""
    from pycro_gpu.kernels._jit import numba_cuda

    monkeypatch.delattr(np, "row_stack", raising=False)
    cuda = numba_cuda()
    row_stack = getattr(np, "row_stack")  # noqa: B009 (the name NumPy 2.5 removed)
    assert row_stack is np.vstack
    assert hasattr(cuda, "jit")
    a, b = np.ones(3), np.zeros(3)
    np.testing.assert_array_equal(row_stack((a, b)), np.stack([a, b]))
