"""SHO fits/s on one GPU at scale (issue 16): end to end, kernel only, launch shape, divergence, PTX.

One command for a GPU node (part of ``make gpu-check``; ~2 min on an H100/H200)::

    python benchmarks/bench_gpu_fit.py --out bench_out/gpu_fit            # 1M and 4M spectra
    python benchmarks/bench_gpu_fit.py --quick --out bench_out/gpu_fit    # small sizes (CPU: automatic)

Synthetic band-excitation spectra (87 bins, 3% complex noise, ``gpu_check.sho_spectra``) in complex64
(float32 kernels) and complex128 (float64 kernels), already on the device before any clock starts.
Sections (``section`` in every JSON row; one Markdown table each):

* ``end_to_end``: :func:`pycro_gpu.fitting.fit_sho` (scaling, guess kernel, LM kernel, result arrays).
* ``kernel``: the numba CUDA guess kernel and LM kernel launched directly on CuPy arrays (64 threads per
  block, as the library launches them); on the CPU the same kernels compiled by numba for the CPU.
* ``tpb_sweep``: the LM kernel at each ``--tpb`` threads per block (GPU only).
* ``iterations``: mean / p99 / max of ``niter`` and the divergence factor
  ``mean over warps of max(niter in warp) / mean(niter)`` (32 consecutive fits per warp): what a warp
  pays against the average fit.
* ``ptxas``: registers, stack frame (local memory), spills and ``ld.local``/``st.local`` counts of the
  guess and LM kernels compiled for sm_90 (numba-cuda ``compile_ptx`` + ``ptxas -v``, no GPU needed), and
  the *theoretical* occupancy on an H100/H200 at each threads-per-block value.
* ``accuracy``: median relative errors of A, w0, Q against the known truth, converged share.
* ``cpu_agreement``: the GPU fits of the first ``--subset`` spectra against the CPU path on the same
  spectra (max relative parameter difference over fits converged on both; GPU only).
* ``h2d``: host-to-device copies of an ``--h2d-mb`` buffer from pageable and from pinned memory (GPU only).
* ``dataset``: :func:`pycro_gpu.fitting.dataset.fit_sho_dataset` fits/s from an HDF5 file streamed in
  several batches (``--memory-mb`` smaller than the file), against the file's plain read time.

Timing: one warm-up call on a small batch first (its time, compilation or kernel-cache load included, is
reported as ``first_call_s``); then the median of ``--repeats`` calls, the device synchronised (the whole
device: numba launches on its own stream) before each clock read. Without a CUDA device the benchmark
runs the CPU path at small sizes, and every GPU-only row says ``skipped: no CUDA device``.

Writes ``gpu_fit.json`` and ``gpu_fit.md`` (device, exact command, machine) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: `benchmarks` and `tests` importable
    sys.path.append(str(REPO_ROOT))

from benchmarks.bench_fit import _accuracy  # noqa: E402
from benchmarks.gpu_check import _free_device_memory, environment, sho_spectra  # noqa: E402
from benchmarks.gpu_check import _sync as device_sync  # noqa: E402

NO_GPU = "skipped: no CUDA device"
WARP = 32
N_BINS = 87
FULL_SIZES = (1 << 20, 1 << 22)
QUICK_GPU_SIZES = (1 << 16, 1 << 18)
CPU_SIZES = (1024, 4096)
DTYPES = ("complex64", "complex128")
TPB = (32, 64, 128, 256)
LIBRARY_TPB = 64  # what kernels.lm._lm_fit_cuda and fitting.guess launch

#: Hopper (sm_90: H100/H200) limits used by :func:`theoretical_occupancy`.
SM90 = {"regs_per_sm": 65536, "max_threads_per_sm": 2048, "max_blocks_per_sm": 32, "reg_alloc_unit": 256}


# --------------------------------------------------------------------------------------------------
# Pure helpers (unit-tested)
# --------------------------------------------------------------------------------------------------


def divergence_factor(niter: np.ndarray, warp: int = WARP) -> float:
    """``mean over warps of max(niter in warp) / mean(niter)``: >= 1, 1 when every warp is uniform.

    The last warp, when partial, counts its fits only (threads past the end exit at once).
    """
    it = np.asarray(niter, dtype=np.float64).ravel()
    if it.size == 0 or it.mean() == 0:
        return 1.0
    n_warps = -(-it.size // warp)
    padded = np.full(n_warps * warp, -np.inf)
    padded[: it.size] = it
    return float(padded.reshape(n_warps, warp).max(axis=1).mean() / it.mean())


def iteration_stats(niter: np.ndarray) -> dict[str, float]:
    it = np.asarray(niter, dtype=np.float64).ravel()
    return {
        "niter_mean": float(it.mean()),
        "niter_p99": float(np.percentile(it, 99)),
        "niter_max": float(it.max()),
        "divergence_factor": divergence_factor(it),
    }


def theoretical_occupancy(registers: int, threads_per_block: int, limits: dict[str, int] = SM90) -> float:
    """Resident warps / maximum warps per SM from registers and block size alone (no shared memory).

    Registers are allocated per warp in units of ``reg_alloc_unit``; e.g. 72 registers at 64 threads per
    block: 2304 per warp, 28 warps fit in 65536, 14 blocks of 2 warps: 28 / 64 = 43.75%.
    """
    max_warps = limits["max_threads_per_sm"] // WARP
    warps_per_block = -(-threads_per_block // WARP)
    unit = limits["reg_alloc_unit"]
    regs_per_warp = -(-max(registers, 1) * WARP // unit) * unit
    blocks = min(
        limits["max_blocks_per_sm"],
        limits["max_threads_per_sm"] // (warps_per_block * WARP),
        (limits["regs_per_sm"] // regs_per_warp) // warps_per_block,
    )
    return blocks * warps_per_block / max_warps


def max_rel_param_diff(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Largest relative difference of A, w0, Q over the rows in ``mask`` (phi absolute, wrapped)."""
    a, b = np.asarray(a, dtype=np.float64)[mask], np.asarray(b, dtype=np.float64)[mask]
    if a.size == 0:
        return float("nan")
    rel = np.abs(a[:, :3] - b[:, :3]) / np.maximum(np.abs(b[:, :3]), np.finfo(np.float64).tiny)
    dphi = np.abs(np.angle(np.exp(1j * (a[:, 3] - b[:, 3]))))
    return float(max(rel.max(), dphi.max()))


# --------------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------------


class Bench:
    """The backend (NumPy or CuPy), timing, and the rows collected so far."""

    def __init__(self, gpu: bool, repeats: int):
        self.gpu = gpu
        self.repeats = repeats
        self.rows: list[dict[str, Any]] = []
        if gpu:
            import cupy

            self.lib = cupy
        else:
            self.lib = np

    def sync(self) -> None:
        if self.gpu:
            device_sync(self.lib)

    def time(self, call: Callable[[], Any]) -> tuple[float, Any]:
        """Median wall time of ``repeats`` calls (the device synchronised around each), last result."""
        times, out = [], None
        for _ in range(self.repeats):
            self.sync()
            t0 = time.perf_counter()
            out = call()
            self.sync()
            times.append(time.perf_counter() - t0)
        return statistics.median(times), out

    def first_call(self, call: Callable[[], Any]) -> float:
        self.sync()
        t0 = time.perf_counter()
        call()
        self.sync()
        return time.perf_counter() - t0

    def add(self, section: str, case: str, **fields: Any) -> dict[str, Any]:
        row = {"section": section, "case": case, "status": "ok", **fields}
        if "seconds" in fields and "n_fits" in fields:
            row["fits_per_s"] = fields["n_fits"] / max(fields["seconds"], 1e-12)
        self.rows.append(row)
        return row

    def skip(self, section: str, case: str, reason: str = NO_GPU, **fields: Any) -> None:
        self.rows.append({"section": section, "case": case, "status": reason, **fields})


def _kernel_inputs(spectra, freqs):
    """Scaled kernel inputs as ``fit_sho`` makes them: ``(x, y_view, p0, lo, hi, dtype)``."""
    from pycro_gpu.backend import get_namespace
    from pycro_gpu.fitting._kernel_io import prepare_sho
    from pycro_gpu.fitting.api import default_bounds
    from pycro_gpu.fitting.guess import _sho_guess_scaled

    xp = get_namespace("cupy" if not isinstance(spectra, np.ndarray) else "numpy")
    y_view, x_scaled, _, _, fdt = prepare_sho(spectra, freqs, xp)
    p0 = _sho_guess_scaled(y_view, x_scaled, xp)
    lo, hi = default_bounds("sho", 4, x_scaled)
    return x_scaled, y_view, p0, lo, hi, np.dtype(fdt)


def _cuda_lm_launch(bench: Bench, inputs, tpb: int, maxiter: int = 100):
    """A zero-argument launch of the CUDA LM kernel at ``tpb`` threads per block (outputs preallocated)."""
    from pycro_gpu.kernels.lm import _empty_outputs, cuda_lm_kernel

    from pycro_gpu.fitting.models import get_model

    cp = bench.lib
    x, y, p0, lo, hi, dt = inputs
    n = int(y.shape[0])
    kernel = cuda_lm_kernel(get_model("sho").kernel_model(), dt.name)
    args = [cp.ascontiguousarray(cp.asarray(a, dtype=dt)) for a in (x, y, p0, lo, hi)]
    outs = _empty_outputs(cp.empty, n, 4, dt)
    tol = dt.type(1e-5 if dt == np.float32 else 1e-7)
    blocks = max(1, -(-n // tpb))

    def launch():
        kernel[blocks, tpb](*args, maxiter, tol, tol, *outs)
        return outs

    return launch


def _cuda_guess_launch(bench: Bench, inputs, tpb: int = LIBRARY_TPB):
    from pycro_gpu.kernels.model_sho import cuda_sho_guess_kernel

    cp = bench.lib
    x, y, _, _, _, dt = inputs
    n = int(y.shape[0])
    kernel = cuda_sho_guess_kernel(dt.name)
    xd, out = cp.asarray(x, dtype=dt), cp.empty((n, 4), dtype=dt)
    blocks = max(1, -(-n // tpb))

    def launch():
        kernel[blocks, tpb](xd, y, out)
        return out

    return launch


def _cpu_kernel_calls(inputs):
    """The numba CPU guess and LM kernels on the same scaled inputs (what ``fit_sho`` runs on the host)."""
    from pycro_gpu.kernels.lm import lm_fit_batch
    from pycro_gpu.kernels.model_sho import sho_guess_batch

    from pycro_gpu.fitting.models import get_model

    x, y, p0, lo, hi, dt = inputs
    out = np.empty((y.shape[0], 4), dtype=dt)
    xs = np.ascontiguousarray(x, dtype=dt)
    model = get_model("sho").kernel_model()
    return (
        lambda: sho_guess_batch(xs, y, out),
        lambda: lm_fit_batch(model, xs, y, p0, lo, hi, target="cpu"),
    )


def bench_sizes(bench: Bench, sizes, dtypes, tpbs, subset: int) -> None:
    """end_to_end, kernel, tpb_sweep, iterations, accuracy and cpu_agreement rows."""
    from pycro_gpu.backend import to_host
    from pycro_gpu.fitting import fit_sho

    rng = np.random.default_rng(20261130)
    n_max = max(sizes)
    t0 = time.perf_counter()
    host, freqs, truth = sho_spectra(rng, n_max, N_BINS)
    print(f"generated {n_max:,} spectra in {time.perf_counter() - t0:.1f} s", flush=True)
    backend = "cupy (CUDA kernels)" if bench.gpu else "numpy (numba CPU kernels)"
    for dtype in dtypes:
        # Warm-up on 256 spectra, kernels first: compilation (or the kernel cache's load) lands here.
        warm = bench.lib.asarray(host[:256].astype(dtype))
        box: list = []
        first_guess = bench.first_call(lambda w=warm, b=box: b.append(_kernel_inputs(w, freqs)))
        winputs = box[0]  # the guess kernel ran (compiled or loaded from the kernel cache) above
        if bench.gpu:
            lm_warm = _cuda_lm_launch(bench, winputs, LIBRARY_TPB)
            guess_warm = _cuda_guess_launch(bench, winputs)
        else:
            guess_warm, lm_warm = _cpu_kernel_calls(winputs)
        first_lm = bench.first_call(lm_warm)
        bench.first_call(guess_warm)
        first = bench.first_call(lambda w=warm: fit_sho(w, freqs))
        for n in sorted(sizes):
            spectra = bench.lib.asarray(host[:n].astype(dtype))  # on the device before any clock starts
            sec, res = bench.time(lambda s=spectra: fit_sho(s, freqs))
            common = {"dtype": dtype, "n_fits": n, "backend": backend}
            bench.add("end_to_end", "fit_sho (guess + LM)", seconds=sec, first_call_s=first, **common)
            inputs = _kernel_inputs(spectra, freqs)
            if bench.gpu:
                guess_call = _cuda_guess_launch(bench, inputs)
                lm_call = _cuda_lm_launch(bench, inputs, LIBRARY_TPB)
            else:
                guess_call, lm_call = _cpu_kernel_calls(inputs)
            sec_g, _ = bench.time(guess_call)
            bench.add(
                "kernel", "sho_guess", seconds=sec_g, first_call_s=first_guess, tpb=LIBRARY_TPB, **common
            )
            sec_lm, outs = bench.time(lm_call)
            bench.add("kernel", "lm/sho", seconds=sec_lm, first_call_s=first_lm, tpb=LIBRARY_TPB, **common)
            for tpb in tpbs:
                if not bench.gpu:
                    bench.skip("tpb_sweep", "lm/sho", tpb=tpb, **common)
                    continue
                sec_t, _ = bench.time(_cuda_lm_launch(bench, inputs, tpb))
                bench.add("tpb_sweep", "lm/sho", seconds=sec_t, tpb=tpb, **common)
            if n != n_max:
                del spectra, inputs, res, outs
                _free_device_memory()
                continue
            bench.add("iterations", "lm/sho", **common, **iteration_stats(to_host(outs[3])))
            params = to_host(res.params)
            conv = to_host(res.converged)
            acc = _accuracy(params, truth[:n])
            bench.add("accuracy", "fit_sho vs truth", converged=float(np.mean(conv)), **common, **acc)
            if bench.gpu:
                k = min(subset, n)
                cpu = fit_sho(host[:k].astype(dtype), freqs)
                both = conv[:k] & np.asarray(cpu.converged)
                diff = max_rel_param_diff(params[:k], np.asarray(cpu.params), both)
                both_share = float(both.mean())
                bench.add(
                    "cpu_agreement",
                    f"first {k} spectra",
                    max_rel_diff=diff,
                    both_converged=both_share,
                    **common,
                )
            else:
                bench.skip("cpu_agreement", f"first {min(subset, n)} spectra", **common)
            del spectra, inputs, res, outs
            _free_device_memory()


def bench_ptx(bench: Bench, dtypes, tpbs) -> None:
    """Registers, stack, spills and theoretical occupancy of the guess and LM kernels on sm_90."""
    from pycro_gpu.kernels.lm import cuda_lm_kernel, lm_kernel_signature
    from pycro_gpu.kernels.model_sho import cuda_sho_guess_kernel

    from pycro_gpu.fitting.models import get_model
    from tests.ptx import assemble, compile_ptx

    model = get_model("sho").kernel_model()
    for dtype in dtypes:
        dt = "float32" if dtype == "complex64" else "float64"
        kernels = {
            "sho_guess": (cuda_sho_guess_kernel(dt), f"void({dt}[::1], {dt}[:, ::1], {dt}[:, ::1])"),
            "lm/sho": (cuda_lm_kernel(model, dt), lm_kernel_signature(model, dt)),
        }
        for name, (kernel, sig) in kernels.items():
            try:
                t0 = time.perf_counter()
                ptx = compile_ptx(kernel, sig)
                rep = assemble(ptx)
            except BaseException as exc:  # pytest.skip (no ptxas) is a BaseException
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                bench.skip("ptxas", name, f"skipped: {type(exc).__name__}: {exc}".splitlines()[0], dtype=dt)
                continue
            occ = {f"occupancy_tpb{t}": theoretical_occupancy(rep["registers"], t) for t in tpbs}
            figures = {k: v for k, v in rep.items() if k != "log"}
            bench.add(
                "ptxas",
                name,
                dtype=dt,
                **figures,
                ld_local=ptx.count("ld.local"),
                st_local=ptx.count("st.local"),
                compile_s=time.perf_counter() - t0,
                **occ,
            )


def bench_h2d(bench: Bench, megabytes: int) -> None:
    """Host-to-device copy bandwidth from pageable and from pinned host memory."""
    if not bench.gpu:
        for case in ("pageable", "pinned"):
            bench.skip("h2d", case, mb=megabytes)
        return
    cp = bench.lib
    nbytes = megabytes * 2**20
    pageable = np.ones(nbytes, dtype=np.uint8)
    mem = cp.cuda.alloc_pinned_memory(nbytes)
    pinned = np.frombuffer(mem, dtype=np.uint8, count=nbytes)
    pinned[:] = 1
    dev = cp.empty(nbytes, dtype=np.uint8)
    for case, src in (("pageable", pageable), ("pinned", pinned)):
        dev.set(src)  # warm-up
        sec, _ = bench.time(lambda s=src, d=dev: d.set(s))
        bench.add("h2d", case, mb=megabytes, seconds=sec, gb_per_s=nbytes / sec / 1e9)
    del dev, mem
    _free_device_memory()


def bench_dataset(bench: Bench, side: int, memory_mb: float) -> None:
    """fit_sho_dataset from an HDF5 file larger than the batch memory, against the file's read time."""
    import h5py

    from pycro_gpu.fitting.dataset import fit_sho_dataset
    from pycro_gpu.io.usid import Dimension, write_main

    n = side * side
    spectra, freqs, _ = sho_spectra(np.random.default_rng(7), n, N_BINS)
    backend = "cupy" if bench.gpu else "numpy"
    with tempfile.TemporaryDirectory(prefix="bench_gpu_fit_") as tmp:
        path = Path(tmp) / "be.h5"
        raw = "/Measurement_000/Channel_000/Raw_Data"
        with h5py.File(path, "w") as f:
            grp = f.create_group(raw.rsplit("/", 1)[0])
            xy = [Dimension("X", "m", side), Dimension("Y", "m", side)]
            spec = Dimension("Frequency", "Hz", freqs)
            write_main(grp, "Raw_Data", spectra.astype(np.complex64), xy, spec, "Response", "V")
        file_mb = path.stat().st_size / 2**20

        def run():
            kw = {"backend": backend, "memory_mb": memory_mb, "override": True, "progress": False}
            return fit_sho_dataset(path, raw, **kw)

        first = bench.first_call(run)
        sec, res = bench.time(run)

        def read():
            with h5py.File(path, "r") as f:
                return f[raw][()]

        read_s, _ = bench.time(read)
    bench.add(
        "dataset",
        "fit_sho_dataset (HDF5 -> fit -> HDF5)",
        dtype="complex64",
        n_fits=n,
        backend=backend,
        seconds=sec,
        first_call_s=first,
        file_mb=file_mb,
        memory_mb=memory_mb,
        batch_rows=res.batch_rows,
        n_batches=-(-n // res.batch_rows),
        read_s=read_s,
        x_read_time=sec / read_s,
    )


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------

#: (section, title, columns) of the Markdown tables; a column is (header, key, format).
TABLES = [
    (
        "end_to_end",
        "fit_sho end to end (data on the device)",
        [
            ("fits/s", "fits_per_s", ",.0f"),
            ("median s", "seconds", ".4f"),
            ("first call s", "first_call_s", ".2f"),
        ],
    ),
    (
        "kernel",
        "kernel only",
        [
            ("tpb", "tpb", "d"),
            ("fits/s", "fits_per_s", ",.0f"),
            ("median s", "seconds", ".4f"),
            ("first call s", "first_call_s", ".2f"),
        ],
    ),
    (
        "tpb_sweep",
        "LM kernel: threads per block",
        [("tpb", "tpb", "d"), ("fits/s", "fits_per_s", ",.0f"), ("median s", "seconds", ".4f")],
    ),
    (
        "iterations",
        "LM iterations (largest size)",
        [
            ("mean", "niter_mean", ".2f"),
            ("p99", "niter_p99", ".0f"),
            ("max", "niter_max", ".0f"),
            ("divergence", "divergence_factor", ".3f"),
        ],
    ),
    (
        "ptxas",
        "sm_90 (ptxas -v; occupancy theoretical, H100/H200, registers only)",
        [
            ("registers", "registers", "d"),
            ("stack B", "stack_bytes", "d"),
            ("spill st B", "spill_store_bytes", "d"),
            ("spill ld B", "spill_load_bytes", "d"),
            ("ld.local", "ld_local", "d"),
            ("st.local", "st_local", "d"),
        ],
    ),
    (
        "accuracy",
        "accuracy vs truth (largest size)",
        [
            ("converged", "converged", ".2%"),
            ("A err", "A_median_rel_err", ".2e"),
            ("w0 err", "w0_median_rel_err", ".2e"),
            ("Q err", "Q_median_rel_err", ".2e"),
        ],
    ),
    (
        "cpu_agreement",
        "GPU vs CPU path",
        [("both converged", "both_converged", ".2%"), ("max rel diff", "max_rel_diff", ".2e")],
    ),
    ("h2d", "host to device copy", [("MiB", "mb", "d"), ("GB/s", "gb_per_s", ".2f")]),
    (
        "dataset",
        "fit_sho_dataset from HDF5",
        [
            ("fits/s", "fits_per_s", ",.0f"),
            ("s", "seconds", ".2f"),
            ("file MiB", "file_mb", ".1f"),
            ("memory_mb", "memory_mb", "g"),
            ("batches", "n_batches", "d"),
            ("read s", "read_s", ".3f"),
            ("x read", "x_read_time", ".1f"),
        ],
    ),
]


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    try:
        return format(value, fmt)
    except (TypeError, ValueError):
        return str(value)


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [
        f"# GPU SHO fit benchmark ({'quick' if report['quick'] else 'full'} sizes)",
        "",
        f"- device: {report['device']}",
        f"- backend: {report['backend']}",
        f"- command: `{report['command']}`",
        f"- machine: {report['machine']}, {env['cpu_count']} CPUs, Python {env['python']}",
        "",
    ]
    for section, title, cols in TABLES:
        rows = [r for r in report["rows"] if r["section"] == section]
        if not rows:
            continue
        if section == "ptxas":
            tpbs = sorted(int(k[13:]) for k in rows[0] if k.startswith("occupancy_tpb"))
            cols = [*cols, *[(f"occ @{t}", f"occupancy_tpb{t}", ".0%") for t in tpbs]]
        lines += [f"## {title}", ""]
        lines.append("| case | dtype | n | " + " | ".join(h for h, _, _ in cols) + " | status |")
        lines.append("|---|---|---:|" + "---:|" * len(cols) + "---|")
        for r in rows:
            cells = [_cell(r, k, f) for _, k, f in cols]
            first = [r["case"], r.get("dtype", "-"), _cell(r, "n_fits", ",d")]
            lines.append("| " + " | ".join([*first, *cells, r["status"]]) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from pycro_gpu.backend import cupy_available

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (automatic without a CUDA device)")
    ap.add_argument("--sizes", type=int, nargs="+", help="numbers of spectra (default 1M 4M; quick: smaller)")
    ap.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES)
    ap.add_argument("--tpb", type=int, nargs="+", default=list(TPB), help="threads per block to sweep")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (median)")
    ap.add_argument("--subset", type=int, default=4096, help="spectra compared with the CPU path")
    ap.add_argument("--h2d-mb", type=int, help="host-to-device buffer, MiB (default 256; quick 32)")
    ap.add_argument("--dataset-side", type=int, help="HDF5 positions per side (default 512; quick 64)")
    ap.add_argument("--memory-mb", type=float, help="fit_sho_dataset batch memory (default file / 2)")
    ap.add_argument("--no-ptx", action="store_true", help="skip the PTX/ptxas rows")
    ap.add_argument("--out", default="bench_out/gpu_fit", help="folder for gpu_fit.json and gpu_fit.md")
    args = ap.parse_args(argv)

    gpu = cupy_available()
    quick = args.quick or not gpu
    sizes = args.sizes or (FULL_SIZES if not quick else QUICK_GPU_SIZES if gpu else CPU_SIZES)
    side = args.dataset_side or (512 if not quick else 64)
    # complex64 file: side^2 * 87 * 8 bytes; a budget of half the file streams it in many batches
    memory_mb = args.memory_mb or round(max(0.25, side * side * N_BINS * 8 / 2**20 / 2), 2)
    env = environment()
    device = env.get("device", {}).get("name") if gpu else None
    command = shlex.join([sys.executable, *sys.argv] if argv is None else ["python", __file__, *argv])
    report: dict[str, Any] = {
        "quick": quick,
        "device": device or f"none ({env.get('gpu_reason') or 'no CUDA device'})",
        "backend": "cupy: numba CUDA kernels on CuPy arrays" if gpu else "numpy: numba CPU kernels",
        "command": command,
        "machine": f"{platform.node()} ({platform.platform()}, {platform.processor() or platform.machine()})",
        "environment": env,
        "sizes": list(sizes),
        "rows": [],
    }
    bench = Bench(gpu, args.repeats)
    report["rows"] = bench.rows
    t0 = time.perf_counter()
    bench_sizes(bench, sizes, args.dtypes, args.tpb, args.subset)
    if not args.no_ptx:
        bench_ptx(bench, args.dtypes, args.tpb)
    bench_h2d(bench, args.h2d_mb or (32 if quick else 256))
    bench_dataset(bench, side, memory_mb)
    report["total_s"] = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_fit.json").write_text(json.dumps(report, indent=2, default=str))
    text = markdown(report)
    (out / "gpu_fit.md").write_text(text)
    print(text)
    print(f"total {report['total_s']:.1f} s; wrote {out / 'gpu_fit.json'} and {out / 'gpu_fit.md'}")
    return report


if __name__ == "__main__":
    main()
