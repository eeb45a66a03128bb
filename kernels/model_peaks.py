"""Peak models: sums of K Gaussian, Lorentzian or pseudo-Voigt peaks on a linear background.

Each peak has a height ``h``, a centre ``c`` and a full width at half maximum ``w`` (and, for the
pseudo-Voigt, a Lorentzian fraction ``eta`` in [0, 1]); with ``z = (x - c) / w``:

* Gaussian ``G = exp(-4 ln2 z^2)``, Lorentzian ``L = 1 / (1 + 4 z^2)``,
  pseudo-Voigt ``eta L + (1 - eta) G``;
* ``f(x) = sum_k h_k P_k(x) + b0 + b1 x``.

Parameters: ``(h_1, c_1, w_1[, eta_1], ..., h_K, c_K, w_K[, eta_K], b0, b1)``.
"""

from __future__ import annotations

import functools
import math

from .lm import Model, make_no_prepare

__all__ = ["PEAK_SHAPES", "peaks_model"]

#: Shapes and their parameter count per peak.
PEAK_SHAPES = {"gaussian": 3, "lorentzian": 3, "pseudo_voigt": 4}

_LN2_4 = 4.0 * math.log(2.0)


def _point_factory(shape: str, k: int):
    per = PEAK_SHAPES[shape]
    kind = ("gaussian", "lorentzian", "pseudo_voigt").index(shape)

    def make_point(F):
        ZERO = F(0.0)
        ONE = F(1.0)
        TWO = F(2.0)
        FOUR = F(4.0)
        C = F(_LN2_4)
        NB = per * k

        def point(xj, j, m, p, aux, vb, jb, t, ks, js):
            total = p[NB] + p[NB + 1] * xj
            for q in range(k):
                o = q * per
                h = p[o]
                iw = ONE / p[o + 2]
                z = (xj - p[o + 1]) * iw
                z2 = z * z
                if kind == 0:
                    g = math.exp(-C * z2)
                    shp = g
                    dz = -TWO * C * z * g  # dP/dz
                elif kind == 1:
                    lor = ONE / (ONE + FOUR * z2)
                    shp = lor
                    dz = -F(8.0) * z * lor * lor
                else:
                    eta = p[o + 3]
                    g = math.exp(-C * z2)
                    lor = ONE / (ONE + FOUR * z2)
                    shp = eta * lor + (ONE - eta) * g
                    dz = eta * (-F(8.0) * z * lor * lor) + (ONE - eta) * (-TWO * C * z * g)
                    jb[(o + 3) * js + t] = h * (lor - g)
                total += h * shp
                jb[o * js + t] = shp
                jb[(o + 1) * js + t] = -h * dz * iw  # dz/dc = -1/w
                jb[(o + 2) * js + t] = -h * dz * z * iw  # dz/dw = -z/w
            vb[t] = total
            jb[NB * js + t] = ONE
            jb[(NB + 1) * js + t] = xj + ZERO

        return point

    return make_point


@functools.cache
def peaks_model(shape: str, n_peaks: int) -> Model:
    """The model of ``n_peaks`` peaks of ``shape`` plus a linear background (cached per shape and K).

    Parameters
    ----------
    shape : {'gaussian', 'lorentzian', 'pseudo_voigt'}
    n_peaks : int
        Number of peaks K >= 1 (a compile-time constant of the kernels).
    """
    if shape not in PEAK_SHAPES:
        msg = f"peak shape must be one of {sorted(PEAK_SHAPES)}, got {shape!r}"
        raise ValueError(msg)
    if int(n_peaks) < 1:
        msg = f"n_peaks must be >= 1, got {n_peaks!r}"
        raise ValueError(msg)
    k = int(n_peaks)
    return Model(f"{shape}_{k}", PEAK_SHAPES[shape] * k + 2, 1, _point_factory(shape, k), make_no_prepare, 1)
