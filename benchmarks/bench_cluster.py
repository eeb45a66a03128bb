"""Clustering, whole processes file to file: ``pycro-gpu cluster`` against the script a scientist writes.

The peer (what pycroscopy's ``Cluster`` does, and a plain script): read the Main dataset with h5py and run
scikit-learn's ``KMeans(n_clusters, n_init=10)`` on the raw spectra, then the mean response of each
cluster. pycro_gpu: ``pycro-gpu cluster FILE -n K`` with its default features (16 SVD scores from a
streamed SVD for spectra of >= 64 points), labels and mean responses written to the file. Both run as
fresh processes on the same file (page cache warm); the agreement of the partitions is the adjusted Rand
index (ARI) of pycro_gpu's labels against scikit-learn's.

    python -m benchmarks.bench_cluster [--rows 65536] [--cols 512] [-k 4] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np

RAW = "/Measurement_000/Channel_000/Raw_Data"

PEER = textwrap.dedent(
    """
    import sys, h5py, numpy as np
    from sklearn.cluster import KMeans
    path, k, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with h5py.File(path, "r") as f:
        X = f["/Measurement_000/Channel_000/Raw_Data"][()]
    labels = KMeans(k, n_init=10, random_state=0).fit_predict(X)
    mean = np.stack([X[labels == c].mean(axis=0) for c in range(k)])
    np.save(out, labels)
    """
)


# The array-API mini-batch KMeans (what streamed clustering runs on CuPy, where cuML has none), fed batches
# of the raw spectra straight from the file: 3 epochs of 4096-row batches, then the labels.
MINIBATCH = textwrap.dedent(
    """
    import sys, h5py, numpy as np
    from pycro_gpu.backend import get_namespace, to_host
    from pycro_gpu._lib.kmeans import MiniBatchKMeans
    path, k, out, backend = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    xp = get_namespace(backend)
    est = MiniBatchKMeans(k, random_state=0)
    with h5py.File(path, "r") as f:
        d = f["/Measurement_000/Channel_000/Raw_Data"]
        n = d.shape[0]
        for _epoch in range(3):
            for s in range(0, n, 4096):
                est.partial_fit(xp.asarray(d[s:s + 4096].astype(np.float64)))
        labels = np.concatenate([to_host(est.predict(xp.asarray(d[s:s + 4096].astype(np.float64))))
                                 for s in range(0, n, 4096)])
    np.save(out, labels)
    """
)


def make_file(path: Path, rows: int, cols: int, k: int, seed: int = 0) -> np.ndarray:
    """Spectra of ``k`` clusters: rank-16 structure plus noise, float32; returns the true labels."""
    from pycro_gpu.io.usid import Dimension, write_main

    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((16, cols))
    centers = rng.standard_normal((k, 16)) * 3.0
    truth = rng.integers(0, k, rows)
    scores = centers[truth] + rng.standard_normal((rows, 16))
    data = (scores @ basis + 0.5 * rng.standard_normal((rows, cols))).astype(np.float32)
    side = int(np.sqrt(rows))
    pos = [Dimension("X", "m", side), Dimension("Y", "m", rows // side)]
    with h5py.File(path, "w") as f:
        write_main(f.create_group("Measurement_000/Channel_000"), "Raw_Data", data, pos,
                   Dimension("Energy", "eV", cols), "Counts", "a.u.", chunks=(4096, cols))  # fmt: skip
    return truth


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    from sklearn.metrics import adjusted_rand_score

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=65536)
    ap.add_argument("--cols", type=int, default=512)
    ap.add_argument("-k", type=int, default=4, help="clusters (default 4)")
    ap.add_argument("--quick", action="store_true", help="4096 x 128: a smoke run")
    ap.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    ap.add_argument("--out", default="bench_out", help="folder of the JSON / Markdown results")
    args = ap.parse_args(argv)
    rows, cols = (4096, 128) if args.quick else (args.rows, args.cols)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = tmp / "spectra.h5"
        truth = make_file(path, rows, cols, args.k)
        peer_script = tmp / "peer.py"
        peer_script.write_text(PEER)
        labels_file = tmp / "peer_labels.npy"
        env = {**os.environ, "PYCRO_GPU_BACKEND": args.backend}
        t_peer = timed([sys.executable, str(peer_script), str(path), str(args.k), str(labels_file)])
        t_ours = timed(
            [sys.executable, "-m", "pycro_gpu.cli", "cluster", str(path), "-n", str(args.k), "-q"], env
        )
        mb_script = tmp / "minibatch.py"
        mb_script.write_text(MINIBATCH)
        mb_file = tmp / "minibatch_labels.npy"
        t_mb = timed([sys.executable, str(mb_script), str(path), str(args.k), str(mb_file), args.backend])
        peer = np.load(labels_file)
        minibatch = np.load(mb_file)
        with h5py.File(path, "r") as f:
            ours = f[f"{RAW}-Cluster_000/Labels"][()][:, 0]
            features = str(f[f"{RAW}-Cluster_000"].attrs["features"])
    result = {
        "rows": rows,
        "cols": cols,
        "k": args.k,
        "backend": args.backend,
        "peer_seconds": t_peer,
        "pycro_gpu_seconds": t_ours,
        "speedup": t_peer / t_ours,
        "ari_vs_sklearn": float(adjusted_rand_score(ours, peer)),
        "ari_vs_truth": float(adjusted_rand_score(ours, truth)),
        "sklearn_ari_vs_truth": float(adjusted_rand_score(peer, truth)),
        "features": features,
        "minibatch_seconds": t_mb,
        "minibatch_ari_vs_sklearn": float(adjusted_rand_score(minibatch, peer)),
        "minibatch_ari_vs_truth": float(adjusted_rand_score(minibatch, truth)),
    }
    peer_row = (
        f"| h5py read + scikit-learn KMeans(n_init=10) on the spectra | {t_peer:.2f} | 1.000 "
        f"| {result['sklearn_ari_vs_truth']:.3f} |"
    )
    our_row = (
        f"| `pycro-gpu cluster -n {args.k}` ({features}) | {t_ours:.2f} | {result['ari_vs_sklearn']:.3f} "
        f"| {result['ari_vs_truth']:.3f} |"
    )
    mb_row = (
        f"| array-API mini-batch KMeans streamed from the file (spectra, {args.backend}) | {t_mb:.2f} "
        f"| {result['minibatch_ari_vs_sklearn']:.3f} | {result['minibatch_ari_vs_truth']:.3f} |"
    )
    table = "\n".join(
        [
            f"## Clustering {rows} x {cols} float32, k = {args.k} (whole processes, file to file)",
            "",
            "| contender | seconds | ARI vs scikit-learn | ARI vs truth |",
            "|---|---:|---:|---:|",
            peer_row,
            our_row,
            mb_row,
            "",
            f"speed-up: {result['speedup']:.2f}x",
        ]
    )
    print(table)
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    (out / f"bench_cluster_{rows}x{cols}_{args.backend}.json").write_text(json.dumps(result, indent=2))
    (out / f"bench_cluster_{rows}x{cols}_{args.backend}.md").write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
