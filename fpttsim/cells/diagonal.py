r"""Real diagonal cell (leaky integrator).

With ``N`` units and input ``v`` of size ``I``::

    h_t = lam * h_{t-1} + gamma * (B v_t),   lam = exp(-exp(nu_log)) in (0, 1)

It is the LRU with real eigenvalues, and it maps onto Loihi-style neurons (a
current decaying by a constant factor per step) directly. ``J = diag(lam)``.

Parameter layout in ``theta``::

    nu_log (N) | gamma_log (N) | B (N, I)
"""

from __future__ import annotations

import math

import numpy as np

from fpttsim.numerics import kernel


def parameter_shapes(n: int, i: int) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of the cell's parameters, in storage order."""
    return [("nu_log", (n,)), ("gamma_log", (n,)), ("B", (n, i))]


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
    """Decay factors uniform in ``[r_min, r_max]``; ``gamma = sqrt(1 - lam^2)``."""
    lam = rng.uniform(r_min, r_max, size=n)
    nu_log = np.log(-np.log(lam))
    gamma_log = np.log(np.sqrt(1.0 - lam**2))
    b = rng.normal(size=(n, i)) / math.sqrt(i)
    return [nu_log, gamma_log, b]


@kernel
def _input_drive(theta, n, v, k):
    i = v.shape[0]
    base = 2 * n
    w = 0.0
    for j in range(i):
        w += theta[base + k * i + j] * v[j]
    return w


@kernel
def step(theta, h_prev, v, h):
    """``h = lam * h_prev + gamma * (B v)``."""
    n = h.shape[0]
    for k in range(n):
        lam = math.exp(-math.exp(theta[k]))
        gamma = math.exp(theta[n + k])
        h[k] = lam * h_prev[k] + gamma * _input_drive(theta, n, v, k)


@kernel
def jacobian(theta, h_prev, v, h, jac):
    """The diagonal Jacobian ``lam``."""
    n = h.shape[0]
    for k in range(n):
        jac[k] = math.exp(-math.exp(theta[k]))


@kernel
def vjp(theta, h_prev, v, h, d, d_prev, grad, dv, accumulate):
    """``d_prev = lam d``; when ``accumulate``, parameter and input gradients.

    ``dlam/dnu_log = -exp(nu_log) lam``.
    """
    n = h.shape[0]
    i = v.shape[0]
    base = 2 * n
    for k in range(n):
        lam = math.exp(-math.exp(theta[k]))
        d_prev[k] = lam * d[k]
        if not accumulate:
            continue
        gamma = math.exp(theta[n + k])
        grad[k] += -math.exp(theta[k]) * lam * d[k] * h_prev[k]
        grad[n + k] += gamma * d[k] * _input_drive(theta, n, v, k)
        for j in range(i):
            grad[base + k * i + j] += gamma * d[k] * v[j]
            dv[j] += gamma * theta[base + k * i + j] * d[k]
