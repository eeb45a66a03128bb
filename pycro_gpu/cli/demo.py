"""``pycro-gpu demo``: the main job on embedded synthetic data, with an HTML report."""

from __future__ import annotations

import argparse

HELP = "run the main job on embedded synthetic data and write the results"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--size",
        choices=("small", "medium", "large"),
        default="small",
        help="size of the synthetic dataset (default: small)",
    )
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the synthetic data")


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(size=args.size, out=args.out, seed=args.seed, quiet=args.quiet)
    return 0
