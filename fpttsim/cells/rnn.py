r"""Dense tanh recurrent network.

With ``N`` units and input ``v`` of size ``I``::

    h_t = tanh(W h_{t-1} + U v_t + b),   J_t = diag(1 - h_t^2) W

Parameter layout in ``theta``::

    W (N, N) | U (N, I) | b (N)

Kernels take the device's arithmetic ``ar`` first; ``tanh`` is evaluated on
the rounded pre-activation and stored in the state's format.
"""

from __future__ import annotations

import math

import numpy as np

from fpttsim.cells._init import orthogonal_with_spectrum
from fpttsim.numerics import kernel
from fpttsim.numerics.arithmetic import accumulate, mul, rnd
from fpttsim.numerics.codes import ERROR, GRADIENT, INSTANT_ERROR, JACOBIAN, STATE
from fpttsim.numerics.vector import columns, vmac, vmac_to, vround

# Every parameter is held by the device as it is.
LEARNER_COORDINATES = ()


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
def step(ar, theta, h_prev, v, h):
    """``h = tanh(W h_prev + U v + b)``.

    ``h`` holds the pre-activations first. They are summed column by column
    ("axpy" order): each still sums its terms in index order, and the units'
    chains of rounded additions overlap instead of waiting on each other.
    """
    n = h.shape[0]
    i = v.shape[0]
    u0 = n * n
    for k in range(n):
        h[k] = theta[u0 + n * i + k]
    w_t = columns(theta, 0, n, n)
    u_t = columns(theta, u0, n, i)
    tmp = np.empty(n)
    for j in range(n):
        vmac(ar, h, w_t[j], h_prev[j], 1.0, tmp)
    for j in range(i):
        vmac(ar, h, u_t[j], v[j], 1.0, tmp)
    for k in range(n):
        h[k] = rnd(ar, STATE, math.tanh(h[k]))


@kernel
def jacobian(ar, theta, h_prev, v, h, jac):
    """``J = diag(1 - h^2) W``, row-major, in the Jacobian's format.

    Row ``k`` is what :func:`vjp` gives for the unit error ``e_k``: the slope
    ``1 - h_k^2`` as an error, its products with ``W``'s row summed into
    zero as errors, then stored as the Jacobian; the sums of the other rows'
    zero terms, which leave a value unchanged, are not done. ``N^2``
    operations instead of the ``N`` vjps (``N^3``) of a generic dense cell.
    """
    n = h.shape[0]
    tmp = np.empty(n)
    for k in range(n):
        slope = rnd(ar, ERROR, 1.0 - mul(ar, h[k], h[k]))
        s = rnd(ar, ERROR, mul(ar, slope, 1.0))
        row = jac[k * n : (k + 1) * n]
        row[:] = 0.0
        vmac_to(ar, ERROR, row, theta[k * n : (k + 1) * n], s, 1.0, tmp)
        vround(ar, JACOBIAN, row, tmp)


@kernel
def vjp(ar, theta, h_prev, v, h, d, d_prev, grad, dv, accumulate_grads):
    """``d_prev = W^T s`` with ``s = (1 - h^2) d``; gradients when asked."""
    n = h.shape[0]
    i = v.shape[0]
    u0 = n * n
    b0 = u0 + n * i
    d_prev[:] = 0.0
    tmp = np.empty(max(n, i))
    for k in range(n):
        slope = rnd(ar, ERROR, 1.0 - mul(ar, h[k], h[k]))
        s = rnd(ar, ERROR, mul(ar, slope, d[k]))
        vmac_to(ar, ERROR, d_prev, theta[k * n : (k + 1) * n], s, 1.0, tmp)
        if not accumulate_grads:
            continue
        vmac_to(ar, GRADIENT, grad[k * n : (k + 1) * n], h_prev, s, 1.0, tmp)
        row = u0 + k * i
        vmac_to(ar, GRADIENT, grad[row : row + i], v, s, 1.0, tmp)
        vmac_to(ar, INSTANT_ERROR, dv, theta[row : row + i], s, 1.0, tmp)
        accumulate(ar, GRADIENT, grad, b0 + k, s)
