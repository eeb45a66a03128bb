"""``pycro-gpu decompose FILE``: PCA / IncrementalPCA / TruncatedSVD / NMF / FastICA of a USID dataset."""

from __future__ import annotations

import argparse

from ._options import (
    add_components,
    old_spelling,
    results_group,
    run_dataset_job,
    summary_state,
    write_figures,
)
from .svd import add_dataset_options

HELP = "PCA / IncrementalPCA / TruncatedSVD / NMF / FastICA of a USID dataset"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .._lib.decomposition_methods import CAPABILITIES

    add_dataset_options(p)
    p.add_argument("--method", choices=tuple(CAPABILITIES), default="pca", help="estimator (default pca)")
    add_components(p, 8, "number of components (default 8)")
    old_spelling(p, "-n", "-k/--components", "components", type=int)
    p.add_argument("--seed", type=int, default=0, help="random state")


def run(args: argparse.Namespace) -> int:
    import time

    from ..decomposition import decompose_dataset

    t0 = time.perf_counter()
    res = run_dataset_job(
        args, decompose_dataset, method=args.method, n_components=args.components, seed=args.seed
    )
    with results_group(res) as grp:
        if not args.quiet:
            engine = grp.attrs.get("engine", "?")
            print(
                f"{res.file}:{res.group} ({summary_state(res)}, {engine}, {time.perf_counter() - t0:.2f} s)"
            )
        write_figures(args, "plot_decomposition", grp)
    return 0
