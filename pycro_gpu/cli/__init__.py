"""The ``pycro-gpu`` command line.

Every command shares ``--backend``, ``--memory-mb``, ``-q/--quiet`` and ``-v/--verbose``; every file
command also ``--dataset``, ``--results``, ``--override``, ``--plot DIR`` and ``--workers``/``--scheduler``
(see :mod:`pycro_gpu.cli._options`). Every error prints one line on stderr, never a traceback: exit code 2
for usage errors, 1 for data, dependency, device, memory and permission errors and for errors of the
HDF5 library on a damaged file; an error that no bad input explains adds "(run with PYCRO_GPU_DEBUG=1 for
the traceback)", and with ``PYCRO_GPU_DEBUG=1`` every error prints its traceback first. An input file
on which the HDF5 library would crash is refused with one line (:mod:`pycro_gpu.io.probe`). INFO
records of the ``pycro_gpu`` logger print on stderr as ``pycro-gpu: <message>`` unless ``-q``; NumPy's
floating-point warnings and DEBUG records only with ``-v``.
SIGTERM ends a command as Ctrl-C does (temporary files and half-made results removed on the way)
with one line ``pycro-gpu COMMAND: terminated`` and exit code 143.

Commands are the modules named in :data:`COMMANDS`; each defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> exit code``, and imports the work it calls inside
``run``, so that ``pycro-gpu --help`` loads no numba, scikit-learn, scikit-image or matplotlib.
Adding a command is one line in the table.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

from .. import __version__
from .._config import config_context, get_config
from ._options import (
    check_memory_budget,
    common_parser,
    each_file,
    log_to_stderr,
    probe_inputs,
    report_error,
    report_kernel_compilation,
)

#: The commands, each a module of this package.
COMMANDS: tuple[str, ...] = (
    "backend",
    "cluster",
    "compile",
    "decompose",
    "demo",
    "export",
    "filter",
    "fit",
    "image",
    "info",
    "svd",
    "translate",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``pycro-gpu`` with every command of :data:`COMMANDS`."""
    common = common_parser()
    parser = argparse.ArgumentParser(
        prog="pycro-gpu",
        description="USID/HDF5 microscopy data: translate, process and analyse on CPU or GPU.",
    )
    parser.add_argument("--version", action="version", version=f"pycro-gpu {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP, parents=[common])
        module.add_arguments(p)
        run = each_file(module.run) if p.get_default("each_file") else module.run
        p.set_defaults(run=run, parser=p, trailing=getattr(module, "TRAILING", ()))
    return parser


def _trailing(args: argparse.Namespace, extra: list[str]) -> None:
    """Give positionals that came after options (``translate IN --format F OUT``) to the command."""
    for dest in args.trailing:
        if extra and getattr(args, dest) is None and not extra[0].startswith("-"):
            setattr(args, dest, extra.pop(0))
    if extra:
        args.parser.error(f"unrecognized arguments: {' '.join(extra)}")


class _Terminated(BaseException):
    """SIGTERM arrived during a command (a BaseException, as KeyboardInterrupt: cleanups run, nothing
    catches it on the way)."""


#: exit code of a command ended by SIGTERM (128 + 15, as a shell reports it)
TERMINATED_EXIT_CODE = 128 + signal.SIGTERM


@contextlib.contextmanager
def _sigterm_ends_command() -> Iterator[None]:
    """While the command runs, SIGTERM raises :class:`_Terminated` in the main thread.

    ``finally`` blocks and context managers then remove temporary files and half-made results groups
    as they do for Ctrl-C. A second SIGTERM during that cleanup is ignored. The previous handler is
    restored afterwards (``main()`` called from Python leaves the caller's handler as it was).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = []

    def handler(signum: int, frame: object) -> None:
        if not raised:
            raised.append(signum)
            raise _Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pycro-gpu`` console script; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        parser.print_help()
        return 2
    _trailing(args, extra)
    try:
        # scoped: main() called from Python (tests, notebooks) leaves the caller's configuration as it was
        with (
            _sigterm_ends_command(),
            log_to_stderr(args.quiet, args.verbose),
            report_kernel_compilation(args.quiet),
            config_context(
                backend=args.backend, memory_mb=args.memory_mb, progress=False if args.quiet else None
            ),
        ):
            if args.command != "backend":  # which reports the configuration, whatever it is
                check_memory_budget(get_config()["memory_mb"], given=args.memory_mb is not None)
            probe_inputs(args)
            return int(args.run(args) or 0)
    except _Terminated:
        print(f"pycro-gpu {args.command}: terminated", file=sys.stderr)
        return TERMINATED_EXIT_CODE
    except (Exception, KeyboardInterrupt) as exc:  # every failure is one line (SystemExit passes)
        memory_mb = args.memory_mb if args.memory_mb is not None else get_config()["memory_mb"]
        files = getattr(args, "files", None) or []
        file = (
            getattr(args, "file", None)
            or getattr(args, "input", None)
            or (files[0] if len(files) == 1 else None)
        )
        return report_error(args.command, exc, file=file, memory_mb=memory_mb)
