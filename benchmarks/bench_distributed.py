"""Dask scaling of the streamed engine: 1 vs 2 (vs N) worker processes against the local executor.

    python -m benchmarks.bench_distributed --job loop --size large         # BE loop fits (9 parameters)
    python -m benchmarks.bench_distributed --job sho --size large          # SHO fit of BE spectra
    python -m benchmarks.bench_distributed --job fft --size medium         # FFT low pass + noise floor

Side by side in one run, on the same USID file (positions x bins, written here), each with its own
fresh results group:

* ``local``         :class:`pycro_gpu.process.LocalExecutor` (prefetch), numba on every core;
* ``local-1thread`` the same with numba limited to one thread (the per-core reference);
* ``dask-N``        :class:`pycro_gpu.distributed.DaskExecutor` on a LocalCluster of N worker
  processes with one thread each and numba limited to one thread per worker.

Cluster start-up and numba compilation (a warm-up batch on every worker) are not timed; reading,
computing, shipping results to the driver, writing and marking are. The executors take turns
(round-robin over ``--repeats``) so that a change of machine load hits them alike; best and median
are reported, speed-ups from the best.
Every run must give results identical to the local run. Prints a Markdown table and writes
``bench_out/distributed.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from pycro_gpu.io.usid import Dimension, write_main
from pycro_gpu.process import Job, LocalExecutor, Output, run_job

RAW = "/Measurement_000/Channel_000/Raw_Data"
SIZES = {"tiny": (16, 16), "small": (64, 64), "medium": (128, 128), "large": (256, 256)}
N_BINS = 87
N_SAMPLES = 2048
SAMP_RATE = 4e6


# ---- jobs (module level: the workers import them by name) ------------------------------------------


def sho_compute(batch, xp, freqs):
    """SHO fit of every spectrum of the batch (batched LM kernel)."""
    from pycro_gpu.fitting import fit_sho

    res = fit_sho(batch, xp.asarray(freqs))
    return {"params": res.params, "r2": res.r2}


def loop_compute(batch, xp, bias):
    """9-parameter BE loop fit of every row of the batch (batched LM kernel)."""
    from pycro_gpu.fitting import fit_loop

    res = fit_loop(xp.asarray(bias), batch)
    return {"params": res.params, "r2": res.r2}


def fft_compute(batch, xp, cutoff):
    """FFT low pass with noise-floor thresholding of every time series."""
    from pycro_gpu.filters.fft import LowPassFilter, fft_filter

    n = batch.shape[1]
    out = fft_filter(batch, LowPassFilter(n, SAMP_RATE, cutoff), noise_tolerance=1e-4, xp=xp)
    return {"Filtered": out}


def make_data(kind: str, n_pos: int, rng: np.random.Generator) -> tuple[np.ndarray, Dimension]:
    if kind == "sho":
        from benchmarks.gpu_check import sho_spectra

        h, freqs, _ = sho_spectra(rng, n_pos, N_BINS)
        return h.astype(np.complex64), Dimension("Frequency", "Hz", freqs)
    if kind == "loop":
        from benchmarks.gpu_check import be_loops

        bias, loops = be_loops(rng, n_pos)
        return loops, Dimension("DC_Offset", "V", bias)
    t = np.arange(N_SAMPLES) / SAMP_RATE
    x = np.sin(2 * np.pi * 50e3 * t) + 0.3 * rng.standard_normal((n_pos, N_SAMPLES))
    return x.astype(np.float32), Dimension("Time", "s", t)


def make_job(kind: str, spec: Dimension) -> Job:
    if kind == "sho":
        return Job(
            "SHO_Bench",
            functools.partial(sho_compute, freqs=np.asarray(spec.values, dtype=np.float64)),
            [Output("params", shape=4, dtype=np.float32), Output("r2", dtype=np.float32)],
        )
    if kind == "loop":
        return Job(
            "Loop_Bench",
            functools.partial(loop_compute, bias=np.asarray(spec.values, dtype=np.float64)),
            [Output("params", shape=9, dtype=np.float64), Output("r2", dtype=np.float64)],
        )
    return Job(
        "FFT_Bench",
        functools.partial(fft_compute, cutoff=200e3),
        [Output("Filtered", spec_dims=[spec], dtype=np.float32)],
        work_multiplier=6.0,
    )


def write_file(path: Path, kind: str, shape: tuple[int, int], seed: int = 0) -> Job:
    nx, ny = shape
    data, spec = make_data(kind, nx * ny, np.random.default_rng(seed))
    with h5py.File(path, "w") as f:
        g = f.create_group("Measurement_000/Channel_000")
        write_main(g, "Raw_Data", data, [Dimension("X", "m", nx), Dimension("Y", "m", ny)], spec,
                   "Response", "V", chunks=(min(256, nx * ny), data.shape[1]))  # fmt: skip
    return make_job(kind, spec)


# ---- runs ---------------------------------------------------------------------------------------------


def _warm_up(job: Job, path: Path, backend: str, n_rows: int = 8) -> None:
    """Compile the job's kernels in this process on a few rows (not timed)."""
    from pycro_gpu.backend import get_namespace

    with h5py.File(path, "r") as f:
        rows = f[RAW][:n_rows]
    xp = get_namespace(backend)
    job.compute(xp.asarray(rows), xp)


def _set_numba_threads(n: int | None) -> None:
    import numba

    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS if n is None else max(1, n))


def _read(path: str, group: str, names: list[str]) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {n: f[group][n][()] for n in names}


def _worker_cpu(executor) -> float:
    """CPU seconds used so far by the executor's worker processes (0 for the local executor)."""
    client = getattr(executor, "client", None)
    if client is None:
        return 0.0
    return float(sum(client.run(time.process_time).values()))


def _machine_busy_s() -> float:
    """CPU seconds all processes of the machine have been busy (Linux /proc/stat; 0 elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    ticks = [int(v) for v in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _one_run(mode: str, executor, job: Job, path: Path, backend: str, batch_rows: int):
    """Run the whole job once (a fresh results group); return (wall, cpu s, other processes' cpu s, result).

    CPU seconds are the driver's (all its threads) plus the workers' processes; the others' are what
    the rest of the machine used meanwhile (a busy machine leaves fewer cores to the run).
    """
    if mode == "local-1thread":
        _set_numba_threads(1)
    try:
        w0 = _worker_cpu(executor)
        m0 = _machine_busy_s()
        c0 = time.process_time()
        t0 = time.perf_counter()
        res = run_job(job, path, RAW, backend=backend, batch_rows=batch_rows, executor=executor,
                      override=True, progress=False)  # fmt: skip
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0 + _worker_cpu(executor) - w0
        others = max(0.0, _machine_busy_s() - m0 - cpu)
        return wall, cpu, others, res
    finally:
        _set_numba_threads(None)


def run_modes(modes: list[str], job: Job, path: Path, backend: str, batch_rows: int, repeats: int) -> dict:
    """Time every mode ``repeats`` times, round-robin, so that changes of machine load hit them alike."""
    from pycro_gpu.distributed import DaskExecutor

    names = [o.name for o in job.outputs]
    executors = {}
    try:
        for mode in modes:
            if mode.startswith("local"):
                executors[mode] = LocalExecutor()
                continue
            n = int(mode.split("-")[1])
            ex = DaskExecutor(workers=n, threads_per_worker=1, numba_threads=1)
            executors[mode] = ex
            ex.client.wait_for_workers(n)
            ex.client.run(_warm_up_worker, job, str(path), backend)  # compile on every worker, untimed
        _warm_up(job, path, backend)
        walls: dict[str, list[float]] = {m: [] for m in modes}
        cpus: dict[str, list[float]] = {m: [] for m in modes}
        others: dict[str, list[float]] = {m: [] for m in modes}
        last = {}
        for r in range(max(1, repeats)):
            for mode in modes:
                print(f"bench_distributed: {mode} run {r + 1}/{repeats} ...", flush=True)
                wall, cpu, other, last[mode] = _one_run(mode, executors[mode], job, path, backend, batch_rows)
                walls[mode].append(wall)
                cpus[mode].append(cpu)
                others[mode].append(other / wall)
    finally:
        for ex in executors.values():
            if hasattr(ex, "close"):
                ex.close()
    return {
        m: {
            "wall_s": min(walls[m]),
            "median_s": float(np.median(walls[m])),
            "walls_s": walls[m],
            "cpu_s": float(np.median(cpus[m])),
            "other_cores": float(np.median(others[m])),
            "workers": 0 if m.startswith("local") else int(m.split("-")[1]),
            "out": _read(last[m].file, last[m].group, names),
        }
        for m in modes
    }


def _warm_up_worker(job: Job, path: str, backend: str) -> None:
    import numba

    numba.set_num_threads(1)
    _warm_up(job, Path(path), backend)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--job", choices=("sho", "loop", "fft"), default="loop")
    p.add_argument("--size", choices=tuple(SIZES), default="small")
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Dask worker counts to run")
    p.add_argument("--batch-rows", type=int, default=None, help="positions per batch (default: n/32)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per executor (best is reported)")
    p.add_argument("--out", default="bench_out", help="folder for distributed.json")
    args = p.parse_args(argv)

    logging.getLogger("distributed").setLevel(logging.ERROR)
    nx, ny = SIZES[args.size]
    n_pos = nx * ny
    batch_rows = args.batch_rows or max(1, n_pos // 32)
    tmp = Path(tempfile.mkdtemp(prefix="bench_distributed_"))
    try:
        path = tmp / "raw.h5"
        job = write_file(path, args.job, (nx, ny))
        size_mb = path.stat().st_size / 2**20
        modes = ["local", "local-1thread"] + [f"dask-{n}" for n in args.workers]
        load_before = os.getloadavg()
        rows = run_modes(modes, job, path, args.backend, batch_rows, args.repeats)
        load_after = os.getloadavg()
        ref = rows["local"]["out"]
        for r in rows.values():
            r["identical"] = all(np.array_equal(r["out"][k], ref[k], equal_nan=True) for k in ref)
            r["pos_per_s"] = n_pos / r["wall_s"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    base = rows.get("dask-1", rows["local-1thread"])["wall_s"]
    lines = [
        f"## Dask scaling: {args.job} job, {n_pos} positions ({size_mb:.1f} MiB), batches of {batch_rows},"
        f" backend {args.backend}, {os.cpu_count()} cores",
        "",
        "| executor | workers | best wall | median wall | CPU s (median) | cores busy elsewhere |"
        " positions/s | speed-up vs dask-1 | vs local | identical to local |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, r in rows.items():
        lines.append(
            f"| {mode} | {r['workers'] or '-'} | {r['wall_s']:.2f} s | {r['median_s']:.2f} s | "
            f"{r['cpu_s']:.2f} | {r['other_cores']:.2f} | {r['pos_per_s']:.0f} | "
            f"{base / r['wall_s']:.2f}x | {rows['local']['wall_s'] / r['wall_s']:.2f}x | "
            f"{'yes' if r['identical'] else 'NO'} |"
        )
    lines += [
        "",
        f"Load average (1 min) before / after: {load_before[0]:.1f} / {load_after[0]:.1f} on {os.cpu_count()}"
        " cores (other processes share the machine when it is above the core count).",
    ]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "job": args.job,
        "size": args.size,
        "n_positions": n_pos,
        "batch_rows": batch_rows,
        "backend": args.backend,
        "cpu_count": os.cpu_count(),
        "file_mib": size_mb,
        "load_average_before_after": [load_before[0], load_after[0]],
        "runs": {m: {k: v for k, v in r.items() if k != "out"} for m, r in rows.items()},
    }
    (out / "distributed.json").write_text(json.dumps(record, indent=2))
    return 0 if all(r["identical"] for r in rows.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
