"""``pycro-gpu filter FILE``: frequency-filter every signal of a USID Main dataset (G-mode).

Example::

    pycro-gpu filter scan.h5 --low-pass 200e3 --harmonics 62.5e3 4e3 5 --noise-tolerance 1e-4 \\
        --plot figures

writes ``<Raw_Data>-FFT_Filtering_NNN`` next to the raw dataset (or into ``--results OUT.h5``), resuming
an interrupted run and reusing a finished one with the same parameters.
"""

from __future__ import annotations

import argparse

from ._options import (
    add_file_options,
    call_read_only_first,
    deprecated,
    executor,
    require_numbers,
    results_elsewhere,
)

HELP = "frequency-filter every signal of a Main dataset (G-mode: low pass, harmonics ...)"
DEFAULT_DATASET = "/Measurement_000/Channel_000/Raw_Data"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_file_options(
        p,
        dataset_help=f"Main dataset to filter (default {DEFAULT_DATASET} or the only one)",
        plot_help="write a before/after figure of one position (PNG) into DIR",
    )
    p.add_argument(
        "--samp-rate", type=float, default=None, help="sampling rate in Hz (default: from the time axis)"
    )
    p.add_argument("--low-pass", type=float, metavar="F", help="low-pass cut-off frequency (Hz)")
    p.add_argument("--roll-off", type=float, default=0.05, help="low-pass roll-off fraction (default 0.05)")
    p.add_argument(
        "--harmonics",
        nargs=3,
        type=float,
        metavar=("F1", "BW", "N"),
        help="keep N harmonics of F1 (Hz), each in a band BW (Hz) wide",
    )
    p.add_argument("--band-pass", nargs=2, type=float, metavar=("FC", "WIDTH"), help="band-pass (Hz)")
    p.add_argument("--fir", action="store_true", help="band-pass as a windowed FIR response, not a boxcar")
    p.add_argument("--fir-taps", type=int, default=1999, help="FIR taps (default 1999)")
    p.add_argument(
        "--noise-band",
        nargs=2,
        type=float,
        action="append",
        metavar=("F", "WIDTH"),
        help="remove a noise band at F (Hz), WIDTH wide; repeatable",
    )
    p.add_argument("--noise-tolerance", type=float, default=None, help="noise-floor threshold in (0, 1)")
    p.add_argument("--condensed", action="store_true", help="also write Condensed_Data (passed bins)")
    p.add_argument("--no-filtered", action="store_true", help="do not write Filtered_Data")
    p.add_argument("--batch-rows", type=int, default=None, help="positions per batch (default: from memory)")
    p.add_argument("--plot-position", type=int, default=0, help="position drawn by --plot (default 0)")


def _main_dataset(f, path):
    from ..errors import DataError
    from ..io.usid import find_main_datasets, open_main

    if path is not None:
        return open_main(f, path)
    if DEFAULT_DATASET in f:
        return open_main(f, DEFAULT_DATASET)
    mains = find_main_datasets(f)
    if len(mains) != 1:
        names = [m.name for m in mains]
        msg = f"{f.filename}: give --dataset; Main datasets in the file: {names or 'none'}"
        raise DataError(msg)
    return mains[0]


def build_filters(args: argparse.Namespace, n: int, samp_rate: float) -> list:
    """Frequency filters described by the command-line options (possibly none).

    Refuses signals of fewer than two samples (an image stored one value per position has no time axis).
    """
    from ..errors import DataError
    from ..filters import BandPassFilter, HarmonicPassFilter, LowPassFilter, NoiseBandFilter

    if n < 2:
        msg = (
            f"the dataset has {n} sample per position (an image, not time series): the signal filter needs a "
            "time axis; filter images with `pycro-gpu image FILE --fft low --cutoff C`"
        )
        raise DataError(msg)
    filters = []
    if args.low_pass is not None:
        filters.append(LowPassFilter(n, samp_rate, args.low_pass, args.roll_off))
    if args.harmonics is not None:
        f1, bw, num = args.harmonics
        if not float(num).is_integer():
            msg = f"--harmonics N must be a whole number, got {num!r}"
            raise ValueError(msg)
        filters.append(HarmonicPassFilter(n, samp_rate, f1, bw, int(num)))
    if args.band_pass is not None:
        fc, width = args.band_pass
        filters.append(BandPassFilter(n, samp_rate, fc, width, fir=args.fir, fir_taps=args.fir_taps))
    if args.noise_band:
        freqs = [fb[0] for fb in args.noise_band]
        widths = [fb[1] for fb in args.noise_band]
        filters.append(NoiseBandFilter(n, samp_rate, freqs, widths))
    return filters


def _plot_path(args: argparse.Namespace) -> str:
    """The PNG that ``--plot`` asks for: ``DIR/filter_position_<P>.png`` (old spelling: a .png path)."""
    import os

    if args.plot.lower().endswith(".png"):
        deprecated(
            args.parser.prog,
            "--plot FILE.png",
            f"--plot DIR (writes DIR/filter_position_{args.plot_position}.png)",
        )
        return args.plot
    return os.path.join(args.plot, f"filter_position_{args.plot_position}.png")


def _signal_filter(args: argparse.Namespace, main):
    """The SignalFilter of the command-line options on ``main``."""
    from ..errors import DataError
    from ..filters import SignalFilter, sampling_rate_of

    require_numbers(main, "filtering")
    samp_rate = args.samp_rate if args.samp_rate is not None else sampling_rate_of(main)
    filters = build_filters(args, int(main.shape[1]), samp_rate)
    if not filters and args.noise_tolerance is None:
        msg = (
            "give at least one filter (--low-pass, --harmonics, --band-pass, --noise-band) "
            "or --noise-tolerance"
        )
        raise DataError(msg)
    return SignalFilter(
        main,
        filters or None,
        args.noise_tolerance,
        write_filtered=not args.no_filtered,
        write_condensed=args.condensed,
    )


def run(args: argparse.Namespace) -> int:
    from ..io.hdf5 import open_h5

    other = results_elsewhere(args)

    def compute(main):
        sf = _signal_filter(args, main)
        with executor(args) as ex:
            return sf.compute(
                results=args.results if other else None,
                batch_rows=args.batch_rows,
                executor=ex,
                override=args.override,
                progress=None if not args.quiet else False,
            )

    # read-only until the filter writes its results into the file
    with open_h5(args.file, "r") as f:
        res = call_read_only_first(compute, _main_dataset(f, args.dataset))
    if args.plot:
        path = _plot_path(args)
        with open_h5(args.file, "r") as f:
            _signal_filter(args, _main_dataset(f, args.dataset)).test(args.plot_position, path=path)
        if not args.quiet:
            print(f"wrote {path}")
    if not args.quiet:
        state = "reused" if res.reused else ("resumed" if res.resumed else "written")
        print(f"{res.file}:{res.group} ({state}; {res.n_computed} positions computed)")
    return 0
