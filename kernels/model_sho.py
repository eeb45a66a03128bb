"""Simple harmonic oscillator (band excitation) model, analytic Jacobian and the two-point SHO guess.

H(w) = A e^{i phi} w0^2 / (w^2 - i w w0 / Q - w0^2), parameters (A, w0, Q, phi), fit to complex
spectra as real and imaginary residuals. This sign is the one band-excitation data and tools use: Q is
positive on real data.

The kernels work in scaled units (the fitting API divides frequencies and responses by a scale so that
float32 keeps its precision); the model is invariant under that scaling (w0 scales with w, A with H).

Guess (:func:`sho_guess_row`): the SHO is a rational function, ``H(w) (w^2 - d - i w c) = K`` with
``d = w0^2``, ``c = w0 / Q`` and ``K = A e^{i phi} w0^2``. Two bins determine it: subtracting the equation
at two frequencies eliminates ``K`` and leaves a 2x2 real system for ``(d, c)``. The inversion runs over
all pairs of the ``N_STRONG`` strongest bins (searched within ``N_STRONG`` bins of the strongest one);
each admissible pair (``d > 0``) is scored by its squared error over the spectrum (every ``ESTRIDE``-th
bin) and the pairs are averaged with weights ``(e_min / e)^4`` (the "complex gaussian" guess of the
band-excitation literature). Fallback where no pair is admissible or the average
lies outside the band: w0 at the strongest bin, Q from the half-power width, A and phi from the peak.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

from ._jit import cuda_device, cuda_kernel, launch, launch_stream
from .cache import persistent
from .lm import CPU_COMPUTE_FLOAT64, Model, cpu_fit_jit, run_threaded

__all__ = [
    "N_STRONG",
    "SHO",
    "cpu_sho_guess",
    "cuda_sho_guess_kernel",
    "make_point",
    "make_prepare",
    "make_prepare_cuda",
    "sho_guess_cuda",
    "sho_guess_row",
    "sincos_reduced",
]

#: Number of strongest bins whose pairs the guess inverts (6 pairs).
N_STRONG = 4
#: Candidates are scored on every ESTRIDE-th bin (enough to rank them; halves the guess cost).
ESTRIDE = 2
_N_PAIRS = N_STRONG * (N_STRONG - 1) // 2
#: Threads per block of the CUDA guess (its per-thread scratch is sized by it in shared memory).
GUESS_THREADS = 64

#: numba.cuda, bound by ``cuda_kernel`` on first CUDA use (a module global, as numba's simulator requires).
cuda = None


def make_prepare(F):
    """Per-pass constants: cos and sin of the phase, w0^2, 1/Q, 2/w0, w0/Q^2."""
    ONE = F(1.0)
    TWO = F(2.0)

    def prepare(p, aux):
        w0 = p[1]
        iq = ONE / p[2]
        aux[0] = math.cos(p[3])
        aux[1] = math.sin(p[3])
        aux[2] = w0 * w0
        aux[3] = iq
        aux[4] = TWO / w0
        aux[5] = w0 * iq * iq

    return prepare


def make_prepare_cuda(F):
    """:func:`make_prepare` of the CUDA kernel: the phase's sine and cosine from :func:`sincos_reduced`.

    CUDA's ``sin``/``cos`` carry a Payne-Hanek reduction for huge arguments whose scratch lives in local
    memory (a 28-40 byte stack frame in the LM kernel); :func:`sincos_reduced` needs none. It computes
    in float64 also for float32 fits: it runs once per pass.
    """
    ONE = F(1.0)
    TWO = F(2.0)
    sincos = cuda_device(sincos_reduced)

    def prepare_cuda(p, aux):
        w0 = p[1]
        iq = ONE / p[2]
        s, c = sincos(float(p[3]))
        aux[0] = c
        aux[1] = s
        aux[2] = w0 * w0
        aux[3] = iq
        aux[4] = TWO / w0
        aux[5] = w0 * iq * iq

    return prepare_cuda


# sincos_reduced: Cody-Waite reduction by pi/2 (fdlibm's three-part pi/2: the first two parts have 33
# significant bits, so k * part is exact for |k| < 2^20) and musl's sin/cos kernel polynomials on
# [-pi/4, pi/4].
_PIO2_1 = 1.57079632673412561417e00
_PIO2_2 = 6.07710050630396597660e-11
_PIO2_3 = 2.02226624871116645580e-21
_INVPIO2 = 6.36619772367581382433e-01
_TWO_PI = 2.0 * math.pi
_RMAX = 1.0e6
_FMAX = float(np.finfo(np.float64).max)
_S1, _S2, _S3 = -1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04
_S4, _S5, _S6 = 2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10
_C1, _C2, _C3 = 4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05
_C4, _C5, _C6 = -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11


def sincos_reduced(x):
    """``(sin(x), cos(x))`` of a float64 ``x`` in plain arithmetic (no table, no local memory on CUDA).

    Within 1 ulp of the exact values (absolute error below 1e-30 next to their zeros) for
    ``|x| <= 1e6``; larger arguments are first reduced modulo the float64 2 pi (an error of
    ``|x| / 2 pi * 2.4e-16``, where the phase itself has lost that much); NaN for non-finite ``x``.
    """
    if not abs(x) <= _RMAX:
        if not abs(x) <= _FMAX:
            nan = x - x
            return nan, nan
        x = math.fmod(x, _TWO_PI)
    k = int(math.floor(x * _INVPIO2 + 0.5))  # noqa: RUF046 (numba.cuda's floor returns a float)
    fk = float(k)
    r = ((x - fk * _PIO2_1) - fk * _PIO2_2) - fk * _PIO2_3
    z = r * r
    w = z * z
    s = r + z * r * (_S1 + z * (_S2 + z * (_S3 + z * _S4) + z * w * (_S5 + z * _S6)))
    hz = 0.5 * z
    w1 = 1.0 - hz
    c = w1 + (((1.0 - w1) - hz) + z * (z * (_C1 + z * (_C2 + z * _C3)) + w * w * (_C4 + z * (_C5 + z * _C6))))
    n = k & 3
    if n == 0:
        return s, c
    if n == 1:
        return c, -s
    if n == 2:
        return -s, -c
    return -c, s


def make_point(F):
    """SHO values (real, imaginary) and Jacobian at one frequency, in float type ``F``."""
    ONE = F(1.0)
    TWO = F(2.0)

    def point(xj, j, m, p, aux, vb, jb, t, ks, js):
        amp = p[0]
        w0 = p[1]
        cph = aux[0]
        sph = aux[1]
        w02 = aux[2]
        xq = xj * aux[3]
        dr = (xj - w0) * (xj + w0)
        di = -w0 * xq
        iden = ONE / (dr * dr + di * di)
        ir = dr * iden
        ii = -di * iden
        gr = w02 * (cph * ir - sph * ii)
        gi = w02 * (cph * ii + sph * ir)
        hr = amp * gr
        hi = amp * gi
        vb[t] = hr
        vb[t + ks] = hi
        # d/dA
        jb[t] = gr
        jb[t + ks] = gi
        # d/dw0 = H (2 / w0 - dD/dw0 / D), dD/dw0 = -2 w0 - i w / Q
        tr = -TWO * w0 * ir + xq * ii
        ti = -TWO * w0 * ii - xq * ir
        ur = aux[4] - tr
        ui = -ti
        jb[js + t] = hr * ur - hi * ui
        jb[js + t + ks] = hr * ui + hi * ur
        # d/dQ = -H dD/dQ / D, dD/dQ = i w w0 / Q^2
        s = xj * aux[5]
        tr = -s * ii
        ti = s * ir
        jb[2 * js + t] = -(hr * tr - hi * ti)
        jb[2 * js + t + ks] = -(hr * ti + hi * tr)
        # d/dphi = i H
        jb[3 * js + t] = -hi
        jb[3 * js + t + ks] = hr

    return point


#: The SHO model for :func:`kernels.lm.lm_fit_batch`: parameters (A, w0, Q, phi), complex data.
SHO = Model("sho", 4, 2, make_point, make_prepare, 6, make_prepare_cuda)


def _make_guess_row(F):
    ZERO = F(0.0)
    NAN = F(np.nan)
    # finiteness as abs(v) <= FMAX: unlike math.isfinite it survives LLVM fast-math folding
    FMAX = F(np.finfo(F).max)
    ONE = F(1.0)
    HALF = F(0.5)
    HALF_PI = F(math.pi / 2)
    NS = N_STRONG

    def sho_guess_row(x, y, row, out, idx, mag, cand):
        """Guess (A, w0, Q, phi) for row ``row`` of ``y`` (interleaved re/im) into ``out``."""
        m = x.shape[0]
        for k in range(NS):
            idx[k] = -1
            mag[k] = -ONE
        # One light pass: band limits, the strongest bin, and a finiteness check through the sum.
        xmin = x[0]
        xmax = x[0]
        total = ZERO
        best = -ONE
        jbest = 0
        for j in range(m):
            xmin = min(xmin, x[j])
            xmax = max(xmax, x[j])
            re = y[row, 2 * j]
            im = y[row, 2 * j + 1]
            a2 = re * re + im * im
            total += a2
            if a2 > best:
                best = a2
                jbest = j
        if not abs(total) <= FMAX:
            for k in range(4):
                out[k] = NAN
            return
        # The N_STRONG strongest bins around the strongest one (a resonance's strongest bins are
        # neighbours; searching a window of 2 N_STRONG + 1 keeps the branchy insertion short).
        for j in range(max(jbest - NS, 0), min(jbest + NS + 1, m)):
            re = y[row, 2 * j]
            im = y[row, 2 * j + 1]
            a2 = re * re + im * im
            if a2 > mag[NS - 1]:
                k = NS - 1
                while k > 0 and mag[k - 1] < a2:
                    mag[k] = mag[k - 1]
                    idx[k] = idx[k - 1]
                    k -= 1
                mag[k] = a2
                idx[k] = j
        # Two-point inversions over pairs of the strongest bins.
        nc = 0
        emin = ZERO
        for c1 in range(NS):
            for c2 in range(c1 + 1, NS):
                j1 = idx[c1]
                j2 = idx[c2]
                if j1 < 0 or j2 < 0:
                    continue
                w1 = x[j1]
                w2 = x[j2]
                h1r = y[row, 2 * j1]
                h1i = y[row, 2 * j1 + 1]
                h2r = y[row, 2 * j2]
                h2i = y[row, 2 * j2 + 1]
                pr = h1r - h2r
                pi = h1i - h2i
                tr = w1 * h1r - w2 * h2r
                ti = w1 * h1i - w2 * h2i
                rr = -ti
                ri = tr
                sr = h1r * w1 * w1 - h2r * w2 * w2
                si = h1i * w1 * w1 - h2i * w2 * w2
                det = pr * ri - rr * pi
                if det == ZERO:
                    continue
                d = (sr * ri - rr * si) / det
                c = (pr * si - sr * pi) / det
                if not (d > ZERO and abs(c) <= FMAX and c != ZERO):
                    continue
                e1 = w1 * w1 - d
                e2 = -w1 * c
                kr = h1r * e1 - h1i * e2
                ki = h1i * e1 + h1r * e2
                # squared error of K / (w^2 - d - i w c) over the spectrum
                err = ZERO
                for j in range(0, m, ESTRIDE):
                    w = x[j]
                    dr = w * w - d
                    di = -w * c
                    den = dr * dr + di * di
                    mr = (kr * dr + ki * di) / den
                    mi = (ki * dr - kr * di) / den
                    er = mr - y[row, 2 * j]
                    ei = mi - y[row, 2 * j + 1]
                    err += er * er + ei * ei
                if not abs(err) <= FMAX:
                    continue
                cand[5 * nc] = d
                cand[5 * nc + 1] = c
                cand[5 * nc + 2] = kr
                cand[5 * nc + 3] = ki
                cand[5 * nc + 4] = err
                if nc == 0 or err < emin:
                    emin = err
                nc += 1
        ok = False
        if nc > 0:
            ws = ZERO
            d = ZERO
            c = ZERO
            kr = ZERO
            ki = ZERO
            for k in range(nc):
                r = emin / cand[5 * k + 4] if cand[5 * k + 4] > ZERO else ONE
                wgt = r * r * r * r
                ws += wgt
                d += wgt * cand[5 * k]
                c += wgt * cand[5 * k + 1]
                kr += wgt * cand[5 * k + 2]
                ki += wgt * cand[5 * k + 3]
            d = d / ws
            c = c / ws
            kr = kr / ws
            ki = ki / ws
            if d > ZERO and c != ZERO:
                w0 = math.sqrt(d)
                if xmin <= w0 <= xmax:
                    out[0] = math.sqrt(kr * kr + ki * ki) / d
                    out[1] = w0
                    out[2] = w0 / c
                    out[3] = math.atan2(ki, kr)
                    ok = abs(out[0]) <= FMAX and abs(out[2]) <= FMAX
        if not ok:
            # Fallback: peak position, half-power width, peak amplitude and phase.
            jp = idx[0]
            w0 = x[jp]
            hp = HALF * mag[0]
            cnt = 0
            for j in range(m):
                re = y[row, 2 * j]
                im = y[row, 2 * j + 1]
                if re * re + im * im >= hp:
                    cnt += 1
            dx = (xmax - xmin) / F(max(m - 1, 1))
            width = max(F(cnt) * dx, dx)
            q = w0 / width if width > ZERO else ONE
            q = max(q, ONE)
            out[0] = math.sqrt(mag[0]) / q
            out[1] = w0
            out[2] = q
            out[3] = math.atan2(y[row, 2 * jp + 1], y[row, 2 * jp]) - HALF_PI

    return sho_guess_row


sho_guess_row = _make_guess_row(np.float64)


@functools.cache
def cpu_sho_guess(dtype_name: str):
    """Compiled CPU guess driver ``guess(x, y, out, start, stop)`` over rows ``start:stop`` (cached).

    Releases the GIL: :func:`kernels.lm.run_threaded` spreads it over the cores.
    """
    F = np.dtype(dtype_name).type
    name = f"sho_guess-{dtype_name}-cpu"
    row_fn = persistent(cpu_fit_jit()(_make_guess_row(F)), f"{name}.row")

    def guess(x, y, out, start, stop):
        idx = np.empty(N_STRONG, dtype=np.int64)
        mag = np.empty(N_STRONG, dtype=F)
        cand = np.empty(5 * _N_PAIRS, dtype=F)
        for i in range(start, stop):
            row_fn(x, y, i, out[i], idx, mag, cand)

    return persistent(cpu_fit_jit(nogil=True)(guess), name, (row_fn,))


def sho_guess_batch(x, y, out) -> None:
    """Run the CPU guess on every row of ``y`` (n, 2 m) into ``out`` (n, 4), on all cores.

    Computes in float64 also for float32 data (see :data:`kernels.lm.CPU_COMPUTE_FLOAT64`).
    """
    compute = "float64" if CPU_COMPUTE_FLOAT64 else str(y.dtype)
    x = np.ascontiguousarray(x, dtype=compute)
    run_threaded(cpu_sho_guess(compute), y.shape[0], x, y, out)


def sho_guess_cuda(x, y, out, *, stream=None) -> None:
    """Run the CUDA guess on every row of the CuPy array ``y`` (n, 2 m) into ``out`` (n, 4).

    Launched on ``stream``, by default CuPy's current stream (:func:`._jit.launch_stream`), in order with
    the CuPy work around it and without numba's per-argument synchronisation.
    """
    threads = GUESS_THREADS
    blocks = max(1, (int(y.shape[0]) + threads - 1) // threads)
    kernel = cuda_sho_guess_kernel(str(y.dtype))
    launch(kernel, blocks, threads, (x, y, out), launch_stream() if stream is None else stream)


def cuda_sho_guess_kernel(dtype_name: str):
    """Compiled CUDA guess kernel ``kernel[blocks, threads](x, y, out)``, one thread per row (cached)."""
    return cuda_kernel(_cuda_sho_guess_factory, dtype_name, cache_name=f"sho_guess-{dtype_name}-cuda")


def _cuda_sho_guess_factory(dtype_name: str):
    F = np.dtype(dtype_name).type
    NT = numba.float32 if F is np.float32 else numba.float64
    row_fn = cuda_device(_make_guess_row(F))
    TPB = GUESS_THREADS
    # odd row lengths keep the threads of a warp on distinct shared-memory banks
    NS1 = N_STRONG + 1
    NC1 = 5 * _N_PAIRS + 1

    def sho_guess_kernel(x, y, out):
        # Each thread's scratch (strongest bins, candidates, result) is its row of block-shared arrays:
        # indexed by loop variables it would otherwise live in local memory (off-chip, cached).
        t = cuda.threadIdx.x
        idx = cuda.shared.array((TPB, NS1), numba.int32)
        mag = cuda.shared.array((TPB, NS1), NT)
        cand = cuda.shared.array((TPB, NC1), NT)
        res = cuda.shared.array((TPB, 5), NT)
        i = cuda.grid(1)
        if i >= y.shape[0]:
            return
        row_fn(x, y, i, res[t], idx[t], mag[t], cand[t])
        for a in range(4):
            out[i, a] = res[t, a]

    return cuda.jit(sho_guess_kernel)
