"""End to end, file to file: whole ``pycro-gpu`` processes vs the scripts users run today, side by side.

Run::

    python -m benchmarks.bench_end_to_end                          # the issue's sizes (a quiet machine)
    python -m benchmarks.bench_end_to_end --sizes 1024 16384 --filter-rows 64
    python -m benchmarks.bench_end_to_end --quick                  # smoke run: tiny files

Every contender is a fresh process, timed from its start to its exit as a user runs it: interpreter
start, imports, (kernel compilation), read, compute, write. Each runs on a fresh copy of its input
file (results go into the file, and a re-run would find them and skip the work); the copy is not
timed and leaves the file in the page cache, the same for every contender.

* ``pycro-gpu fit sho FILE`` on band-excitation files (87 bins, 3 % noise) of ``--sizes`` spectra,
  with a cold kernel cache (``PYCRO_GPU_CACHE_DIR`` and ``NUMBA_CACHE_DIR`` in a fresh empty folder)
  and a warm one (the same folder again, filled by the cold run), against ``python fit_sho_scipy.py IN
  OUT``: h5py in, per-pixel ``scipy.optimize.least_squares(method="lm")`` with the analytic Jacobian
  of the SHO model (``bench_fit``), started from its own guess at the peak bin, a
  ``multiprocessing.Pool`` over all cores, h5py out.
* ``pycro-gpu fit sho FILE --workers 2`` (warm cache) against one process on the largest file.
* ``pycro-gpu filter FILE --low-pass --roll-off --noise-tolerance`` on G-mode files of
  ``--filter-rows`` x ``--filter-samples`` float32, against ``python filter_numpy.py IN OUT``: the
  NumPy filter of pycroscopy's SignalFilter (``bench_filters.numpy_reference``: two-sided FFT, erf
  low-pass mask, per-row noise floor, threshold, inverse FFT) over blocks of rows.
* ``pycro-gpu svd FILE -k K`` against ``python svd_sklearn.py IN OUT K``: h5py read of the whole
  dataset, ``sklearn.utils.extmath.randomized_svd(n_iter=3)`` as pycroscopy calls it, U, S, V written.

Outputs are checked, and a wrong output fails the run (exit 1) after the table is printed: every fit
against the known truth (median relative error of the resonance frequency and of Q), our filtered
signals against the NumPy script's, our singular values against scikit-learn's. The peer scripts are
saved next to the results (``bench_out/end_to_end_scripts/``). A peer skipped with
``--skip-peer-above`` appears in the table as skipped. Prints a Markdown table and writes
``bench_out/end_to_end.json`` and ``bench_out/end_to_end.md``.
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import math
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from benchmarks import bench_filters, bench_fit, bench_svd

RAW = "Measurement_000/Channel_000/Raw_Data"
OUT = Path("bench_out")
#: spectra per band-excitation file (the issue's sizes) and the sizes of --quick
SIZES = (1024, 16384, 262144, 1048576)
QUICK = {"sizes": [256], "filter_rows": [8], "filter_samples": 4096, "svd_rows": 2048, "svd_cols": 32}
BINS, NOISE = 87, 0.03
#: the G-mode filter of both contenders (gmode(): 1 MHz sampling, 62.5 kHz drive, a 210 kHz tone)
LOW_PASS, ROLL_OFF, NOISE_TOLERANCE = 200e3, 0.05, 1e-4
#: an output outside these limits fails the run
_RUNS = itertools.count()  # numbers the copies: every run has a file of its own
LIMITS = {"w0_median_rel_err": 1e-3, "Q_median_rel_err": 0.1, "filter_rel_err": 1e-3, "svd_rel_dS": 1e-3}

# ---- peer scripts (as a scientist writes them today; the model functions are bench_fit's) ------------

_FIT_SCRIPT = '''"""SHO fit of band-excitation spectra: h5py in, SciPy least_squares (Levenberg-Marquardt,
analytic Jacobian) per pixel from a guess at the peak bin, a multiprocessing Pool over all cores, h5py out.

    python fit_sho_scipy.py IN.h5 OUT.h5
"""
import os
import sys
from multiprocessing import Pool

import h5py
import numpy as np
from scipy.optimize import least_squares


{residual}

{jacobian}

def guess(w, y):
    """A at the peak, w0 = peak bin, Q = w0 / (half-power width), phase from the peak's phase."""
    amp = np.abs(y)
    i = int(np.argmax(amp))
    above = w[amp >= amp[i] / np.sqrt(2)]
    q = w[i] / max(above.max() - above.min(), w[1] - w[0])
    return np.array([amp[i] / q, w[i], q, np.angle(y[i]) - np.pi / 2])


def fit_chunk(args):
    w, spectra = args
    params, ok = np.empty((len(spectra), 4)), np.empty(len(spectra), dtype=bool)
    for i, y in enumerate(spectra.astype(np.complex128)):
        r = least_squares(_residual, guess(w, y), jac=_jacobian, method="lm", x_scale="jac", args=(w, y))
        params[i], ok[i] = r.x, r.success
    return params, ok


if __name__ == "__main__":
    src, dst = sys.argv[1:3]
    with h5py.File(src, "r") as f:
        raw = f["{raw}"]
        spectra = raw[()]
        w = f[raw.attrs["Spectroscopic_Values"]][0].astype(np.float64)
    n_proc = os.cpu_count()
    with Pool(n_proc) as pool:
        parts = pool.map(fit_chunk, [(w, c) for c in np.array_split(spectra, 4 * n_proc)])
    with h5py.File(dst, "w") as f:
        f["params"] = np.concatenate([p[0] for p in parts])
        f["success"] = np.concatenate([p[1] for p in parts])
'''

_FILTER_SCRIPT = '''"""G-mode FFT filter as pycroscopy's SignalFilter computes it, in NumPy: erf low-pass +
noise floor, h5py in and out.

    python filter_numpy.py IN.h5 OUT.h5
"""
import sys

import h5py
import numpy as np
from scipy.special import erf

F_CUTOFF, ROLL_OFF, TOLERANCE, BLOCK = {low_pass!r}, {roll_off!r}, {tolerance!r}, 64


{noise_floor}

{reference}

def low_pass(freqs):
    """1 below f1 = F_CUTOFF (1 - ROLL_OFF), 0 above F_CUTOFF, an erf edge between."""
    f1 = F_CUTOFF * (1 - ROLL_OFF)
    t = np.clip(5 * (np.abs(freqs) - f1) / (F_CUTOFF - f1) - 2.5, -2.5, 2.5)
    return 0.5 * (1 - erf(t) / erf(2.5))


if __name__ == "__main__":
    src, dst = sys.argv[1:3]
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        raw = f["{raw}"]
        t = f[raw.attrs["Spectroscopic_Values"]][0].astype(np.float64)
        rows, n = raw.shape
        mask = low_pass(np.fft.fftshift(np.fft.fftfreq(n, np.mean(np.diff(t)))))
        out = g.create_dataset("Filtered_Data", raw.shape, dtype=raw.dtype)
        for s in range(0, rows, BLOCK):
            out[s : s + BLOCK] = numpy_reference(raw[s : s + BLOCK].astype(np.float64), mask, TOLERANCE)
'''

_SVD_SCRIPT = '''"""Truncated SVD as pycroscopy computes it: h5py read, scikit-learn randomized_svd, U, S, V
written.

    python svd_sklearn.py IN.h5 OUT.h5 K
"""
import sys

import h5py
from sklearn.utils.extmath import randomized_svd

src, dst, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
with h5py.File(src, "r") as f:
    data = f["{raw}"][()]
U, S, V = randomized_svd(data, k, n_iter=3, random_state=0)
with h5py.File(dst, "w") as f:
    f["U"], f["S"], f["V"] = U, S, V
'''


def peer_scripts() -> dict[str, str]:
    """Source of each peer script, by file name (the SHO model and the NumPy filter from the benchmarks)."""
    src = inspect.getsource
    return {
        "fit_sho_scipy.py": _FIT_SCRIPT.format(
            residual=src(bench_fit._residual), jacobian=src(bench_fit._jacobian), raw=RAW
        ),
        "filter_numpy.py": _FILTER_SCRIPT.format(
            low_pass=LOW_PASS,
            roll_off=ROLL_OFF,
            tolerance=NOISE_TOLERANCE,
            noise_floor=src(bench_filters._numpy_noise_floor),
            reference=src(bench_filters.numpy_reference),
            raw=RAW,
        ),
        "svd_sklearn.py": _SVD_SCRIPT.format(raw=RAW),
    }


# ---- processes -------------------------------------------------------------------------------------


def cli_command() -> list[str]:
    """How a user starts ``pycro-gpu``: the console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("pycro-gpu")
    if script.exists():
        return [str(script)]
    found = shutil.which("pycro-gpu")
    return [found] if found else [sys.executable, "-m", "pycro_gpu"]


def run_process(cmd: list[str], env: dict[str, str] | None, timeout: float) -> dict:
    """Run one whole process; wall seconds, CPU seconds of it and its children, exit status, stderr tail.

    Parameters
    ----------
    cmd : list of str
        The command line.
    env : dict or None
        Environment variables added to this process's.
    timeout : float
        Seconds before the process is killed (reported as a failure).

    Returns
    -------
    dict
        ``seconds``, ``cpu_seconds``, ``returncode`` (None on a time-out) and ``tail`` (last stderr lines).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        rc, tail = proc.returncode, (proc.stderr or proc.stdout)[-2000:]
    except subprocess.TimeoutExpired:
        rc, tail = None, f"killed after {timeout:g} s"
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": seconds, "cpu_seconds": cpu, "returncode": rc, "tail": tail}


def timed_on_copy(src: Path, work: Path, make_cmd, env: dict | None, args, before=None) -> tuple[dict, Path]:
    """Best of ``args.repeats`` runs of ``make_cmd(copy)``, each on a fresh (untimed) copy of ``src``.

    ``before()``, if given, runs (untimed) before each run, e.g. to empty a kernel cache.

    Returns
    -------
    (dict, pathlib.Path)
        The fastest run (see :func:`run_process`, plus ``command``) and the copy it wrote into.
    """
    best, best_copy = None, None
    for _ in range(args.repeats):
        copy = work / f"{src.stem}.run{next(_RUNS)}{src.suffix}"
        shutil.copyfile(src, copy)
        if before is not None:
            before()
        cmd = make_cmd(copy)
        run = run_process(cmd, env, args.timeout)
        run["command"] = " ".join(
            [*(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items()), shlex.join(cmd)]
        )
        if run["returncode"] != 0:
            return run, copy
        if best is None or run["seconds"] < best["seconds"]:
            if best_copy is not None:
                best_copy.unlink(missing_ok=True)
            best, best_copy = run, copy
        else:
            copy.unlink()
    return best, best_copy


def emptier(folder: Path):
    """A function that empties the kernel cache ``folder`` (run before a cold-cache run)."""

    def empty() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()

    return empty


def cache_env(folder: Path) -> dict[str, str]:
    """Kernel caches of ``pycro-gpu`` (and of numba itself) in ``folder``."""
    return {"PYCRO_GPU_CACHE_DIR": str(folder), "NUMBA_CACHE_DIR": str(folder / "numba")}


# ---- inputs ----------------------------------------------------------------------------------------


def grid_shape(n: int) -> tuple[int, int]:
    """A (rows, columns) grid of ``n`` positions, as square as powers of two allow."""
    nx = 2 ** int(math.log2(math.sqrt(n)))
    while n % nx:
        nx //= 2
    return n // nx, nx


def be_file(path: Path, n: int) -> np.ndarray:
    """Write a band-excitation USID file of ``n`` spectra; return the truth ``(n, 4)``: A, w0, Q, phi."""
    from pycro_gpu.datasets import band_excitation, write_usid

    ds = band_excitation(grid_shape(n), BINS, noise=NOISE, seed=0)
    write_usid(ds, path, mode="w", exclude=("clean",))
    keys = ("amplitude", "resonance_frequency", "quality_factor", "phase")
    return np.stack([ds.truth[k].ravel() for k in keys], axis=1)


def gmode_file(path: Path, rows: int, samples: int) -> None:
    """Write a G-mode USID file of ``rows`` float32 signals of ``samples`` samples."""
    from pycro_gpu.datasets import gmode, write_usid

    write_usid(gmode(grid_shape(rows), samples, seed=0), path, mode="w", exclude=("clean",))


# ---- outputs and checks ----------------------------------------------------------------------------


def read(path: Path, name: str, tool: str | None = None) -> np.ndarray:
    """Dataset ``name`` of a file, or of its newest ``Raw_Data-<tool>_NNN`` results group."""
    with h5py.File(path, "r") as f:
        if tool is None:
            return f[name][()]
        chan = f[RAW.rsplit("/", 1)[0]]
        groups = sorted(g for g in chan if g.startswith(f"Raw_Data-{tool}_"))
        if not groups:
            msg = f"{path}: no Raw_Data-{tool}_NNN results group was written"
            raise RuntimeError(msg)
        return chan[groups[-1]][name][()]


def our_fit(path: Path) -> np.ndarray:
    """SHO parameters ``(n, 4)`` written by ``pycro-gpu fit sho``."""
    from pycro_gpu.datasets import SHO_PARAMETER_NAMES

    fit = read(path, "Fit", "SHO_Fit").reshape(-1)
    return np.stack([fit[name].astype(np.float64) for name in SHO_PARAMETER_NAMES], axis=1)


def fit_check(params: np.ndarray, truth: np.ndarray) -> tuple[dict, str | None]:
    """Accuracy against the truth (``bench_fit._accuracy``) and what is wrong with it, if anything."""
    if params.shape != truth.shape:
        return {}, f"{params.shape[0]} fits for {truth.shape[0]} spectra"
    acc = bench_fit._accuracy(params, truth)
    bad = [k for k in ("w0_median_rel_err", "Q_median_rel_err") if not acc[k] <= LIMITS[k]]
    return acc, (f"{', '.join(bad)} above {[LIMITS[k] for k in bad]}" if bad else None)


def fit_accuracy_text(acc: dict) -> str:
    return f"w0 {acc['w0_median_rel_err']:.1e}, Q {acc['Q_median_rel_err']:.1e}" if acc else ""


def filter_check(ours: Path, peer: Path) -> tuple[dict, str | None]:
    """Largest difference of our Filtered_Data from the NumPy script's, relative to its largest value."""
    ref = read(peer, "Filtered_Data").astype(np.float64)
    got = read(ours, "Filtered_Data", "FFT_Filtering").astype(np.float64)
    if got.shape != ref.shape:
        return {}, f"Filtered_Data {got.shape} vs {ref.shape}"
    err = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
    acc = {"max_rel_err_vs_numpy": err}
    return acc, (
        None if err <= LIMITS["filter_rel_err"] else f"max abs(ours - numpy) / max abs(numpy) = {err:.1e}"
    )


def svd_check(ours: Path, peer: Path) -> tuple[dict, str | None]:
    """Largest relative difference of our singular values from scikit-learn's."""
    s_ref = read(peer, "S").astype(np.float64)
    s = read(ours, "S", "SVD").astype(np.float64).ravel()
    if s.shape != s_ref.shape:
        return {}, f"S {s.shape} vs {s_ref.shape}"
    err = float(np.max(np.abs(s - s_ref) / s_ref))
    return {"max_rel_dS_vs_sklearn": err}, (None if err <= LIMITS["svd_rel_dS"] else f"max rel dS {err:.1e}")


# ---- rows ------------------------------------------------------------------------------------------


def make_row(task: str, size: int, contender: str, run: dict | None, check=None, n_fits=None) -> dict:
    """One table row: the run's times and status; ``check()`` gives (accuracy, problem) of its output."""
    row = {"task": task, "size": size, "contender": contender, "accuracy": {}}
    if run is None:
        return row
    row.update({k: run[k] for k in ("command", "seconds", "cpu_seconds")})
    if run["returncode"] != 0:
        row["status"] = f"FAILED (exit {run['returncode']}): {run['tail'].strip().splitlines()[-1:]}"
        return row
    try:
        row["accuracy"], problem = check() if check else ({}, None)
    except (OSError, KeyError, RuntimeError, ValueError) as exc:  # an unreadable or missing output
        problem = f"output not readable: {exc}"
    row["status"] = f"WRONG: {problem}" if problem else "ok"
    if n_fits:
        row["fits_per_s"] = n_fits / run["seconds"]
    return row


def skipped(task: str, size: int, contender: str, why: str) -> dict:
    return {**make_row(task, size, contender, None), "status": f"skipped: {why}"}


def speedup(row: dict, reference: dict, name: str) -> None:
    """Set ``row``'s speed-up over ``reference`` (reference seconds / row seconds) when both ran."""
    if row.get("status") == "ok" and reference.get("status") == "ok":
        row["speedup"] = reference["seconds"] / row["seconds"]
        row["speedup_vs"] = name


# ---- sections --------------------------------------------------------------------------------------


def fit_section(n: int, args, work: Path, scripts: Path, largest: bool) -> list[dict]:
    """Cold cache, warm cache and the SciPy script on ``n`` spectra (and ``--workers 2`` if largest)."""
    src = work / f"be_{n}.h5"
    truth = be_file(src, n)
    task, cache = "fit sho", work / f"cache_{n}"

    def ours(extra=()):
        return lambda p: [*cli_command(), "fit", "sho", str(p), "--backend", args.backend, "-q", *extra]

    def checked(label, run, copy, params=our_fit):
        row = make_row(task, n, label, run, lambda: fit_check(params(copy), truth), n_fits=n)
        copy.unlink(missing_ok=True)
        return row

    # the cold run fills the cache that the warm run (and --workers 2) then finds
    env = cache_env(cache)
    rows = [
        checked(
            "pycro-gpu fit sho (cold cache)", *timed_on_copy(src, work, ours(), env, args, emptier(cache))
        )
    ]
    rows.append(checked("pycro-gpu fit sho (warm cache)", *timed_on_copy(src, work, ours(), env, args)))
    if args.skip_peer_above is not None and n > args.skip_peer_above:
        peer = skipped(task, n, "SciPy script", f"--skip-peer-above {args.skip_peer_above}")
    else:
        out = work / "peer_out.h5"
        run, copy = timed_on_copy(
            src,
            work,
            lambda p: [sys.executable, str(scripts / "fit_sho_scipy.py"), str(p), str(out)],
            None,
            args,
        )
        peer = checked("SciPy script", run, copy, params=lambda _: read(out, "params"))
        out.unlink(missing_ok=True)
    rows.append(peer)
    for r in rows[:2]:
        speedup(r, peer, "SciPy script")
    if largest:
        run, copy = timed_on_copy(src, work, ours(("--workers", "2")), cache_env(cache), args)
        rows.append(checked("pycro-gpu fit sho --workers 2 (warm cache)", run, copy))
        speedup(rows[-1], rows[1], "one process (warm cache)")
    src.unlink()
    shutil.rmtree(cache, ignore_errors=True)
    return rows


def ours_vs_script(
    task: str, size: int, src: Path, cli_args: list[str], peer: tuple, check, env
) -> list[dict]:
    """``pycro-gpu *cli_args FILE`` against ``python SCRIPT FILE OUT *extra`` on copies of ``src``.

    Parameters
    ----------
    task, size : str, int
        The rows' task and size.
    src : pathlib.Path
        Input file (deleted at the end).
    cli_args : list of str
        The command and its options (FILE goes after the command).
    peer : (str, pathlib.Path, list of str)
        Name of the peer contender, its script and the arguments after ``IN OUT``.
    check : callable
        ``check(ours_file, peer_out)`` -> (accuracy dict, problem or None).
    env : (pathlib.Path, argparse.Namespace)
        Scratch folder and the benchmark's arguments.

    Returns
    -------
    list of dict
        Our row (with the speed-up over the peer and the check) and the peer's.
    """
    work, args = env
    name, script, extra = peer
    out = work / "peer_out.h5"
    command, options = cli_args[0], cli_args[1:]
    cache = work / f"cache_{command}_{size}"

    def ours_cmd(p):
        return [*cli_command(), command, str(p), *options, "--backend", args.backend, "-q"]

    # the cold run (empty kernel cache) fills the cache that the warm run then finds
    runs = [timed_on_copy(src, work, ours_cmd, cache_env(cache), args, emptier(cache))]
    runs.append(timed_on_copy(src, work, ours_cmd, cache_env(cache), args))
    peer_run, peer_copy = timed_on_copy(
        src, work, lambda p: [sys.executable, str(script), str(p), str(out), *extra], None, args
    )
    peer_row = make_row(task, size, name, peer_run)
    rows = []
    for label, (run, copy) in zip(("cold cache", "warm cache"), runs, strict=True):
        row = make_row(task, size, f"pycro-gpu {command} ({label})", run, lambda c=copy: check(c, out))
        if peer_row["status"] != "ok" and row["status"] == "ok":
            row["status"] = f"WRONG: not checked (the {name} failed)"
        speedup(row, peer_row, name)
        rows.append(row)
    for path in (src, peer_copy, out, *(copy for _, copy in runs)):
        path.unlink(missing_ok=True)
    shutil.rmtree(cache, ignore_errors=True)
    return [*rows, peer_row]


def filter_section(n_rows: int, args, work: Path, scripts: Path) -> list[dict]:
    """``pycro-gpu filter`` and the NumPy script on a G-mode file of ``n_rows`` signals."""
    src = work / f"gmode_{n_rows}.h5"
    gmode_file(src, n_rows, args.filter_samples)
    opts = ["--low-pass", f"{LOW_PASS:g}", "--roll-off", f"{ROLL_OFF:g}", "--noise-tolerance"]
    opts += [f"{NOISE_TOLERANCE:g}"]
    peer = ("NumPy script", scripts / "filter_numpy.py", [])
    task = f"filter ({args.filter_samples} samples)"
    return ours_vs_script(task, n_rows, src, ["filter", *opts], peer, filter_check, (work, args))


def svd_section(args, work: Path, scripts: Path) -> list[dict]:
    """``pycro-gpu svd -k K`` and read + scikit-learn ``randomized_svd`` on a low-rank USID file."""
    src = work / "svd.h5"
    bench_svd.make_file(src, args.svd_rows, args.svd_cols)
    k = str(args.k)
    peer = ("scikit-learn script", scripts / "svd_sklearn.py", [k])
    task = f"svd (x {args.svd_cols}, k = {k})"
    return ours_vs_script(task, args.svd_rows, src, ["svd", "-k", k], peer, svd_check, (work, args))


# ---- report ----------------------------------------------------------------------------------------


def machine() -> dict:
    """Cores, CPU model, memory, load and the versions that matter."""
    import numba
    import scipy
    import sklearn

    import pycro_gpu

    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if "model name" in ln]
        model = names[0] if names else model
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            "pycro_gpu": pycro_gpu.__version__,
            "numpy": np.__version__,
            "numba": numba.__version__,
            "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__,
            "h5py": h5py.__version__,
        },
    }


def _cell(row: dict, key: str, fmt: str) -> str:
    return format(row[key], fmt) if key in row else "-"


def _accuracy_text(row: dict) -> str:
    acc = row["accuracy"]
    if "w0_median_rel_err" in acc:
        return fit_accuracy_text(acc)
    if "max_rel_err_vs_numpy" in acc:
        return f"max rel diff vs NumPy {acc['max_rel_err_vs_numpy']:.1e}"
    if "max_rel_dS_vs_sklearn" in acc:
        return f"max rel dS vs sklearn {acc['max_rel_dS_vs_sklearn']:.1e}"
    return "-"


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"### End to end, whole processes file to file ({report['backend']}): {m['cores']} cores, "
        f"{m['cpu_model']}, {m['memory_gib']} GiB",
        "",
        f"`{report['command']}`; best of {report['repeats']}; load average before / after "
        f"{report['load_before']:.2f} / {report['load_after']:.2f}",
        "",
        "| task | size | contender | seconds | CPU s | fits/s | speed-up | over | accuracy | status |",
        "|---|---:|---|---:|---:|---:|---:|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['task']} | {r['size']:,} | {r['contender']} | {_cell(r, 'seconds', '.2f')} "
            f"| {_cell(r, 'cpu_seconds', '.2f')} | {_cell(r, 'fits_per_s', ',.0f')} "
            f"| {_cell(r, 'speedup', '.2f')} | {r.get('speedup_vs', '-')} | {_accuracy_text(r)} "
            f"| {r['status'].replace('|', '/')} |"
        )
    lines += [
        "",
        "Seconds: wall time of the whole process (start, imports, compile, read, compute, write) on a "
        "fresh copy of the input. CPU s: user + system of the process and its children. Speed-up: the "
        "other contender's seconds / this one's. Fit accuracy: median relative error of the resonance "
        "frequency and of Q against the known truth. Cold cache: empty PYCRO_GPU_CACHE_DIR; warm: the "
        f"same folder after the cold run. Peer scripts: `{report['peer_scripts']}/`.",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=list(SIZES),
        help="spectra per BE file (default: 1k, 16k, 256k, 1M)",
    )
    ap.add_argument(
        "--filter-rows",
        type=int,
        nargs="+",
        default=[64, 1024],
        help="signals per G-mode file (default 64 1024)",
    )
    ap.add_argument(
        "--filter-samples", type=int, default=65536, help="samples per G-mode signal (default 65536)"
    )
    ap.add_argument("--svd-rows", type=int, default=2**20, help="positions of the SVD file (default 1048576)")
    ap.add_argument("--svd-cols", type=int, default=256, help="spectral points of the SVD file (default 256)")
    ap.add_argument("-k", type=int, default=8, help="SVD components (default 8)")
    ap.add_argument("--quick", action="store_true", help="tiny files: a smoke run (overrides the sizes)")
    ap.add_argument(
        "--skip-peer-above",
        type=int,
        default=None,
        metavar="N",
        help="skip the SciPy script on files of more than N spectra (a 'skipped' row in the table)",
    )
    ap.add_argument("--repeats", type=int, default=1, help="runs per contender, best reported (default 1)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per process before it fails")
    ap.add_argument("--backend", choices=("auto", "numpy", "cupy"), default="numpy", help="of pycro-gpu")
    ap.add_argument("--dir", default=None, help="folder of the scratch files (default: a temp folder)")
    ap.add_argument("--out", default=str(OUT), help="folder of end_to_end.json/.md (default bench_out)")
    args = ap.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    scripts = out / "end_to_end_scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    for name, text in peer_scripts().items():
        (scripts / name).write_text(text)
    command = shlex.join(
        [Path(sys.executable).name, "-m", "benchmarks.bench_end_to_end", *(argv or sys.argv[1:])]
    )
    report = {"command": command, "backend": args.backend, "repeats": args.repeats, "machine": machine()}
    report.update(peer_scripts=str(scripts), limits=LIMITS, load_before=os.getloadavg()[0], rows=[])
    if args.dir is not None:
        Path(args.dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench_e2e_", dir=args.dir) as tmp:
        work = Path(tmp)
        for n in args.sizes:
            print(f"fit sho: {n} spectra ...", flush=True)
            report["rows"] += fit_section(n, args, work, scripts, largest=n == max(args.sizes))
        for n_rows in args.filter_rows:
            print(f"filter: {n_rows} x {args.filter_samples} ...", flush=True)
            report["rows"] += filter_section(n_rows, args, work, scripts)
        print(f"svd: {args.svd_rows} x {args.svd_cols} ...", flush=True)
        report["rows"] += svd_section(args, work, scripts)
    report["load_after"] = os.getloadavg()[0]
    bad = [r for r in report["rows"] if not r["status"].startswith(("ok", "skipped"))]
    report["ok"] = not bad
    text = markdown(report)
    print("\n" + text)
    (out / "end_to_end.json").write_text(json.dumps(report, indent=1))
    (out / "end_to_end.md").write_text(text + "\n")
    for r in bad:
        print(f"{r['task']} {r['size']} {r['contender']}: {r['status']}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
