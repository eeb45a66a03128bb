"""``pycro-gpu image FILE``: flatten and FFT-filter an image (or an image stack) of a USID file.

Writes ``<Source>-Image_NNN/Processed`` (the source's dimensions); ``--flatten plane|line`` then
``--fft low|high|band --cutoff C [C2]`` (cycles per pixel, Gaussian or ``--mask butterworth``).
"""

from __future__ import annotations

import argparse

from ._options import add_file_options, results_group, run_dataset_job, summary_state, write_figures

HELP = "flatten (plane / lines) and FFT-filter images; writes <Source>-Image_NNN/Processed"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .._lib.image_methods import FFT_KINDS, FLATTEN, MASKS

    add_file_options(
        p,
        dataset_help="path of the Main dataset (default: first Raw_Data)",
        plot_help="write a figure of the image before and after (PNG) into DIR",
    )
    p.add_argument(
        "--flatten", choices=FLATTEN, default=None, help="subtract a plane, or a polynomial per line"
    )
    p.add_argument("--line-order", type=int, default=1, help="degree of the line polynomial (default 1)")
    p.add_argument("--fft", choices=FFT_KINDS, default=None, help="2-D FFT filter after flattening")
    p.add_argument("--cutoff", type=float, nargs="+", default=None, help="cycles per pixel (two for band)")
    p.add_argument("--mask", choices=MASKS, default="gaussian", help="FFT mask shape (default gaussian)")


def run(args: argparse.Namespace) -> int:
    import time

    from ..filters.image_dataset import process_image_dataset

    t0 = time.perf_counter()
    res = run_dataset_job(
        args, process_image_dataset, flatten=args.flatten, line_order=args.line_order, fft=args.fft,
        cutoff=None if args.cutoff is None else tuple(args.cutoff), mask=args.mask,
    )  # fmt: skip
    with results_group(res) as grp:
        if not args.quiet:
            ops = grp.attrs.get("operations", "")
            print(f"{res.file}:{res.group} ({summary_state(res)}, {time.perf_counter() - t0:.2f} s): {ops}")
        write_figures(args, "plot_image", grp)
    return 0
