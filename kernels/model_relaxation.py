"""Relaxation models with analytic Jacobians: exponential, double exponential, stretched exponential.

* ``exponential``: ``f = A exp(-t / tau) + c``, parameters ``(A, tau, c)``.
* ``double_exponential``: ``f = A1 exp(-t / tau1) + A2 exp(-t / tau2) + c``, ``(A1, tau1, A2, tau2, c)``.
* ``stretched_exponential``: ``f = A exp(-(t / tau)^beta) + c`` for ``t >= 0``, ``(A, tau, beta, c)``.
"""

from __future__ import annotations

import math

from .lm import Model

__all__ = ["DOUBLE_EXPONENTIAL", "EXPONENTIAL", "STRETCHED_EXPONENTIAL"]


def _prepare_one_tau(F):
    """1 / tau (parameter 1)."""
    ONE = F(1.0)

    def prepare(p, aux):
        aux[0] = ONE / p[1]

    return prepare


def _prepare_two_taus(F):
    """1 / tau1 and 1 / tau2 (parameters 1 and 3)."""
    ONE = F(1.0)

    def prepare(p, aux):
        aux[0] = ONE / p[1]
        aux[1] = ONE / p[3]

    return prepare


def _point_exponential(F):
    ONE = F(1.0)

    def point(xj, j, m, p, aux, vb, jb, t, ks, js):
        it = aux[0]
        e = math.exp(-xj * it)
        a = p[0]
        vb[t] = a * e + p[2]
        jb[t] = e
        jb[js + t] = a * e * xj * it * it
        jb[2 * js + t] = ONE

    return point


def _point_double(F):
    ONE = F(1.0)

    def point(xj, j, m, p, aux, vb, jb, t, ks, js):
        it1 = aux[0]
        it2 = aux[1]
        e1 = math.exp(-xj * it1)
        e2 = math.exp(-xj * it2)
        vb[t] = p[0] * e1 + p[2] * e2 + p[4]
        jb[t] = e1
        jb[js + t] = p[0] * e1 * xj * it1 * it1
        jb[2 * js + t] = e2
        jb[3 * js + t] = p[2] * e2 * xj * it2 * it2
        jb[4 * js + t] = ONE

    return point


def _point_stretched(F):
    ZERO = F(0.0)
    ONE = F(1.0)

    def point(xj, j, m, p, aux, vb, jb, t, ks, js):
        it = aux[0]
        beta = p[2]
        a = p[0]
        z = xj * it
        if z > ZERO:
            lz = math.log(z)
            zb = math.exp(beta * lz)
        else:
            lz = ZERO
            zb = ZERO
        e = math.exp(-zb)
        vb[t] = a * e + p[3]
        jb[t] = e
        jb[js + t] = a * e * zb * beta * it
        jb[2 * js + t] = -a * e * zb * lz
        jb[3 * js + t] = ONE

    return point


#: ``A exp(-t / tau) + c``.
EXPONENTIAL = Model("exponential", 3, 1, _point_exponential, _prepare_one_tau, 1)
#: ``A1 exp(-t / tau1) + A2 exp(-t / tau2) + c``.
DOUBLE_EXPONENTIAL = Model("double_exponential", 5, 1, _point_double, _prepare_two_taus, 2)
#: ``A exp(-(t / tau)^beta) + c``.
STRETCHED_EXPONENTIAL = Model("stretched_exponential", 4, 1, _point_stretched, _prepare_one_tau, 1)
