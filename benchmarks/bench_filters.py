"""Benchmark of the G-mode FFT filter: throughput vs bare FFTs and vs a straightforward NumPy filter.

Run::

    python -m benchmarks.bench_filters                      # NumPy, 256 x 16384 float64 (32 MiB)
    python -m benchmarks.bench_filters --backend cupy --rows 4096 --n 65536

Side by side in one run, on the same batch of signals (``rows`` signals of ``n`` samples):

* ``rfft+irfft (ours)``: the bare transform pair of the FFT backend :func:`fft_filter` uses (scipy.fft
  with worker threads for NumPy, cuFFT for CuPy): the floor a frequency filter cannot beat;
* ``rfft+irfft (numpy.fft)``: the same pair with ``numpy.fft`` (why scipy.fft is used on the CPU);
* ``fft_filter``: low pass x harmonic pass composite mask, fused kernel, without / with the noise
  floor threshold (``noise_tolerance``), and the array-API path (no kernel) with the threshold;
* ``numpy reference``: the straightforward implementation of the same filter as pycroscopy writes it
  (two-sided ``np.fft.fft`` + ``fftshift``, mask multiply, per-row noise-floor loop, boolean-mask
  threshold, ``ifft``), without / with the threshold.

Throughput is input bytes / time (GB/s). The Markdown table goes to stdout, JSON to
``bench_out/bench_filters.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from pycro_gpu.backend import get_namespace, synchronize, to_host
from pycro_gpu.filters import HarmonicPassFilter, LowPassFilter, fft_filter

FS = 4e6


def _signals(rng, rows, n):
    t = np.arange(n) / FS
    f1 = round(100e3 * n / FS) * FS / n
    x = np.cos(2 * np.pi * f1 * t) + 0.3 * np.cos(2 * np.pi * 2 * f1 * t + 0.5)
    return x[None, :] + 0.2 * rng.standard_normal((rows, n)), f1


def _filters(n, f1):
    return [LowPassFilter(n, FS, 1.2e6, 0.1), HarmonicPassFilter(n, FS, f1, 20e3, 10)]


def _numpy_noise_floor(fft_data, tolerance):
    """pycroscopy's get_noise_floor (per-row Python loop; relative stopping rule as ours)."""
    out = []
    for amp in np.abs(fft_data):
        n = amp.size
        prev = np.sqrt(np.sum(amp**2) / (2 * n))
        thr = np.sqrt(2 * prev**2 * -np.log(tolerance))
        for _ in range(1, 50):
            amp[amp > thr] = 0
            new = np.sqrt(np.sum(amp**2) / (2 * n))
            residual = abs(new - prev)
            thr = np.sqrt(2 * new**2 * -np.log(tolerance))
            prev = new
            if not residual > 1e-2 * new:
                break
        out.append(thr)
    return np.array(out)


def numpy_reference(x, full_mask_shifted, tolerance=None):
    """Straightforward NumPy G-mode filter (the way pycroscopy's SignalFilter computes it)."""
    data = np.fft.fftshift(np.fft.fft(x, axis=1), axes=1)
    floors = _numpy_noise_floor(data, tolerance) if tolerance is not None else None
    data *= full_mask_shifted
    if floors is not None:
        data[np.abs(data) < floors[:, None]] = 0
    return np.real(np.fft.ifft(np.fft.ifftshift(data, axes=1), axis=1))


def _time(fn, xp, repeats):
    fn()  # warm-up: compiles kernels, plans FFTs
    synchronize(xp)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        synchronize(xp)
        best = min(best, time.perf_counter() - t0)
    return best


def run(backend: str, rows: int, n: int, repeats: int, tolerance: float = 1e-3) -> dict:
    xp = get_namespace(backend)
    rng = np.random.default_rng(0)
    host, f1 = _signals(rng, rows, n)
    x = xp.asarray(host)
    filters = _filters(n, f1)
    gb = host.nbytes / 1e9

    import scipy.fft

    cases: list[tuple[str, object]] = []
    if backend == "numpy":
        cases.append(
            (
                "rfft+irfft (ours: scipy.fft, workers=-1)",
                lambda: scipy.fft.irfft(scipy.fft.rfft(x, axis=-1, workers=-1), n=n, axis=-1, workers=-1),
            )
        )
        cases.append(("rfft+irfft (numpy.fft)", lambda: np.fft.irfft(np.fft.rfft(x, axis=-1), n=n, axis=-1)))
    else:
        cases.append(
            ("rfft+irfft (ours: cuFFT)", lambda: xp.fft.irfft(xp.fft.rfft(x, axis=-1), n=n, axis=-1))
        )
    cases += [
        ("fft_filter: mask (fused kernel)", lambda: fft_filter(x, filters)),
        (
            "fft_filter: mask + noise floor (fused kernel)",
            lambda: fft_filter(x, filters, noise_tolerance=tolerance),
        ),
        (
            "fft_filter: mask + noise floor (array API path)",
            lambda: fft_filter(x, filters, noise_tolerance=tolerance, method="array_api"),
        ),
    ]
    half = filters[0].host_mask() * filters[1].host_mask()
    full = np.concatenate([half, half[1 : n - n // 2][::-1]])
    full_shifted = np.fft.fftshift(full)
    cases += [
        ("numpy reference: mask", lambda: numpy_reference(host, full_shifted)),
        ("numpy reference: mask + noise floor", lambda: numpy_reference(host, full_shifted, tolerance)),
    ]

    # correctness of what is timed: our paths against the NumPy reference
    ref_mask = numpy_reference(host, full_shifted)
    ref_thr = numpy_reference(host, full_shifted, tolerance)
    err_mask = float(np.max(np.abs(to_host(fft_filter(x, filters)) - ref_mask)))
    err_thr = float(np.max(np.abs(to_host(fft_filter(x, filters, noise_tolerance=tolerance)) - ref_thr)))

    results = []
    for name, fn in cases:
        ref_xp = np if name.startswith("numpy reference") else xp
        t = _time(fn, ref_xp, repeats)
        results.append({"case": name, "seconds": t, "GB_per_s": gb / t})
    base = results[0]["seconds"]
    numpy_ref = {r["case"]: r["seconds"] for r in results if r["case"].startswith("numpy reference")}
    for r in results:
        r["vs_bare_fft"] = r["seconds"] / base
        if "noise floor" in r["case"]:
            r["speedup_vs_numpy_reference"] = numpy_ref["numpy reference: mask + noise floor"] / r["seconds"]
        else:
            r["speedup_vs_numpy_reference"] = numpy_ref["numpy reference: mask"] / r["seconds"]
    return {
        "backend": backend,
        "rows": rows,
        "n": n,
        "dtype": "float64",
        "input_GB": gb,
        "repeats": repeats,
        "max_abs_error_vs_numpy_reference": {"mask": err_mask, "mask+noise_floor": err_thr},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "results": results,
    }


def run_images(backend: str, n_images: int, size: int, repeats: int) -> dict:
    """2-D Butterworth low pass of a stack of images: ours vs bare FFTs vs scikit-image (cuCIM on GPU)."""
    from pycro_gpu.filters import butterworth_mask, filter_image
    from pycro_gpu.filters.image import _function

    xp = get_namespace(backend)
    rng = np.random.default_rng(1)
    host = rng.standard_normal((n_images, size, size))
    x = xp.asarray(host)
    gb = host.nbytes / 1e9
    axes = (-2, -1)
    import scipy.fft

    if backend == "numpy":

        def bare():
            return scipy.fft.irfftn(
                scipy.fft.rfftn(x, axes=axes, workers=-1), s=(size, size), axes=axes, workers=-1
            )
    else:

        def bare():
            return xp.fft.irfftn(xp.fft.rfftn(x, axes=axes), s=(size, size), axes=axes)

    def ours():
        return filter_image(x, butterworth_mask(x.shape, 0.1, order=2, xp=xp))

    try:
        peer_fn = _function("butterworth", gpu=backend == "cupy")
        peer_name = "cucim" if backend == "cupy" else "skimage"

        def peer():
            return [peer_fn(x[i], 0.1, high_pass=False, order=2.0) for i in range(n_images)]
    except ImportError:
        peer = None
    cases = [("rfftn+irfftn (bare)", bare), ("filter_image(butterworth_mask)", ours)]
    if peer is not None:
        cases.append((f"{peer_name}.filters.butterworth (per image)", peer))
    err = None
    if peer is not None:
        err = float(np.max(np.abs(to_host(ours()) - np.stack([to_host(a) for a in peer()]))))
    results = []
    for name, fn in cases:
        t = _time(fn, xp, repeats)
        results.append({"case": name, "seconds": t, "GB_per_s": gb / t})
    for r in results:
        r["vs_bare_fft"] = r["seconds"] / results[0]["seconds"]
        r["speedup_vs_peer"] = results[-1]["seconds"] / r["seconds"] if peer is not None else None
    return {
        "backend": backend,
        "images": n_images,
        "size": size,
        "input_GB": gb,
        "repeats": repeats,
        "max_abs_error_vs_peer": err,
        "results": results,
    }


def markdown_images(report: dict) -> str:
    lines = [
        f"### 2-D Butterworth low pass, backend {report['backend']}: {report['images']} images of "
        f"{report['size']} x {report['size']} float64 ({report['input_GB'] * 1e3:.1f} MB)",
        "",
        "| case | time (ms) | GB/s | time / bare FFTs | speed-up vs peer |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        peer = "" if r["speedup_vs_peer"] is None else f"{r['speedup_vs_peer']:.2f}"
        ms, gbs, ratio = r["seconds"] * 1e3, r["GB_per_s"], r["vs_bare_fft"]
        lines.append(f"| {r['case']} | {ms:.1f} | {gbs:.3f} | {ratio:.2f} | {peer} |")
    if report["max_abs_error_vs_peer"] is not None:
        lines += ["", f"max |ours - peer|: {report['max_abs_error_vs_peer']:.2e}"]
    return "\n".join(lines)


def markdown(report: dict) -> str:
    lines = [
        f"### FFT filter, backend {report['backend']}: {report['rows']} x {report['n']} float64 "
        f"({report['input_GB'] * 1e3:.1f} MB), best of {report['repeats']}",
        "",
        "| case | time (ms) | GB/s | time / bare rfft+irfft | speed-up vs NumPy reference |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['case']} | {r['seconds'] * 1e3:.1f} | {r['GB_per_s']:.3f} | {r['vs_bare_fft']:.2f} | "
            f"{r['speedup_vs_numpy_reference']:.2f} |"
        )
    e = report["max_abs_error_vs_numpy_reference"]
    lines += [
        "",
        f"max |ours - NumPy reference|: mask {e['mask']:.2e}, mask + noise floor {e['mask+noise_floor']:.2e}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    p.add_argument("--rows", type=int, default=256, help="signals in the batch (default 256)")
    p.add_argument("--n", type=int, default=16384, help="samples per signal (default 16384)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--images", type=int, default=16, help="images in the 2-D case (default 16; 0 skips it)")
    p.add_argument("--image-size", type=int, default=512, help="image side in pixels (default 512)")
    p.add_argument("--out", default="bench_out", help="folder for bench_filters.json")
    args = p.parse_args(argv)
    report = run(args.backend, args.rows, args.n, args.repeats)
    print(markdown(report))
    if args.images > 0:
        report["images"] = run_images(args.backend, args.images, args.image_size, args.repeats)
        print()
        print(markdown_images(report["images"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"bench_filters_{args.backend}.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
