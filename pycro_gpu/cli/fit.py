"""``pycro-gpu fit sho|loop FILE [--dataset PATH]``: batch fits of a USID file, streamed and resumable."""

from __future__ import annotations

import argparse

from ._options import add_file_options, call_read_only_first, executor, write_figures

HELP = "fit SHO spectra or hysteresis loops of a USID file (streamed, resumable)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model", choices=("sho", "loop"), help="sho: band-excitation spectra; loop: 9-parameter loops"
    )
    add_file_options(
        p,
        dataset_help="sho: complex Main dataset (default: the first with a Frequency dimension); loop: a "
        "real Main dataset of loops, or an SHO 'Fit' dataset whose A cos(phi) loops are fitted (default: "
        "the last SHO fit in the file)",
        plot_help="write a map of each fitted parameter (PNG) into DIR",
    )
    p.add_argument("--maxiter", type=int, default=None, help="iteration limit per fit")


def _find_sho_source(f):
    from ..errors import DataError
    from ..io.usid import find_main_datasets

    for dset in find_main_datasets(f):
        if "complex" in str(dset.dtype) and any("freq" in d.name.lower() for d in dset.spec_dims):
            return dset
    msg = f"{f.filename}: no complex Main dataset with a Frequency dimension (give --dataset)"
    raise DataError(msg)


def _find_sho_fit(f):
    from ..errors import DataError

    found = []

    def visit(name, obj):
        parent = name.rsplit("/", 1)[0] if "/" in name else ""
        if name.endswith("/Fit") and "-SHO_Fit_" in parent.rsplit("/", 1)[-1] and obj.dtype.names:
            found.append(name)

    f.visititems(visit)
    if not found:
        msg = f"{f.filename}: no SHO fit found (run 'pycro-gpu fit sho' first, or give --dataset)"
        raise DataError(msg)
    return f[sorted(found)[-1]]


def run(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from ..io.hdf5 import open_h5
    from ..io.usid import USIDataset, open_main

    kw = {"override": args.override, "results": args.results}
    if args.maxiter is not None:
        kw["maxiter"] = args.maxiter
    t0 = time.perf_counter()
    # read-only until the SHO fit writes its results (a loop fit first writes the projected loops)
    mode = "r" if args.model == "sho" else "r+"
    with executor(args) as ex, open_h5(args.file, mode) as f:
        kw["executor"] = ex
        if args.model == "sho":
            from ..fitting.dataset import fit_sho_dataset

            main = open_main(f, args.dataset) if args.dataset else _find_sho_source(f)
            res = call_read_only_first(lambda m: fit_sho_dataset(m, **kw), main)
        else:
            from ..fitting.dataset import fit_loop_dataset, project_loops

            dset = f[args.dataset] if args.dataset else _find_sho_fit(f)
            if dset.dtype.names:
                dset = project_loops(dset)
            main = dset if isinstance(dset, USIDataset) else USIDataset(dset)
            res = fit_loop_dataset(main, **kw)
    with open_h5(res.file, "r") as out:
        conv = float(np.mean(out[res.group]["Converged"][()]))
        n = int(out[res.group]["Converged"].size)
        write_figures(args, "plot_fit", out[res.group])
    dt = time.perf_counter() - t0
    if not args.quiet:
        state = "reused" if res.reused else ("resumed" if res.resumed else "computed")
        print(f"{res.file}:{res.group}")
        print(f"  {state}: {res.n_computed} positions in {dt:.2f} s; {n} fits, {conv:.2%} converged")
    return 0
