"""The ``pycro-gpu`` command line.

Every command shares ``--backend``, ``--memory-mb`` and ``--quiet``. Errors print one line on stderr:
exit code 2 for usage errors (argparse), 1 for data, dependency and device errors.

Commands live in small modules ``pycro_gpu/_cli_<topic>.py`` that register themselves with
:func:`command`; this module finds them, so adding a command never edits this file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import __version__
from ._config import BACKENDS, config_context
from .errors import PycroGPUError

#: Registered commands: name -> (one-line help, add_arguments(parser), run(args) -> exit code).
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable]] = {}


def command(name: str, help_line: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register ``func(args) -> int`` as the sub-command ``name``."""

    def register(func: Callable) -> Callable:
        COMMANDS[name] = (help_line, add_arguments, func)
        return func

    return register


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--size",
        choices=("small", "medium", "large"),
        default="small",
        help="size of the synthetic dataset (default: small)",
    )
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the synthetic data")


@command("demo", "run the main job on embedded synthetic data and write the results", _demo_arguments)
def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(size=args.size, out=args.out, seed=args.seed, quiet=args.quiet)
    return 0


def _backend_info_arguments(p: argparse.ArgumentParser) -> None:
    return None


@command("backend", "show which compute backend would run and why", _backend_info_arguments)
def _backend_info(args: argparse.Namespace) -> int:
    from ._config import get_config
    from .backend import _cupy_status, get_namespace, namespace_name, resolve_backend

    cfg = get_config()
    usable, reason = _cupy_status()
    print(f"requested backend : {cfg['backend']}")
    print(f"cupy usable       : {'yes' if usable else 'no (' + reason + ')'}")
    print(f"active backend    : {resolve_backend()} ({namespace_name(get_namespace())})")
    print(f"memory budget     : {cfg['memory_mb']:g} MiB")
    return 0


def _load_command_modules() -> None:
    """Import every ``pycro_gpu._cli_*`` module: each registers its commands with :func:`command`.

    Command modules import only argparse-level code at import time; the work they call is imported
    inside the command function, so ``pycro-gpu --help`` stays fast.
    """
    import importlib
    import pkgutil

    import pycro_gpu

    for info in pkgutil.iter_modules(pycro_gpu.__path__):
        if info.name.startswith("_cli_"):
            importlib.import_module(f"pycro_gpu.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``pycro-gpu`` with every registered command."""
    _load_command_modules()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="compute backend (default: PYCRO_GPU_BACKEND or auto)",
    )
    common.add_argument(
        "--memory-mb",
        type=float,
        default=None,
        help="working-memory budget in MiB (default: PYCRO_GPU_MEMORY_MB or 1024)",
    )
    common.add_argument("--quiet", "-q", action="store_true", help="no progress bars or summaries")
    parser = argparse.ArgumentParser(
        prog="pycro-gpu",
        description="USID/HDF5 microscopy data: translate, process and analyse on CPU or GPU.",
    )
    parser.add_argument("--version", action="version", version=f"pycro-gpu {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_line, add_arguments, func) in sorted(COMMANDS.items()):
        p = sub.add_parser(name, help=help_line, description=help_line, parents=[common])
        add_arguments(p)
        p.set_defaults(func=func)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pycro-gpu`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        # scoped: main() called from Python (tests, notebooks) leaves the caller's configuration as it was
        with config_context(
            backend=args.backend, memory_mb=args.memory_mb, progress=False if args.quiet else None
        ):
            return int(args.func(args) or 0)
    except PycroGPUError as exc:
        print(f"pycro-gpu {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"pycro-gpu {args.command}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"pycro-gpu {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    # Run through the imported module: command modules register with ``pycro_gpu.cli``, not ``__main__``.
    from pycro_gpu.cli import main as _main

    sys.exit(_main())
