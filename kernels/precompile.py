"""Compile kernels ahead of time into the on-disk cache (``pycro-gpu compile``; container builds).

Each entry of :func:`kernel_specs` compiles one specialisation exactly as the library calls it (same
argument types and memory layouts, run on empty batches), so that a later run of a command loads it
from the cache (:mod:`.cache`) instead of compiling. CUDA kernels compile only where a CUDA device is
usable: their cache entries are per compute capability, and numba needs the device to produce them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from .cache import compile_log
from .models import kernel_model

__all__ = [
    "ALL_MODELS",
    "DEFAULT_MODELS",
    "DEFAULT_SAMPLES",
    "CompiledKernel",
    "KernelSpec",
    "compile_kernels",
    "kernel_specs",
]

#: Models the command line fits (``fit sho``, ``fit loop``): compiled by default.
DEFAULT_MODELS = ("sho", "loop")
#: Every built-in fit model (peaks with 1 to 3 peaks).
ALL_MODELS = (
    "sho",
    "loop",
    "exponential",
    "double_exponential",
    "stretched_exponential",
    *(f"{shape}_{k}" for shape in ("gaussian", "lorentzian", "pseudo_voigt") for k in (1, 2, 3)),
)
#: Samples per spectrum compiled by default: one per CPU sample-buffer size up to 520 (BE and BEPS data).
DEFAULT_SAMPLES = (136, 520)


@dataclass(frozen=True)
class KernelSpec:
    """One specialisation to compile: a description and a function that compiles it."""

    description: str
    target: str
    compile: Callable[[], None]


@dataclass(frozen=True)
class CompiledKernel:
    """What :func:`compile_kernels` did for one :class:`KernelSpec`."""

    description: str
    target: str
    seconds: float
    from_cache: bool


def _lm_cpu(model, n_samples: int, dtype: str) -> Callable[[], None]:
    from .lm import lm_fit_batch

    def run() -> None:
        x = np.linspace(1.0, 2.0, n_samples)
        y = np.empty((0, n_samples * model.n_out), dtype=dtype)
        p0 = np.empty((0, model.n_params))
        lo = np.full(model.n_params, -np.inf)
        lm_fit_batch(model, x, y, p0, lo, -lo)

    return run


def _sho_guess_cpu(dtype: str) -> Callable[[], None]:
    from .model_sho import sho_guess_batch

    def run() -> None:
        sho_guess_batch(
            np.linspace(1.0, 2.0, 8, dtype=dtype), np.empty((0, 16), dtype=dtype), np.empty((0, 4), dtype)
        )

    return run


def _filter_cpu(kernel: str, dtype: str, parallel: bool) -> Callable[[], None]:
    from . import noise_floor, spectral_mask

    def run() -> None:
        spectra = np.zeros((0, 5), dtype=dtype)
        real = spectra.real.dtype
        if kernel == "noise_floor":
            run_kernel = noise_floor._noise_floor_cpu if parallel else noise_floor._noise_floor_cpu_serial
            run_kernel(spectra, 8, 1.0, 1e-2, 50, np.empty(0))
        else:
            run_kernel = spectral_mask._apply_cpu if parallel else spectral_mask._apply_cpu_serial
            run_kernel(spectra, np.ones(5, dtype=real), np.empty(0))

    return run


def _cuda_specs(models: Iterable[str], dtypes: Iterable[str]) -> list[KernelSpec]:
    from .lm import cuda_lm_kernel, lm_kernel_signature
    from .model_sho import cuda_sho_guess_kernel
    from .spectral_mask import cuda_spectral_mask

    specs = []
    for dtype in dtypes:
        for name in models:
            model = kernel_model(name)
            specs.append(
                KernelSpec(
                    f"LM {name} {dtype}",
                    "cuda",
                    lambda m=model, t=dtype: cuda_lm_kernel(m, t).compile(lm_kernel_signature(m, t)),
                )
            )
        sig = f"void({dtype}[::1], {dtype}[:, ::1], {dtype}[:, ::1])"
        specs.append(
            KernelSpec(
                f"SHO guess {dtype}", "cuda", lambda t=dtype, s=sig: cuda_sho_guess_kernel(t).compile(s)
            )
        )
    for complex_type in ("complex64", "complex128"):
        real = "float32" if complex_type == "complex64" else "float64"
        sig = f"void({complex_type}[:, ::1], {real}[::1], float64[::1])"
        specs.append(
            KernelSpec(f"spectral mask {complex_type}", "cuda", lambda s=sig: cuda_spectral_mask().compile(s))
        )
    return specs


def kernel_specs(
    *,
    models: Iterable[str] = DEFAULT_MODELS,
    samples: Iterable[int] = DEFAULT_SAMPLES,
    cuda: bool = False,
) -> list[KernelSpec]:
    """Every specialisation to compile for ``models`` at ``samples`` points per spectrum.

    Parameters
    ----------
    models : iterable of str
        Fit models (:data:`ALL_MODELS` lists the built-in ones).
    samples : iterable of int
        Spectrum lengths; each selects one CPU sample-buffer size (:func:`kernels.lm.block_stride`).
    cuda : bool
        Add the CUDA kernels (needs a usable CUDA device).

    Returns
    -------
    list of KernelSpec
        CPU: one LM driver per model, buffer size and data type (float32 for complex64/float32 data,
        float64 otherwise), the SHO guess, and the filter kernels (threaded and single-thread variants).
    """
    from .lm import block_stride

    models = tuple(models)
    for name in models:
        kernel_model(name)  # unknown names fail before anything compiles
    strides = {}
    for m in samples:
        if int(m) < 1:
            msg = f"samples must be positive spectrum lengths, got {m!r}"
            raise ValueError(msg)
        strides.setdefault(block_stride(int(m)), int(m))
    specs = []
    for dtype in ("float64", "float32"):
        for name in models:
            model = kernel_model(name)
            for stride, m in sorted(strides.items()):
                size = f"<= {stride} samples" if stride else "any length (streamed)"
                specs.append(KernelSpec(f"LM {name} {dtype} data, {size}", "cpu", _lm_cpu(model, m, dtype)))
        specs.append(KernelSpec(f"SHO guess {dtype} data", "cpu", _sho_guess_cpu(dtype)))
    for complex_type in ("complex128", "complex64"):
        for kernel in ("noise_floor", "spectral_mask"):
            for parallel in (True, False):
                variant = "threaded" if parallel else "single thread"
                specs.append(
                    KernelSpec(
                        f"{kernel.replace('_', ' ')} {complex_type} ({variant})",
                        "cpu",
                        _filter_cpu(kernel, complex_type, parallel),
                    )
                )
    if cuda:
        specs.extend(_cuda_specs(models, ("float32", "float64")))
    return specs


def compile_kernels(
    specs: Iterable[KernelSpec], progress: Callable[[CompiledKernel], None] | None = None
) -> list[CompiledKernel]:
    """Compile (or load from the cache) every spec; return what each took.

    ``progress`` is called after each spec (e.g. to print a line).
    """
    done = []
    log = compile_log()
    for spec in specs:
        compiled_before = log.compile_seconds
        start = time.perf_counter()
        spec.compile()
        seconds = time.perf_counter() - start
        item = CompiledKernel(
            spec.description, spec.target, seconds, from_cache=log.compile_seconds == compiled_before
        )
        done.append(item)
        if progress is not None:
            progress(item)
    return done
