"""On-disk cache of the compiled kernels: every kernel compiles at most once per machine.

numba's ``cache=True`` identifies a function by its module, qualified name and bytecode, and the
contents of its closure cells. The kernels here are specialised by factories (one per model, float type
and target) whose closures hold other compiled functions: those cells pickle differently in every
process, so ``cache=True`` would never hit. Instead every specialisation is given a *name* that states
all its compile-time parameters (e.g. ``lm-sho-float64-s136``) and its own cache files under that name
(:class:`KernelCache`, attached by :func:`persistent`). An entry is served only when all of these match:

- the kernel sources: the index is stamped with a digest of every ``*.py`` file of this folder
  (:func:`source_digest`), so any change to any kernel invalidates every entry (a callee in another file
  is covered too, which numba's own stamp of one source file misses), and with numba's code-generation
  settings (``NUMBA_OPT``, the vectorizers, ...), which numba's own key leaves out;
- the numba version (numba stores it in the index) and the Python version (in the file names);
- the CPU: numba's key holds the target triple, CPU name and features (for CUDA: the device's
  compute capability), so a cache on a shared home directory serves each machine its own code.

Where the files live (:func:`cache_dirs`): ``PYCRO_GPU_CACHE_DIR`` when set, else ``__pycache__`` inside
this package (written where the installation is writable, e.g. at a container's build time), then the
user cache directory ``$XDG_CACHE_HOME/pycro_gpu/kernels`` (default ``~/.cache/pycro_gpu/kernels``).
A kernel is loaded from the first directory that has it and saved into the first writable one, so a
read-only site-packages or container image still gets a per-user cache. Writes are atomic (numba writes a
temporary file and renames it), so processes and Dask workers on one node share the cache safely; an
unreadable or corrupt entry is a cache miss, never an error. Delete the directories to clear the cache
(``pycro-gpu compile --clear``).

The first compilation in a process is announced once on the ``pycro_gpu.kernels`` logger (the CLI
prints it), and :func:`compile_log` records what was loaded and what was compiled, with timings.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sys
import threading
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from numba.core.caching import FunctionCache
from numba.core.runtime import rtsys

__all__ = [
    "ENV_CACHE_DIR",
    "CompileLog",
    "KernelCache",
    "cache_dirs",
    "cache_statistics",
    "clear_cache",
    "compile_log",
    "persistent",
    "source_digest",
    "user_cache_dir",
]

#: Environment variable naming the kernel cache directory (overrides the default locations).
ENV_CACHE_DIR = "PYCRO_GPU_CACHE_DIR"

#: This folder: the kernel sources whose digest stamps every cache entry.
KERNELS_DIR = Path(__file__).resolve().parent

logger = logging.getLogger("pycro_gpu.kernels")


def source_digest(folder: Path = KERNELS_DIR) -> str:
    """Digest of every ``*.py`` file in ``folder`` (names and contents): the cache's source stamp."""
    h = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        h.update(path.name.encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:20]


@functools.cache
def _stamp() -> tuple:
    """What every cache entry is stamped with: the kernel sources and numba's code-generation settings.

    numba's own key misses its settings (NUMBA_OPT, vectorizers, debug info, bounds checks), so a cache
    filled under other settings would serve their code; they are part of the stamp here.
    """
    from numba.core import config

    settings = tuple(
        getattr(config, name, None)
        for name in ("OPT", "LOOP_VECTORIZE", "SLP_VECTORIZE", "DEBUGINFO_DEFAULT", "BOUNDSCHECK", "FASTMATH")
    )
    return (source_digest(), settings)


def user_cache_dir() -> Path:
    """The per-user kernel cache: ``$XDG_CACHE_HOME/pycro_gpu/kernels`` (default ``~/.cache/...``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pycro_gpu" / "kernels"


def cache_dirs() -> list[Path]:
    """Directories searched for compiled kernels, in order (the first writable one receives new ones)."""
    env = os.environ.get(ENV_CACHE_DIR)
    first = Path(env).expanduser() if env else KERNELS_DIR / "__pycache__" / "pycro_gpu_kernels"
    dirs = [first.resolve()]
    user = user_cache_dir().resolve()
    if user not in dirs:
        dirs.append(user)
    return dirs


def clear_cache() -> list[Path]:
    """Delete the compiled kernels from every cache directory; return the directories that held some."""
    cleared = []
    for folder in cache_dirs():
        files = [p for p in folder.glob("*") if p.suffix in (".nbi", ".nbc") or ".tmp." in p.name]
        for path in files:
            path.unlink(missing_ok=True)
        if files:
            cleared.append(folder)
    return cleared


@dataclass
class CompileLog:
    """What this process loaded from the cache and what it compiled (names and seconds).

    ``compiled`` maps each compiled name to its seconds, a kernel's including its callees' (compiled
    inside it); :attr:`compile_seconds` counts the wall time of outermost compilations only.
    """

    loaded: list[str] = field(default_factory=list)
    compiled: dict[str, float] = field(default_factory=dict)
    compile_seconds: float = 0.0
    _started: dict[str, float] = field(default_factory=dict, repr=False)
    _outer_start: float = field(default=0.0, repr=False)
    _announced: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> tuple[frozenset, float]:
        """What has been compiled so far (for :meth:`summary`'s ``since``)."""
        with self._lock:
            return frozenset(self.compiled), self.compile_seconds

    def summary(self, since: tuple[frozenset, float] | None = None) -> str | None:
        """One line on the kernels compiled in this process (after the ``since`` :meth:`snapshot`).

        None if every kernel came from the cache.
        """
        names, seconds = since or (frozenset(), 0.0)
        new = {name.split(".")[0] for name in self.compiled if name not in names}  # kernels, with callees
        if not new:
            return None
        n = len(new)
        return (
            f"compiled {n} kernel{'s' if n > 1 else ''} in {self.compile_seconds - seconds:.1f} s; "
            f"later runs load {'them' if n > 1 else 'it'} from the cache ({cache_dirs()[0]})"
        )

    def _miss(self, name: str) -> None:
        with self._lock:
            first = not self._announced
            self._announced = True
            now = time.perf_counter()
            if not self._started:  # an outermost compilation (callees compile inside their caller's)
                self._outer_start = now
            self._started[name] = now
        if first:
            logger.info(
                "compiling numba kernels for this machine (once; later runs load them from %s)",
                cache_dirs()[0],
            )

    def _hit(self, name: str) -> None:
        with self._lock:
            self.loaded.append(name)

    def _done(self, name: str) -> None:
        with self._lock:
            start = self._started.pop(name, None)
            if start is None:
                return
            now = time.perf_counter()
            self.compiled[name] = self.compiled.get(name, 0.0) + now - start
            if not self._started:
                self.compile_seconds += now - self._outer_start


_LOG = CompileLog()


def compile_log() -> CompileLog:
    """The :class:`CompileLog` of this process."""
    return _LOG


class _Locator:
    """numba's cache locator protocol for one directory (numba reads ``_py_file`` in its warnings)."""

    def __init__(self, path: Path, py_file: str):
        self._path = path
        self._py_file = py_file

    def get_cache_path(self) -> str:
        return str(self._path)

    def get_source_stamp(self) -> tuple:
        return _stamp()

    def get_disambiguator(self) -> str:
        return ""

    def ensure_cache_path(self) -> None:
        os.makedirs(self._path, exist_ok=True)


def _filename_base(name: str) -> str:
    return f"{name}.py{sys.version_info[0]}{sys.version_info[1]}{getattr(sys, 'abiflags', '')}"


@functools.cache
def _named_impl(base_impl: type) -> type:
    """A subclass of numba's ``CacheImpl`` (CPU or CUDA flavour) placed by name instead of by source file."""

    class NamedImpl(base_impl):
        def __init__(self, py_func, *, name: str, locator: _Locator):
            self._lineno = py_func.__code__.co_firstlineno
            self._locator = locator
            self._filename_base = _filename_base(name)

    return NamedImpl


class KernelCache:
    """Mixin over numba's ``Cache`` classes: one named specialisation, several directories, no errors.

    The index key is numba's (signature, target machine, bytecode hash) with the closure contents
    left out: the kernel's name states everything its closure was built from.
    """

    def __init__(self, py_func, name: str):
        self._kernel_name = name
        dirs = cache_dirs()
        impl = _named_impl(self._impl_class)
        # numba's Cache.__init__ builds ``self._impl_class(py_func)``: bind the name and first directory
        self._impl_class = functools.partial(
            impl, name=name, locator=_Locator(dirs[0], py_func.__code__.co_filename)
        )
        super().__init__(py_func)  # its _cache_file serves the first directory
        file_class = type(self._cache_file)
        self._files = [(dirs[0], self._cache_file)] + [
            (d, file_class(cache_path=str(d), filename_base=_filename_base(name), source_stamp=_stamp()))
            for d in dirs[1:]
        ]
        self._py_func = types.SimpleNamespace(__code__=py_func.__code__, __closure__=None)
        self._callees: tuple = ()
        self._callees_loaded = False

    def load_overload(self, sig, target_context):
        try:
            if isinstance(self, FunctionCache):
                data = self._load_cpu_overload(sig, target_context)
            else:
                data = super().load_overload(sig, target_context)
        except Exception as exc:  # a damaged or foreign cache entry is a miss, never a failure
            logger.debug("kernel cache: cannot load %s (%s: %s)", self._kernel_name, type(exc).__name__, exc)
            data = None
        if data is None:
            _LOG._miss(self._kernel_name)
        else:
            _LOG._hit(self._kernel_name)
        return data

    def _load_cpu_overload(self, sig, target_context):
        # numba's Cache.load_overload refreshes the whole target context first, importing every lowering
        # registry (with SciPy's BLAS): ~0.45 s of each process. Machine code loaded from the cache needs
        # only the runtime (NRT) that registry loading starts. A miss refreshes as numba would.
        rtsys.initialize(target_context)
        self._load_callees()
        data = self._load_overload(sig, target_context)
        if data is None:
            target_context.refresh()  # as numba would have done before compiling
        return data

    def _load_callees(self) -> None:
        """Load the cached code of the compiled functions this kernel calls, before the kernel itself.

        A compiled numba function carries copies of its callees, and a process that compiles defines each
        callee on its own first; the copies in the caller then bind to those. Loading callees first (leaves
        first) reproduces that binding, so a process that loads from the cache runs the same machine
        code as one that compiled, and gets bitwise identical results.
        """
        if self._callees_loaded:
            return
        self._callees_loaded = True
        for callee in self._callees:
            cache = getattr(callee, "_cache", None)
            if isinstance(cache, KernelCache):
                for sig in cache.cached_signatures(callee.targetctx.codegen()):
                    if tuple(sig) not in callee.overloads:
                        callee.compile(sig)

    def cached_signatures(self, codegen) -> list:
        """Argument types of every entry cached for this kernel on this machine."""
        signatures = []
        for folder, cache_file in self._files:
            try:
                keys = list(cache_file._load_index())
            except Exception as exc:
                logger.debug(
                    "kernel cache: unreadable index of %s in %s (%s)", self._kernel_name, folder, exc
                )
                continue
            for key in keys:
                if key == self._index_key(key[0], codegen) and key[0] not in signatures:
                    signatures.append(key[0])
        return signatures

    def _load_overload(self, sig, target_context):
        if not self._enabled:
            return None
        key = self._index_key(sig, target_context.codegen())
        for folder, cache_file in self._files:
            try:
                data = cache_file.load(key)
            except Exception as exc:
                logger.debug("kernel cache: skipping %s in %s (%s)", self._kernel_name, folder, exc)
                continue
            if data is not None:
                return self._impl.rebuild(target_context, data)
        return None

    def save_overload(self, sig, data):
        try:
            self._save_first_writable(sig, data)
        except Exception as exc:
            logger.debug("kernel cache: cannot save %s (%s: %s)", self._kernel_name, type(exc).__name__, exc)
        finally:
            _LOG._done(self._kernel_name)

    def _save_first_writable(self, sig, data) -> None:
        if not self._enabled or not self._impl.check_cachable(data):
            return
        key = self._index_key(sig, data.codegen)
        payload = self._impl.reduce(data)
        for folder, cache_file in self._files:
            try:
                os.makedirs(folder, exist_ok=True)
                _save_or_renew(cache_file, key, payload)
            except OSError:
                continue
            return


def _save_or_renew(cache_file: Any, key: Any, payload: Any) -> None:
    """Save one entry; an index that cannot be read (e.g. a truncated write) is started anew.

    An ``OSError`` (read-only or full directory) propagates: the caller tries the next directory.
    """
    try:
        cache_file.save(key, payload)
    except OSError:
        raise
    except Exception:
        cache_file.flush()
        cache_file.save(key, payload)


@functools.cache
def _cache_class(base: type) -> type:
    return type(f"Kernel{base.__name__}", (KernelCache, base), {"__module__": __name__})


def persistent(dispatcher: Any, name: str, callees: tuple = ()) -> Any:
    """Give ``dispatcher`` (``numba.njit`` or ``numba.cuda.jit``) the on-disk cache under ``name``.

    ``name`` must state every compile-time parameter of the specialisation (model, float type, variant,
    target). ``callees`` are the compiled (not inlined) CPU dispatchers it calls, themselves persistent:
    they are loaded first (see :meth:`KernelCache._load_callees`). No-op under the CUDA simulator, which
    compiles nothing. Returns ``dispatcher``.
    """
    if not hasattr(dispatcher, "enable_caching"):  # the CUDA simulator's dispatcher
        return dispatcher
    try:
        cache = _cache_class(_numba_cache_class(dispatcher))(dispatcher.py_func, name)
    except Exception as exc:  # an unusual numba: run uncached rather than fail
        logger.debug("kernel cache: %s stays in memory only (%s: %s)", name, type(exc).__name__, exc)
        return dispatcher
    cache._callees = tuple(callees)
    dispatcher._cache = cache
    _DISPATCHERS.setdefault(name, []).append(dispatcher)
    return dispatcher


#: Every dispatcher given the on-disk cache in this process, by cache name.
_DISPATCHERS: dict[str, list[Any]] = {}


def cache_statistics() -> dict[str, dict[str, int]]:
    """numba's own cache statistics of every cached kernel built in this process.

    Returns ``{name: {"hits": n, "misses": n}}``: signatures loaded from the disk cache and signatures
    that had to be compiled (counted by numba's dispatchers, summed over a name's dispatchers).
    """
    stats = {}
    for name, dispatchers in _DISPATCHERS.items():
        hits = sum(sum(d.stats.cache_hits.values()) for d in dispatchers)
        misses = sum(sum(d.stats.cache_misses.values()) for d in dispatchers)
        stats[name] = {"hits": hits, "misses": misses}
    return stats


def _numba_cache_class(dispatcher: Any) -> type:
    """numba's own cache class for the dispatcher's target (CPU or CUDA)."""
    if type(dispatcher).__module__.startswith("numba.cuda"):
        from numba.cuda.dispatcher import CUDACache

        return CUDACache
    return FunctionCache
