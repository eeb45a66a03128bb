"""Band-excitation hysteresis loop (9 parameters) with its analytic Jacobian.

The DC-bias vector ``V`` is split in two branches (first and second half of the samples). For branch 1
``(a_sw, b_lo, b_hi) = (a2, b0, b1)``, for branch 2 ``(a3, b2, b3)``:

    g = (b_hi - b_lo) / 2 (erf(1000 (V - a_sw)) + 1) + b_lo
    y = (g erf((V - a_sw) / g) + b_lo) / (b_lo + b_hi)
    f = a0 + a1 y + a4 V

Parameters ``(a0, a1, a2, a3, a4, b0, b1, b2, b3)``; bounds a0..a3 in [-1e3, 1e3], a4 in [-0.1, 0.1],
b in [1e-3, 100] (see :data:`LOOP_BOUNDS`).
"""

from __future__ import annotations

import math

from .lm import Model, make_no_prepare

__all__ = ["LOOP", "LOOP_BOUNDS", "make_point", "make_prepare"]

#: Default box bounds (lower, upper) of the 9 loop parameters.
LOOP_BOUNDS = (
    (-1e3, -1e3, -1e3, -1e3, -0.1, 1e-3, 1e-3, 1e-3, 1e-3),
    (1e3, 1e3, 1e3, 1e3, 0.1, 100.0, 100.0, 100.0, 100.0),
)


#: No per-pass constants.
make_prepare = make_no_prepare


def make_point(F):
    """Loop value and Jacobian at one bias sample, in float type ``F``."""
    ZERO = F(0.0)
    ONE = F(1.0)
    HALF = F(0.5)
    SHARP = F(1000.0)
    TWO_SQRTPI = F(2.0 / math.sqrt(math.pi))

    def point(xj, j, m, p, aux, vb, jb, t, ks, js):
        second = j >= m // 2
        if second:
            a_sw = p[3]
            bl = p[7]
            bh = p[8]
        else:
            a_sw = p[2]
            bl = p[5]
            bh = p[6]
        dv = xj - a_sw
        z = SHARP * dv
        s = math.erf(z)
        sp = TWO_SQRTPI * math.exp(-z * z)
        g = (bh - bl) * HALF * (s + ONE) + bl
        u = dv / g
        e = math.erf(u)
        ep = TWO_SQRTPI * math.exp(-u * u)
        i_s = ONE / (bl + bh)
        y = (g * e + bl) * i_s
        dn_dg = e - u * ep
        dg_da = -(bh - bl) * HALF * sp * SHARP
        dy_da = (dn_dg * dg_da - ep) * i_s
        dy_dbl = (dn_dg * (ONE - s) * HALF + ONE - y) * i_s
        dy_dbh = (dn_dg * (s + ONE) * HALF - y) * i_s
        a1 = p[1]
        vb[t] = p[0] + a1 * y + p[4] * xj
        jb[t] = ONE
        jb[js + t] = y
        jb[4 * js + t] = xj
        if second:
            jb[2 * js + t] = ZERO
            jb[3 * js + t] = a1 * dy_da
            jb[5 * js + t] = ZERO
            jb[6 * js + t] = ZERO
            jb[7 * js + t] = a1 * dy_dbl
            jb[8 * js + t] = a1 * dy_dbh
        else:
            jb[2 * js + t] = a1 * dy_da
            jb[3 * js + t] = ZERO
            jb[5 * js + t] = a1 * dy_dbl
            jb[6 * js + t] = a1 * dy_dbh
            jb[7 * js + t] = ZERO
            jb[8 * js + t] = ZERO

    return point


#: The loop model for :func:`kernels.lm.lm_fit_batch` (real data, 9 parameters).
LOOP = Model("loop", 9, 1, make_point, make_prepare, 1)
