"""GPU check: run every GPU path once, compare it with the CPU path, and time both.

One command for a borrowed GPU machine with a few minutes on it::

    python benchmarks/gpu_check.py --quick --out bench_out/gpu_check     # ~1-2 min
    python benchmarks/gpu_check.py --out bench_out/gpu_check             # whole suite, larger sizes

It does two things and never stops at the first problem:

1. **pytest** in a subprocess with CuPy usable: the ``xp`` fixture's ``cupy`` cases and the
   ``@pytest.mark.gpu`` tests run for real. ``--pytest-scope gpu`` (the default with ``--quick``) runs
   only those (``-k "cupy or gpu"``); ``all`` runs the whole suite except the simulator tests. A small
   plugin in this file logs every result as it happens, so a time-out still reports what ran.
2. **Timings**: every GPU-capable entry point the package has *at that time* (sections below; one that
   is not there yet reports ``not available``) runs on NumPy and on CuPy with the same input; the
   device is synchronised before each clock read; the CuPy result is checked against the NumPy one.

It prints Markdown tables and writes ``gpu_check.json`` (and ``pytest_results.jsonl``) to ``--out``.
On a machine without a GPU it runs the CPU side only and says ``no GPU``. Each section is time-boxed
(``--section-timeout``) and the whole timing part has a budget (``--budget``).

Adding a section for a new capability is a few lines::

    @section("my_filter", "what it is", quick={"n": 256}, full={"n": 8192}, rtol=1e-6)
    def _my_filter(xp, rng, n):
        from pycro_gpu.filters.fft import my_filter   # ImportError -> "not available"
        x = xp.asarray(rng.standard_normal((n, 1024)))
        return lambda: my_filter(x)

The function builds the inputs on namespace ``xp`` from host data drawn from ``rng`` (the same seed
for both backends) and returns the zero-argument call to time, whose result (an array, or a tuple or
dict of arrays) is compared between backends with ``rtol``/``atol`` or a ``compare`` function.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: `benchmarks` importable (an installed pycro_gpu wins)
    sys.path.append(str(REPO_ROOT))

from pycro_gpu.errors import MissingDependencyError  # noqa: E402

LOG_ENV = "PYCRO_GPU_CHECK_LOG"


# --------------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------------


@dataclass
class Check:
    """Outcome of comparing the GPU result with the CPU result."""

    ok: bool
    error: float
    detail: str = ""


@dataclass
class Case:
    """What a section function returns when it has more to say than the call to time."""

    run: Callable[[], Any]
    note: str | Callable[[Any], str] = ""


@dataclass
class Section:
    name: str
    what: str
    func: Callable[..., Callable[[], Any] | Case]
    quick: dict[str, Any]
    full: dict[str, Any]
    rtol: float = 1e-6
    atol: float = 0.0
    compare: Callable[[Any, Any], Check] | None = None


SECTIONS: list[Section] = []


def section(
    name: str,
    what: str,
    *,
    quick: dict[str, Any],
    full: dict[str, Any],
    rtol: float = 1e-6,
    atol: float = 0.0,
    compare: Callable[[Any, Any], Check] | None = None,
):
    """Register ``func(xp, rng, **size) -> call`` as a timing section (see the module docstring)."""

    def register(func):
        SECTIONS.append(Section(name, what, func, quick, full, rtol, atol, compare))
        return func

    return register


def _leaves(obj: Any) -> list[np.ndarray]:
    if isinstance(obj, dict):
        return [leaf for key in sorted(obj) for leaf in _leaves(obj[key])]
    if isinstance(obj, (tuple, list)):
        return [leaf for item in obj for leaf in _leaves(item)]
    return [np.asarray(obj)]


def max_rel_error(actual: Any, desired: Any, atol: float = 0.0) -> float:
    """Largest ``|a - d| / max(|d|, tiny)`` over every element; atol-sized differences count as 0."""
    worst = 0.0
    for a, d in zip(_leaves(actual), _leaves(desired), strict=True):
        if a.shape != d.shape:
            return float("inf")
        if a.size == 0:
            continue
        a64 = a.astype(np.complex128 if np.iscomplexobj(a) or np.iscomplexobj(d) else np.float64)
        d64 = d.astype(a64.dtype)
        if not np.array_equal(np.isfinite(a64), np.isfinite(d64)):
            return float("inf")
        fin = np.isfinite(d64)
        diff = np.abs(a64[fin] - d64[fin])
        diff = np.where(diff <= atol, 0.0, diff)
        scale = np.maximum(np.abs(d64[fin]), np.finfo(np.float64).tiny)
        if diff.size:
            worst = max(worst, float(np.max(diff / scale)))
    return worst


def default_compare(sec: Section) -> Callable[[Any, Any], Check]:
    def compare(gpu: Any, cpu: Any) -> Check:
        err = max_rel_error(gpu, cpu, sec.atol)
        ok = all(
            np.allclose(g, c, rtol=sec.rtol, atol=sec.atol, equal_nan=True)
            for g, c in zip(_leaves(gpu), _leaves(cpu), strict=True)
        )
        return Check(ok, err, f"rtol={sec.rtol:g} atol={sec.atol:g}")

    return compare


# ---- always there: the array API on each backend (pocketfft vs cuFFT) ------------------------------


@section(
    "fft_roundtrip",
    "rfft + irfft of a batch of signals (array API: pocketfft vs cuFFT)",
    quick={"rows": 256, "n": 4096},
    full={"rows": 2048, "n": 16384},
    rtol=1e-9,
    atol=1e-9,
)
def _fft_roundtrip(xp, rng, rows, n):
    x = xp.asarray(rng.standard_normal((rows, n)))
    return lambda: xp.fft.irfft(xp.fft.rfft(x, axis=-1), n=n, axis=-1)


# ---- numba kernels: CPU prange vs the same source compiled with numba.cuda ------------------------


@section(
    "spectral_mask_kernel",
    "kernels.apply_spectral_mask: numba CPU (prange) vs numba CUDA on CuPy memory",
    quick={"rows": 512, "bins": 2049},
    full={"rows": 16384, "bins": 4097},
    rtol=1e-12,
)
def _spectral_mask(xp, rng, rows, bins):
    from pycro_gpu.kernels import apply_spectral_mask

    host = rng.standard_normal((rows, bins)) + 1j * rng.standard_normal((rows, bins))
    spectra = xp.asarray(host)
    # 0/1 mask: applying it again (the timing repeats work in place) gives the same result.
    mask = xp.asarray((np.arange(bins) < bins // 3).astype(np.float64))
    return Case(lambda: apply_spectral_mask(spectra, mask, threshold=0.5), note="in place")


# ---- fitting: batched Levenberg-Marquardt (team FITTING) ------------------------------------------


def sho_spectra(rng: np.random.Generator, n_fits: int, n_bins: int = 87, noise: float = 0.03):
    """Synthetic band-excitation spectra from the SHO of DESIGN.md; returns (spectra, freqs, truth)."""
    from pycro_gpu.datasets import sho_response

    w = np.linspace(300e3, 340e3, n_bins)
    amp = rng.uniform(0.5, 2.0, n_fits)
    w0 = rng.uniform(310e3, 330e3, n_fits)
    q = rng.uniform(80.0, 300.0, n_fits)
    phi = rng.uniform(-np.pi, np.pi, n_fits)
    h = sho_response(w, amp, w0, q, phi)
    scale = noise * np.abs(h).max(axis=1, keepdims=True)
    h = h + scale * (rng.standard_normal(h.shape) + 1j * rng.standard_normal(h.shape))
    return h, w, np.stack([amp, w0, q, phi], axis=1)


def compare_fits(gpu: Any, cpu: Any) -> Check:
    """Fits agree when >= 99% of the converged fits give the same parameters to 1e-3 relative."""
    g_params, c_params = (np.asarray(_leaves(r)[0]) for r in (gpu, cpu))
    same = np.all(np.isclose(g_params, c_params, rtol=1e-3, atol=1e-6), axis=1)
    frac = float(np.mean(same))
    return Check(frac >= 0.99, 1.0 - frac, f"{frac:.2%} of fits agree to 1e-3")


def _fit_case(fit: Callable[..., Any], *args: Any) -> Case:
    """Time ``fit(*args)``; its parameters and converged flags are compared, the converged share noted."""

    def run():
        res = fit(*args)
        return res.params, res.converged

    return Case(run, note=lambda out: f"converged {float(np.mean(_host_copy(out[1]))):.1%}")


@section(
    "fit_sho",
    "fitting.fit_sho: batched LM, numba CPU vs CUDA (87-bin SHO spectra, 3% noise)",
    quick={"n_fits": 2048},
    full={"n_fits": 65536},
    compare=compare_fits,
)
def _fit_sho(xp, rng, n_fits):
    from pycro_gpu.fitting import fit_sho

    spectra, freqs, _ = sho_spectra(rng, n_fits)
    return _fit_case(fit_sho, xp.asarray(spectra), xp.asarray(freqs))


def be_loops(rng: np.random.Generator, n_loops: int, n_bias: int = 64, noise: float = 0.01):
    """Band-excitation hysteresis loops (9-parameter model) on a triangular bias; (bias, loops)."""
    from pycro_gpu.fitting import loop

    half = n_bias // 2
    bias = np.concatenate([np.linspace(-10, 10, half), np.linspace(10, -10, n_bias - half)])
    u = rng.uniform
    params = np.column_stack(
        [u(-0.1, 0.1, n_loops), u(0.5, 1.5, n_loops), u(-4, -2, n_loops), u(2, 4, n_loops),
         u(-0.01, 0.01, n_loops)] + [u(1, 3, n_loops) for _ in range(4)]
    )  # fmt: skip
    return bias, loop(bias, params) + noise * rng.standard_normal((n_loops, n_bias))


@section(
    "fit_loop",
    "fitting.fit_loop: batched LM of the 9-parameter BE loop, numba CPU vs CUDA",
    quick={"n_fits": 2048},
    full={"n_fits": 65536},
    compare=compare_fits,
)
def _fit_loop(xp, rng, n_fits):
    from pycro_gpu.fitting import fit_loop

    bias, loops = be_loops(rng, n_fits)
    return _fit_case(fit_loop, xp.asarray(bias), xp.asarray(loops))


# ---- FFT filters (team FILTERS): 1-D signal filter with noise floor, 2-D image filter ---------------


@section(
    "fft_filter",
    "filters.fft_filter: erf low pass + noise-floor threshold (fused mask kernel on both sides)",
    quick={"rows": 256, "n": 8192},
    full={"rows": 4096, "n": 16384},
    rtol=1e-6,
    atol=1e-6,
)
def _fft_filter(xp, rng, rows, n):
    from pycro_gpu.filters.fft import LowPassFilter, fft_filter

    fs = 4e6
    t = np.arange(n) / fs
    x = (
        np.sin(2 * np.pi * 50e3 * t)
        + 0.2 * np.sin(2 * np.pi * 900e3 * t)
        + 0.1 * rng.standard_normal((rows, n))
    )
    signals = xp.asarray(x)
    lp = LowPassFilter(n, fs, 300e3)
    return lambda: fft_filter(signals, lp, noise_tolerance=1e-4, xp=xp)


@section(
    "image_filter",
    "filters.filter_image: Butterworth low pass of an image stack (rfft2 * mask, irfft2)",
    quick={"images": 8, "size": 512},
    full={"images": 64, "size": 1024},
    rtol=1e-6,
    atol=1e-9,
)
def _image_filter(xp, rng, images, size):
    from pycro_gpu.filters.fft import butterworth_mask, filter_image

    stack = xp.asarray(rng.standard_normal((images, size, size)))
    mask = butterworth_mask((size, size), 0.1, xp=xp)
    return lambda: filter_image(stack, mask, xp=xp)


@section(
    "image_op_gaussian",
    "filters.image.image_op('gaussian'): scikit-image vs cuCIM dispatch",
    quick={"size": 1024},
    full={"size": 4096},
    rtol=1e-6,
    atol=1e-9,
)
def _image_op(xp, rng, size):
    from pycro_gpu.filters.image import image_op

    img = xp.asarray(rng.standard_normal((size, size)))
    return lambda: image_op("gaussian", img, sigma=2.0)


# ---- decomposition and clustering (team DECOMP): streamed SVD, KMeans (cuML or scikit-learn) ----------


def low_rank(rng: np.random.Generator, n: int, m: int, k: int = 8, noise: float = 1e-3) -> np.ndarray:
    """``n x m`` matrix of rank ``k`` with well separated singular values, plus a little noise."""
    u, _ = np.linalg.qr(rng.standard_normal((n, k)))
    v, _ = np.linalg.qr(rng.standard_normal((m, k)))
    s = np.geomspace(100.0, 1.0, k)
    return (u * s) @ v.T + noise * rng.standard_normal((n, m))


def compare_svd(gpu: Any, cpu: Any) -> Check:
    """Singular values to 1e-6 relative; right singular subspaces to 1e-6 (largest principal-angle sine)."""
    (s_g, v_g), (s_c, v_c) = gpu, cpu
    err_s = float(np.max(np.abs(s_g - s_c) / np.abs(s_c)))
    # sine of the largest principal angle between the row spaces of V
    q_g, _ = np.linalg.qr(np.asarray(v_g).T)
    q_c, _ = np.linalg.qr(np.asarray(v_c).T)
    cos = np.linalg.svd(q_g.conj().T @ q_c, compute_uv=False)
    err_v = float(np.sqrt(max(0.0, 1.0 - float(np.min(cos)) ** 2)))
    return Check(err_s < 1e-6 and err_v < 1e-6, max(err_s, err_v), f"S {err_s:.1e}, subspace {err_v:.1e}")


def _svd_case(xp: Any, rng: np.random.Generator, n: int, m: int, method: str) -> Case:
    from pycro_gpu.decomposition import svd

    a = xp.asarray(low_rank(rng, n, m))

    def run():
        res = svd(a, 8, method=method, xp=xp, progress=False)
        return res.S, res.V

    return Case(run)


@section(
    "svd",
    "decomposition.svd: truncated SVD, method auto (the one-read sketch here), k=8",
    quick={"n": 10000, "m": 128},
    full={"n": 400000, "m": 512},
    compare=compare_svd,
)
def _svd(xp, rng, n, m):
    return _svd_case(xp, rng, n, m, "auto")


@section(
    "svd_gram",
    "decomposition.svd: truncated SVD, exact Gram method, k=8",
    quick={"n": 10000, "m": 128},
    full={"n": 400000, "m": 512},
    compare=compare_svd,
)
def _svd_gram(xp, rng, n, m):
    return _svd_case(xp, rng, n, m, "gram")


def compare_labels(gpu: Any, cpu: Any) -> Check:
    from sklearn.metrics import adjusted_rand_score

    ari = float(adjusted_rand_score(np.asarray(cpu).ravel(), np.asarray(gpu).ravel()))
    return Check(ari > 0.99, 1.0 - ari, f"adjusted Rand index {ari:.4f}")


@section(
    "kmeans",
    "cluster.cluster(method='kmeans'): cuML on GPU (scikit-learn where cuML is missing)",
    quick={"n": 5000, "m": 32},
    full={"n": 200000, "m": 128},
    compare=compare_labels,
)
def _kmeans(xp, rng, n, m):
    from pycro_gpu.cluster import cluster

    centers = 10.0 * rng.standard_normal((5, m))
    x = xp.asarray(centers[rng.integers(0, 5, n)] + rng.standard_normal((n, m)))
    engine = {}

    def run():
        res = cluster(x, 5, "kmeans", xp=xp, reorder=True)
        engine["name"] = res.engine
        return res.labels

    return Case(run, note=lambda out: f"engine {engine.get('name')}")


# ---- the streamed engine end to end (team USID): HDF5 -> device -> compute -> HDF5 ------------------


def _spectrum_compute(batch, xp):
    spec = xp.abs(xp.fft.rfft(xp.astype(batch, xp.float64), axis=1))
    return {"peak": xp.max(spec, axis=1), "mean": xp.mean(spec, axis=1)}


@section(
    "run_job",
    "process.run_job: streamed FFT peak of every position from an HDF5 file (read, compute, write)",
    quick={"n_pos": 8192, "n": 1024},
    full={"n_pos": 65536, "n": 1024},
    rtol=1e-9,
)
def _run_job(xp, rng, n_pos, n):
    import h5py

    from pycro_gpu.backend import namespace_name
    from pycro_gpu.io.usid import Dimension, write_main
    from pycro_gpu.process import Job, Output, run_job

    path = _scratch_dir() / "raw.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("Measurement_000/Channel_000")
        data = rng.standard_normal((n_pos, n)).astype(np.float32)
        write_main(g, "Raw_Data", data, Dimension("X", "a.u.", n_pos), Dimension("T", "s", n), "x", "V")
    job = Job(
        "Spectrum", _spectrum_compute, [Output("peak", dtype=np.float64), Output("mean", dtype=np.float64)]
    )
    backend = namespace_name(xp)

    def run():
        res = run_job(job, path, "/Measurement_000/Channel_000/Raw_Data", backend=backend, override=True,
                      memory_mb=64, progress=False)  # fmt: skip
        with h5py.File(res.file, "r") as f:
            return f[res.group]["peak"][()], f[res.group]["mean"][()]

    return run


_TEMP_DIRS: list[Path] = []


def _scratch_dir() -> Path:
    """A new temporary folder, removed at the end of :func:`main`."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    _TEMP_DIRS.append(folder)
    return folder


@section(
    "fit_sho_dataset",
    "fitting.fit_sho_dataset: SHO fit of a BE USID file end to end (Raw_Data-SHO_Fit_000)",
    quick={"nx": 64, "ny": 64},
    full={"nx": 256, "ny": 256},
    compare=compare_fits,
)
def _fit_sho_dataset(xp, rng, nx, ny):
    import h5py
    from numpy.lib import recfunctions

    from pycro_gpu.backend import namespace_name
    from pycro_gpu.fitting.dataset import fit_sho_dataset
    from pycro_gpu.io.usid import Dimension, write_main

    path = _scratch_dir() / "be.h5"
    spectra, freqs, _ = sho_spectra(rng, nx * ny)
    with h5py.File(path, "w") as f:
        g = f.create_group("Measurement_000/Channel_000")
        pos = [Dimension("X", "m", nx), Dimension("Y", "m", ny)]
        spec = Dimension("Frequency", "Hz", freqs)
        write_main(g, "Raw_Data", spectra.astype(np.complex64), pos, spec, "Response", "V")
    backend = namespace_name(xp)

    def run():
        res = fit_sho_dataset(path, "/Measurement_000/Channel_000/Raw_Data", backend=backend, override=True,
                              progress=False)  # fmt: skip
        with h5py.File(res.file, "r") as f:
            fit = recfunctions.structured_to_unstructured(f[res.group]["Fit"][()])
            return fit.reshape(nx * ny, -1).astype(np.float64), f[res.group]["Converged"][()]

    return Case(run, note=lambda out: f"converged {float(np.mean(out[1])):.1%}")


# --------------------------------------------------------------------------------------------------
# Harness
# --------------------------------------------------------------------------------------------------


class SectionTimeout(Exception):
    pass


@contextlib.contextmanager
def time_box(seconds: float) -> Iterator[None]:
    """Raise :class:`SectionTimeout` in the main thread after ``seconds`` (no-op where SIGALRM is absent)."""
    if seconds <= 0 or not hasattr(signal, "setitimer") or not _in_main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise SectionTimeout(f"time box of {seconds:g} s reached")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _host_copy(obj: Any) -> Any:
    from pycro_gpu.backend import to_host

    if isinstance(obj, dict):
        return {k: _host_copy(v) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):  # named tuples become plain tuples
        return tuple(_host_copy(v) for v in obj)
    if hasattr(obj, "__dict__") and not hasattr(obj, "__array__") and not hasattr(obj, "__dlpack__"):
        return {k: _host_copy(v) for k, v in vars(obj).items() if not k.startswith("_")}  # result objects
    return np.array(to_host(obj), copy=True)


def _free_device_memory() -> None:
    try:
        import cupy

        cupy.get_default_memory_pool().free_all_blocks()
        cupy.get_default_pinned_memory_pool().free_all_blocks()
    except Exception:  # no cupy, or no device: nothing to free
        pass


def _sync(xp: Any) -> None:
    """Wait for all queued device work: the whole device, not one stream (numba launches on its own)."""
    from pycro_gpu.backend import is_cupy_namespace

    if is_cupy_namespace(xp):
        import cupy

        cupy.cuda.Device().synchronize()


def time_backend(
    sec: Section, backend: str, size: dict[str, Any], repeats: int, seconds: float
) -> dict[str, Any]:
    """Build the section's inputs on ``backend``, call once (warm-up, JIT), then time ``repeats`` calls."""
    from pycro_gpu.backend import get_namespace

    xp = get_namespace(backend)
    made = sec.func(xp, np.random.default_rng(20261126), **size)
    case = made if isinstance(made, Case) else Case(made)
    _sync(xp)
    t0 = time.perf_counter()
    out = case.run()
    _sync(xp)
    first = time.perf_counter() - t0
    note = case.note(out) if callable(case.note) else case.note
    result = _host_copy(out)
    times: list[float] = []
    spent = first
    while len(times) < repeats and spent < seconds:
        t0 = time.perf_counter()
        case.run()
        _sync(xp)
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
    best = min(times) if times else first
    return {"first_s": first, "best_s": best, "runs": len(times), "note": note, "result": result}


def run_section(sec: Section, *, quick: bool, gpu: bool, repeats: int, timeout: float) -> dict[str, Any]:
    size = sec.quick if quick else sec.full
    row: dict[str, Any] = {"name": sec.name, "what": sec.what, "size": size, "status": "ok"}
    backends = ["numpy"] + (["cupy"] if gpu else [])
    results = {}
    t_start = time.perf_counter()
    for backend in backends:
        left = timeout - (time.perf_counter() - t_start)
        try:
            with time_box(max(left, 0.001)):
                timed = time_backend(sec, backend, size, repeats, seconds=max(left, 0.001) / 2)
        except (ImportError, MissingDependencyError) as exc:
            row["status"] = "not available" if backend == "numpy" else "not available on GPU"
            row["detail"] = f"{backend}: {type(exc).__name__}: {exc}"
            if backend == "numpy":
                return row
            break
        except SectionTimeout as exc:
            row["status"] = "timeout"
            row["detail"] = f"{backend}: {exc}"
            break
        except Exception as exc:
            row["status"] = "error"
            row["detail"] = f"{backend}: {type(exc).__name__}: {exc}"
            row["traceback"] = traceback.format_exc(limit=6)
            break
        finally:
            if backend == "cupy":
                _free_device_memory()
        results[backend] = timed.pop("result")
        row[backend] = timed
    if "numpy" in row and "cupy" in row:
        row["speedup"] = row["numpy"]["best_s"] / max(row["cupy"]["best_s"], 1e-12)
        compare = sec.compare or default_compare(sec)
        try:
            chk = compare(results["cupy"], results["numpy"])
        except Exception as exc:
            chk = Check(False, float("inf"), f"compare failed: {type(exc).__name__}: {exc}")
        row["check"] = {"ok": bool(chk.ok), "error": float(chk.error), "detail": chk.detail}
        if not chk.ok and row["status"] == "ok":
            row["status"] = "MISMATCH"
    elif row["status"] == "ok" and not gpu:
        row["status"] = "ok (CPU only: no GPU)"
    return row


# --------------------------------------------------------------------------------------------------
# pytest: subprocess + a logging plugin (this module, loaded with -p benchmarks.gpu_check)
# --------------------------------------------------------------------------------------------------

_GPU_PARAM = re.compile(r"[\[-]cupy[\]-]")


def _log_record(path: str, rec: dict[str, Any]) -> None:
    """Append one test result to the JSON-lines log (written as it happens: a time-out keeps it)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec) + "\n")


def pytest_runtest_logreport(report):  # pytest hook, active only in the subprocess started below
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    if report.when != "call" and report.outcome == "passed":
        return
    outcome = report.outcome
    if report.when != "call" and outcome == "failed":
        outcome = "error"
    if hasattr(report, "wasxfail"):
        outcome = "xfailed" if outcome == "skipped" else "xpassed"
    msg = ""
    if outcome in ("failed", "error"):
        msg = str(getattr(report, "longreprtext", "") or "").strip().splitlines()[-1:]
        msg = msg[0][:300] if msg else ""
    elif outcome == "skipped" and isinstance(report.longrepr, tuple):
        msg = str(report.longrepr[2])[:200]
    rec = {
        "nodeid": report.nodeid,
        "when": report.when,
        "outcome": outcome,
        "gpu": "gpu" in report.keywords or bool(_GPU_PARAM.search(report.nodeid)),
        "duration": round(float(report.duration), 4),
        "msg": msg,
    }
    _log_record(path, rec)


def pytest_collectreport(report):  # pytest hook: a test module that fails to import is an error
    path = os.environ.get(LOG_ENV)
    if not path or report.outcome != "failed":
        return
    lines = str(getattr(report, "longreprtext", "") or "").strip().splitlines()
    rec = {
        "nodeid": report.nodeid,
        "when": "collect",
        "outcome": "error",
        "gpu": False,
        "duration": 0.0,
        "msg": lines[-1][:300] if lines else "collection failed",
    }
    _log_record(path, rec)


def run_pytest(out: Path, scope: str, timeout: float, extra: list[str]) -> dict[str, Any]:
    log = out / "pytest_results.jsonl"
    log.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "benchmarks.gpu_check", "-p", "no:cacheprovider"]
    cmd += ["-m", "not cudasim"]
    if scope == "gpu":
        # names (test ids, module names) and markers: cupy-parametrized cases and gpu-marked tests;
        # not this tool's own tests (their module name contains 'gpu')
        cmd += ["-k", "(cupy or gpu) and not test_gpu_check"]
    cmd += extra
    env = {**os.environ, LOG_ENV: str(log), "MPLBACKEND": "Agg"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    timed_out = False
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
    wall = time.perf_counter() - t0
    records = []
    if log.exists():
        records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    summary: dict[str, Any] = {
        "command": " ".join(cmd),
        "scope": scope,
        "returncode": proc.returncode,
        "timed_out": timed_out,
        "wall_s": round(wall, 1),
        "tail": "\n".join(output.strip().splitlines()[-15:]),
    }
    for subset, recs in (("all", records), ("gpu", [r for r in records if r["gpu"]])):
        summary[subset] = dict(Counter(r["outcome"] for r in recs))
    summary["failures"] = [
        {"nodeid": r["nodeid"], "outcome": r["outcome"], "msg": r["msg"]}
        for r in records
        if r["outcome"] in ("failed", "error", "xpassed")
    ]
    summary["gpu_skip_reasons"] = dict(
        Counter(r["msg"] for r in records if r["gpu"] and r["outcome"] == "skipped")
    )
    return summary


# --------------------------------------------------------------------------------------------------
# Environment, report
# --------------------------------------------------------------------------------------------------


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    from pycro_gpu.backend import cupy_status

    usable, reason = cupy_status()
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpu": usable,
        "gpu_reason": reason or None,
        "packages": {},
    }
    for dist in (
        "pycro-gpu",
        "numpy",
        "scipy",
        "numba",
        "numba-cuda",
        "cupy-cuda12x",
        "cupy-cuda13x",
        "cuml-cu12",
        "cucim-cu12",
        "scikit-learn",
        "scikit-image",
        "array-api-compat",
        "array-api-strict",
        "h5py",
        "dask",
        "distributed",
    ):
        v = _version(dist)
        if v:
            env["packages"][dist] = v
    if usable:
        try:
            import cupy

            dev = cupy.cuda.Device()
            props = cupy.cuda.runtime.getDeviceProperties(dev.id)
            name = props["name"]
            env["device"] = {
                "name": name.decode() if isinstance(name, bytes) else str(name),
                "compute_capability": dev.compute_capability,
                "memory_gib": round(dev.mem_info[1] / 2**30, 1),
                "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
                "cuda_driver": cupy.cuda.runtime.driverGetVersion(),
            }
        except Exception as exc:
            env["device"] = {"error": f"{type(exc).__name__}: {exc}"}
    return env


def _fmt_s(row: dict[str, Any], backend: str, key: str) -> str:
    t = row.get(backend, {}).get(key)
    if t is None:
        return "-"
    return f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    dev = env.get("device", {})
    lines = [f"# GPU check ({'quick' if report['quick'] else 'full'} sizes)", ""]
    if env["gpu"]:
        lines.append(
            f"Device: {dev.get('name', '?')} (cc {dev.get('compute_capability', '?')}, "
            f"{dev.get('memory_gib', '?')} GiB); CPU cores: {env['cpu_count']}; Python {env['python']}"
        )
    else:
        lines.append(f"**no GPU**: {env['gpu_reason']}. CPU timings only ({env['cpu_count']} cores).")
    lines.append("")
    pt = report.get("pytest")
    if pt:
        lines += [
            "## pytest",
            "",
            "| subset | passed | failed | errors | skipped | xfailed |",
            "|---|---|---|---|---|---|",
        ]
        for subset in ("all", "gpu"):
            c = pt[subset]
            lines.append(
                f"| {subset} | {c.get('passed', 0)} | {c.get('failed', 0)} | {c.get('error', 0)} | "
                f"{c.get('skipped', 0)} | {c.get('xfailed', 0)} |"
            )
        lines.append("")
        state = "TIMED OUT (partial counts)" if pt["timed_out"] else f"exit code {pt['returncode']}"
        lines.append(f"scope `{pt['scope']}`, {pt['wall_s']} s, {state}")
        for f in pt["failures"][:30]:
            lines.append(f"- {f['outcome'].upper()} `{f['nodeid']}`: {f['msg']}")
        for reason, n in pt["gpu_skip_reasons"].items():
            lines.append(f"- {n} GPU test(s) skipped: {reason}")
        lines.append("")
    lines += [
        "## Timings (best of the repeats after a warm-up call; device synchronised before each clock)",
        "",
        "| section | size | NumPy | CuPy | speed-up | first call NumPy / CuPy | max rel. err | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["sections"]:
        size = ", ".join(f"{k}={v}" for k, v in row["size"].items())
        speed = f"{row['speedup']:.1f}x" if "speedup" in row else "-"
        err = f"{row['check']['error']:.1e}" if "check" in row else "-"
        first = f"{_fmt_s(row, 'numpy', 'first_s')} / {_fmt_s(row, 'cupy', 'first_s')}"
        status = row["status"] + (f": {row['detail']}" if row.get("detail") else "")
        lines.append(
            f"| {row['name']} | {size} | {_fmt_s(row, 'numpy', 'best_s')} | {_fmt_s(row, 'cupy', 'best_s')}"
            f" | {speed} | {first} | {err} | {status[:160]} |"
        )
    lines += ["", f"Overall: {'PASS' if report['ok'] else 'FAIL'}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, GPU-only pytest selection")
    parser.add_argument("--out", default="bench_out/gpu_check", help="folder for gpu_check.json")
    parser.add_argument("--no-pytest", action="store_true", help="skip the pytest part")
    parser.add_argument(
        "--pytest-scope",
        choices=("gpu", "all"),
        default=None,
        help="'gpu': only cupy-parametrized and gpu-marked tests (default with --quick); 'all': the suite",
    )
    parser.add_argument("--pytest-timeout", type=float, default=None, help="seconds (default 150 / 360)")
    parser.add_argument("--pytest-arg", action="append", default=[], help="extra argument for pytest")
    parser.add_argument("--only", nargs="*", default=None, help="run only these timing sections")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls after the warm-up (default 3)")
    parser.add_argument("--section-timeout", type=float, default=None, help="seconds (default 60 / 120)")
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds for all timings (default 120 / 400)"
    )
    parser.add_argument("--list", action="store_true", help="list the timing sections and exit")
    args = parser.parse_args(argv)

    if args.list:
        for sec in SECTIONS:
            print(f"{sec.name:24s} {sec.what}")
        return 0
    quick = args.quick
    scope = args.pytest_scope or ("gpu" if quick else "all")
    pytest_timeout = args.pytest_timeout or (150.0 if quick else 360.0)
    section_timeout = args.section_timeout or (60.0 if quick else 120.0)
    budget = args.budget or (180.0 if quick else 480.0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    env = environment()
    gpu = bool(env["gpu"])
    print(
        f"gpu_check: GPU {'yes: ' + env.get('device', {}).get('name', '?') if gpu else 'no GPU'}", flush=True
    )
    report: dict[str, Any] = {"quick": quick, "environment": env, "sections": [], "ok": True}

    def save() -> None:  # after every step: what ran is kept if a later section hangs
        (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))

    if not args.no_pytest:
        print(f"gpu_check: pytest (scope {scope}, time-out {pytest_timeout:g} s) ...", flush=True)
        report["pytest"] = run_pytest(out, scope, pytest_timeout, args.pytest_arg)
        pt = report["pytest"]
        if pt["timed_out"] or pt["failures"] or pt["returncode"] not in (0, 5):
            report["ok"] = False
        print(f"gpu_check: pytest {pt['all']} in {pt['wall_s']} s", flush=True)
    save()

    t_budget = time.perf_counter()
    for sec in SECTIONS:
        if args.only is not None and sec.name not in args.only:
            continue
        left = budget - (time.perf_counter() - t_budget)
        if left <= 1:
            row = {"name": sec.name, "what": sec.what, "size": sec.quick if quick else sec.full}
            row["status"] = "skipped: time budget spent"
        else:
            print(f"gpu_check: {sec.name} ...", flush=True)
            row = run_section(
                sec, quick=quick, gpu=gpu, repeats=args.repeats, timeout=min(section_timeout, left)
            )
        if row["status"] in ("error", "MISMATCH"):  # a time-out is reported, not failed
            report["ok"] = False
        report["sections"].append(row)
        save()

    import shutil

    for folder in _TEMP_DIRS:
        shutil.rmtree(folder, ignore_errors=True)
    text = markdown(report)
    save()
    (out / "gpu_check.md").write_text(text + "\n")
    print(text)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
