r"""The feed-forward block after each recurrent cell (memoryless).

For a layer with input ``u_t`` (size ``I``), state ``h_t`` (size ``S``) and
width ``H``, as in the LRU paper::

    y_t = C h_t + D u_t                     (H)   cell output
    m_t = (y_t - mean y_t) / sqrt(var y_t + eps)  layer normalisation
    o_t = W2 gelu(W1 m_t + b1) + b2 [+ u_t]  (H)   residual when I == H

For the LRU, ``C h`` with the real state ``[Re h, Im h]`` is ``Re(C' h)`` of a
complex ``C' = [Re C', -Im C']``. Parameter layout of one block::

    C (H, S) | D (H, I) | W1 (F, H) | b1 (F) | W2 (H, F) | b2 (H)
"""

from __future__ import annotations

import math

import numpy as np

from fpttsim.numerics import kernel

LAYER_NORM_EPS = 1e-5


def parameter_shapes(s: int, i: int, h: int, f: int) -> list[tuple[str, tuple]]:
    """Names and shapes of the block's parameters, in storage order."""
    return [
        ("C", (h, s)),
        ("D", (h, i)),
        ("W1", (f, h)),
        ("b1", (f,)),
        ("W2", (h, f)),
        ("b2", (h,)),
    ]


def initialise(rng: np.random.Generator, s: int, i: int, h: int, f: int) -> list:
    """Variance-preserving normal weights, zero biases."""
    return [
        rng.normal(size=(h, s)) / math.sqrt(s),
        rng.normal(size=(h, i)) / math.sqrt(i),
        rng.normal(size=(f, h)) / math.sqrt(h),
        np.zeros(f),
        rng.normal(size=(h, f)) / math.sqrt(f),
        np.zeros(h),
    ]


@kernel
def _matvec(theta, start, rows, cols, x, out):
    """``out = W x`` for ``W`` stored row-major at ``theta[start:]``."""
    for r in range(rows):
        acc = 0.0
        for c in range(cols):
            acc += theta[start + r * cols + c] * x[c]
        out[r] = acc


@kernel
def _gelu(x):
    return 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))


@kernel
def _gelu_slope(x):
    cdf = 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))
    return cdf + x * math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


@kernel
def _offsets(s, i, h, f):
    c0 = 0
    d0 = c0 + h * s
    w1 = d0 + h * i
    b1 = w1 + f * h
    w2 = b1 + f
    b2 = w2 + h * f
    return c0, d0, w1, b1, w2, b2


@kernel
def _forward_step(theta, u, h_t, width, hidden_ff, y, m, a1, q, o):
    """One step of the block; fills the intermediates the backward pass reuses.

    Returns the normalisation's ``1 / sqrt(var + eps)``.
    """
    s = h_t.shape[0]
    i = u.shape[0]
    c0, d0, w1, b1, w2, b2 = _offsets(s, i, width, hidden_ff)
    _matvec(theta, c0, width, s, h_t, y)
    for r in range(width):
        for c in range(i):
            y[r] += theta[d0 + r * i + c] * u[c]

    mean = np.sum(y) / width
    var = np.sum((y - mean) ** 2) / width
    inv_std = 1.0 / math.sqrt(var + LAYER_NORM_EPS)
    m[:] = (y - mean) * inv_std

    _matvec(theta, w1, hidden_ff, width, m, a1)
    for r in range(hidden_ff):
        a1[r] += theta[b1 + r]
        q[r] = _gelu(a1[r])
    _matvec(theta, w2, width, hidden_ff, q, o)
    for r in range(width):
        o[r] += theta[b2 + r]
    if i == width:
        o += u
    return inv_std


@kernel
def forward(theta, u, h, hidden_ff, o):
    """Block outputs ``o[t-1]`` for ``t = 1..T`` from ``u[t-1]`` and ``h[t]``."""
    width = o.shape[1]
    y = np.empty(width)
    m = np.empty(width)
    a1 = np.empty(hidden_ff)
    q = np.empty(hidden_ff)
    for t in range(u.shape[0]):
        _forward_step(theta, u[t], h[t + 1], width, hidden_ff, y, m, a1, q, o[t])


@kernel
def backward(theta, u, h, e, hidden_ff, grad, g, du):
    r"""Backpropagate the output errors ``e[t-1] = dL/do_t`` through the block.

    Fills ``g[t] = (dy_t/dh_t)^T dL/dy_t = C^T dL/dy_t`` (``g[0]`` untouched),
    ``du[t-1] = D^T dL/dy_t`` plus ``e[t-1]`` through the residual, and adds
    the block's parameter gradients to ``grad``. Layer normalisation::

        dL/dy = inv_std (dL/dm - mean(dL/dm) - m mean(dL/dm * m))
    """
    width = e.shape[1]
    s = h.shape[1]
    i = u.shape[1]
    c0, d0, w1, b1, w2, b2 = _offsets(s, i, width, hidden_ff)
    y = np.empty(width)
    m = np.empty(width)
    a1 = np.empty(hidden_ff)
    q = np.empty(hidden_ff)
    o = np.empty(width)
    da1 = np.empty(hidden_ff)
    dm = np.empty(width)
    dy = np.empty(width)
    for t in range(u.shape[0]):
        inv_std = _forward_step(theta, u[t], h[t + 1], width, hidden_ff, y, m, a1, q, o)
        et = e[t]

        # second linear layer and activation
        for r in range(width):
            grad[b2 + r] += et[r]
            for c in range(hidden_ff):
                grad[w2 + r * hidden_ff + c] += et[r] * q[c]
        for c in range(hidden_ff):
            acc = 0.0
            for r in range(width):
                acc += theta[w2 + r * hidden_ff + c] * et[r]
            da1[c] = acc * _gelu_slope(a1[c])

        # first linear layer
        for r in range(hidden_ff):
            grad[b1 + r] += da1[r]
            for c in range(width):
                grad[w1 + r * width + c] += da1[r] * m[c]
        for c in range(width):
            acc = 0.0
            for r in range(hidden_ff):
                acc += theta[w1 + r * width + c] * da1[r]
            dm[c] = acc

        # layer normalisation
        mean_dm = np.sum(dm) / width
        mean_dm_m = np.sum(dm * m) / width
        dy[:] = inv_std * (dm - mean_dm - m * mean_dm_m)

        # cell output y = C h + D u, and the residual
        g[t + 1] = 0.0
        if i == width:
            du[t] = et
        else:
            du[t] = 0.0
        for r in range(width):
            for c in range(s):
                grad[c0 + r * s + c] += dy[r] * h[t + 1, c]
                g[t + 1, c] += theta[c0 + r * s + c] * dy[r]
            for c in range(i):
                grad[d0 + r * i + c] += dy[r] * u[t, c]
                du[t, c] += theta[d0 + r * i + c] * dy[r]
