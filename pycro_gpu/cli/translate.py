"""``pycro-gpu translate IN [OUT]``: instrument file to USID HDF5; ``--list`` shows the formats.

Options may come before or after the files (``translate IN --format F OUT``). Errors (corrupt or
unsupported input, missing reader package, existing output) print one line and exit with code 1; no
partial output file is left behind.
"""

from __future__ import annotations

import argparse

from ._options import old_spelling

HELP = "translate an instrument file (IBW, GWY, Nanonis, DM, TIFF ...) to USID HDF5"
#: positionals that may also follow the options
TRAILING = ("input", "output")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", nargs="?", help="instrument file to translate")
    p.add_argument("output", nargs="?", help="USID .h5 file to write (default: INPUT with suffix .h5)")
    p.add_argument("--out", default=None, metavar="OUT", help="the same as OUTPUT")
    p.add_argument("--list", action="store_true", help="list the supported formats and exit")
    p.add_argument("--format", default=None, help="format name (see --list); default: detect")
    p.add_argument("--override", action="store_true", help="replace an existing output file")
    old_spelling(p, "--overwrite", "--override", "override", nargs=0, const=True)


def run(args: argparse.Namespace) -> int:
    from ..errors import DataError
    from ..io.translators import list_formats, translate

    if args.list:
        width = max(len(f.name) for f in list_formats())
        for f in list_formats():
            state = "" if f.available() else "  [reader not installed: pip install 'pycro-gpu[io]']"
            print(f"{f.name:<{width}}  {' '.join(f.extensions):<26} {f.description}{state}")
        return 0
    if args.input is None:
        msg = "give an input file (or --list to see the supported formats)"
        raise DataError(msg)
    if args.out is not None and args.output is not None and args.out != args.output:
        msg = f"give the output once: OUTPUT {args.output!r} and --out {args.out!r} differ"
        raise ValueError(msg)
    out = translate(args.input, args.out or args.output, format=args.format, overwrite=args.override)
    if not args.quiet:
        print(out)
    return 0
