r"""Real diagonal cell (leaky integrator).

With ``N`` units and input ``v`` of size ``I``::

    h_t = lam * h_{t-1} + gamma * (B v_t),   lam = exp(-exp(nu_log)) in (0, 1)

It is the LRU with real eigenvalues, and it maps onto Loihi-style neurons (a
current decaying by a constant factor per step) directly. ``J = diag(lam)``.

Parameter layout in ``theta``::

    nu_log (N) | gamma_log (N) | B (N, I)

Kernels take the device's arithmetic ``ar`` first; ``lam`` is held in the
Jacobian's format, ``gamma`` in the weights'.
"""

from __future__ import annotations

import math

import numpy as np

from fpttsim.numerics import kernel
from fpttsim.numerics.arithmetic import accumulate, mac, mul, rnd
from fpttsim.numerics.codes import (
    ERROR,
    GRADIENT,
    INSTANT_ERROR,
    JACOBIAN,
    STATE,
    WEIGHTS,
)
from fpttsim.numerics.vector import columns, vmac, vmac_to

# Parameters in the learner's coordinates: updated by training, but not what a
# device holds. It holds lam (in the Jacobian's format) and gamma (in the
# weights'), which the kernels derive from them and round.
LEARNER_COORDINATES = ("nu_log", "gamma_log")


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
def _input_drive(ar, theta, n, v, w):
    """``w = B v``, each sum in input order.

    Column by column ("axpy" order): every sum keeps its order, and the
    units' chains of rounded additions overlap instead of waiting.
    """
    i = v.shape[0]
    base = 2 * n
    b_t = columns(theta, base, n, i)
    tmp = np.empty(n)
    w[:] = 0.0
    for j in range(i):
        vmac(ar, w, b_t[j], v[j], 1.0, tmp)


@kernel
def _decay(ar, theta, k):
    return rnd(ar, JACOBIAN, math.exp(-math.exp(theta[k])))


@kernel
def step(ar, theta, h_prev, v, h):
    """``h = lam * h_prev + gamma * (B v)``; ``h`` holds ``B v`` first."""
    n = h.shape[0]
    _input_drive(ar, theta, n, v, h)
    for k in range(n):
        gamma = rnd(ar, WEIGHTS, math.exp(theta[n + k]))
        s = mac(ar, mul(ar, _decay(ar, theta, k), h_prev[k]), gamma, h[k])
        h[k] = rnd(ar, STATE, s)


@kernel
def jacobian(ar, theta, h_prev, v, h, jac):
    """The diagonal Jacobian ``lam``."""
    for k in range(h.shape[0]):
        jac[k] = _decay(ar, theta, k)


@kernel
def vjp(ar, theta, h_prev, v, h, d, d_prev, grad, dv, accumulate_grads):
    """``d_prev = lam d``; when ``accumulate_grads``, parameter and input
    gradients. ``dlam/dnu_log = -exp(nu_log) lam``.
    """  # noqa: D205
    n = h.shape[0]
    i = v.shape[0]
    base = 2 * n
    drive = np.empty(n if accumulate_grads else 0)
    tmp = np.empty(i)
    if accumulate_grads:
        _input_drive(ar, theta, n, v, drive)
    for k in range(n):
        lam = _decay(ar, theta, k)
        d_prev[k] = rnd(ar, ERROR, mul(ar, lam, d[k]))
        if not accumulate_grads:
            continue
        d_nu = rnd(ar, WEIGHTS, -math.exp(theta[k]))
        term = mul(ar, mul(ar, d_nu, lam), mul(ar, d[k], h_prev[k]))
        accumulate(ar, GRADIENT, grad, k, term)
        gamma = rnd(ar, WEIGHTS, math.exp(theta[n + k]))
        gd = mul(ar, gamma, d[k])
        accumulate(ar, GRADIENT, grad, n + k, mul(ar, gd, drive[k]))
        row = base + k * i
        vmac_to(ar, GRADIENT, grad[row : row + i], v, gd, 1.0, tmp)
        vmac_to(ar, INSTANT_ERROR, dv, theta[row : row + i], gd, 1.0, tmp)
