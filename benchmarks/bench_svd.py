"""Streamed SVD of a USID file vs a bare streamed read and vs read + scikit-learn randomized_svd.

Run: ``.venv/bin/python -m benchmarks.bench_svd [--rows 1048576 --cols 256 -k 8 --backend numpy]``.

A USID Main dataset of ``rows x cols`` float64 (low rank plus noise; 1M x 256 = 2 GiB by default) is
written once to /tmp (deleted at the end unless ``--keep``). Measured, side by side:

* bare streamed read: chunk-aligned ``read_direct`` of the whole dataset into one reused buffer;
* pycro_gpu streamed SVD, ``method="auto"`` (``svd_dataset``; on tall data with ``k + 10 <= cols / 4``
  the sketch: S, V and U from one read of the file when its error estimate meets ``tol``) and, for
  comparison, the exact ``method="gram"`` (S and V from one read, U written from a second);
* pycroscopy's way: read the whole dataset into memory, then ``sklearn.utils.extmath.randomized_svd``
  with ``n_iter=3`` as pycroscopy's ``svd_utils.SVD`` calls it (in a subprocess, so its peak RSS is
  measured alone; U, S, V are not written, which favours it);
* peak RSS of ``pycro-gpu svd FILE -k K --memory-mb 256`` (subprocess, /usr/bin/time -v or psutil),
  optionally on a second, larger file (``--rss-rows``).

The file sits in the page cache after it is written (the machine has more RAM than the file), so the
reads are memory-speed reads: the same condition for every contender. Prints a Markdown table and
writes ``bench_out/bench_svd.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pycro_gpu.backend import get_namespace, synchronize
from pycro_gpu.decomposition import svd_dataset
from pycro_gpu.io.usid import Dimension, create_main

OUT = Path("bench_out")
RAW = "Measurement_000/Channel_000/Raw_Data"


def make_file(path: Path, rows: int, cols: int, *, rank: int = 8, seed: int = 0) -> float:
    """Write a USID Main dataset of low rank plus noise; returns seconds spent."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    H = rng.standard_normal((rank, cols)) * np.logspace(1, 0, rank)[:, None]
    nx = 1024 if rows % 1024 == 0 else rows
    with h5py.File(path, "w") as f:
        main = create_main(
            f.create_group("Measurement_000/Channel_000"),
            "Raw_Data",
            [Dimension("X", "m", nx), Dimension("Y", "m", rows // nx)],
            Dimension("Bias", "V", np.linspace(-1, 1, cols)),
            "Current",
            "nA",
            np.float64,
            chunks=(min(rows, max(1, 2**20 // (cols * 8))), cols),  # 1 MiB chunks of whole rows
        )
        step = 65536
        for s in range(0, rows, step):
            e = min(s + step, rows)
            block = rng.standard_normal((e - s, rank)) @ H
            block += 0.1 * rng.standard_normal((e - s, cols))
            main[s:e] = block
    return time.perf_counter() - t0


def best_of(n: int, run: Any) -> dict:
    """The fastest of ``n`` runs (the first pays one-off costs: imports, page faults of fresh memory)."""
    return min((run() for _ in range(n)), key=lambda r: r["seconds"])


def bare_read(path: Path, batch_rows: int) -> tuple[float, float]:
    with h5py.File(path, "r") as f:
        d = f[RAW]
        rows, cols = d.shape
        chunk = d.chunks[0] if d.chunks else 1
        batch_rows = max(chunk, (batch_rows // chunk) * chunk)
        buf = np.empty((batch_rows, cols), dtype=d.dtype)
        t0, c0 = time.perf_counter(), time.process_time()
        for s in range(0, rows, batch_rows):
            e = min(s + batch_rows, rows)
            d.read_direct(buf, np.s_[s:e], np.s_[0 : e - s])
        return time.perf_counter() - t0, time.process_time() - c0


def streamed_svd(path: Path, k: int, backend: str, memory_mb: float, method: str = "auto") -> dict:
    xp = get_namespace(backend)
    with h5py.File(path, "r+") as f:
        main = f[RAW]
        synchronize(xp)
        t0, c0 = time.perf_counter(), time.process_time()
        res = svd_dataset(
            main, k=k, method=method, memory_mb=memory_mb, backend=backend, override=True, progress=False
        )
        grp = f[res.group]
        synchronize(xp)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        S = grp["S"][()].astype(np.float64)
        V = grp["V"][()].astype(np.float64)
        info = {
            "method": str(grp.attrs["method_used"]),
            "reads": int(grp.attrs["reads"]),
            "error_estimate": float(grp.attrs.get("error_estimate", 0.0)),
        }
        del f[grp.name]
    return {"seconds": dt, "cpu_s": cpu, "S": S, "V": V, **info}


_SKLEARN = r"""
import json, sys, time, h5py, numpy as np
from sklearn.utils.extmath import randomized_svd
path, k = sys.argv[1], int(sys.argv[2])
t0, c0 = time.perf_counter(), time.process_time()
with h5py.File(path, "r") as f:
    A = f["Measurement_000/Channel_000/Raw_Data"][()]
t1 = time.perf_counter()
U, S, Vt = randomized_svd(A, k, n_iter=3, random_state=0)  # pycroscopy's call (svd_utils.SVD)
t2, c2 = time.perf_counter(), time.process_time()
out = {"read_s": t1 - t0, "svd_s": t2 - t1, "cpu_s": c2 - c0, "S": S.tolist(), "V": Vt.tolist()}
if len(sys.argv) > 3:
    s_exact = np.sqrt(np.clip(np.linalg.eigvalsh(A.T @ A)[::-1][:k], 0, None))  # reference only
    out["S_exact_gram"] = s_exact.tolist()
print("JSON" + json.dumps(out))
"""


def _peak_rss_run(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd``; return (seconds, peak RSS MiB, stdout). /usr/bin/time -v where available."""
    t0 = time.perf_counter()
    if Path("/usr/bin/time").exists():
        p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, check=True)
        dt = time.perf_counter() - t0
        line = next(ln for ln in p.stderr.splitlines() if "Maximum resident set size" in ln)
        return dt, int(line.split(":")[1]) / 1024, p.stdout
    import psutil

    proc = psutil.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, proc.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.02)
    out = proc.stdout.read()
    return time.perf_counter() - t0, peak / 2**20, out


def sklearn_in_memory(path: Path, k: int, exact: bool) -> dict:
    cmd = [sys.executable, "-c", _SKLEARN, str(path), str(k)] + (["exact"] if exact else [])
    _, rss, out = _peak_rss_run(cmd)
    res = json.loads(next(ln for ln in out.splitlines() if ln.startswith("JSON"))[4:])
    res["rss_mib"] = rss
    return res


def cli_rss(path: Path, k: int, backend: str, memory_mb: float) -> dict:
    launcher = "import sys; from pycro_gpu.cli import main; sys.exit(main())"
    cmd = [sys.executable, "-c", launcher, "svd", str(path), "-k", str(k), "--memory-mb", str(memory_mb)]
    cmd += ["--backend", backend, "--override", "-q"]
    dt, rss, _ = _peak_rss_run(cmd)
    with h5py.File(path, "r+") as f:  # leave the file as it was
        for name in list(f["Measurement_000/Channel_000"]):
            if name.startswith("Raw_Data-SVD_"):
                del f["Measurement_000/Channel_000/" + name]
    return {"seconds": dt, "rss_mib": rss}


def _angle(V1: np.ndarray, V2: np.ndarray) -> float:
    import scipy.linalg

    return float(np.max(scipy.linalg.subspace_angles(V1.T, V2.T)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2**20, help="positions (default 1048576)")
    ap.add_argument("--cols", type=int, default=256, help="spectral points (default 256)")
    ap.add_argument("-k", type=int, default=8, help="components (default 8)")
    ap.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    ap.add_argument("--memory-mb", type=float, default=256.0, help="budget of the streamed SVD (MiB)")
    ap.add_argument(
        "--rss-rows", type=int, default=0, help="also measure CLI RSS on a file of this many rows"
    )
    ap.add_argument("--exact", action="store_true", help="also compute exact top-k S (reference)")
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where the scratch file goes")
    ap.add_argument("--keep", action="store_true", help="keep the scratch files")
    ap.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="limit BLAS threads of every contender (threadpoolctl here, environment in subprocesses);"
        " 1 avoids the collapse of threaded OpenBLAS on an oversubscribed shared machine",
    )
    args = ap.parse_args(argv)
    if args.blas_threads:
        from threadpoolctl import threadpool_limits

        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.blas_threads)
        with threadpool_limits(limits=args.blas_threads):
            return _run(args)
    return _run(args)


def _run(args: argparse.Namespace) -> int:

    path = Path(args.dir) / f"bench_svd_{args.rows}x{args.cols}.h5"
    gib = args.rows * args.cols * 8 / 2**30
    results: dict = {"rows": args.rows, "cols": args.cols, "k": args.k, "gib": gib, "backend": args.backend}
    results["load_before"] = round(os.getloadavg()[0], 1)
    results["blas_threads"] = args.blas_threads or "default"
    try:
        print(f"writing {path} ({gib:.2f} GiB) ...", flush=True)
        results["generate_s"] = make_file(path, args.rows, args.cols)
        bare, bare_cpu = min(bare_read(path, 16384) for _ in range(2))
        ours = best_of(2, lambda: streamed_svd(path, args.k, args.backend, args.memory_mb))
        gram = best_of(2, lambda: streamed_svd(path, args.k, args.backend, args.memory_mb, "gram"))
        sk = sklearn_in_memory(path, args.k, args.exact)
        rss = cli_rss(path, args.k, args.backend, 256.0)
        s_sk = np.asarray(sk["S"])
        results.update(
            bare_read_s=bare,
            bare_read_gib_s=gib / bare,
            streamed_svd_s=ours["seconds"],
            streamed_method=ours["method"],
            streamed_reads=ours["reads"],
            streamed_error_estimate=ours["error_estimate"],
            gram_s=gram["seconds"],
            gram_cpu_s=gram["cpu_s"],
            S_gram=gram["S"].tolist(),
            sklearn_read_s=sk["read_s"],
            sklearn_svd_s=sk["svd_s"],
            sklearn_total_s=sk["read_s"] + sk["svd_s"],
            sklearn_rss_mib=sk["rss_mib"],
            bare_read_cpu_s=bare_cpu,
            streamed_svd_cpu_s=ours["cpu_s"],
            sklearn_cpu_s=sk["cpu_s"],
            cli_s=rss["seconds"],
            cli_rss_mib=rss["rss_mib"],
            S_streamed=ours["S"].tolist(),
            S_sklearn=s_sk.tolist(),
            max_rel_dS_vs_sklearn=float(np.max(np.abs(ours["S"] - s_sk) / s_sk)),
            angle_V_vs_sklearn=_angle(ours["V"], np.asarray(sk["V"])),
        )
        if "S_exact_gram" in sk:
            ex = np.asarray(sk["S_exact_gram"])
            results["max_rel_dS_streamed_vs_exact"] = float(np.max(np.abs(ours["S"] - ex) / ex))
            results["max_rel_dS_sklearn_vs_exact"] = float(np.max(np.abs(s_sk - ex) / ex))
            results["max_rel_dS_gram_vs_exact"] = float(np.max(np.abs(gram["S"] - ex) / ex))
        if args.rss_rows:
            big = Path(args.dir) / f"bench_svd_{args.rss_rows}x{args.cols}.h5"
            try:
                print(f"writing {big} ({args.rss_rows * args.cols * 8 / 2**30:.2f} GiB) ...", flush=True)
                make_file(big, args.rss_rows, args.cols)
                r = cli_rss(big, args.k, args.backend, 256.0)
                results.update(
                    big_gib=args.rss_rows * args.cols * 8 / 2**30,
                    big_cli_s=r["seconds"],
                    big_cli_rss_mib=r["rss_mib"],
                )
            finally:
                if not args.keep:
                    big.unlink(missing_ok=True)
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)

    results["load_after"] = round(os.getloadavg()[0], 1)
    r = results
    print()
    title = f"{r['rows']} x {r['cols']} float64 ({r['gib']:.2f} GiB), k = {r['k']}, {r['backend']}"
    print(f"## Streamed SVD, {title}")
    print()
    print(
        f"load average before/after {r['load_before']} / {r['load_after']}, BLAS threads {r['blas_threads']}"
    )
    print()
    print("| contender | seconds | ratio to bare read | peak RSS (MiB) |")
    print("|---|---:|---:|---:|")
    print(f"| bare streamed h5py read | {r['bare_read_s']:.2f} | 1.00 | - |")
    print(
        f"| pycro_gpu streamed SVD ({r['streamed_method']}, {r['streamed_reads']} reads; S, V, U written) "
        f"| {r['streamed_svd_s']:.2f} | {r['streamed_svd_s'] / r['bare_read_s']:.2f} | - |"
    )
    print(
        f"| pycro_gpu streamed SVD (gram, exact, 2 reads; S, V, U written) "
        f"| {r['gram_s']:.2f} | {r['gram_s'] / r['bare_read_s']:.2f} | - |"
    )
    print(
        f"| `pycro-gpu svd --memory-mb 256` (CLI, whole process) | {r['cli_s']:.2f} | "
        f"{r['cli_s'] / r['bare_read_s']:.2f} | {r['cli_rss_mib']:.0f} |"
    )
    split = f"read {r['sklearn_read_s']:.2f} s + svd {r['sklearn_svd_s']:.2f} s"
    ratio = r["sklearn_total_s"] / r["bare_read_s"]
    print(
        f"| read + sklearn randomized_svd, n_iter=3 ({split}) | {r['sklearn_total_s']:.2f} | {ratio:.2f} "
        f"| {r['sklearn_rss_mib']:.0f} |"
    )
    if "big_gib" in r:
        print(
            f"| `pycro-gpu svd --memory-mb 256` on {r['big_gib']:.2f} GiB | {r['big_cli_s']:.2f} | - | "
            f"{r['big_cli_rss_mib']:.0f} |"
        )
    print()
    print(f"speed-up vs read + sklearn: {r['sklearn_total_s'] / r['streamed_svd_s']:.2f}x (wall clock)")
    if r["streamed_method"] == "sketch":
        print(f"sketch error estimate (relative, singular values): {r['streamed_error_estimate']:.1e}")
    print(
        f"CPU seconds (all threads; less sensitive to other jobs on a shared machine): bare read "
        f"{r['bare_read_cpu_s']:.2f}, streamed SVD {r['streamed_svd_cpu_s']:.2f}, read + sklearn "
        f"{r['sklearn_cpu_s']:.2f} -> {r['sklearn_cpu_s'] / r['streamed_svd_cpu_s']:.2f}x less CPU"
    )
    print(f"bare read: {r['bare_read_gib_s']:.2f} GiB/s")
    print(f"max relative |S_streamed - S_sklearn| / S: {r['max_rel_dS_vs_sklearn']:.2e}")
    print(f"largest angle between V subspaces: {r['angle_V_vs_sklearn']:.2e} rad")
    if "max_rel_dS_streamed_vs_exact" in r:
        print(
            f"vs exact S: streamed {r['max_rel_dS_streamed_vs_exact']:.2e}, "
            f"gram {r['max_rel_dS_gram_vs_exact']:.2e}, sklearn {r['max_rel_dS_sklearn_vs_exact']:.2e}"
        )
    OUT.mkdir(exist_ok=True)
    name = f"bench_svd_{r['rows']}x{r['cols']}_{r['backend']}_blas{r['blas_threads']}.json"
    (OUT / name).write_text(json.dumps(results, indent=1))
    print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYCRO_GPU_PROGRESS", "0")
    sys.exit(main())
