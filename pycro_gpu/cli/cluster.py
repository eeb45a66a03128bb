"""``pycro-gpu cluster FILE``: cluster the positions of a USID dataset (``Labels``, ``Mean_Response``)."""

from __future__ import annotations

import argparse

from ._options import add_components, results_group, run_dataset_job, summary_state, write_figures
from .svd import add_dataset_options

HELP = "cluster the positions of a USID dataset (Labels, Mean_Response)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .._lib.cluster_methods import CAPABILITIES

    add_dataset_options(p)
    p.add_argument("-n", "--clusters", type=int, default=4, help="number of clusters (default 4)")
    p.add_argument(
        "--method", choices=tuple(CAPABILITIES), default="kmeans", help="clusterer (default kmeans)"
    )
    add_components(
        p,
        None,
        "cluster the first K SVD scores instead of the spectra (default: 16 for spectra of 64 points or "
        "more, else the spectra)",
    )
    p.add_argument("--spectra", action="store_true", help="cluster the spectra themselves (no SVD)")
    p.add_argument("--seed", type=int, default=0, help="random state")


def run(args: argparse.Namespace) -> int:
    import time

    from ..cluster import cluster_dataset

    t0 = time.perf_counter()
    res = run_dataset_job(
        args,
        cluster_dataset,
        n_clusters=args.clusters,
        method=args.method,
        components=None if args.spectra else (args.components or "auto"),
        seed=args.seed,
    )
    with results_group(res) as grp:
        if not args.quiet:
            counts = grp["Counts"][()].tolist()
            engine = grp.attrs.get("engine", "?")
            print(
                f"{res.file}:{res.group} ({summary_state(res)}, {engine}, {time.perf_counter() - t0:.2f} s)"
            )
            print(f"positions per cluster: {counts}")
        write_figures(args, "plot_clusters", grp)
    return 0
