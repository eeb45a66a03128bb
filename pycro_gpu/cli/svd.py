"""Commands ``pycro-gpu svd``, ``pycro-gpu decompose`` and ``pycro-gpu cluster``.

Each works on one USID Main dataset of an HDF5 file (``--dataset``, default the first
``Raw_Data``), writes its results group next to it (the raw data are never modified), shows progress
bars unless ``--quiet`` and can draw its figures (``--plot DIR``).
"""

from __future__ import annotations

import argparse
import time

from .cli import command


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="HDF5 file with a USID Main dataset (opened for appending results)")
    p.add_argument("--dataset", default=None, help="path of the Main dataset (default: first Raw_Data)")
    p.add_argument("--plot", default=None, metavar="DIR", help="write figures (PNG) into DIR")
    p.add_argument("--override", action="store_true", help="compute again even if results exist")


def _find_main(f, path):
    from .errors import USIDError
    from .io.usid import USIDataset, find_main_datasets

    if path is not None:
        if path not in f:
            msg = f"{f.filename}: no dataset {path!r}"
            raise USIDError(msg)
        return USIDataset(f[path])
    mains = find_main_datasets(f)
    if not mains:
        msg = f"{f.filename}: no USID Main dataset found; pass --dataset"
        raise USIDError(msg)
    raw = [m for m in mains if m.name.rsplit("/", 1)[-1] == "Raw_Data"]
    return (raw or mains)[0]


def _open(path):
    import h5py

    return h5py.File(path, "r+")


def _svd_arguments(p: argparse.ArgumentParser) -> None:
    from .decomposition._svd_streamed import METHODS, SKETCH_TOL

    _common(p)
    p.add_argument("-k", "--components", type=int, default=16, help="number of components (default 16)")
    p.add_argument(
        "--method",
        choices=METHODS,
        default="auto",
        help="auto (default): tall data sketch (one read when the error estimate meets --tol, else gram),"
        " wide data randomized",
    )
    p.add_argument("--n-iter", type=int, default=4, help="power iterations of the randomized method")
    p.add_argument(
        "--tol",
        type=float,
        default=SKETCH_TOL,
        help="sketch: accepted estimate of the relative error of the singular values"
        f" (default {SKETCH_TOL:g})",
    )
    p.add_argument("--rebuild", type=int, default=None, metavar="N", help="also write Rebuilt_Data from N")


@command(
    "svd", "streamed truncated SVD of a USID dataset (U, S, V written to <Source>-SVD_NNN)", _svd_arguments
)
def _svd(args: argparse.Namespace) -> int:
    from .decomposition import rebuild, svd_dataset

    t0 = time.perf_counter()
    with _open(args.file) as f:
        main = _find_main(f, args.dataset)
        grp = svd_dataset(
            main,
            args.components,
            method=args.method,
            n_iter=args.n_iter,
            tol=args.tol,
            override=args.override,
        )
        S = grp["S"][()]
        if not args.quiet:
            print(f"{main.name} {main.shape} {main.dtype} -> {grp.name}")
            used, reads = grp.attrs.get("method_used", "?"), grp.attrs.get("reads", "?")
            print(f"method {used}, reads of the data {reads}, {time.perf_counter() - t0:.2f} s")
            print("S: " + " ".join(f"{s:.5g}" for s in S))
        if args.rebuild is not None:
            out = rebuild(grp, args.rebuild)
            if not args.quiet:
                print(f"rebuilt from {args.rebuild} components -> {out.name}")
        if args.plot:
            from .viz.decomposition import plot_svd

            for p in plot_svd(grp, args.plot):
                if not args.quiet:
                    print(f"wrote {p}")
    return 0


def _decompose_arguments(p: argparse.ArgumentParser) -> None:
    from .decomposition._decompose import CAPABILITIES

    _common(p)
    p.add_argument("--method", choices=tuple(CAPABILITIES), default="pca", help="estimator (default pca)")
    p.add_argument("-n", "--components", type=int, default=8, help="number of components (default 8)")
    p.add_argument("--seed", type=int, default=0, help="random state")


@command(
    "decompose", "PCA / IncrementalPCA / TruncatedSVD / NMF / FastICA of a USID dataset", _decompose_arguments
)
def _decompose(args: argparse.Namespace) -> int:
    from .decomposition import decompose_dataset

    t0 = time.perf_counter()
    with _open(args.file) as f:
        main = _find_main(f, args.dataset)
        grp = decompose_dataset(main, args.method, args.components, seed=args.seed, override=args.override)
        if not args.quiet:
            engine = grp.attrs.get("engine", "?")
            print(f"{main.name} -> {grp.name} ({engine}, {time.perf_counter() - t0:.2f} s)")
        if args.plot:
            from .viz.decomposition import plot_decomposition

            for p in plot_decomposition(grp, args.plot):
                if not args.quiet:
                    print(f"wrote {p}")
    return 0


def _cluster_arguments(p: argparse.ArgumentParser) -> None:
    from .cluster import CAPABILITIES

    _common(p)
    p.add_argument("-n", "--clusters", type=int, default=4, help="number of clusters (default 4)")
    p.add_argument(
        "--method", choices=tuple(CAPABILITIES), default="kmeans", help="clusterer (default kmeans)"
    )
    p.add_argument(
        "--components",
        type=int,
        default=None,
        metavar="K",
        help="cluster the first K SVD abundance maps instead of the spectra",
    )
    p.add_argument("--seed", type=int, default=0, help="random state")


@command("cluster", "cluster the positions of a USID dataset (Labels, Mean_Response)", _cluster_arguments)
def _cluster(args: argparse.Namespace) -> int:
    from .cluster import cluster_dataset

    t0 = time.perf_counter()
    with _open(args.file) as f:
        main = _find_main(f, args.dataset)
        grp = cluster_dataset(
            main,
            args.clusters,
            args.method,
            components=args.components,
            seed=args.seed,
            override=args.override,
        )
        if not args.quiet:
            counts = grp["Counts"][()].tolist()
            engine = grp.attrs.get("engine", "?")
            print(f"{main.name} -> {grp.name} ({engine}, {time.perf_counter() - t0:.2f} s)")
            print(f"positions per cluster: {counts}")
        if args.plot:
            from .viz.decomposition import plot_clusters

            for p in plot_clusters(grp, args.plot):
                if not args.quiet:
                    print(f"wrote {p}")
    return 0
