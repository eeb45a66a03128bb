"""Batch SHO fitting: pycro_gpu's Levenberg-Marquardt kernels vs SciPy least_squares per pixel.

Same synthetic band-excitation data for everybody (``pycro_gpu.datasets.band_excitation``: 64 x 64
positions x 87 bins, 3% complex noise, complex64 as instruments write it), the same start points (our
analytic guess), the same number of cores (numba threads = SciPy processes in a ``multiprocessing.Pool``):

* pycro_gpu ``fit_sho`` on complex64 (float32 kernel) and complex128 (float64 kernel); the time includes
  the guess, the scaling and the result arrays;
* SciPy ``least_squares(method='lm')`` with the analytic Jacobian, and ``method='trf'`` with a 2-point
  Jacobian (as the pycroscopy tools do), both ``x_scale='jac'``.

Reports fits/s, the ratio to each SciPy method, accuracy against the known truth, the converged
fraction, and (``--ptx``) registers and spills of every model's CUDA kernel assembled for sm_90.

Run: ``.venv/bin/python -m benchmarks.bench_fit [--side 64] [--repeat 5] [--backend numpy|cupy]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import time
from pathlib import Path

import numpy as np

from pycro_gpu.backend import get_namespace, synchronize, to_host


def _residual(p, w, y):
    a, w0, q, ph = p
    h = a * np.exp(1j * ph) * w0**2 / (w**2 - 1j * w * w0 / q - w0**2)
    d = h - y
    return np.concatenate([d.real, d.imag])


def _jacobian(p, w, y):
    a, w0, q, ph = p
    den = w**2 - 1j * w * w0 / q - w0**2
    h = a * np.exp(1j * ph) * w0**2 / den
    jac = np.stack(
        [h / a, h * (2 / w0 - (-2 * w0 - 1j * w / q) / den), -h * (1j * w * w0 / q**2) / den, 1j * h], axis=1
    )
    return np.concatenate([jac.real, jac.imag])


def _scipy_chunk(args):
    from scipy.optimize import least_squares

    method, w, spectra, p0 = args
    cpu0 = time.process_time()
    out = np.empty((spectra.shape[0], 4))
    ok = np.empty(spectra.shape[0], dtype=bool)
    nfev = 0
    for i in range(spectra.shape[0]):
        jac = _jacobian if method == "lm" else "2-point"
        r = least_squares(_residual, p0[i], jac=jac, method=method, x_scale="jac", args=(w, spectra[i]))
        out[i], ok[i] = r.x, r.success
        nfev += r.nfev
    return out, ok, nfev, time.process_time() - cpu0


def _scipy_fit(pool, n_proc, method, w, spectra, p0):
    chunks = np.array_split(np.arange(spectra.shape[0]), n_proc)
    t0 = time.perf_counter()
    parts = pool.map(_scipy_chunk, [(method, w, spectra[c], p0[c]) for c in chunks])
    dt = time.perf_counter() - t0
    params = np.concatenate([p[0] for p in parts])
    ok = np.concatenate([p[1] for p in parts])
    cpu = sum(p[3] for p in parts)
    return dt, params, ok, sum(p[2] for p in parts) / spectra.shape[0], cpu


def _accuracy(params, truth):
    p = np.asarray(params, dtype=np.float64)
    rel = np.abs(p[:, :3] - truth[:, :3]) / np.abs(truth[:, :3])
    dphi = np.abs(np.angle(np.exp(1j * (p[:, 3] - truth[:, 3]))))
    return {
        "A_median_rel_err": float(np.median(rel[:, 0])),
        "w0_median_rel_err": float(np.median(rel[:, 1])),
        "Q_median_rel_err": float(np.median(rel[:, 2])),
        "phi_median_abs_err": float(np.median(dphi)),
        "Q_positive": float(np.mean(p[:, 2] > 0)),
    }


def _time_ours(fit_sho, spectra, freqs, xp, repeat):
    times, cpu = [], []
    res = None
    for _ in range(repeat):
        synchronize(xp)
        c0, t0 = time.process_time(), time.perf_counter()
        res = fit_sho(spectra, freqs)
        synchronize(xp)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return times, cpu, res


def ptx_report():
    """Registers and spills of every model's CUDA LM kernel (and the SHO guess kernel) on sm_90."""
    from pycro_gpu.kernels.lm import cuda_lm_kernel, lm_kernel_signature
    from pycro_gpu.kernels.model_loop import LOOP
    from pycro_gpu.kernels.model_peaks import peaks_model
    from pycro_gpu.kernels.model_relaxation import DOUBLE_EXPONENTIAL, EXPONENTIAL, STRETCHED_EXPONENTIAL
    from pycro_gpu.kernels.model_sho import SHO, cuda_sho_guess_kernel

    from tests.ptx import assemble, compile_ptx

    models = [
        SHO,
        LOOP,
        peaks_model("gaussian", 2),
        peaks_model("lorentzian", 1),
        peaks_model("pseudo_voigt", 1),
        EXPONENTIAL,
        DOUBLE_EXPONENTIAL,
        STRETCHED_EXPONENTIAL,
    ]
    rows = []
    for model in models:
        for dt in ("float32", "float64"):
            rep = assemble(compile_ptx(cuda_lm_kernel(model, dt), lm_kernel_signature(model, dt)))
            figures = {k: v for k, v in rep.items() if k != "log"}
            rows.append({"kernel": f"lm/{model.name}", "dtype": dt, **figures})
    for dt in ("float32", "float64"):
        sig = f"void({dt}[::1], {dt}[:, ::1], {dt}[:, ::1])"
        rep = assemble(compile_ptx(cuda_sho_guess_kernel(dt), sig))
        rows.append({"kernel": "sho_guess", "dtype": dt, **{k: v for k, v in rep.items() if k != "log"}})
    return rows


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=64, help="positions per side (default 64: 4096 fits)")
    ap.add_argument("--bins", type=int, default=87, help="frequency bins (default 87)")
    ap.add_argument("--noise", type=float, default=0.03, help="relative complex noise (default 0.03)")
    ap.add_argument("--repeat", type=int, default=5, help="timed repeats of our fits (default 5)")
    ap.add_argument("--scipy-repeat", type=int, default=1, help="timed repeats of the SciPy fits")
    ap.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    ap.add_argument("--procs", type=int, default=None, help="cores for both sides (default: numba threads)")
    ap.add_argument("--ptx", action="store_true", help="also assemble every CUDA kernel for sm_90")
    ap.add_argument("--out", default="bench_out", help="folder of the JSON output")
    args = ap.parse_args(argv)

    import numba

    from pycro_gpu.datasets import band_excitation
    from pycro_gpu.fitting import fit_sho, sho_guess

    n_proc = args.procs or numba.get_num_threads()
    numba.set_num_threads(n_proc)
    xp = get_namespace(args.backend)
    ds = band_excitation(shape=(args.side, args.side), n_freq=args.bins, noise=args.noise, seed=0)
    t = ds.truth
    spectra64 = np.asarray(ds.data, dtype=np.complex64).reshape(-1, args.bins)
    spectra128 = spectra64.astype(np.complex128)
    freqs = np.asarray(t["frequency"], dtype=np.float64)
    truth = np.stack(
        [t[k].ravel() for k in ("amplitude", "resonance_frequency", "quality_factor", "phase")], axis=1
    )
    n = spectra64.shape[0]
    results = {
        "n_fits": n,
        "bins": args.bins,
        "noise": args.noise,
        "cores": n_proc,
        "backend": args.backend,
        "cpu_count": os.cpu_count(),
        "rows": [],
    }
    rows = results["rows"]

    # ours: compile first (not timed), then timed repeats
    ours = (("pycro_gpu float32 (complex64)", spectra64), ("pycro_gpu float64 (complex128)", spectra128))
    for label, data in ours:
        s, f = xp.asarray(data), xp.asarray(freqs)
        fit_sho(s[:8], f)
        times, cpu, res = _time_ours(fit_sho, s, f, xp, args.repeat)
        best = statistics.median(times)
        conv = np.asarray(to_host(res.converged))
        rows.append(
            {
                "method": label,
                "seconds_wall": best,
                "fits_per_s": n / best,
                "cpu_seconds": statistics.median(cpu),
                "fits_per_cpu_s_x_cores": n / (statistics.median(cpu) / n_proc),
                "converged": float(conv.mean()),
                "mean_iterations": float(np.mean(to_host(res.niter))),
                **_accuracy(to_host(res.params), truth),
            }
        )

    # SciPy from the same start points (our float64 guess), same number of processes
    p0 = np.asarray(to_host(sho_guess(spectra128, freqs)))
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(n_proc) as pool:
        pool.map(_scipy_chunk, [("lm", freqs, spectra128[:2], p0[:2])] * n_proc)  # warm the workers
        for method, label in (("lm", "scipy lm, analytic Jacobian"), ("trf", "scipy trf, 2-point Jacobian")):
            runs = [_scipy_fit(pool, n_proc, method, freqs, spectra128, p0) for _ in range(args.scipy_repeat)]
            best = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[4] for r in runs)
            _, params, ok, nfev, _ = runs[0]
            rows.append(
                {
                    "method": label,
                    "seconds_wall": best,
                    "fits_per_s": n / best,
                    "cpu_seconds": cpu,
                    "fits_per_cpu_s_x_cores": n / (cpu / n_proc),
                    "converged": float(ok.mean()),
                    "mean_iterations": float(nfev),
                    **_accuracy(params, truth),
                }
            )
    rate = {r["method"]: r["fits_per_s"] for r in rows}
    crate = {r["method"]: r["fits_per_cpu_s_x_cores"] for r in rows}
    lm, trf = "scipy lm, analytic Jacobian", "scipy trf, 2-point Jacobian"
    for r in rows:
        r["x_vs_scipy_lm"] = r["fits_per_s"] / rate[lm]
        r["x_vs_scipy_trf"] = r["fits_per_s"] / rate[trf]
        r["x_vs_scipy_lm_cpu"] = r["fits_per_cpu_s_x_cores"] / crate[lm]
        r["x_vs_scipy_trf_cpu"] = r["fits_per_cpu_s_x_cores"] / crate[trf]
    results["load_average"] = os.getloadavg()

    print(
        f"\n### SHO fits: {n} spectra x {args.bins} bins, {args.noise:.0%} noise, {n_proc} cores "
        f"({args.backend}); median of {args.repeat} (ours) / {args.scipy_repeat} (SciPy); "
        f"load average {results['load_average'][0]:.2f}\n"
    )
    print(
        "| method | fits/s (wall) | x lm | x trf | fits/s (CPU time / cores) | x lm | x trf | converged "
        "| iter (nfev) | A err | w0 err | Q err | phi err (rad) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['method']} | {r['fits_per_s']:,.0f} | {r['x_vs_scipy_lm']:.1f} "
            f"| {r['x_vs_scipy_trf']:.1f} | {r['fits_per_cpu_s_x_cores']:,.0f} "
            f"| {r['x_vs_scipy_lm_cpu']:.1f} | {r['x_vs_scipy_trf_cpu']:.1f} "
            f"| {r['converged']:.2%} | {r['mean_iterations']:.2f} | {r['A_median_rel_err']:.2%} "
            f"| {r['w0_median_rel_err']:.4%} | {r['Q_median_rel_err']:.2%} | {r['phi_median_abs_err']:.4f} |"
        )
    print(
        "\n(errors: medians against the known truth; A, w0, Q relative, phi absolute. CPU-time rates "
        "divide the process CPU seconds of all threads / workers by the cores: robust to other load.)"
    )
    if args.ptx:
        results["ptx"] = ptx_report()
        print("\n| CUDA kernel (sm_90) | dtype | registers | stack bytes | spill stores | spill loads |")
        print("|---|---|---:|---:|---:|---:|")
        for r in results["ptx"]:
            print(
                f"| {r['kernel']} | {r['dtype']} | {r['registers']} | {r['stack_bytes']} "
                f"| {r['spill_store_bytes']} | {r['spill_load_bytes']} |"
            )
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    (out / "fit.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
