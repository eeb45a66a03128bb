"""Command-line options of the Dask executor (argparse only: a command's ``--help`` imports no engine)."""

from __future__ import annotations

import argparse

__all__ = ["add_dask_arguments"]


def add_dask_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--scheduler``, ``--workers`` and ``--threads-per-worker`` to a command's parser."""
    group = parser.add_argument_group("Dask (optional; needs pip install 'pycro-gpu[dask]')")
    ex = group.add_mutually_exclusive_group()
    ex.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="run batches on this Dask scheduler (tcp://host:8786 or a scheduler .json file)",
    )
    ex.add_argument(
        "--workers",
        type=int,
        metavar="N",
        default=None,
        help="run batches on a local Dask cluster of N worker processes",
    )
    group.add_argument(
        "--threads-per-worker",
        type=int,
        metavar="T",
        default=1,
        help="threads per local Dask worker (default 1)",
    )
