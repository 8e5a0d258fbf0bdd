r"""Dense tanh recurrent network.

With ``N`` units and input ``v`` of size ``I``::

    h_t = tanh(W h_{t-1} + U v_t + b),   J_t = diag(1 - h_t^2) W

Parameter layout in ``theta``::

    W (N, N) | U (N, I) | b (N)
"""

from __future__ import annotations

import math

import numpy as np

from fpttsim.cells._init import orthogonal_with_spectrum
from fpttsim.numerics import kernel


def parameter_shapes(n: int, i: int) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of the cell's parameters, in storage order."""
    return [("W", (n, n)), ("U", (n, i)), ("b", (n,))]


def state_size(n: int) -> int:
    """One real number per unit."""
    return n


def initialise(
    rng: np.random.Generator,
    n: int,
    i: int,
    r_min: float,
    r_max: float,
    max_phase: float,
) -> list[np.ndarray]:
    """``W`` with singular values in ``[r_min, r_max]``; normalised input weights.

    Every eigenvalue modulus of ``W`` then lies in ``[r_min, r_max]`` too. The
    input weights carry the LRU's normalisation ``sqrt(1 - r_max^2)`` of its
    slowest mode: with ``|lam|`` near 1 a constant input would otherwise drive
    the state to ``tanh``'s saturation, where FPTT's inverse Jacobian grows by
    ``1 / (1 - h^2)`` per step and no float64 survives a long window.
    """
    w = orthogonal_with_spectrum(rng, n, r_min, r_max)
    u = math.sqrt(1.0 - r_max**2) * rng.normal(size=(n, i)) / math.sqrt(i)
    return [w, u, np.zeros(n)]


@kernel
def _preactivation(theta, h_prev, v, k):
    n = h_prev.shape[0]
    i = v.shape[0]
    u0 = n * n
    a = theta[u0 + n * i + k]
    for j in range(n):
        a += theta[k * n + j] * h_prev[j]
    for j in range(i):
        a += theta[u0 + k * i + j] * v[j]
    return a


@kernel
def step(theta, h_prev, v, h):
    """``h = tanh(W h_prev + U v + b)``."""
    for k in range(h.shape[0]):
        h[k] = math.tanh(_preactivation(theta, h_prev, v, k))


@kernel
def vjp(theta, h_prev, v, h, d, d_prev, grad, dv, accumulate):
    """``d_prev = W^T s`` with ``s = (1 - h^2) d``; gradients when ``accumulate``."""
    n = h.shape[0]
    i = v.shape[0]
    u0 = n * n
    b0 = u0 + n * i
    d_prev[:] = 0.0
    for k in range(n):
        s = (1.0 - h[k] * h[k]) * d[k]
        for j in range(n):
            d_prev[j] += theta[k * n + j] * s
        if not accumulate:
            continue
        for j in range(n):
            grad[k * n + j] += s * h_prev[j]
        for j in range(i):
            grad[u0 + k * i + j] += s * v[j]
            dv[j] += theta[u0 + k * i + j] * s
        grad[b0 + k] += s
