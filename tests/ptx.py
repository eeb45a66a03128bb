"""Compile CUDA kernels for real without a GPU: numba-cuda -> PTX (sm_90) -> ptxas report.

``numba.cuda.compile_ptx`` lowers a kernel through NVVM. Kernels that call device functions ask the
current device for its compute capability while typing, so :func:`fake_current_device` stands in a
device of compute capability 9.0. ptxas (from the nvidia-cuda-nvcc wheel) then assembles the PTX as a
GPU driver would and reports registers, stack frame and spills for every kernel.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import pytest

CC = (9, 0)


def ptxas_path() -> str:
    """Path of the ptxas shipped by the nvidia-cuda-nvcc wheel (or on PATH); skip if absent."""
    for base in map(Path, sys.path):
        for candidate in (
            base / "nvidia" / "cuda_nvcc" / "bin" / "ptxas",
            base / "nvidia" / "cu13" / "bin" / "ptxas",
        ):
            if candidate.is_file():
                return str(candidate)
    found = shutil.which("ptxas")
    if found:
        return found
    pytest.skip("ptxas not found: install numba-cuda[cu12] (the test extra does)")
    raise AssertionError  # unreachable


class _FakeDevice:
    compute_capability = CC
    id = 0
    name = b"sm_90 (compile only)"


@contextlib.contextmanager
def fake_current_device():
    """Let typing of device-function calls proceed without a GPU (compute capability 9.0)."""
    import numba.cuda.dispatcher as dispatcher

    targets = [dispatcher]
    with contextlib.ExitStack() as stack:
        for module in targets:
            if hasattr(module, "get_current_device"):
                stack.enter_context(mock.patch.object(module, "get_current_device", lambda: _FakeDevice()))
        yield


def compile_ptx(kernel, signature: str) -> str:
    """PTX text of ``kernel`` (a ``cuda.jit`` dispatcher or its Python function) for sm_90."""
    from numba import cuda

    pyfunc = getattr(kernel, "py_func", kernel)
    with fake_current_device():
        ptx, _ = cuda.compile_ptx(pyfunc, signature, cc=CC)
    return ptx


_INFO = re.compile(
    r"(?P<stack>\d+) bytes stack frame, (?P<spill_st>\d+) bytes spill stores, "
    r"(?P<spill_ld>\d+) bytes spill loads"
)
_REGS = re.compile(r"Used (?P<regs>\d+) registers")


def assemble(ptx: str) -> dict:
    """Assemble PTX with ``ptxas -arch=sm_90 -v``; return registers, stack and spill bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "kernel.ptx"
        src.write_text(ptx)
        proc = subprocess.run(
            [ptxas_path(), "-arch=sm_90", "-v", str(src), "-o", str(Path(tmp) / "kernel.cubin")],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        msg = f"ptxas rejected the kernel:\n{proc.stderr}"
        raise AssertionError(msg)
    info = _INFO.search(proc.stderr)
    regs = _REGS.search(proc.stderr)
    assert info and regs, proc.stderr
    return {
        "registers": int(regs["regs"]),
        "stack_bytes": int(info["stack"]),
        "spill_store_bytes": int(info["spill_st"]),
        "spill_load_bytes": int(info["spill_ld"]),
        "log": proc.stderr,
    }
