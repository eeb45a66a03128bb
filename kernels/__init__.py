"""Compute kernels of pycro_gpu, compiled with numba for the CPU and for CUDA from one source.

This folder ships inside the wheel as :mod:`pycro_gpu.kernels`. Each kernel module writes the work of
one element (one spectrum bin, one fit) once as a plain Python function; :mod:`._jit` compiles it with
``numba.njit`` (CPU drivers, parallel over rows with ``prange``) and, only when a CUDA kernel is first
launched, with ``numba.cuda.jit(device=True)`` (one GPU thread per element or per fit).
CUDA inputs come straight from device memory (CuPy arrays, via ``__cuda_array_interface__``).

Every specialisation (model, float type, target) compiles once per machine: :mod:`.cache` keeps it on
disk for every later process, and :mod:`.precompile` compiles them ahead of time (``pycro-gpu compile``).
"""

from __future__ import annotations

from .lm import Model, lm_fit_batch
from .noise_floor import noise_floor_rows
from .spectral_mask import apply_spectral_mask

__all__ = ["Model", "apply_spectral_mask", "lm_fit_batch", "noise_floor_rows"]
