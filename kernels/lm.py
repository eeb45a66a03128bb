"""Batched Levenberg-Marquardt: one bounded least-squares fit per spectrum, CPU and CUDA from one source.

A model is a :class:`Model`: a number of parameters ``n_params`` and of outputs per sample ``n_out``
(1 for real data, 2 for complex data fit as real and imaginary residuals) and a factory
``make_point(F)`` returning a scalar Python function

``point(xj, j, m, p, aux, vb, jb, t, ks, js)``

that writes the model's ``n_out`` values at sample ``j`` of ``m`` (abscissa ``xj``) for parameters ``p``
into ``vb[t + k * ks]`` and the analytic Jacobian into ``jb[a * js + t + k * ks]`` (= d value_k / d p[a]);
``aux`` holds what ``prepare(p, aux)`` computed once per pass (shared by all samples). ``F`` is the
float type (``numpy.float32`` or ``numpy.float64``); models build their constants with it so that a
float32 fit stays in float32 arithmetic on the GPU.

The per-fit solver (:func:`_make_core`) is written once over scalars and small scratch vectors passed
in (no allocation): it is compiled with ``numba.njit`` for a CPU driver that loops ``prange`` over
chunks of fits with one set of scratch buffers per chunk, and with ``numba.cuda.jit(device=True)`` for
a CUDA kernel with one thread per fit and ``cuda.local.array`` scratch. Both are cached per (model,
float type).

Algorithm (per fit)
-------------------
Residuals ``r = y - f(p)``; the normal equations ``(J^T J + lambda D) d = J^T r`` with Marquardt's
diagonal ``D = diag(J^T J)`` (packed triangle) are solved by an in-place Cholesky factorisation; the
trial point is projected on the box ``[lo, hi]``. One pass over the data evaluates the residuals *and*
the Jacobian at the trial point, so an accepted step (the usual case from a good guess) costs a single
pass; a rejected step re-evaluates J^T J at the current point (one more pass, and no second copy of the
normal equations in the per-thread scratch). Accepted steps divide ``lambda`` by 10, rejected ones
multiply it by 10. A fit converges when the step's predicted decrease ``d . J^T r`` or an accepted step's
actual decrease is below ``ftol * chi2``, or every parameter moves by less than ``xtol * (|p| + xtol)``,
or no step lowers chi-square any more (``lambda`` above 1e10: a minimum to working precision).

CPU: the sample loop of a pass writes model and Jacobian into buffers whose rows lie a compile-time
stride apart (:data:`BLOCK_STRIDES`), so LLVM vectorizes it across samples; the reductions to J^T J run
with the sample loop innermost. The CPU kernels compute in float64 also for float32 data
(:data:`CPU_COMPUTE_FLOAT64`, measured faster); rows are split across threads (:func:`run_threaded`).
CUDA: one thread per fit streams the samples with O(n_params^2) registers/local memory.

Status codes: 0 converged, 1 iteration limit reached, 2 non-finite data or start point (the fit is
skipped, parameters are the start point, chi-square and R^2 are NaN).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import NamedTuple

import numba
import numpy as np

from ._jit import cuda_device, cuda_kernel, has_cuda_interface, launch, launch_stream
from ._jit import numba_cuda as _numba_cuda
from .cache import persistent

__all__ = [
    "STATUS_CONVERGED",
    "STATUS_MAX_ITER",
    "STATUS_NONFINITE",
    "Model",
    "cpu_lm_driver",
    "cuda_lm_kernel",
    "lm_fit_batch",
    "lm_kernel_signature",
    "run_threaded",
]

STATUS_CONVERGED = 0
STATUS_MAX_ITER = 1
STATUS_NONFINITE = 2

#: numba.cuda, bound by ``cuda_kernel`` on first CUDA use (a module global, as numba's simulator requires).
cuda = None


class Model(NamedTuple):
    """A fit model for the batched solver.

    Attributes
    ----------
    name : str
        Unique name (also the cache key of the compiled kernels).
    n_params : int
        Number of parameters (a compile-time constant of the kernels).
    n_out : int
        Outputs per sample: 1 for real data, 2 for complex data (real, imaginary interleaved).
    make_point : callable
        ``make_point(F) -> point(xj, j, m, p, aux, vb, jb, t, ks, js)``, see the module docstring.
    make_prepare : callable
        ``make_prepare(F) -> prepare(p, aux)``: per-pass quantities shared by all samples (e.g. the cosine
        and sine of a phase) written into ``aux``.
    n_aux : int
        Length of ``aux``.
    make_prepare_cuda : callable, optional
        ``make_prepare`` of the CUDA kernel where it differs (e.g. trigonometry without CUDA's
        local-memory slow path); default ``make_prepare``.
    """

    name: str
    n_params: int
    n_out: int
    make_point: Callable
    make_prepare: Callable
    n_aux: int = 1
    make_prepare_cuda: Callable | None = None


def make_no_prepare(F):
    """``make_prepare`` of a model without per-pass constants (``aux[0]`` only holds a placeholder)."""

    def prepare(p, aux):
        aux[0] = p[0]

    return prepare


def _make_core(
    model: Model, point: Callable, prepare: Callable, F: type, jit: Callable, block_stride: int
) -> Callable:
    """Return the per-fit LM solver (plain Python over scalars and scratch vectors) for one model.

    ``point``/``prepare`` are the model's functions compiled for the target; ``jit`` compiles the helpers
    for the same target. ``block_stride > 0`` (CPU, samples <= block_stride) evaluates the model over all
    samples into buffers and forms J^T J with the sample loop innermost (SIMD); ``block_stride = 0``
    (CUDA, or long CPU spectra) streams sample by sample with only O(n_params^2) scratch.
    """
    NP = model.n_params
    NO = model.n_out
    NTRI = NP * (NP + 1) // 2
    ZERO = F(0.0)
    NAN = F(np.nan)
    # finiteness as abs(v) <= FMAX: unlike math.isfinite it survives LLVM fast-math folding
    FMAX = F(np.finfo(F).max)
    ONE = F(1.0)
    TEN = F(10.0)
    TENTH = F(0.1)
    LAM0 = F(1e-3)
    LAM_MAX = F(1e10)
    LAM_MIN = F(1e-12)
    RFLOOR = F(1e-12)
    DTINY = F(1e-30)

    def accumulate_streamed(x, y, row, p, aux, jtj, jtr, vb, jb, rb):
        # One pass: chi-square at p, J^T J (packed upper triangle) and J^T r, sample by sample.
        m = x.shape[0]
        prepare(p, aux)
        for a in range(NP):
            jtr[a] = ZERO
        for q in range(NTRI):
            jtj[q] = ZERO
        chi2 = ZERO
        for j in range(m):
            point(x[j], j, m, p, aux, vb, jb, 0, 1, NO)
            for k in range(NO):
                r = y[row, j * NO + k] - vb[k]
                chi2 += r * r
                q = 0
                for a in range(NP):
                    ja = jb[a * NO + k]
                    jtr[a] += ja * r
                    for b in range(a, NP):
                        jtj[q] += ja * jb[b * NO + k]
                        q += 1
        return chi2

    MS = max(int(block_stride), 1)

    def accumulate_blocked(x, y, row, p, aux, jtj, jtr, vb, jb, rb):
        # Model and Jacobian over all samples into buffers, then reductions with the sample loop inside.
        # Rows of the buffers are MS apart, a compile-time constant: the stores of one sample provably
        # do not overlap, so LLVM vectorizes the model loop across samples (and the reductions).
        m = x.shape[0]
        prepare(p, aux)
        # value k of sample j at rb[k * MS + j], d value_k / d p[a] at jb[(a * NO + k) * MS + j]
        for j in range(m):
            point(x[j], j, m, p, aux, rb, jb, j, MS, NO * MS)
        chi2 = ZERO
        for k in range(NO):
            for j in range(m):
                r = y[row, j * NO + k] - rb[k * MS + j]
                rb[k * MS + j] = r
                chi2 += r * r
        q = 0
        for a in range(NP):
            s = ZERO
            for k in range(NO):
                for j in range(m):
                    s += jb[(a * NO + k) * MS + j] * rb[k * MS + j]
            jtr[a] = s
            for b in range(a, NP):
                s = ZERO
                for k in range(NO):
                    for j in range(m):
                        s += jb[(a * NO + k) * MS + j] * jb[(b * NO + k) * MS + j]
                jtj[q] = s
                q += 1
        return chi2

    if block_stride > 0 and NP <= FUSED_MAX_PARAMS:
        names = {"prepare": prepare, "point": point, "ZERO": ZERO, "MS": MS}
        accumulate = jit(_fused_accumulate(NP, NO, names))
    else:
        accumulate = jit(accumulate_blocked if block_stride > 0 else accumulate_streamed)

    def solve(jtj, jtr, lam, c, d):
        # (J^T J + lam diag(J^T J)) d = J^T r by Cholesky. jtj: packed upper triangle, row a holds
        # (a, a..NP-1); c: packed lower triangle, row i holds (i, 0..i) at i (i + 1) / 2.
        dmax = ZERO
        q = 0
        for a in range(NP):
            dmax = max(dmax, jtj[q])
            q += NP - a
        dfloor = dmax * RFLOOR + DTINY
        q = 0
        for a in range(NP):
            for b in range(a, NP):
                c[b * (b + 1) // 2 + a] = jtj[q]
                q += 1
        for a in range(NP):
            ia = a * (a + 1) // 2 + a
            c[ia] += lam * max(c[ia], dfloor)
        for j in range(NP):
            rj = j * (j + 1) // 2
            s = c[rj + j]
            for k in range(j):
                s -= c[rj + k] * c[rj + k]
            if not s > ZERO:
                return False
            s = math.sqrt(s)
            c[rj + j] = s
            for i in range(j + 1, NP):
                ri = i * (i + 1) // 2
                t = c[ri + j]
                for k in range(j):
                    t -= c[ri + k] * c[rj + k]
                c[ri + j] = t / s
        for i in range(NP):
            ri = i * (i + 1) // 2
            t = jtr[i]
            for k in range(i):
                t -= c[ri + k] * d[k]
            d[i] = t / c[ri + i]
        for i in range(NP - 1, -1, -1):
            t = d[i]
            for k in range(i + 1, NP):
                t -= c[k * (k + 1) // 2 + i] * d[k]
            d[i] = t / c[i * (i + 1) // 2 + i]
        return True

    solve = jit(solve)

    def core(x, y, row, p, lo, hi, maxiter, ftol, xtol, pt, jtj, jtr, c, d, aux, vb, jb, rb):
        """Fit row ``row`` of ``y`` in place in ``p``; return (status, iterations, chi2, r2, r2 of the start).

        The start's R^2 comes from the first pass (at the start point projected on the bounds).
        """
        m = x.shape[0]
        nan = NAN
        # Data check and total sum of squares (two passes: exact for data with a large offset). A NaN or
        # Inf anywhere makes the sum non-finite: one test after a branch-free (vectorizable) loop.
        finite = True
        for k in range(NO):
            s = ZERO
            for j in range(m):
                s += y[row, j * NO + k]
            finite = finite and abs(s) <= FMAX
            d[k] = s / F(m)
        if not finite:
            return STATUS_NONFINITE, 0, nan, nan, nan
        sst = ZERO
        for j in range(m):
            for k in range(NO):
                v = y[row, j * NO + k] - d[k]
                sst += v * v
        for a in range(NP):
            if not abs(p[a]) <= FMAX:
                return STATUS_NONFINITE, 0, nan, nan, nan
            p[a] = min(max(p[a], lo[a]), hi[a])
        chi2 = accumulate(x, y, row, p, aux, jtj, jtr, vb, jb, rb)
        if not abs(chi2) <= FMAX:
            return STATUS_NONFINITE, 0, nan, nan, nan
        r2_start = ONE - chi2 / sst if sst > ZERO else nan
        lam = LAM0
        status = STATUS_MAX_ITER
        it = 0
        while it < maxiter:
            it += 1
            if not solve(jtj, jtr, lam, c, d):
                lam *= TEN
                if lam > LAM_MAX:
                    status = STATUS_CONVERGED
                    break
                continue
            # Predicted decrease of the damped Gauss-Newton step and the projected step size.
            small = True
            pred = ZERO
            for a in range(NP):
                v = min(max(p[a] + d[a], lo[a]), hi[a])
                if abs(v - p[a]) > xtol * (abs(p[a]) + xtol):
                    small = False
                pred += (v - p[a]) * jtr[a]
                pt[a] = v
            if small or pred <= ftol * chi2:
                # The step would not change the fit to the tolerance: p is the minimum.
                status = STATUS_CONVERGED
                break
            # The trial pass overwrites J^T J and J^T r; a rejected step re-evaluates them at p
            # (rare from a good start, and it keeps the per-fit scratch at one triangle).
            chi2_t = accumulate(x, y, row, pt, aux, jtj, jtr, vb, jb, rb)
            if chi2_t <= chi2:
                decrease = chi2 - chi2_t
                chi2 = chi2_t
                for a in range(NP):
                    p[a] = pt[a]
                lam = max(lam * TENTH, LAM_MIN)
                if decrease <= ftol * chi2:
                    status = STATUS_CONVERGED
                    break
            else:
                lam *= TEN
                if lam > LAM_MAX:
                    status = STATUS_CONVERGED
                    break
                chi2 = accumulate(x, y, row, p, aux, jtj, jtr, vb, jb, rb)
        r2 = ONE - chi2 / sst if sst > ZERO else nan
        return status, it, chi2, r2, r2_start

    core.callees = (accumulate, solve)  # the compiled helpers it calls
    return core


#: Up to this many parameters the CPU reductions run as one fused loop with scalar accumulators.
FUSED_MAX_PARAMS = 10


def _fused_accumulate(n_params: int, n_out: int, namespace: dict) -> Callable:
    """Generate ``accumulate`` with J^T J, J^T r and chi-square as scalar accumulators of one loop.

    Same result as ``accumulate_blocked`` (the model loop writes the buffers, then one reduction pass),
    but each Jacobian value is loaded once and every sum stays in a register: the generated loop over
    samples vectorizes as a multi-accumulator reduction. Plain Python, generated for the model's
    (n_params, n_out) because the accumulators must be scalars.
    """
    NP, NO = n_params, n_out
    pairs = [(a, b) for a in range(NP) for b in range(a, NP)]
    src = [
        "def accumulate_fused(x, y, row, p, aux, jtj, jtr, vb, jb, rb):",
        "    m = x.shape[0]",
        "    prepare(p, aux)",
        "    for j in range(m):",
        f"        point(x[j], j, m, p, aux, rb, jb, j, MS, {NO} * MS)",
        "    c = ZERO",
        *(f"    g{a} = ZERO" for a in range(NP)),
        *(f"    s{a}_{b} = ZERO" for a, b in pairs),
        "    for j in range(m):",
        *(f"        r{k} = y[row, j * {NO} + {k}] - rb[{k} * MS + j]" for k in range(NO)),
        "        c += " + " + ".join(f"r{k} * r{k}" for k in range(NO)),
        *(f"        j{a}_{k} = jb[{a * NO + k} * MS + j]" for a in range(NP) for k in range(NO)),
        *(f"        g{a} += " + " + ".join(f"j{a}_{k} * r{k}" for k in range(NO)) for a in range(NP)),
        *(f"        s{a}_{b} += " + " + ".join(f"j{a}_{k} * j{b}_{k}" for k in range(NO)) for a, b in pairs),
        *(f"    jtr[{a}] = g{a}" for a in range(NP)),
        *(f"    jtj[{q}] = s{a}_{b}" for q, (a, b) in enumerate(pairs)),
        "    return c",
    ]
    # with a module name: numba rebuilds the environment of a function loaded from its cache by that name
    ns = {**namespace, "__name__": __name__}
    exec(compile("\n".join(src), f"<fused accumulate {NP}x{NO}>", "exec"), ns)
    return ns["accumulate_fused"]


#: The CPU kernels compute in float64 also for float32 data (measured faster on x86: float32 gains
#: nothing in the short per-fit vector loops and loses in the scalar parts); CUDA uses the data's type.
CPU_COMPUTE_FLOAT64 = True

#: LLVM fast-math flags of the CPU kernels: reassociation lets the sample reductions use SIMD; no
#: ``nnan``/``ninf``, so the non-finite checks stay exact.
CPU_FASTMATH = frozenset({"reassoc", "contract", "nsz", "arcp"})


def cpu_fit_jit(**options) -> Callable:
    """``numba.njit`` decorator of the CPU fit kernels (NumPy error model, :data:`CPU_FASTMATH`)."""
    return numba.njit(error_model="numpy", fastmath=set(CPU_FASTMATH), **options)


#: Row strides of the CPU sample buffers (compile-time constants; not powers of two, to avoid cache-set
#: aliasing). Spectra longer than the last use the streamed accumulation.
BLOCK_STRIDES = (136, 520, 2056, 8200)


def block_stride(m: int) -> int:
    """Sample-buffer stride of the CPU kernel for ``m`` samples (0: streamed)."""
    for s in BLOCK_STRIDES:
        if m <= s:
            return s
    return 0


@functools.cache
def cpu_lm_driver(model: Model, dtype_name: str, stride: int = 136) -> Callable:
    """Compiled CPU driver for ``model`` computing in ``float32`` or ``float64`` (cached).

    ``stride`` is the sample-buffer stride (:func:`block_stride`; spectra of up to ``stride`` samples,
    0 for the streamed accumulation of any length).

    ``driver(x, y, p0, lo, hi, maxiter, ftol, xtol, params, chi2, r2, niter, status, r2_start, start,
    stop)`` fits rows ``start:stop`` of ``y``; it allocates its scratch once, no fit does, and releases
    the GIL, so :func:`run_threaded` runs row ranges on all cores. (A ``parallel=True`` ``prange``
    driver computes the same but costs 5-10 s more numba compile time per model and float type.)
    """
    F = np.dtype(dtype_name).type
    NP, NO, NA = model.n_params, model.n_out, max(model.n_aux, 1)
    name = kernel_cache_name(model, dtype_name, f"s{stride}-cpu")

    def cpu_jit(func: Callable, callees: tuple = ()) -> Callable:
        # every compiled callee is cached too: see kernels.cache on why a kernel loads its callees first
        compiled = cpu_fit_jit()(func)
        return compiled if name is None else persistent(compiled, f"{name}.{func.__name__}", callees)

    # the per-sample model is inlined at numba level: numba does not inline across its functions, and
    # a call per sample costs more than the model (the larger helpers are called once per pass)
    inline_jit = cpu_fit_jit(inline="always")
    point = inline_jit(model.make_point(F))
    prepare = inline_jit(model.make_prepare(F))
    core_source = _make_core(model, point, prepare, F, cpu_jit, stride)
    core = cpu_jit(core_source, core_source.callees)
    MS = max(stride, 1)
    NN = NP * (NP + 1) // 2

    def driver(x, y, p0, lo, hi, maxiter, ftol, xtol, params, chi2, r2, niter, status, r2_start, start, stop):
        pt = np.empty(NP, dtype=F)
        jtj = np.empty(NN, dtype=F)
        jtr = np.empty(NP, dtype=F)
        c = np.empty(NN, dtype=F)
        d = np.empty(NP, dtype=F)
        aux = np.empty(NA, dtype=F)
        vb = np.empty(NO, dtype=F)
        jb = np.empty(NP * NO * MS if stride > 0 else NP * NO, dtype=F)
        rb = np.empty(NO * MS if stride > 0 else NO, dtype=F)
        p = np.empty(NP, dtype=F)
        for i in range(start, stop):
            for a in range(NP):
                p[a] = p0[i, a]
            st, it, c2, rr, r0 = core(
                x, y, i, p, lo, hi, maxiter, ftol, xtol, pt, jtj, jtr, c, d, aux, vb, jb, rb
            )
            for a in range(NP):
                params[i, a] = p[a]
            status[i] = st
            niter[i] = it
            chi2[i] = c2
            r2[i] = rr
            r2_start[i] = r0

    compiled = cpu_fit_jit(nogil=True)(driver)
    return compiled if name is None else persistent(compiled, name, (core,))


def kernel_cache_name(model: Model, dtype_name: str, variant: str) -> str | None:
    """On-disk cache name of a specialisation of ``model``; None for a model defined outside ``kernels``.

    Only models whose source is in this package are covered by the cache's source stamp: a model
    defined elsewhere (by a user, a test) compiles in each process as before.
    """
    if not getattr(model.make_point, "__module__", "").startswith(__package__ + "."):
        return None
    return f"lm-{model.name}-{dtype_name}-{variant}"


_POOL = None
_POOL_KEY = None


def _pool(n_workers: int):
    """A persistent thread pool for :func:`run_threaded`.

    Created on first use, replaced when more workers are needed and in a forked child process (whose
    copy of the parent's pool has no threads).
    """
    global _POOL, _POOL_KEY
    key = (os.getpid(), n_workers)
    if _POOL is None or _POOL_KEY[0] != key[0] or _POOL_KEY[1] < n_workers:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(n_workers, thread_name_prefix="pycro_gpu-lm")
        _POOL_KEY = key
    return _POOL


def run_threaded(driver: Callable, n: int, *args) -> None:
    """Call ``driver(*args, start, stop)`` over ``range(n)`` split across ``numba.get_num_threads()`` threads.

    The driver releases the GIL, so the blocks run in parallel. A driver not compiled yet is compiled
    first in the calling thread on an empty range.
    """
    n_threads = max(1, min(numba.get_num_threads(), n // 64 or 1))
    if n_threads == 1:
        driver(*args, 0, n)
        return
    if not driver.signatures:
        driver(*args, 0, 0)
    bounds = [n * k // n_threads for k in range(n_threads + 1)]
    pool = _pool(n_threads - 1)
    futures = [pool.submit(driver, *args, bounds[k], bounds[k + 1]) for k in range(1, n_threads)]
    driver(*args, bounds[0], bounds[1])
    for fut in futures:
        fut.result()


def cuda_lm_kernel(model: Model, dtype_name: str) -> Callable:
    """Compiled CUDA kernel for ``model`` in ``float32`` or ``float64``: one thread per fit (cached).

    ``kernel[blocks, threads](x, y, p0, lo, hi, maxiter, ftol, xtol, params, chi2, r2, niter, status,
    r2_start)``.
    """
    return cuda_kernel(
        _cuda_lm_factory, model, dtype_name, cache_name=kernel_cache_name(model, dtype_name, "cuda")
    )


def _cuda_lm_factory(model: Model, dtype_name: str) -> Callable:
    F = np.dtype(dtype_name).type
    NT = numba.float32 if F is np.float32 else numba.float64
    NP, NO, NA = model.n_params, model.n_out, max(model.n_aux, 1)
    NN = NP * (NP + 1) // 2
    NJ = NO * NP
    point = cuda_device(model.make_point(F))
    prepare = cuda_device((model.make_prepare_cuda or model.make_prepare)(F))
    core = cuda_device(_make_core(model, point, prepare, F, cuda_device, 0))

    def lm_kernel(x, y, p0, lo, hi, maxiter, ftol, xtol, params, chi2, r2, niter, status, r2_start):
        i = cuda.grid(1)
        if i >= y.shape[0]:
            return
        p = cuda.local.array(NP, NT)
        pt = cuda.local.array(NP, NT)
        jtj = cuda.local.array(NN, NT)
        jtr = cuda.local.array(NP, NT)
        c = cuda.local.array(NN, NT)
        d = cuda.local.array(NP, NT)
        aux = cuda.local.array(NA, NT)
        vb = cuda.local.array(NO, NT)
        jb = cuda.local.array(NJ, NT)
        for a in range(NP):
            p[a] = p0[i, a]
        st, it, c2, rr, r0 = core(
            x, y, i, p, lo, hi, maxiter, ftol, xtol, pt, jtj, jtr, c, d, aux, vb, jb, vb
        )
        for a in range(NP):
            params[i, a] = p[a]
        status[i] = st
        niter[i] = it
        chi2[i] = c2
        r2[i] = rr
        r2_start[i] = r0

    return cuda.jit(lm_kernel)


def lm_kernel_signature(model: Model, dtype_name: str) -> str:
    """numba signature of :func:`cuda_lm_kernel` for C-contiguous inputs (for ahead-of-time compilation)."""
    t = dtype_name
    return (
        f"void({t}[::1], {t}[:, ::1], {t}[:, ::1], {t}[::1], {t}[::1], int64, {t}, {t}, "
        f"{t}[:, ::1], {t}[::1], {t}[::1], int32[::1], int8[::1], {t}[::1])"
    )


def lm_fit_batch(
    model: Model,
    x,
    y,
    p0,
    lo,
    hi,
    *,
    maxiter=100,
    ftol=None,
    xtol=None,
    target=None,
    stream=None,
    start_r2=False,
):
    """Fit every row of ``y`` with ``model`` (the raw kernel call; :mod:`pycro_gpu.fitting` wraps it).

    Parameters
    ----------
    model : Model
        The fit model.
    x : (m,) float array
        Abscissa, same float type as ``y``.
    y : (n, m * model.n_out) float array, C-contiguous
        Data; complex data as its real view (real and imaginary parts interleaved).
    p0 : (n, model.n_params) float array
        Start points.
    lo, hi : (model.n_params,) float arrays
        Box bounds (``-inf``/``inf`` for none).
    maxiter : int
        Iteration limit per fit.
    ftol, xtol : float, optional
        Relative chi-square decrease and relative step that stop a fit (default 1e-7 in float64,
        1e-5 in float32).
    target : {'cpu', 'cuda'}, optional
        Kernel to run; default from where ``y`` lives. ``'cuda'`` with host arrays copies them to the
        device and back (tests under ``NUMBA_ENABLE_CUDASIM=1``).
    stream : numba stream, optional
        CUDA stream of the launch (and of the copies of host arrays). Default for CuPy arrays: CuPy's
        current stream (:func:`~._jit.launch_stream`), so that the fit runs in order with the CuPy work
        around it and without numba's per-argument synchronisation; for host arrays the default stream.
    start_r2 : bool
        Also return the R^2 of the start points (projected on the bounds), from the fit's first pass.

    Returns
    -------
    params : (n, n_params) array
    chi2, r2 : (n,) arrays
    niter : (n,) int32 array
    status : (n,) int8 array
        0 converged, 1 iteration limit, 2 non-finite data or start point.
    r2_start : (n,) array
        Only with ``start_r2``: R^2 at the start point (NaN where the fit was skipped).
        Arrays live where ``y`` lives (NumPy, or CuPy for CuPy input).
    """
    on_device = has_cuda_interface(y)
    target = target or ("cuda" if on_device else "cpu")
    dtype = y.dtype
    if str(dtype) not in ("float32", "float64"):
        msg = f"lm_fit_batch needs float32 or float64 data, got dtype {dtype}"
        raise TypeError(msg)
    n = int(y.shape[0])
    m = int(x.shape[0])
    if y.ndim != 2 or y.shape[1] != m * model.n_out:
        msg = (
            f"y must have shape (n, {m} * {model.n_out}) for model {model.name!r} and {m} samples, "
            f"got {tuple(y.shape)}"
        )
        raise ValueError(msg)
    if p0.shape != (n, model.n_params):
        msg = f"p0 must have shape ({n}, {model.n_params}) for model {model.name!r}, got {tuple(p0.shape)}"
        raise ValueError(msg)
    tol = 1e-5 if str(dtype) == "float32" else 1e-7
    ftol = tol if ftol is None else ftol
    xtol = tol if xtol is None else xtol
    if target == "cpu":
        if on_device:
            msg = "lm_fit_batch(target='cpu') got an array in CUDA device memory"
            raise ValueError(msg)
        F = np.float64 if CPU_COMPUTE_FLOAT64 else dtype.type
        outs = _empty_outputs(np.empty, n, model.n_params, dtype)
        run_threaded(
            cpu_lm_driver(model, np.dtype(F).name, block_stride(m)),
            n,
            np.ascontiguousarray(x, dtype=F),
            np.ascontiguousarray(y),
            np.ascontiguousarray(p0, dtype=F),
            np.ascontiguousarray(lo, dtype=F),
            np.ascontiguousarray(hi, dtype=F),
            int(maxiter),
            F(ftol),
            F(xtol),
            *outs,
        )
    elif target == "cuda":
        outs = _lm_fit_cuda(model, x, y, p0, lo, hi, int(maxiter), ftol, xtol, on_device, stream)
    else:
        msg = f"target must be 'cpu' or 'cuda', got {target!r}"
        raise ValueError(msg)
    return outs if start_r2 else outs[:5]


def _empty_outputs(empty: Callable, n: int, n_params: int, dtype) -> tuple:
    """``(params, chi2, r2, niter, status, r2_start)`` of ``n`` fits, allocated by ``empty`` (NumPy, CuPy)."""
    return (
        empty((n, n_params), dtype=dtype),
        empty(n, dtype=dtype),
        empty(n, dtype=dtype),
        empty(n, dtype=np.int32),
        empty(n, dtype=np.int8),
        empty(n, dtype=dtype),
    )


def _lm_fit_cuda(model, x, y, p0, lo, hi, maxiter, ftol, xtol, on_device, stream=None):
    kernel = cuda_lm_kernel(model, str(y.dtype))
    n = int(y.shape[0])
    dt = y.dtype
    F = np.dtype(str(dt)).type
    threads = 64
    blocks = max(1, (n + threads - 1) // threads)
    if on_device:
        import cupy

        stream = launch_stream() if stream is None else stream
        inputs = [cupy.ascontiguousarray(a, dtype=dt) for a in (x, y, p0, lo, hi)]
        outs = _empty_outputs(cupy.empty, n, model.n_params, dt)
        launch(kernel, blocks, threads, (*inputs, maxiter, F(ftol), F(xtol), *outs), stream)
        return outs
    numba_cuda = _numba_cuda()
    s = stream or 0
    inputs = [numba_cuda.to_device(np.ascontiguousarray(a, dtype=dt), stream=s) for a in (x, y, p0, lo, hi)]
    outs = tuple(numba_cuda.to_device(o, stream=s) for o in _empty_outputs(np.empty, n, model.n_params, dt))
    launch(kernel, blocks, threads, (*inputs, maxiter, F(ftol), F(xtol), *outs), s)
    host = tuple(d.copy_to_host(stream=s) for d in outs)
    if s:
        s.synchronize()
    return host
