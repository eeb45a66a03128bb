"""Streaming read throughput and peak memory of pycro_gpu's batch engine vs a bare h5py full read.

Run: ``.venv/bin/python -m benchmarks.bench_stream [--size-gb 2 --memory-mb 256 --backend numpy]``.

A USID Main dataset of ``--size-gb`` GiB (float32, 2048 spectroscopic points per position, 1 MiB
chunks) is written once to ``--dir`` (default the temp folder) and deleted at the end unless
``--keep``. Each contender runs in its own subprocess, which reports its wall time and its peak RSS
(``resource.getrusage``; the interpreter with numpy and h5py alone is ~60-100 MB of it):

* ``h5py_full``: ``dataset[()]``, the whole dataset into memory (the peer: what a script without
  streaming does);
* ``h5py_batches``: bare h5py reading the same batches with ``dataset[a:b]`` (a new array each);
* ``stream_read``: :class:`pycro_gpu.io.hdf5.BatchReader` over the batches
  :func:`~pycro_gpu.io.hdf5.plan_batch_rows` sizes from the budget (reusable buffers, ``read_direct``),
  moving each batch to the backend;
* ``run_job``: the full engine, :func:`pycro_gpu.process.run_job` with a per-position mean, prefetch
  thread, results written and checkpointed in a separate file.

The file was just written, so it sits in the page cache (the machine has more RAM than the file):
every contender reads at memory speed, the same condition for all. ``first_touch`` measures how fast
the machine hands out fresh memory: on small VMs page faults make a 2 GB allocation slow, which a full
read pays and reused buffers do not; read the ratios with it. Prints a Markdown table and writes
``bench_out/bench_stream.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

OUT = Path("bench_out")
RAW = "/Measurement_000/Channel_000/Raw_Data"
N_SPEC = 2048


def make_file(path: Path, size_gb: float) -> tuple[int, float]:
    """Write a float32 Main dataset of ``size_gb`` GiB; returns (rows, seconds)."""
    from pycro_gpu.io.usid import Dimension, create_main

    rows = int(size_gb * 2**30 // (N_SPEC * 4))
    rows -= rows % 512
    t0 = time.perf_counter()
    with h5py.File(path, "w") as f:
        main = create_main(
            f.create_group("Measurement_000/Channel_000"),
            "Raw_Data",
            [Dimension("X", "m", 512), Dimension("Y", "m", rows // 512)],
            Dimension("Frequency", "Hz", np.linspace(2e5, 4e5, N_SPEC)),
            "Amplitude",
            "V",
            np.float32,
            chunks=(128, N_SPEC),
        )
        rng = np.random.default_rng(0)
        block = rng.standard_normal((8192, N_SPEC)).astype(np.float32)
        for s in range(0, rows, block.shape[0]):
            e = min(s + block.shape[0], rows)
            main[s:e] = block[: e - s] + np.float32(s)
    return rows, time.perf_counter() - t0


def _peak_rss_mb() -> float:
    """Peak RSS of this process: VmHWM (reset at exec, unlike ru_maxrss which keeps the parent's)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _mean(batch, xp):
    return {"mean": xp.mean(batch, axis=1)}


def worker(mode: str, path: str, memory_mb: float, backend: str) -> dict:
    from pycro_gpu.backend import from_host, get_namespace, synchronize
    from pycro_gpu.io.hdf5 import BatchReader, batch_slices, plan_batch_rows
    from pycro_gpu.process import Job, Output, run_job

    xp = get_namespace(backend)
    base_rss = _peak_rss_mb()
    t0 = time.perf_counter()
    checksum = 0.0
    batch_rows = None
    if mode == "h5py_full":
        with h5py.File(path, "r") as f:
            data = f[RAW][()]
        checksum = float(data[:, 0].sum(dtype=np.float64))
        nbytes = data.nbytes
    elif mode in ("h5py_batches", "stream_read"):
        # the same batches, read by bare h5py (a new array each) or by the engine's reusable buffer
        with h5py.File(path, "r") as f:
            d = f[RAW]
            nbytes = d.size * d.dtype.itemsize
            batch_rows = plan_batch_rows(
                d.shape[0], d.shape[1] * 4, memory_mb=memory_mb, chunk_rows=d.chunks[0]
            )
            reader = None if mode == "h5py_batches" else BatchReader(d, batch_rows, n_buffers=1)
            for sl in batch_slices(d.shape[0], batch_rows):
                x = from_host(d[sl] if reader is None else reader.read(sl, 0), xp)
                checksum += float(xp.sum(xp.astype(x[:, 0], xp.float64)))
            synchronize(xp)
    elif mode == "first_touch":
        # not a contender: how fast this machine hands out fresh memory (page faults), which a full
        # read into a new array pays for and reused buffers do not
        nbytes = 2**30
        a = np.empty(nbytes // 4, np.float32)
        a.fill(1.0)
        checksum = float(a[::4096].sum())
    elif mode == "run_job":
        res_path = path + ".results.h5"
        if os.path.exists(res_path):
            os.remove(res_path)
        job = Job("Mean", _mean, [Output("mean", (), np.float32)])
        res = run_job(job, path, RAW, results=res_path, memory_mb=memory_mb, backend=backend, progress=False)
        batch_rows = res.batch_rows
        with h5py.File(res_path, "r") as f:
            checksum = float(f[res.group]["mean"][:].sum(dtype=np.float64))
        with h5py.File(path, "r") as f:
            nbytes = f[RAW].size * 4
        os.remove(res_path)
    else:
        raise ValueError(mode)
    seconds = time.perf_counter() - t0
    return {
        "mode": mode,
        "seconds": seconds,
        "gb_per_s": nbytes / seconds / 1e9,
        "peak_rss_mb": _peak_rss_mb(),
        "baseline_rss_mb": base_rss,
        "batch_rows": batch_rows,
        "checksum": checksum,
    }


def _spawn(mode: str, path: Path, memory_mb: float, backend: str) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_stream", "--worker", mode, "--file", str(path)]
    cmd += ["--memory-mb", str(memory_mb), "--backend", backend]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-gb", type=float, default=2.0, help="file size in GiB (default 2)")
    p.add_argument("--memory-mb", type=float, default=256.0, help="working-memory budget (default 256)")
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    p.add_argument("--dir", default=tempfile.gettempdir(), help="folder for the scratch file")
    p.add_argument("--repeat", type=int, default=2, help="runs per contender (best time kept)")
    p.add_argument("--keep", action="store_true", help="keep the scratch file")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--file", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.file, args.memory_mb, args.backend)))
        return 0

    path = Path(args.dir) / f"pycro_bench_stream_{os.getpid()}.h5"
    try:
        rows, t_write = make_file(path, args.size_gb)
        size = path.stat().st_size
        print(
            f"wrote {path} ({size / 2**30:.2f} GiB, {rows} x {N_SPEC} float32) in {t_write:.1f} s", flush=True
        )
        results: dict[str, dict] = {}
        for _ in range(args.repeat):
            for mode in ("h5py_full", "h5py_batches", "stream_read", "run_job", "first_touch"):
                r = _spawn(mode, path, args.memory_mb, args.backend)
                best = results.get(mode)
                if best is None or r["seconds"] < best["seconds"]:
                    r["peak_rss_mb"] = max(r["peak_rss_mb"], best["peak_rss_mb"] if best else 0.0)
                    results[mode] = r
                else:
                    best["peak_rss_mb"] = max(best["peak_rss_mb"], r["peak_rss_mb"])
        ref = results["h5py_full"]
        assert abs(results["stream_read"]["checksum"] - ref["checksum"]) <= 1e-6 * abs(ref["checksum"]) + 1
        print()
        print(f"Streaming {size / 2**30:.2f} GiB, budget {args.memory_mb:g} MiB, backend {args.backend}")
        print()
        print(
            "| contender | batch rows | time (s) | GB/s | throughput vs h5py | peak RSS (MB) "
            "| RSS after imports (MB) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for mode, r in results.items():
            if mode == "first_touch":
                continue
            ratio = r["gb_per_s"] / ref["gb_per_s"]
            rows_txt = "-" if r["batch_rows"] is None else str(r["batch_rows"])
            print(
                f"| {mode} | {rows_txt} | {r['seconds']:.2f} | {r['gb_per_s']:.2f} | {ratio:.2f} | "
                f"{r['peak_rss_mb']:.0f} | {r['baseline_rss_mb']:.0f} |"
            )
        print(
            f"\nfresh-memory first touch on this machine: {results['first_touch']['gb_per_s']:.2f} GB/s "
            "(a full read into a new array pays it; reused batch buffers do not)"
        )
        OUT.mkdir(exist_ok=True)
        record = {
            "file_gib": size / 2**30,
            "memory_mb": args.memory_mb,
            "backend": args.backend,
            "results": results,
            "ratio_stream_vs_h5py": results["stream_read"]["gb_per_s"] / ref["gb_per_s"],
            "ratio_run_job_vs_h5py": results["run_job"]["gb_per_s"] / ref["gb_per_s"],
        }
        (OUT / "bench_stream.json").write_text(json.dumps(record, indent=2))
        print(f"\nwrote {OUT / 'bench_stream.json'}")
    finally:
        if not args.keep and path.exists():
            path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
