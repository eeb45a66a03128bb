"""``pycro-gpu fit sho|loop|peaks|relaxation FILE``: batch fits of a USID file, streamed and resumable.

``sho``: band-excitation spectra; ``loop``: 9-parameter hysteresis loops; ``peaks``: Gaussian /
Lorentzian / pseudo-Voigt peaks on a linear background (``--shape``, ``--n-peaks``); ``relaxation``:
exponential, double- or stretched-exponential decays (``--decay``). Peaks and relaxation fit the curve
of every position over the dataset's spectroscopic dimension (energy, bias, time...).
"""

from __future__ import annotations

import argparse

from ._options import add_file_options, call_read_only_first, executor, write_figures

HELP = "fit SHO spectra, hysteresis loops, peaks or relaxation curves of a USID file (streamed, resumable)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model",
        choices=("sho", "loop", "peaks", "relaxation"),
        help="sho: band-excitation spectra; loop: 9-parameter loops; peaks, relaxation: a curve per position",
    )
    add_file_options(
        p,
        dataset_help="sho: complex Main dataset (default: the first with a Frequency dimension); loop: a "
        "real Main dataset of loops, or an SHO 'Fit' dataset whose A cos(phi) loops are fitted (default: "
        "the last SHO fit in the file, which must be finished)",
        plot_help="write maps of each fitted parameter, R^2 and the converged fits (PNG) into DIR",
    )
    p.add_argument("--maxiter", type=int, default=None, help="iteration limit per fit (an integer >= 1)")
    p.add_argument(
        "--shape",
        choices=("gaussian", "lorentzian", "pseudo_voigt"),
        default="gaussian",
        help="peaks: peak shape",
    )
    p.add_argument("--n-peaks", type=int, default=1, help="peaks: number of peaks (default 1)")
    p.add_argument(
        "--decay",
        choices=("exponential", "double_exponential", "stretched_exponential"),
        default="exponential",
        help="relaxation: model (default exponential)",
    )


def _find_sho_source(f):
    from ..errors import DataError
    from ..io.usid import find_main_datasets

    for dset in find_main_datasets(f):
        if "complex" in str(dset.dtype) and any("freq" in d.name.lower() for d in dset.spec_dims):
            return dset
    msg = f"{f.filename}: no complex Main dataset with a Frequency dimension (give --dataset)"
    raise DataError(msg)


def _find_sho_fit(f):
    """The ``Fit`` of the last SHO fit in ``f`` (finished or not: the loop fit refuses unfinished ones)."""
    import h5py

    from ..errors import DataError

    found = []

    def visit(name, obj):
        parent = name.rsplit("/", 1)[0] if "/" in name else ""
        is_compound = isinstance(obj, h5py.Dataset) and obj.dtype.names is not None
        if name.endswith("/Fit") and "-SHO_Fit_" in parent.rsplit("/", 1)[-1] and is_compound:
            found.append(name)

    f.visititems(visit)
    if not found:
        msg = f"{f.filename}: no SHO fit found (run 'pycro-gpu fit sho' first, or give --dataset)"
        raise DataError(msg)
    return f[sorted(found)[-1]]


def run(args: argparse.Namespace) -> int:
    import time

    from ..io.hdf5 import open_h5
    from ..io.usid import open_main

    kw = {"override": args.override, "results": args.results}
    if args.maxiter is not None:
        kw["maxiter"] = args.maxiter
    t0 = time.perf_counter()
    # read-only until the job writes its results (a loop fit first writes the projected loops)
    mode = "r" if args.model != "loop" else "r+"
    with executor(args) as ex, open_h5(args.file, mode) as f:
        kw["executor"] = ex
        if args.model == "sho":
            from ..fitting.dataset import fit_sho_dataset

            main = open_main(f, args.dataset) if args.dataset else _find_sho_source(f)
            res = call_read_only_first(lambda m: fit_sho_dataset(m, **kw), main)
        elif args.model in ("peaks", "relaxation"):
            from ..fitting.curves import fit_curves_dataset
            from ._options import find_main

            model = args.shape if args.model == "peaks" else args.decay
            n_peaks = args.n_peaks if args.model == "peaks" else 1
            res = call_read_only_first(
                lambda m: fit_curves_dataset(m, model=model, n_peaks=n_peaks, **kw),
                find_main(f, args.dataset),
            )
        else:
            from ..fitting.dataset import fit_loop_dataset

            # an SHO Fit (compound) is projected to its loops by the job, once it is known to be finished
            dset = open_main(f, args.dataset) if args.dataset else _find_sho_fit(f)
            res = fit_loop_dataset(dset, **kw)
    with open_h5(res.file, "r") as out:
        counts = status_counts(out[res.group])
        write_figures(args, "plot_fit", out[res.group])
    dt = time.perf_counter() - t0
    if not args.quiet:
        state = "reused" if res.reused else ("resumed" if res.resumed else "computed")
        print(f"{res.file}:{res.group}")
        print(f"  {state}: {res.n_computed} positions in {dt:.2f} s; {counts}")
    return 0


def status_counts(group) -> str:
    """``N fits: P% converged (C), U not converged, S skipped (non-finite data)`` of a fit results group.

    From the per-fit ``Status`` codes (see the group's ``status_codes`` attribute); groups written
    before ``Status`` existed count from ``Converged`` (nothing skipped).
    """
    import numpy as np

    from ..fitting import STATUS_CONVERGED, STATUS_NONFINITE

    if "Status" in group:
        codes = np.asarray(group["Status"][()]).reshape(-1)
    else:
        codes = np.where(np.asarray(group["Converged"][()]).reshape(-1) != 0, STATUS_CONVERGED, -1)
    n = int(codes.size)
    converged = int(np.count_nonzero(codes == STATUS_CONVERGED))
    skipped = int(np.count_nonzero(codes == STATUS_NONFINITE))
    share = converged / n if n else 0.0
    return (
        f"{n} fits: {share:.2%} converged ({converged}), {n - converged - skipped} not converged, "
        f"{skipped} skipped (non-finite data)"
    )
