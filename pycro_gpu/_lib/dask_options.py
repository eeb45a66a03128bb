"""Command-line options of the Dask executor (argparse only: a command's ``--help`` imports no engine)."""

from __future__ import annotations

import argparse

__all__ = ["add_dask_arguments", "check_gpus"]


def check_gpus(gpus: int | str) -> int | str:
    """``gpus`` as a number of GPUs (int >= 1) or ``"all"``; ``ValueError`` naming the bad value otherwise.

    Examples
    --------
    >>> check_gpus("2"), check_gpus("ALL")
    (2, 'all')
    """
    text = str(gpus).strip().lower()
    if text == "all":
        return "all"
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        msg = f"gpus must be a positive integer or 'all', got {gpus!r}"
        raise ValueError(msg)
    return count


def _gpus_argument(text: str) -> int | str:
    try:
        return check_gpus(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("gpus must", "must")) from None


def add_dask_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--scheduler``, ``--workers``, ``--gpus`` and ``--threads-per-worker`` to a command's parser.

    The first three exclude each other (one argparse error names both options).
    """
    group = parser.add_argument_group(
        "Dask (optional; needs pip install 'pycro-gpu[dask]', --gpus needs 'pycro-gpu[multigpu]')"
    )
    ex = group.add_mutually_exclusive_group()
    ex.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="run batches on this Dask scheduler (tcp://host:8786 or a scheduler .json file); workers "
        "resolve --backend themselves (auto: CuPy on a worker with a GPU)",
    )
    ex.add_argument(
        "--workers",
        type=int,
        metavar="N",
        default=None,
        help="run batches on a local Dask cluster of N worker processes",
    )
    ex.add_argument(
        "--gpus",
        type=_gpus_argument,
        metavar="N|all",
        default=None,
        help="run batches on a local dask-cuda cluster of one worker per GPU (N of the visible GPUs, or "
        "all of them); each worker computes on its own GPU",
    )
    group.add_argument(
        "--threads-per-worker",
        type=int,
        metavar="T",
        default=1,
        help="threads per local Dask worker (default 1)",
    )
