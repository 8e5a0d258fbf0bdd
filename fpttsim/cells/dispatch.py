"""One entry point per cell operation, selected by the cell's code.

Compiled kernels cannot take a cell as an object, and taking compiled
functions as arguments defeats Numba's on-disk cache, so the kernels pass an
integer code and these functions branch on it. Every cell works on real
float64 arrays, which keeps each kernel compiled once. ``ar`` is the
device's arithmetic (:mod:`fpttsim.numerics.arithmetic`).
"""

from __future__ import annotations

from fpttsim.cells import diagonal, gru, lru, rnn
from fpttsim.cells.jacobian import COMPLEX_DIAGONAL, DENSE, REAL_DIAGONAL
from fpttsim.numerics import kernel
from fpttsim.numerics.arithmetic import rnd
from fpttsim.numerics.codes import JACOBIAN

LRU = 0
DIAGONAL = 1
RNN = 2
GRU = 3


@kernel
def jacobian_kind(cell):
    """The kind of the cell's recurrent Jacobian (see :mod:`.jacobian`)."""
    if cell == LRU:
        return COMPLEX_DIAGONAL
    if cell == DIAGONAL:
        return REAL_DIAGONAL
    return DENSE


@kernel
def step(ar, cell, theta, h_prev, v, h):
    """``h = f(h_prev, v)``."""
    if cell == LRU:
        lru.step(ar, theta, h_prev, v, h)
    elif cell == DIAGONAL:
        diagonal.step(ar, theta, h_prev, v, h)
    elif cell == RNN:
        rnn.step(ar, theta, h_prev, v, h)
    else:
        gru.step(ar, theta, h_prev, v, h)


@kernel
def vjp(ar, cell, theta, h_prev, v, h, d, d_prev, grad, dv, accumulate):
    """Transpose-Jacobian products of one step at the error ``d``.

    ``d_prev = J^T d``; when ``accumulate``, ``grad += (df/dtheta)^T d`` and
    ``dv += (df/dv)^T d``. ``h`` is ``f(h_prev, v)``.
    """
    if cell == LRU:
        lru.vjp(ar, theta, h_prev, v, h, d, d_prev, grad, dv, accumulate)
    elif cell == DIAGONAL:
        diagonal.vjp(ar, theta, h_prev, v, h, d, d_prev, grad, dv, accumulate)
    elif cell == RNN:
        rnn.vjp(ar, theta, h_prev, v, h, d, d_prev, grad, dv, accumulate)
    else:
        gru.vjp(ar, theta, h_prev, v, h, d, d_prev, grad, dv, accumulate)


@kernel
def jacobian(ar, cell, theta, h_prev, v, h, jac, unit, row):
    """Fill ``jac`` with ``J = df/dh_prev`` at ``(h_prev, v)``.

    The GRU's is formed row by row as ``J^T e_k`` from :func:`vjp` (each
    entry computed as an error, then stored in the Jacobian's format); the
    RNN's directly, with the same roundings. ``unit`` and ``row`` are scratch
    vectors of the state's size.
    """
    if cell == LRU:
        lru.jacobian(ar, theta, h_prev, v, h, jac)
    elif cell == DIAGONAL:
        diagonal.jacobian(ar, theta, h_prev, v, h, jac)
    elif cell == RNN:
        rnn.jacobian(ar, theta, h_prev, v, h, jac)
    else:
        n = h.shape[0]
        unit[:] = 0.0
        for k in range(n):
            unit[k] = 1.0
            vjp(ar, cell, theta, h_prev, v, h, unit, row, row[:0], v[:0], False)
            for j in range(n):
                jac[k * n + j] = rnd(ar, JACOBIAN, row[j])
            unit[k] = 0.0
