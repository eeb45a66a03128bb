"""Run every benchmark at the sizes the issues ask for (``make bench``), one after the other.

Each benchmark compares pycro_gpu side by side with its peer in one run and writes JSON and a Markdown
table into ``bench_out/``. ``--backend cupy`` runs them on a GPU; ``--quick`` uses small sizes (a
smoke run, not figures to report).

    python -m benchmarks.run_all [--quick] [--backend numpy|cupy] [--only fit svd ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

#: name -> (arguments at the issue's sizes, arguments for --quick)
BENCHMARKS = {
    "fit": (
        ["--side", "64", "--bins", "87", "--ptx"],
        ["--side", "16", "--repeat", "2", "--scipy-repeat", "1"],
    ),
    "filters": ([], ["--rows", "32", "--n", "4096", "--images", "2", "--image-size", "256"]),
    "stream": (["--size-gb", "2", "--memory-mb", "256"], ["--size-gb", "0.1", "--memory-mb", "64"]),
    # the suite of spectra of issue 15 (tall, float32, power-law, complex BEPS, wide), whole processes
    "svd": (["--cases", "all"], ["--quick", "--repeat", "1"]),
    "distributed": (["--size", "large"], ["--size", "tiny", "--repeats", "1"]),
    "cluster": (["--rows", "65536", "--cols", "512"], ["--quick"]),
    # whole processes file to file: the defaults are the sizes (1k-1M spectra, 64/1024 rows)
    "end_to_end": ([], ["--quick"]),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: check that each one runs")
    parser.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), default=None)
    args = parser.parse_args(argv)
    failed = []
    for name, (full, quick) in BENCHMARKS.items():
        if args.only is not None and name not in args.only:
            continue
        cmd = [sys.executable, "-m", f"benchmarks.bench_{name}", *(quick if args.quick else full)]
        cmd += ["--backend", args.backend]
        print(f"\n## bench_{name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd)
        print(f"(bench_{name}: exit {rc}, {time.perf_counter() - t0:.1f} s)", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
