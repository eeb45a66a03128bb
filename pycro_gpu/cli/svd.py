"""``pycro-gpu svd FILE``: streamed truncated SVD of a USID Main dataset (``<Source>-SVD_NNN``).

Works on one Main dataset (``--dataset``, default the first ``Raw_Data``), writes its results group next
to it (the raw data are never modified), shows progress bars unless ``--quiet`` and can draw its figures
(``--plot DIR``).
"""

from __future__ import annotations

import argparse

from ._options import (
    add_components,
    add_file_options,
    results_group,
    run_dataset_job,
    summary_state,
    write_figures,
)

HELP = "streamed truncated SVD of a USID dataset (U, S, V written to <Source>-SVD_NNN)"


def add_dataset_options(p: argparse.ArgumentParser) -> None:
    """The file options of svd, decompose and cluster (default dataset: the first Raw_Data)."""
    add_file_options(
        p,
        dataset_help="path of the Main dataset (default: first Raw_Data)",
        plot_help="write figures (PNG) into DIR",
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .._lib.decomposition_methods import METHODS, SKETCH_TOL

    add_dataset_options(p)
    add_components(p, 16, "number of components (default 16)")
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


def run(args: argparse.Namespace) -> int:
    import time

    from ..decomposition import rebuild, svd_dataset

    t0 = time.perf_counter()
    res = run_dataset_job(
        args, svd_dataset, k=args.components, method=args.method, n_iter=args.n_iter, tol=args.tol
    )
    with results_group(res, "r" if args.rebuild is None else "r+") as grp:
        S = grp["S"][()]
        if not args.quiet:
            print(f"{res.file}:{res.group} ({summary_state(res)})")
            used, reads = grp.attrs.get("method_used", "?"), grp.attrs.get("reads", "?")
            line = f"method {used}, reads of the data {reads}"
            if "arithmetic" in grp.attrs:
                line += f", {grp.attrs['arithmetic']} products"
            if "error_estimate" in grp.attrs:
                line += f", estimated error {float(grp.attrs['error_estimate']):.1e}"
            print(f"{line}, {time.perf_counter() - t0:.2f} s")
            print("S: " + " ".join(f"{s:.5g}" for s in S))
        if args.rebuild is not None:
            out = rebuild(grp, components=args.rebuild, progress=not args.quiet)
            if not args.quiet:
                print(f"rebuilt from {args.rebuild} components -> {out.group}/Rebuilt_Data")
        write_figures(args, "plot_svd", grp)
    return 0
