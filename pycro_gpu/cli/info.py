"""``pycro-gpu info FILE``: the Main datasets of a USID file and the results groups computed from them."""

from __future__ import annotations

import argparse

HELP = "list the Main datasets (N-D shape, dimensions, units) and results groups of a file"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="HDF5 (USID) file to describe; opened read-only")


def run(args: argparse.Namespace) -> int:
    from ..io.usid import describe_file

    print(describe_file(args.file))
    return 0
