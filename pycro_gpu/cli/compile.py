"""``pycro-gpu compile``: compile the kernels ahead of time into the on-disk cache (or clear it)."""

from __future__ import annotations

import argparse

HELP = "compile the numba kernels once for this machine (later runs load them from the cache)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--models",
        nargs="+",
        metavar="MODEL",
        default=None,
        help="fit models to compile (default: sho loop, the models the fit commands use)",
    )
    which.add_argument("--all", action="store_true", help="every built-in fit model")
    p.add_argument(
        "--samples",
        nargs="+",
        type=int,
        metavar="N",
        default=None,
        help="spectrum lengths to compile for (default: 136 520; longer spectra use other kernels)",
    )
    cuda = p.add_mutually_exclusive_group()
    cuda.add_argument("--cuda", dest="cuda", action="store_true", default=None, help="also the CUDA kernels")
    cuda.add_argument("--no-cuda", dest="cuda", action="store_false", help="CPU kernels only")
    p.add_argument("--clear", action="store_true", help="delete the compiled kernels from the cache and exit")


def run(args: argparse.Namespace) -> int:
    from ..backend import cupy_available
    from ..errors import BackendUnavailableError
    from ..kernels import cache, precompile

    if args.clear:
        cleared = cache.clear_cache()
        where = ", ".join(map(str, cleared)) if cleared else "nothing was cached"
        print(f"cleared the kernel cache: {where}")
        return 0
    if args.cuda and not cupy_available():
        msg = "--cuda needs a usable CUDA device (CUDA kernels are compiled for the GPU they run on)"
        raise BackendUnavailableError(msg)
    cuda = cupy_available() if args.cuda is None else args.cuda
    models = precompile.ALL_MODELS if args.all else (args.models or precompile.DEFAULT_MODELS)
    specs = precompile.kernel_specs(
        models=models, samples=args.samples or precompile.DEFAULT_SAMPLES, cuda=cuda
    )

    def report(item: precompile.CompiledKernel) -> None:
        if not args.quiet:
            state = "cached" if item.from_cache else f"compiled in {item.seconds:.1f} s"
            print(f"  {item.target:4s}  {item.description:48s} {state}", flush=True)

    if not args.quiet:
        print(f"compiling {len(specs)} kernels into {cache.cache_dirs()[0]}", flush=True)
    done = precompile.compile_kernels(specs, report)
    compiled = [d for d in done if not d.from_cache]
    print(
        f"{len(done)} kernels ready ({len(compiled)} compiled in {sum(d.seconds for d in compiled):.1f} s, "
        f"{len(done) - len(compiled)} already cached){'' if cuda else '; CUDA kernels: no CUDA device here'}"
    )
    return 0
